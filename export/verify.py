"""`--verify-only`: re-runs the parity gate on a published version, locally or through Triton.

Locally it loads the version's own files with the target's runtime; with a Triton URL it sends the
probes, tokenized with the version's own tokenizer, to that exact version over gRPC, which also
checks the server's config, backend and hardware.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from tokenizers import Tokenizer
from tritonclient.grpc import model_config_pb2

from export.encoder import load_encoder
from export.errors import ExportFailure, ExportInputError
from export.manifest import read_manifest
from export.model_config import CONFIG_NAME, INPUT_NAMES, OUTPUT_NAME, Embedder
from export.onnx_graph import EmbeddingGraph
from export.parity import reference_embeddings, run_gate
from export.repository import latest_version
from export.serving_tokenizer import TOKENIZER_DIR
from export.source import SourceModel, inspect_source
from export.targets import TargetSettings, make_target


class ServingError(ExportFailure):
    """Triton does not serve the version, or failed a request."""


def verify_version(
    *,
    model_dir: Path,
    version: int | None,
    triton_url: str | None,
    source_dir: Path | None,
    log: Callable[[str], None],
) -> int:
    """Returns the version checked; raises ParityError (or ServingError) if it fails."""
    version = version if version is not None else latest_version(model_dir)
    version_dir = model_dir / str(version)
    if version is None or not version_dir.is_dir():
        raise ExportInputError(f"no published version {version or ''} in {model_dir}".strip())
    manifest = read_manifest(version_dir)
    if manifest is None or not isinstance(manifest.get("source"), dict):
        raise ExportInputError(f"{version_dir} has no readable manifest.json")
    source = _source_of(manifest, source_dir, version)
    tokenizer = Tokenizer.from_file(str(version_dir / TOKENIZER_DIR / "tokenizer.json"))
    if triton_url:
        embed, max_batch_size = triton_embedder(triton_url, model_dir.name, version)
        embedders = {f"{model_dir.name}:{version} on Triton {triton_url}": embed}
    else:
        target = make_target(
            manifest["target"], TargetSettings(int8=manifest.get("precision") == "int8")
        )
        target.check_ready()
        embedders = target.embedders(version_dir)
        max_batch_size = _configured_max_batch_size(model_dir)
    log(f"loading the reference from {source.path}...")
    graph = EmbeddingGraph(load_encoder(source).encoder)
    run_gate(
        reference_embeddings(graph, tokenizer),
        tokenizer,
        embedders,
        # The gate the version was published under, operator overrides included.
        threshold=manifest["parity"]["min_cosine"],
        max_batch_size=max_batch_size,
        log=log,
    )
    return version


def triton_embedder(url: str, model_name: str, version: int) -> tuple[Embedder, int]:
    """Returns the embedder and the served max_batch_size, as the server reports it."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url)
    pinned = str(version)
    try:
        ready = client.is_model_ready(model_name, pinned)
        config = client.get_model_config(model_name, pinned).config if ready else None
    except InferenceServerException as exc:
        raise ServingError(
            f"cannot ask Triton at {url} about {model_name}: {exc.message()}"
        ) from None
    if config is None:
        raise ServingError(f"Triton at {url} does not serve {model_name} version {version}")

    def embed(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        inputs = []
        for name, array in zip(INPUT_NAMES, (input_ids, attention_mask), strict=True):
            tensor = grpcclient.InferInput(name, list(array.shape), "INT64")
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        try:
            result = client.infer(
                model_name,
                inputs,
                model_version=pinned,
                outputs=[grpcclient.InferRequestedOutput(OUTPUT_NAME)],
            )
        except InferenceServerException as exc:
            raise ServingError(
                f"{model_name}:{version} failed a request: {exc.message()}"
            ) from None
        return result.as_numpy(OUTPUT_NAME)

    return embed, max(1, config.max_batch_size)  # 0: a model without batching


def _source_of(manifest: dict, source_dir: Path | None, version: int) -> SourceModel:
    """The reference must be the weights the version was built from, not whatever is there now."""
    source = inspect_source(source_dir or Path(manifest["source"]["model_dir"]))
    if source.weights_sha256 != manifest["source"].get("weights_sha256"):
        raise ExportInputError(
            f"{source.path} does not hold the weights version {version} was built from "
            "(their sha256 differs from the manifest); pass the original with --model-dir"
        )
    return source


def _configured_max_batch_size(model_dir: Path) -> int:
    try:
        text = (model_dir / CONFIG_NAME).read_text()
        return text_format.Parse(text, model_config_pb2.ModelConfig()).max_batch_size
    except (OSError, text_format.ParseError) as exc:
        raise ExportInputError(f"cannot read {model_dir / CONFIG_NAME}: {exc}") from None
