"""aestudio: a desktop studio for building, training and exploring autoencoders."""
import os as _os

# OpenMP threads that spin long while they wait turn any contention for the cores (the GUI thread,
# a lab computing beside training, another process) into a 50-150x slowdown of torch on small
# machines (measured on 2 cores beside a busy process: 160 images/s with libgomp's default spin,
# 11,200 with a short spin). Sleeping at once (OMP_WAIT_POLICY=PASSIVE) fixes that too but cost
# 45% of the uncontended speed; a short spin keeps nearly all of it. Must be set before torch is
# first imported; a user's own OpenMP settings win.
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "20000")

__version__ = "0.1.0"
