#!/usr/bin/env python3
"""One-file bootstrap for a fresh clone: needs only Python >= 3.10.

    python3 dev.py studio      # create .venv if needed, then launch the studio on bundled data
    python3 dev.py test        # create .venv if needed, then run the whole test suite headless
    python3 dev.py bench NAME  # run benchmarks/NAME.py in the venv
    python3 dev.py cli ARGS    # run the `aestudio` command line (train / evaluate) in the venv

The virtual environment is (re)built only when pyproject.toml or requirements/torch.txt change.
torch is installed first from the pin in requirements/torch.txt, so the open `torch>=2.2`
range in pyproject.toml is already satisfied and pip never pulls a second, multi-GB build.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".aestudio-stamp"


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "requirements/torch.txt"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def ensure_venv() -> Path:
    if sys.version_info < (3, 10):
        sys.exit("aestudio needs Python >= 3.10 (this is %d.%d)" % sys.version_info[:2])
    py = _venv_python()
    want = _fingerprint()
    if py.exists() and STAMP.exists() and STAMP.read_text() == want:
        return py
    if not py.exists():
        print("[dev] creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    print("[dev] installing torch (requirements/torch.txt) ...", flush=True)
    subprocess.check_call(pip + ["-r", str(ROOT / "requirements/torch.txt")])
    print("[dev] installing aestudio and its test tools ...", flush=True)
    subprocess.check_call(pip + ["-e", f"{ROOT}[test]"])
    STAMP.write_text(want)
    return py


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "studio"
    rest = argv[1:]
    py = str(ensure_venv())
    env = dict(os.environ)
    if cmd == "test":
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        return subprocess.call([py, "-m", "pytest", *rest], cwd=ROOT, env=env)
    if cmd == "studio":
        return subprocess.call([py, "-m", "aestudio", *rest], cwd=ROOT, env=env)
    if cmd == "cli":
        return subprocess.call([py, "-m", "aestudio", *rest], cwd=ROOT, env=env)
    if cmd == "bench":
        if not rest:
            print("usage: python3 dev.py bench NAME [ARGS]  (NAME of a file in benchmarks/)")
            return 2
        return subprocess.call([py, str(ROOT / "benchmarks" / f"{rest[0]}.py"), *rest[1:]], cwd=ROOT, env=env)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
