"""The gRPC face of the ranker: the Ranker service, standard health checking and reflection."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ranker.service import RankingService, RequestFailed
from ranker.settings import Settings
from ranker.v1 import ranker_pb2, ranker_pb2_grpc
from ranker.workers import FeedbackForwarder

SERVICE_NAME = ranker_pb2.DESCRIPTOR.services_by_name["Ranker"].full_name
# A bare echo of raw bytes, with no parsing and no ranking: the floor that bench/load.py
# compares Rank's throughput with, on the same server and event loop.
ECHO_METHOD = "/ranker.bench.Echo/Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


class RankerServicer(ranker_pb2_grpc.RankerServicer):
    def __init__(self, service: RankingService, forwarder: FeedbackForwarder | None) -> None:
        """`forwarder`: where feedback for another worker's events goes; None when alone."""
        self.service = service
        self.forwarder = forwarder

    async def Rank(
        self, request: ranker_pb2.RankRequest, context: grpc.aio.ServicerContext
    ) -> ranker_pb2.RankResponse:
        try:
            return await self.service.rank(request, context.time_remaining())
        except RequestFailed as failure:
            await context.abort(failure.code, failure.message)

    async def Feedback(
        self, request: ranker_pb2.FeedbackRequest, context: grpc.aio.ServicerContext
    ) -> ranker_pb2.FeedbackResponse:
        owner = self.forwarder.owner_elsewhere(request.event_id) if self.forwarder else None
        try:
            if owner is None:
                self.service.feedback(request)
            else:
                await self.forwarder.forward(owner, request, context.time_remaining())
        except RequestFailed as failure:
            await context.abort(failure.code, failure.message)
        except grpc.aio.AioRpcError as error:
            await context.abort(error.code(), error.details() or "")
        return ranker_pb2.FeedbackResponse()


@dataclass(frozen=True)
class BoundServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer

    async def serving(self) -> None:
        """Health checks answer SERVING from now on."""
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)


async def build_server(
    settings: Settings, service: RankingService, forwarder: FeedbackForwarder | None = None
) -> BoundServer:
    """The server bound to its port (and, as a worker, to its own Unix socket), not yet
    started, and NOT_SERVING until `serving`."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            # Workers share the port; a lone ranker refuses a port already taken, rather than
            # silently splitting its traffic with whatever holds it.
            ("grpc.so_reuseport", int(forwarder is not None)),
        ],
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs or None,
    )
    servicer = RankerServicer(service, forwarder)
    ranker_pb2_grpc.add_RankerServicer_to_server(servicer, server)
    if settings.echo_rpc:
        service_name, method = ECHO_METHOD.strip("/").split("/")
        echo = grpc.unary_unary_rpc_method_handler(_echo)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service_name, {method: echo}),)
        )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if forwarder is not None:
        worker = forwarder.worker
        server.add_insecure_port(worker.socket(worker.index))
        if settings.worker_port_base:
            server.add_insecure_port(f"{settings.host}:{settings.worker_port_base + worker.index}")
    return BoundServer(server, port, health_servicer)
