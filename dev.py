#!/usr/bin/env python3
"""Developer entry point; needs only Python 3.11+.

    python3 dev.py demo    # set up .venv if needed, then run the drift demo on the embedded broker
    python3 dev.py test    # set up .venv if needed, then run the whole test suite
    python3 dev.py lint    # ruff + mypy
    python3 dev.py bench   # engine benchmark figures (`bench processor [--broker apache]`: end to end)

The virtual environment lives in .venv and is reinstalled when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def sh(*cmd: str | Path, env: dict[str, str] | None = None) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)


def ensure_env() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036  (dev.py runs under whatever python3 the user has)
        sys.exit(f"driftstream needs Python 3.11+, this is {sys.version.split()[0]}")
    stamp = VENV / ".installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want and PY.exists():
        return
    if not PY.exists():
        shutil.rmtree(VENV, ignore_errors=True)
        if sh(sys.executable, "-m", "venv", VENV):
            sys.exit("could not create .venv")
    if sh(PY, "-m", "pip", "install", "-q", "--upgrade", "pip") or sh(PY, "-m", "pip", "install", "-q", "-e", ".[dev]"):
        sys.exit("pip install failed (see above)")
    stamp.write_text(want)


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "help"
    rest = argv[1:]
    if what not in ("demo", "test", "lint", "bench"):
        print(__doc__)
        return 0 if what == "help" else 2
    ensure_env()
    if what == "demo":
        return sh(BIN / "driftstream", "demo", *rest)
    if what == "lint":
        return (
            sh(PY, "-m", "ruff", "check", ".") or sh(PY, "-m", "ruff", "format", "--check", ".") or sh(PY, "-m", "mypy")
        )
    if what == "bench":
        what_bench = rest if rest[:1] in (["engine"], ["processor"]) else ["engine", *rest]
        return sh(PY, "-m", "loadtest.bench", *what_bench)
    code = sh(PY, "-m", "pytest", *rest)
    return 0 if code == 5 and os.environ.get("DRIFTSTREAM_ALLOW_EMPTY") else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
