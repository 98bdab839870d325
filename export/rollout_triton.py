"""The Triton side of a rollout: which versions are served, serving a chosen set, warming one.

Every change is one load request whose config overrides `version_policy` with the exact set of
versions to serve. Triton keeps a version that stays in the set serving while the others load,
and lets requests already running on a version that leaves the set finish before unloading it,
so a change never leaves a gap. Only explicit model-control mode accepts load requests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import tritonclient.grpc as triton_grpc
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

from export.model_config import CONFIG_NAME, OUTPUT_NAME
from ranker.settings import Settings
from ranker.tokenizer import TextTokenizer
from ranker.triton import encoder_inputs

# Short and long titles, unicode and an empty text: the shapes the ranker will send first.
WARM_TEXTS = (
    "WHITE HANGING HEART T-LIGHT HOLDER",
    "SET OF 3 CAKE TINS PANTRY DESIGN",
    "Crème brûlée torch, café edition 🍮",
    "",
    "hand-poured soy candle with cotton wick, lavender and cedar, 40 hour burn " * 4,
)
# Triton's own answer when it runs in mode none or poll, which says nothing about the fix.
LOAD_REFUSED_MARKER = "not allowed"
UNREACHABLE_MARKER = "failed to connect"
READY = "READY"
T = TypeVar("T")


class RolloutError(Exception):
    """A rollout step failed; the message is the one line an operator needs."""


class ModelControl:
    """Loads, retires and probes the versions of one model on one Triton, over gRPC."""

    def __init__(self, url: str, repository: Path, model_name: str, timeout_s: float) -> None:
        self.url = url
        self.model_dir = repository / model_name
        self.model_name = model_name
        self.timeout_s = timeout_s
        self._client = triton_grpc.InferenceServerClient(url)

    def close(self) -> None:
        self._client.close()

    def ready_versions(self) -> list[int]:
        """The versions Triton serves now, from its repository index."""
        index = self._call(self._client.get_model_repository_index, as_json=True)
        return sorted(
            int(entry["version"])
            for entry in index.get("models", [])
            if entry["name"] == self.model_name and entry.get("state") == READY
        )

    def serve(self, versions: Sequence[int]) -> None:
        """Makes `versions` exactly the served set: loads the missing ones, retires the rest."""
        wanted = sorted(set(versions))
        if not wanted:
            self._call(self._client.unload_model, self.model_name)
            return
        self._call(
            self._client.load_model,
            self.model_name,
            config=self._config_json(wanted),
            client_timeout=self.timeout_s,
        )
        served = self.ready_versions()
        if served != wanted:
            raise RolloutError(
                f"Triton at {self.url} serves {self.model_name} versions {served} "
                f"after loading {wanted}"
            )

    def warm(self, version: int) -> None:
        """Real inferences through `version`, tokenized by its own tokenizer; checks the output."""
        tokenizer_json = self.model_dir / str(version) / "tokenizer" / "tokenizer.json"
        if not tokenizer_json.is_file():
            raise RolloutError(f"no tokenizer for version {version}: {tokenizer_json} is missing")
        ids, mask = TextTokenizer(tokenizer_json, Settings().max_tokens).encode(list(WARM_TEXTS))
        for rows in (1, len(WARM_TEXTS)):
            result = self._call(
                self._client.infer,
                self.model_name,
                encoder_inputs(ids[:rows], mask[:rows]),
                model_version=str(version),
                outputs=[triton_grpc.InferRequestedOutput(OUTPUT_NAME)],
                client_timeout=self.timeout_s,
            )
            check_embeddings(result.as_numpy(OUTPUT_NAME), rows, version)

    def _config_json(self, versions: list[int]) -> str:
        # The repository's config.pbtxt, as a plain load would read it, pinned to `versions`.
        path = self.model_dir / CONFIG_NAME
        try:
            config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        except (OSError, text_format.ParseError) as error:
            raise RolloutError(f"cannot read {path}: {error}") from None
        config.version_policy.specific.versions[:] = versions
        return json_format.MessageToJson(config, preserving_proto_field_name=True)

    def _call(self, method: Callable[..., T], *args: object, **kwargs: object) -> T:
        try:
            return method(*args, **kwargs)
        except InferenceServerException as error:
            raise self._explain(error) from None

    def _explain(self, error: InferenceServerException) -> RolloutError:
        message = error.message() or str(error)
        if LOAD_REFUSED_MARKER in message:
            return RolloutError(
                f"Triton at {self.url} refuses to load or unload models: start it with "
                f"--model-control-mode=explicit (it said: {message})"
            )
        if UNREACHABLE_MARKER in message:
            return RolloutError(f"Triton at {self.url} is unreachable: {message}")
        return RolloutError(f"Triton at {self.url}: {message}")


def check_embeddings(embeddings: np.ndarray | None, rows: int, version: int) -> None:
    """A version that answers with the wrong shape or NaNs must never receive traffic."""
    if embeddings is None or embeddings.ndim != 2 or embeddings.shape[0] != rows:
        shape = None if embeddings is None else embeddings.shape
        raise RolloutError(f"version {version} answered {rows} texts with shape {shape}")
    if not np.isfinite(embeddings).all():
        raise RolloutError(f"version {version} answered with non-finite embeddings")
