"""Which weights an embedding space comes from, read from the manifest that the export writes
beside every version.

A prior learned on embeddings (the two-stream model's content weights) holds only in the space
it was fitted in: another encoder of the same size (a fine-tuned version, a new checkpoint) puts
texts elsewhere, and the prior would score them at random.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"


def encoder_fingerprint(version_dir: Path) -> str:
    """A short hash of the exported checkpoint's weight files; "" when the version has no
    readable manifest (the space is then unknown)."""
    try:
        manifest = json.loads((version_dir / MANIFEST).read_text())
        weights = manifest["source"]["weights_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return hashlib.sha256(json.dumps(weights, sort_keys=True).encode()).hexdigest()[:16]
