"""Triton model repository layout: numbered version dirs that appear whole or not at all."""

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from export.errors import ExportInputError

_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# A version that `python -m export rollback` moved aside: Triton ignores directories whose names
# are not numbers, so a restart does not serve it again; its number is never reused.
ROLLED_BACK_PREFIX = "rolled-back-"
_VERSION = re.compile(rf"(?:{ROLLED_BACK_PREFIX})?([0-9]+)")


def model_path(repository: Path, model_name: str) -> Path:
    if not _MODEL_NAME.fullmatch(model_name):
        raise ExportInputError(
            f"model name {model_name!r} must be letters, digits, '_', '.' or '-' "
            "and must not start with '.' or '-'"
        )
    return repository / model_name


def check_writable(model_dir: Path) -> None:
    """Runs before the slow export and creates nothing, so a bad --repository fails at once."""
    if model_dir.exists() and not model_dir.is_dir():
        raise ExportInputError(f"{model_dir} exists and is not a directory")
    existing = model_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ExportInputError(f"cannot create {model_dir}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ExportInputError(f"cannot create {model_dir}: {existing} is not writable")


def latest_version(model_dir: Path) -> int | None:
    """Counts every numeric entry, even an empty dir or a file, so none is ever renamed over,
    and every rolled-back one, so no number comes back with other weights (rankers key their
    embedding cache by the version)."""
    if not model_dir.is_dir():
        return None
    found = (_VERSION.fullmatch(entry.name) for entry in model_dir.iterdir())
    return max((int(match.group(1)) for match in found if match), default=None)


def set_aside(model_dir: Path, version: int) -> Path:
    """Renames a version so that Triton no longer sees it; OSError when it cannot."""
    aside = model_dir / f"{ROLLED_BACK_PREFIX}{version}"
    os.rename(model_dir / str(version), aside)
    return aside


def publish_version(model_dir: Path, write_files: Callable[[Path], None]) -> tuple[int, Path]:
    """Fills a hidden temp dir next to the versions, then renames it to the next number.

    The rename is atomic on one filesystem, so Triton's repository poller never loads a
    half-written version. Any exception, KeyboardInterrupt included, removes what was written.
    """
    created_model_dir = not model_dir.exists()
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=model_dir))
    try:
        write_files(staging)
        staging.chmod(0o755)  # mkdtemp makes it 0700; tritonserver may run as another user
        version = (latest_version(model_dir) or 0) + 1
        final = model_dir / str(version)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_model_dir:
            with suppress(OSError):
                model_dir.rmdir()
        raise
    return version, final


def write_atomically(path: Path, text: str) -> None:
    """Write-then-replace, so a running tritonserver never reads a truncated config.pbtxt."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
