"""Where a tritonserver binary lives: an explicit path, the pytriton wheel, or a system install.

The `nvidia-pytriton` wheel (the `triton-cpu` extra) bundles a complete tritonserver with the
Python backend, which is how machines without the NGC container get a real server. A system
install (the NGC container's /opt/tritonserver) brings its own backends directory.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

TRITONSERVER_ENV = "TRITONSERVER"


def bundled_root() -> Path | None:
    """The `pytriton/tritonserver` directory of the installed wheel, if any.

    Found via the import system without importing pytriton, which pulls in heavy dependencies.
    """
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    return root if (root / "bin" / "tritonserver").is_file() else None


def find_tritonserver() -> Path | None:
    """Locate tritonserver: $TRITONSERVER, then the pytriton wheel, then `tritonserver` on PATH.

    The wheel comes before PATH because it is the build this project pins and tests against.
    """
    explicit = os.environ.get(TRITONSERVER_ENV)
    if explicit:
        return Path(explicit)
    root = bundled_root()
    if root is not None:
        return root / "bin" / "tritonserver"
    on_path = shutil.which("tritonserver")
    return Path(on_path) if on_path else None


def is_available() -> bool:
    """Whether a tritonserver binary can be found and executed."""
    binary = find_tritonserver()
    return binary is not None and binary.is_file() and os.access(binary, os.X_OK)


def is_bundled(binary: Path) -> bool:
    """Whether `binary` is the wheel's server, which needs a backend directory laid out for it."""
    root = bundled_root()
    return root is not None and binary.resolve() == (root / "bin" / "tritonserver").resolve()
