"""Triton's perf_analyzer against bert_encoder and text_encoder, on real product titles.

perf_analyzer has no usable PyPI release of its own, but the tritonclient 2.51.0 wheel carries
the binary. It is downloaded once into .cache/perf_analyzer/ (pip download, not installed, so
the project's newer tritonclient stays) and finds its two missing libraries among the copies
the pytriton wheel already ships. Each request carries `--batch-size` titles; concurrency is
what lets the dynamic batchers merge requests. text_encoder sends the titles committed in
bench/perf_inputs/ (`--write-text-inputs` rebuilds it from demo/data/items.csv); bert_encoder
sends them tokenized by the served version's tokenizer.json, written beside the CSVs.

    python bench/perf_analyzer.py [--repository model_repository] [--url HOST:PORT]

`--compare fp32 int8` instead exports each variant of the CPU default into a scratch repository,
measures the in-process ONNX Runtime (and sentence-transformers) figures with bench/encoder.py,
then sweeps `--models` through Triton on each variant, all in this one run, and prints each
point's ratio to them. text_encoder is the fair one at batch > 1: its tokenizer pads each batch to
its own longest title, as bench/encoder.py and the ranker do, where bert_encoder's inputs must all
be padded to the longest of the set.

    python bench/perf_analyzer.py --compare fp32 int8 --batch-size 32
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from tokenizers import Tokenizer

from launcher.triton import TritonServer

ROOT = Path(__file__).resolve().parent.parent
ENCODER_BENCH = ROOT / "bench" / "encoder.py"
CACHE_DIR = ROOT / ".cache" / "perf_analyzer"
TEXT_INPUTS = ROOT / "bench" / "perf_inputs" / "text_encoder.json"
TITLES_CSV = ROOT / "demo" / "data" / "items.csv"
WHEEL_VERSION = "2.51.0"
WHEEL_MEMBER = f"tritonclient-{WHEEL_VERSION}.data/data/bin/perf_analyzer"
# soname the binary asks for -> pattern of the hashed copy in nvidia_pytriton.libs/
LIBRARY_LINKS = {"libb64.so.0d": "libb64-*.so.0d", "libcudart.so.12": "libcudart-*.so.12*"}
ENTRIES = 64
MODELS = ("bert_encoder", "text_encoder")
# `python -m export` flags of each variant of the CPU default (python-ort) that --compare runs.
VARIANTS = {"fp32": (), "int8": ("--int8",)}
# The targets for the CPU default through Triton: against (a) in-process ONNX Runtime
# of the same model, and against sentence-transformers' `encode`.
TARGETS = {"onnxruntime": 0.9, "sentence_transformers": 1.7}
# perf_analyzer's CSV column -> the table's heading; latencies are in microseconds.
TABLE_COLUMNS = {
    "Concurrency": "concurrency",
    "Inferences/Second": "infer/s",
    "p50 latency": "p50 ms",
    "p95 latency": "p95 ms",
    "p99 latency": "p99 ms",
}


class PerfAnalyzerUnavailable(RuntimeError):
    """The binary could not be prepared (no network to PyPI, or no pytriton libraries)."""


def load_titles(path: Path = TITLES_CSV, count: int = ENTRIES) -> list[str]:
    """Evenly spaced through the catalogue, so lengths and vocabulary vary as in production."""
    with path.open(newline="") as f:
        titles = [row["text"] for row in csv.DictReader(f)]
    return titles[:: max(1, len(titles) // count)][:count]


def text_input_data(titles: Sequence[str]) -> dict:
    """One perf_analyzer step per title; the batch dimension is not part of an entry."""
    return {"data": [{"TEXT": [title]} for title in titles]}


def encoder_input_data(tokenizer: Tokenizer, titles: Sequence[str], same_length: bool) -> dict:
    """Each title as the tokenizer model would send it alone. perf_analyzer builds a batch of B
    from a window of B consecutive steps, sliding one step per request, and refuses unequal
    shapes, so for B > 1 (`same_length`) every title is padded to the longest."""
    encodings = tokenizer.encode_batch(list(titles))
    longest = max(len(encoding.ids) for encoding in encodings)
    steps = []
    for encoding in encodings:
        length = longest if same_length else len(encoding.ids)
        padding = [0] * (length - len(encoding.ids))
        steps.append(
            {
                "input_ids": {"content": encoding.ids + padding, "shape": [length]},
                "attention_mask": {"content": encoding.attention_mask + padding, "shape": [length]},
            }
        )
    return {"data": steps}


def served_tokenizer(repository: Path) -> tuple[int, Tokenizer]:
    """The newest bert_encoder version, the one Triton serves, and its tokenizer."""
    model_dir = repository / "bert_encoder"
    versions = [int(path.name) for path in model_dir.glob("[0-9]*") if path.name.isdigit()]
    if not versions:
        raise FileNotFoundError(f"no version of {model_dir}; run `python -m export` first")
    path = model_dir / str(max(versions)) / "tokenizer" / "tokenizer.json"
    return max(versions), Tokenizer.from_file(str(path))


def prepare_binary(cache_dir: Path = CACHE_DIR) -> tuple[Path, dict[str, str]]:
    """The perf_analyzer binary and the environment it runs in; downloads on first use."""
    binary = cache_dir / "perf_analyzer"
    lib_dir = cache_dir / "lib"
    if not binary.is_file():
        wheels = list(cache_dir.glob(f"tritonclient-{WHEEL_VERSION}-*.whl"))
        if not wheels:
            download = subprocess.run(
                [
                    *(sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"),
                    f"tritonclient=={WHEEL_VERSION}",
                    *("--only-binary=:all:", "--platform", "manylinux1_x86_64"),
                    *("-d", str(cache_dir)),
                ],
                capture_output=True,
                text=True,
            )
            wheels = list(cache_dir.glob(f"tritonclient-{WHEEL_VERSION}-*.whl"))
            if download.returncode != 0 or not wheels:
                raise PerfAnalyzerUnavailable(
                    f"pip download tritonclient=={WHEEL_VERSION} failed: {download.stderr[-500:]}"
                )
        partial = binary.with_suffix(".partial")
        with zipfile.ZipFile(wheels[0]) as wheel:
            partial.write_bytes(wheel.read(WHEEL_MEMBER))
        partial.chmod(0o755)
        partial.replace(binary)
    libs = pytriton_libs()
    lib_dir.mkdir(exist_ok=True)
    for soname, pattern in LIBRARY_LINKS.items():
        matches = sorted(libs.glob(pattern))
        if not matches:
            raise PerfAnalyzerUnavailable(f"no {pattern} in {libs}")
        link = lib_dir / soname
        if not link.is_symlink() or link.readlink() != matches[0]:
            link.unlink(missing_ok=True)
            link.symlink_to(matches[0])
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(lib_dir), env.get("LD_LIBRARY_PATH")) if p
    )
    return binary, env


def pytriton_libs() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise PerfAnalyzerUnavailable("nvidia-pytriton is not installed (the 'triton-cpu' extra)")
    site_packages = Path(next(iter(spec.submodule_search_locations))).parent
    return site_packages / "nvidia_pytriton.libs"


def run_perf_analyzer(
    binary: Path,
    env: dict[str, str],
    url: str,
    model: str,
    input_data: Path,
    csv_path: Path,
    concurrency_range: str = "1:8:1",
    batch_size: int = 1,
    measurement: Sequence[str] = ("--measurement-interval", "2000", "-s", "25"),
    timeout_s: float = 900.0,
) -> list[dict[str, str]]:
    """Runs one concurrency sweep over gRPC; returns the CSV rows, one per concurrency.

    `measurement` says when a point is done: by default perf_analyzer repeats 2 s windows until
    three agree within 25 % (its own 10 % rarely holds on a shared CPU box); a single
    concurrency can instead take `("--request-count", "N")`, one fixed run with no retries.
    """
    command = [
        str(binary),
        *("-i", "grpc", "-u", url, "-m", model, "-b", str(batch_size)),
        *("--input-data", str(input_data), "--concurrency-range", concurrency_range),
        *measurement,
        *("-f", str(csv_path)),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0:
        raise RuntimeError(
            f"perf_analyzer failed on {model}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    # It ends a sweep early, with status 0, at a concurrency it cannot measure stably.
    sys.stderr.write(result.stderr)
    with csv_path.open(newline="") as f:
        return list(csv.DictReader(f))


def format_table(model: str, rows: list[dict[str, str]], batch_size: int) -> str:
    lines = [f"{model} (batch {batch_size} per request)"]
    lines.append("".join(f"{heading:>13}" for heading in TABLE_COLUMNS.values()))
    for row in sorted(rows, key=lambda row: int(row["Concurrency"])):
        cells = [f"{int(row['Concurrency']):>13}", f"{float(row['Inferences/Second']):>13.1f}"]
        cells += [f"{int(row[column]) / 1000:>13.2f}" for column in list(TABLE_COLUMNS)[2:]]
        lines.append("".join(cells))
    return "\n".join(lines)


@contextlib.contextmanager
def triton_url(repository: Path, url: str | None) -> Iterator[str]:
    """The server at `url`, or one started on `repository` for this run only."""
    if url is not None:
        yield url
        return
    with TritonServer(repository) as server:
        yield server.grpc_url


def last_line(stderr: str) -> str:
    """What a failed command said last, which for our CLIs is its one `error:` line."""
    lines = stderr.strip().splitlines() or ["(no output)"]
    return lines[-1].removeprefix("error: ")


def input_files(
    models: Sequence[str], repository: Path, out_dir: Path, batch_size: int
) -> dict[str, Path]:
    """Each model's --input-data: the committed titles for text_encoder, and for bert_encoder
    the same titles tokenized by the newest version in `repository`, written beside the CSVs."""
    inputs = {"text_encoder": TEXT_INPUTS}
    if "bert_encoder" in models:
        version, tokenizer = served_tokenizer(repository)
        path = out_dir / f"perf_inputs_bert_encoder_{repository.name}_v{version}_b{batch_size}.json"
        data = encoder_input_data(tokenizer, load_titles(), same_length=batch_size > 1)
        path.write_text(json.dumps(data))
        inputs["bert_encoder"] = path
    return inputs


def export_variant(variant: str, repository: Path) -> None:
    """The encoder as `python -m export` publishes it, with the variant's flags, beside the
    committed tokenizer and text_encoder ensemble."""
    command = [sys.executable, "-m", "export", "--repository", str(repository), *VARIANTS[variant]]
    print(f"exporting {variant}: {' '.join(command[1:])} ...", flush=True)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"export of {variant} failed: {last_line(result.stderr)}")
    for model in ("tokenizer", "text_encoder"):
        shutil.copytree(ROOT / "model_repository" / model, repository / model)


def in_process_figures(
    repository: Path, paths: Sequence[str], batch_size: int, seconds: float, out: Path
) -> dict[str, float]:
    """Embeddings per second of bench/encoder.py's in-process paths on `repository`."""
    command = [
        *(sys.executable, str(ENCODER_BENCH), "--repository", str(repository)),
        *("--paths", *paths, "--batch", str(batch_size), "--seconds", str(seconds)),
        *("--out", str(out)),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"bench/encoder.py failed: {last_line(result.stderr)}")
    report = json.loads(out.read_text())
    return {path: report[path]["embeddings_per_s"] for path in paths}


def comparison_rows(
    sweeps: dict[str, dict[str, list[dict[str, str]]]], figures: dict[str, dict[str, float]]
) -> list[dict[str, object]]:
    """One row per variant, model and concurrency: Triton's throughput and its ratios to the
    in-process figures; `figures` holds each variant's own, the fp32 ones are the common
    reference."""
    reference = figures["fp32"]
    rows = []
    for (variant, model), sweep in (
        ((variant, model), sweep)
        for variant, by_model in sweeps.items()
        for model, sweep in by_model.items()
    ):
        for point in sorted(sweep, key=lambda row: int(row["Concurrency"])):
            throughput = float(point["Inferences/Second"])
            row: dict[str, object] = {
                "variant": variant,
                "model": model,
                "concurrency": int(point["Concurrency"]),
                "triton_emb_per_s": throughput,
                "p50_ms": int(point["p50 latency"]) / 1000,
            }
            for path, value in reference.items():
                row[f"vs_{path}_fp32"] = throughput / value
            if variant != "fp32" and "onnxruntime" in figures.get(variant, {}):
                row[f"vs_onnxruntime_{variant}"] = throughput / figures[variant]["onnxruntime"]
            rows.append(row)
    return rows


def format_comparison(rows: list[dict[str, object]], batch_size: int) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = [f"Triton (batch {batch_size} per request) against in-process figures"]
    lines.append(" ".join(f"{column:>24}" for column in columns))
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "-")
            cells.append(f"{value:>24.2f}" if isinstance(value, float) else f"{value!s:>24}")
        lines.append(" ".join(cells))
    return "\n".join(lines)


def target_verdicts(rows: list[dict[str, object]]) -> list[str]:
    """The issue's targets for each variant of the CPU default and each model, at its best
    concurrency, against the fp32 in-process figures."""
    lines = []
    for variant, model in dict.fromkeys((row["variant"], row["model"]) for row in rows):
        points = [row for row in rows if (row["variant"], row["model"]) == (variant, model)]
        best = max(points, key=lambda row: row["triton_emb_per_s"])
        for path, minimum in TARGETS.items():
            ratio = best.get(f"vs_{path}_fp32")
            if ratio is not None:
                verdict = "met" if ratio >= minimum else "MISSED"
                lines.append(
                    f"target: {variant} {model} through Triton >= {minimum}x fp32 {path} (best, "
                    f"concurrency {best['concurrency']}): {ratio:.2f}x, {verdict}"
                )
    return lines


def write_rows(path: Path, rows: list[dict[str, object]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def compare(args: argparse.Namespace, binary: Path, env: dict[str, str]) -> int:
    """Every variant exported, measured in process and swept through Triton in this one run."""
    batch = args.batch_size
    with tempfile.TemporaryDirectory(prefix="perf-compare-") as scratch:
        repositories = {variant: Path(scratch) / variant for variant in args.compare}
        figures: dict[str, dict[str, float]] = {}
        for variant, repository in repositories.items():
            export_variant(variant, repository)
            paths = (
                ["onnxruntime", "sentence_transformers"] if variant == "fp32" else ["onnxruntime"]
            )
            print(f"in-process {', '.join(paths)} on {variant} ...", flush=True)
            out = args.out_dir / f"encoder_{variant}_b{batch}.json"
            figures[variant] = in_process_figures(
                repository, paths, batch, args.baseline_seconds, out
            )
        sweeps: dict[str, dict[str, list[dict[str, str]]]] = {}
        for variant, repository in repositories.items():
            inputs = input_files(args.models, repository, args.out_dir, batch)
            sweeps[variant] = {}
            with TritonServer(repository) as server:
                for model in args.models:
                    csv_path = args.out_dir / f"perf_analyzer_{model}_{variant}_b{batch}.csv"
                    print(
                        f"perf_analyzer on {variant} {model}, concurrency "
                        f"{args.concurrency_range} ...",
                        flush=True,
                    )
                    sweeps[variant][model] = run_perf_analyzer(
                        *(binary, env, server.grpc_url, model, inputs[model], csv_path),
                        args.concurrency_range,
                        batch,
                        measurement=measurement_flags(args),
                    )
                    print(
                        format_table(f"{model} {variant}", sweeps[variant][model], batch),
                        flush=True,
                    )
    rows = comparison_rows(sweeps, figures)
    summary = args.out_dir / f"perf_analyzer_compare_b{batch}.csv"
    write_rows(summary, rows)
    print()
    print(format_comparison(rows, batch))
    for line in target_verdicts(rows):
        print(line)
    print(f"written to {summary}")
    return 0


def measurement_flags(args: argparse.Namespace) -> tuple[str, ...]:
    return (
        *("--measurement-interval", str(args.measurement_interval)),
        *("-s", str(args.stability_percentage)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--url", help="gRPC host:port of a running Triton; default: start one")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--concurrency-range", default="1:8:1", help="start:end:step")
    parser.add_argument("--batch-size", type=int, default=1, help="titles per request")
    parser.add_argument("--measurement-interval", type=int, default=2000, help="ms")
    parser.add_argument("--stability-percentage", type=int, default=25)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--write-text-inputs", action="store_true", help=f"rewrite {TEXT_INPUTS.name} and exit"
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        choices=list(VARIANTS),
        help="export these variants of the CPU default afresh and compare them (needs fp32)",
    )
    parser.add_argument(
        "--baseline-seconds", type=float, default=10.0, help="per in-process path, with --compare"
    )
    args = parser.parse_args(argv)
    if args.compare:
        if "fp32" not in args.compare:
            parser.error("--compare needs fp32: it is the reference of every ratio")
        args.compare = list(dict.fromkeys(["fp32", *args.compare]))

    if args.write_text_inputs:
        TEXT_INPUTS.parent.mkdir(parents=True, exist_ok=True)
        steps = [json.dumps(step) for step in text_input_data(load_titles())["data"]]
        TEXT_INPUTS.write_text('{"data": [\n  ' + ",\n  ".join(steps) + "\n]}\n")
        return 0

    try:
        binary, env = prepare_binary()
    except PerfAnalyzerUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.compare:
        try:
            return compare(args, binary, env)
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    inputs = input_files(args.models, args.repository, args.out_dir, args.batch_size)
    with triton_url(args.repository, args.url) as url:
        for model in args.models:
            csv_path = args.out_dir / f"perf_analyzer_{model}_b{args.batch_size}.csv"
            print(f"perf_analyzer on {model}, concurrency {args.concurrency_range} ...", flush=True)
            rows = run_perf_analyzer(
                binary,
                env,
                url,
                model,
                inputs[model],
                csv_path,
                args.concurrency_range,
                args.batch_size,
                measurement=measurement_flags(args),
            )
            print(format_table(model, rows, args.batch_size))
            print(f"written to {csv_path}\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
