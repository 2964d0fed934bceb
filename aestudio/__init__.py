"""aestudio: a desktop studio for building, training and exploring autoencoders."""
import os as _os

# OpenMP threads that spin while they wait turn any contention for the cores (the GUI thread, a lab
# computing beside training, another process) into a 50-150x slowdown of torch on small machines
# (measured: 22,000 vs 160 images/s on 2 cores with a second busy process). Sleeping waiters cost
# little when the cores are free. Must be set before torch is first imported; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
