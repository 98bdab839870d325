"""manifest.json: what a version was built from, so a rerun can tell whether it is current."""

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from export.source import SourceModel
from export.targets import Target

MANIFEST_NAME = "manifest.json"


def build_manifest(
    *,
    source: SourceModel,
    target: Target,
    hidden_size: int,
    max_seq_len: int,
    opset: int,
    tools: dict[str, str],
    parity: dict[str, Any],
    target_details: dict[str, Any],
) -> dict[str, Any]:
    """target_details: what the target built (the offline-optimised graph and the ONNX Runtime
    that wrote it, the TensorRT version, GPU and profiles), since those files depend on them."""
    return {
        "source": {
            "model_dir": str(source.path),
            "model_type": source.model_type,
            "weights_sha256": source.weights_sha256,
        },
        "target": target.name,
        "precision": target.precision,
        "exporter_sha256": exporter_sha256(),
        "hidden_size": hidden_size,
        "max_seq_len": max_seq_len,
        "opset": opset,
        "tools": tools,
        "parity": parity,
        **target_details,
        "exported_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def write_manifest(version_dir: Path, manifest: dict[str, Any]) -> None:
    (version_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))


def read_manifest(version_dir: Path) -> dict[str, Any] | None:
    """A missing or unreadable manifest means "not current": the safe answer is to re-export."""
    try:
        manifest = json.loads((version_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def is_current(manifest: dict[str, Any] | None, source: SourceModel, target: Target) -> bool:
    if manifest is None or not isinstance(manifest.get("source"), dict):
        return False
    return (
        manifest["source"].get("weights_sha256") == source.weights_sha256
        and manifest.get("target") == target.name
        and manifest.get("precision") == target.precision
        and manifest.get("exporter_sha256") == exporter_sha256()
    )


def exporter_sha256() -> str:
    """A fingerprint of this exporter's code: a version written by older code (another graph,
    another served model.py) is not current, however equal its weights."""
    digest = hashlib.sha256()
    package = Path(__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
