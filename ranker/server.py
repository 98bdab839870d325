"""The gRPC face of the ranker: the Ranker service, standard health checking and reflection."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ranker.service import RankingService, RequestFailed
from ranker.settings import Settings
from ranker.v1 import ranker_pb2, ranker_pb2_grpc

SERVICE_NAME = ranker_pb2.DESCRIPTOR.services_by_name["Ranker"].full_name
# A bare echo of raw bytes, with no parsing and no ranking: the floor that bench/load.py
# compares Rank's throughput with, on the same server and event loop.
ECHO_METHOD = "/ranker.bench.Echo/Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


class RankerServicer(ranker_pb2_grpc.RankerServicer):
    def __init__(self, service: RankingService) -> None:
        self.service = service

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
        try:
            self.service.feedback(request)
        except RequestFailed as failure:
            await context.abort(failure.code, failure.message)
        return ranker_pb2.FeedbackResponse()


@dataclass(frozen=True)
class BoundServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer


async def build_server(settings: Settings, service: RankingService) -> BoundServer:
    """The server bound to its port, not yet started, reporting SERVING once it is."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ]
    )
    ranker_pb2_grpc.add_RankerServicer_to_server(RankerServicer(service), server)
    if settings.echo_rpc:
        service_name, method = ECHO_METHOD.strip("/").split("/")
        echo = grpc.unary_unary_rpc_method_handler(_echo)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service_name, {method: echo}),)
        )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    return BoundServer(server, port, health_servicer)
