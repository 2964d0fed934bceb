"""`python -m aestudio`: the same as the `aestudio` command."""
import os
import sys

from aestudio.cli import main


def _is_torchrun_rank() -> bool:
    world = os.environ.get("WORLD_SIZE", "1")
    return world.isdecimal() and int(world) > 1


if __name__ == "__main__":
    code = main()
    if _is_torchrun_rank():  # torchrun starts its training processes with `-m aestudio`
        from aestudio.core.distributed import end_rank

        end_rank(code)
    sys.exit(code)
