"""Make the pytriton wheel's Python backend loadable by its bundled tritonserver.

The wheel ships the backend library, its utils module and one stub per Python version in
separate folders; tritonserver expects them together in `<backend-dir>/python/`. The stub is
linked with a relative RPATH to the wheel's shared libraries, so the files are symlinked (the
loader resolves $ORIGIN through the link) rather than copied.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path

BACKEND_LIBRARY = "libtriton_python.so"
BACKEND_UTILS = "triton_python_backend_utils.py"
STUB = "triton_python_backend_stub"


def running_python_version() -> str:
    """The `major.minor` of this interpreter, which selects the stub build."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def layout_backend_dir(bundled_root: Path, target: Path) -> Path:
    """Lay out `target/python/` from the wheel at `bundled_root`; return `target`.

    Idempotent: existing links are replaced, so a directory can be reused across runs.
    """
    version = running_python_version()
    stub = bundled_root / "python_backend_stubs" / version / STUB
    if not stub.is_file():
        raise FileNotFoundError(f"pytriton has no Python backend stub for Python {version}")
    sources = {
        BACKEND_LIBRARY: bundled_root / "backends" / "python" / BACKEND_LIBRARY,
        BACKEND_UTILS: bundled_root / "backends" / "python" / BACKEND_UTILS,
        STUB: stub,
    }
    python_dir = target / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        link = python_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(source.resolve())
    return target


def _prepend(entry: str, existing: str | None) -> str:
    return os.pathsep.join(p for p in (entry, existing) if p)


def stub_environment(base: Mapping[str, str]) -> dict[str, str]:
    """Environment under which the stub runs models in this virtual environment.

    The stub's embedded interpreter ignores PYTHONPATH and finds its packages from the first
    `python3` on PATH, so this interpreter's directory goes first. It is linked against the
    system libpython, which may be a different patch build than this interpreter's; putting
    this interpreter's LIBDIR first makes both agree.
    """
    env = dict(base)
    env["PATH"] = _prepend(os.path.dirname(sys.executable), base.get("PATH"))
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and os.path.isdir(libdir):
        env["LD_LIBRARY_PATH"] = _prepend(libdir, base.get("LD_LIBRARY_PATH"))
    return env
