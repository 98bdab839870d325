"""The committed `tokenizer` and `text_encoder` models on a real tritonserver.

Raw text sent to text_encoder must give the embeddings a client gets by tokenizing with the
exported tokenizer.json and calling bert_encoder itself, whatever the batching merged.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tokenizers import Tokenizer
from tritonclient.utils import InferenceServerException

from demo.catalogue import load_items
from launcher.triton import TritonServer
from ranker.settings import Settings
from ranker.triton import encoder_inputs

pytestmark = pytest.mark.integration

COMMITTED = Path(__file__).resolve().parent.parent / "model_repository"
TITLES = list(load_items().values())
VARIED = [
    "RED SPOTTY APRON",
    "SET/20 STRAWBERRY PAPER NAPKINS",
    "Café crème brûlée ☕ — 日本語のキャンドル 🍮",
    "x",
    "scented candle " * 300,  # past the tokenizer's truncation length
]
PINNED_TOKENIZER = "bert_encoder/1/tokenizer/tokenizer.json"  # relative to the repository


@pytest.fixture(scope="module")
def text_repository(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's exported bert_encoder beside copies of the committed text models, and a
    `pinned_tokenizer` that names its tokenizer.json in the `tokenizer_path` parameter."""
    repository = tmp_path_factory.mktemp("text_repository")
    (repository / "bert_encoder").symlink_to(model_repository / "bert_encoder")
    for name in ("tokenizer", "text_encoder"):
        shutil.copytree(
            COMMITTED / name, repository / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    pinned = repository / "pinned_tokenizer"
    shutil.copytree(repository / "tokenizer", pinned)
    config = (pinned / "config.pbtxt").read_text()
    config = config.replace('name: "tokenizer"', 'name: "pinned_tokenizer"')
    config = config.replace('string_value: ""', f'string_value: "{PINNED_TOKENIZER}"')
    (pinned / "config.pbtxt").write_text(config)
    return repository


@pytest.fixture(scope="module")
def client(text_repository: Path) -> Iterator[grpcclient.InferenceServerClient]:
    with TritonServer(text_repository) as server:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        yield client
        client.close()


@pytest.fixture(scope="module")
def tokenizer(model_repository: Path) -> Tokenizer:
    """The exported tokenizer as the ranker uses it: truncated at its max_tokens."""
    versions = (model_repository / "bert_encoder").glob("[0-9]*")
    newest = max(versions, key=lambda path: int(path.name))
    tokenizer = Tokenizer.from_file(str(newest / "tokenizer" / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=Settings().max_tokens)
    tokenizer.enable_padding(pad_id=0)
    return tokenizer


def text_input(values: np.ndarray, datatype: str = "BYTES") -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("TEXT", list(values.shape), datatype)
    tensor.set_data_from_numpy(values)
    return tensor


def embed_text(client: grpcclient.InferenceServerClient, texts: list[str]) -> np.ndarray:
    values = np.array([[text.encode()] for text in texts], dtype=np.object_)
    return client.infer("text_encoder", [text_input(values)]).as_numpy("embedding")


def embed_tokens(
    client: grpcclient.InferenceServerClient, tokenizer: Tokenizer, texts: list[str]
) -> np.ndarray:
    encodings = tokenizer.encode_batch(texts)
    input_ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
    attention_mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
    inputs = encoder_inputs(input_ids, attention_mask)
    return client.infer("bert_encoder", inputs).as_numpy("embedding")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_all_three_models_load(client):
    for name in ("tokenizer", "bert_encoder", "text_encoder"):
        assert client.is_model_ready(name), name


def test_tokenizer_pads_to_the_longest_text_and_truncates(client, tokenizer):
    texts = ["RED SPOTTY APRON", "scented candle " * 300, ""]
    values = np.array([[text.encode()] for text in texts], dtype=np.object_)
    expected = tokenizer.encode_batch(texts)
    for model in ("tokenizer", "pinned_tokenizer"):
        result = client.infer(model, [text_input(values)])
        assert result.as_numpy("input_ids").tolist() == [e.ids for e in expected]
        assert result.as_numpy("attention_mask").tolist() == [e.attention_mask for e in expected]
    assert result.as_numpy("input_ids").shape[1] == Settings().max_tokens


@pytest.mark.parametrize(
    "texts", [VARIED, VARIED[:1], TITLES[:64]], ids=["varied", "one", "max-batch"]
)
def test_text_encoder_matches_tokenizing_in_python(client, tokenizer, texts):
    via_text = embed_text(client, texts)
    assert via_text.shape == (len(texts), 384)
    assert cosines(via_text, embed_tokens(client, tokenizer, texts)).min() >= 0.9999


def test_concurrent_requests_each_get_their_own_embeddings(client, tokenizer):
    """Many requests of different lengths at once: the dynamic batchers merge and split them."""
    groups = [TITLES[i : i + 1 + i % 5] for i in range(0, 96, 6)] + [VARIED]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda texts: embed_text(client, texts), groups))
    expected = embed_tokens(client, tokenizer, [text for group in groups for text in group])
    assert cosines(np.concatenate(results), expected).min() >= 0.9999


def test_empty_text_gets_an_embedding(client):
    embeddings = embed_text(client, ["", "WHITE HANGING HEART T-LIGHT HOLDER", ""])
    assert embeddings.shape == (3, 384)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize(
    ("values", "datatype", "message"),
    [
        (np.array([[b"\xff\xfe candle"]], dtype=np.object_), "BYTES", "UTF-8"),
        (np.array([[1, 2]], dtype=np.int64), "INT64", "data-type"),
        (np.array([[b"a", b"b"]], dtype=np.object_), "BYTES", "shape"),
    ],
    ids=["not-utf8", "wrong-type", "wrong-shape"],
)
def test_malformed_request_gets_an_error_and_the_server_keeps_serving(
    client, values, datatype, message
):
    with pytest.raises(InferenceServerException, match=message):
        client.infer("text_encoder", [text_input(values, datatype)])
    assert embed_text(client, ["PINK PAPER PARASOL"]).shape == (1, 384)
