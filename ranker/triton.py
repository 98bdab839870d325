"""A thin async client for the encoder model served by Triton.

It pins every inference to the model version it discovered, so that the version reported to
callers (and used as the cache namespace) is the one that really produced the embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as triton_grpc
from tritonclient.utils import InferenceServerException


class EncoderUnavailable(Exception):
    """Triton cannot be reached or cannot serve the encoder right now."""


class EncoderTimeout(Exception):
    """Triton did not answer within the time left in the request's budget."""


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    max_batch_size: int
    dim: int

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"


# gRPC's default reconnect backoff grows to two minutes; until the channel reconnects every
# answer is degraded, so the ranker retries a refused connection every quarter second (a refused
# connect on a local network costs next to nothing). Passing channel args replaces
# tritonclient's, so the message size limits it would set are repeated here.
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", triton_grpc.MAX_GRPC_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", triton_grpc.MAX_GRPC_MESSAGE_SIZE),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 250),
]


def encoder_inputs(input_ids: np.ndarray, attention_mask: np.ndarray) -> list:
    """The encoder's two INT64 inputs, named as every export target names them."""
    inputs = []
    for name, array in (("input_ids", input_ids), ("attention_mask", attention_mask)):
        tensor = triton_grpc.InferInput(name, list(array.shape), "INT64")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


class TritonEncoderClient:
    def __init__(self, url: str, model_name: str) -> None:
        self.url = url
        self.model_name = model_name
        self._client = triton_grpc.InferenceServerClient(url, channel_args=CHANNEL_ARGS)

    async def discover(self, timeout_s: float) -> ServedModel:
        """The newest ready version of the encoder, with its batch limit and embedding size."""
        try:
            metadata = await self._client.get_model_metadata(
                self.model_name, as_json=True, client_timeout=timeout_s
            )
            config = await self._client.get_model_config(
                self.model_name, as_json=True, client_timeout=timeout_s
            )
        except InferenceServerException as error:
            raise _translate(error, self.url) from None
        versions = [int(v) for v in metadata.get("versions", [])]
        if not versions:
            raise EncoderUnavailable(
                f"Triton at {self.url} has no ready version of {self.model_name}"
            )
        (output,) = (o for o in metadata["outputs"] if o["name"] == "embedding")
        return ServedModel(
            name=self.model_name,
            version=str(max(versions)),
            max_batch_size=int(config["config"].get("max_batch_size", 0)) or 1,
            dim=int(output["shape"][-1]),
        )

    async def embed(
        self,
        model: ServedModel,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        timeout_s: float,
    ) -> np.ndarray:
        try:
            result = await self._client.infer(
                self.model_name,
                encoder_inputs(input_ids, attention_mask),
                model_version=model.version,
                outputs=[triton_grpc.InferRequestedOutput("embedding")],
                client_timeout=timeout_s,
            )
        except InferenceServerException as error:
            raise _translate(error, self.url) from None
        return result.as_numpy("embedding")

    async def close(self) -> None:
        await self._client.close()


def _translate(error: InferenceServerException, url: str) -> Exception:
    if error.status() == "StatusCode.DEADLINE_EXCEEDED":
        return EncoderTimeout(f"Triton at {url} did not answer within the request's budget")
    return EncoderUnavailable(f"Triton at {url}: {error.message()}")
