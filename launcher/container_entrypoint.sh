#!/usr/bin/env bash
# Container entrypoint: tritonserver and the ranker side by side, stopped together.
#
# Triton starts first and the ranker once Triton reports ready, so the ranker's first requests
# find the encoder loaded. SIGTERM or SIGINT (docker stop, Ctrl-C) is forwarded to both and the
# script exits 0 when both stop cleanly. If either exits on its own, the other is stopped and the
# script exits non-zero, so that the orchestrator restarts the container.
#
# Environment, defaults in brackets:
#   MODEL_REPOSITORY [/models]     Triton's model repository; the ranker reads its tokenizer there
#   TRITON_HTTP_PORT [8000]  TRITON_GRPC_PORT [8001]  TRITON_METRICS_PORT [8002]
#   TRITON_EXTRA_ARGS []           more tritonserver flags, split on whitespace
#   TRITON_STARTUP_TIMEOUT [300]   seconds to wait for Triton to load its models
#   TRITONSERVER [tritonserver]    RANKER_PYTHON [/opt/ranker/bin/python]
#   RANKER_PORT [50051] and the other RANKER_* settings of ranker/settings.py
# Arguments to this script are passed on to the ranker.
set -euo pipefail

model_repository="${MODEL_REPOSITORY:-/models}"
http_port="${TRITON_HTTP_PORT:-8000}"
grpc_port="${TRITON_GRPC_PORT:-8001}"
metrics_port="${TRITON_METRICS_PORT:-8002}"
startup_timeout="${TRITON_STARTUP_TIMEOUT:-300}"
read -r -a triton_extra_args <<<"${TRITON_EXTRA_ARGS:-}"

triton_pid=""
ranker_pid=""
signalled=0
children_stopped=0

# Once only: a second SIGTERM makes tritonserver skip its graceful shutdown.
stop_children() {
  if ((children_stopped)); then
    return
  fi
  children_stopped=1
  for pid in "$ranker_pid" "$triton_pid"; do
    if [[ -n $pid ]]; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
}

# shellcheck disable=SC2317  # called by the trap
on_signal() {
  signalled=1
  stop_children
}
trap on_signal TERM INT

# Sets wait_status to the exit status of child $1. A signal makes `wait` return early, while
# the child still runs; wait again until it is gone.
reap() {
  wait_status=0
  wait "$1" || wait_status=$?
  while kill -0 "$1" 2>/dev/null; do
    wait_status=0
    wait "$1" || wait_status=$?
  done
}

"${TRITONSERVER:-tritonserver}" \
  --model-repository="$model_repository" \
  --http-port="$http_port" --grpc-port="$grpc_port" --metrics-port="$metrics_port" \
  "${triton_extra_args[@]}" &
triton_pid=$!

deadline=$((SECONDS + startup_timeout))
until curl -fsS -o /dev/null "http://127.0.0.1:${http_port}/v2/health/ready" 2>/dev/null; do
  if ((signalled)); then
    reap "$triton_pid"
    exit "$wait_status"
  fi
  if ! kill -0 "$triton_pid" 2>/dev/null; then
    reap "$triton_pid"
    echo "entrypoint: tritonserver exited with status $wait_status before it was ready" >&2
    exit $((wait_status == 0 ? 1 : wait_status))
  fi
  if ((SECONDS >= deadline)); then
    echo "entrypoint: tritonserver was not ready within ${startup_timeout}s" >&2
    stop_children
    reap "$triton_pid"
    exit 1
  fi
  sleep 1
done

"${RANKER_PYTHON:-/opt/ranker/bin/python}" -m ranker \
  --triton-url "localhost:${grpc_port}" \
  --port "${RANKER_PORT:-50051}" \
  --model-repository "$model_repository" \
  "$@" &
ranker_pid=$!

# Returns when either child exits, or early when a signal arrives (the trap has then run).
first_status=0
wait -n "$triton_pid" "$ranker_pid" || first_status=$?
stop_children
reap "$triton_pid"
triton_status=$wait_status
reap "$ranker_pid"
ranker_status=$wait_status

if ((signalled)); then
  exit $((ranker_status != 0 ? ranker_status : triton_status))
fi
echo "entrypoint: a process exited on its own (triton $triton_status, ranker $ranker_status)" >&2
exit $((first_status == 0 ? 1 : first_status))
