# Production image: Triton (TensorRT, ONNX Runtime and Python backends) serving the encoder, and
# the ranker next to it, in one container.
#
# Build after exporting the encoder (model_repository/bert_encoder is generated, not committed):
#   python -m export && docker build -t interest-ranker .
# Run on a GPU host:
#   docker run --gpus all -p 50051:50051 -p 8000-8002:8000-8002 interest-ranker
FROM nvcr.io/nvidia/tritonserver:24.10-py3

# The image's python3 is 3.10 (Ubuntu 22.04), which Triton's Python backend embeds; the ranker
# needs 3.11, which Ubuntu ships as python3.11. curl is for the readiness checks. Versions are
# not pinned: Ubuntu replaces them with every security update, which breaks pinned builds.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv curl \
    && rm -rf /var/lib/apt/lists/*

# Encoders exported with the python-ort target run ONNX Runtime, and the tokenizer model runs
# tokenizers, inside the Python backend, so the backend's own interpreter needs both.
RUN python3 -m pip install --no-cache-dir onnxruntime==1.20.1 tokenizers==0.20.3

# The ranker lives in its own virtual environment, deliberately not on PATH: the Python
# backend's stub takes its packages from the first python3 on PATH, which must stay 3.10.
WORKDIR /opt/interest-ranker
COPY pyproject.toml README.md ./
COPY ranker ranker
COPY export export
COPY launcher launcher
COPY demo demo
RUN python3.11 -m venv /opt/ranker \
    && /opt/ranker/bin/pip install --no-cache-dir .

COPY model_repository /models
# The Python-backend models' bytecode for the backend's interpreter, written now: Python would
# write it into the version dirs on their first load, and Triton loads a second copy of a served
# version whose files changed on the next load request for it (export/targets/python_ort.py).
RUN python3 -m compileall -q --invalidation-mode checked-hash /models

COPY launcher/container_entrypoint.sh /usr/local/bin/container-entrypoint

# Triton HTTP, gRPC and metrics; the ranker's gRPC API.
EXPOSE 8000 8001 8002 50051

# Shell form for `|| exit 1`: Docker reserves exit codes other than 0 and 1.
# hadolint ignore=DL3025
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8000/v2/health/ready || exit 1

# The base image's ENTRYPOINT (NVIDIA's, which sets up CUDA compatibility libraries) runs this.
CMD ["/usr/local/bin/container-entrypoint"]
