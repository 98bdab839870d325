"""The yardstick that issue 5 names for Rank: a bare Python grpc.aio server that parses the
request and scores candidates with numpy from a dict, with no cache bound, batcher, budget,
interest model or policy.

bench/load.py's warm scenario runs it right after the ranker at each rate, with the same
generator, worker count, RPC bound, event loop and BLAS threads. Its rows and saturation are
the least a Python gRPC server does for this request shape on this host at the time of the run,
so the ranker's figures read as ratios to it.

Embeddings: a seeded random unit vector per text, made the first time the text is seen and
then read from a dict (load.py's warm-up shows every text first). Scoring: candidates against
the mean of the history's vectors, top_k by a partial sort.

    python bench/bare_ranker.py --port 50061
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import grpc
import numpy as np
import uvloop
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from launcher.ports import LOOPBACK  # noqa: E402
from ranker.bandits.base import top_k_order  # noqa: E402
from ranker.v1 import ranker_pb2 as pb  # noqa: E402
from ranker.v1 import ranker_pb2_grpc  # noqa: E402

DIM = 384


class BareRanker(ranker_pb2_grpc.RankerServicer):
    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.vectors: dict[str, np.ndarray] = {}

    def vector(self, text: str) -> np.ndarray:
        found = self.vectors.get(text)
        if found is None:
            rng = np.random.default_rng(zlib.crc32(text.encode()))
            found = rng.standard_normal(self.dim).astype(np.float32)
            found /= np.linalg.norm(found)
            self.vectors[text] = found
        return found

    async def Rank(
        self, request: pb.RankRequest, context: grpc.aio.ServicerContext
    ) -> pb.RankResponse:
        started = time.perf_counter()
        candidates = [(item.item_id, item.text) for item in request.candidates]
        history = [event.item.text for event in request.history]
        interest = np.mean([self.vector(text) for text in history], axis=0) if history else None
        vectors = np.stack([self.vector(text) for _, text in candidates])
        scores = vectors @ interest if interest is not None else np.zeros(len(candidates))
        order = top_k_order(scores.astype(np.float64), min(request.top_k or 10, len(candidates)))
        response = pb.RankResponse(
            items=[
                pb.RankedItem(item_id=candidates[i][0], score=score)
                for i, score in zip(order.tolist(), scores[order].tolist(), strict=True)
            ]
        )
        response.stage_ms["total"] = (time.perf_counter() - started) * 1000.0
        return response


async def serve(port: int, max_concurrent_rpcs: int) -> None:
    server = grpc.aio.server(maximum_concurrent_rpcs=max_concurrent_rpcs or None)
    ranker_pb2_grpc.add_RankerServicer_to_server(BareRanker(), server)
    server.add_insecure_port(f"{LOOPBACK}:{port}")
    await server.start()
    await server.wait_for_termination()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-concurrent-rpcs", type=int, default=0, help="0 for no bound")
    args = parser.parse_args(argv)
    threadpool_limits(limits=1, user_api="blas")  # as the ranker runs (ranker/cli.py)
    uvloop.run(serve(args.port, args.max_concurrent_rpcs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
