#!/usr/bin/env bash
# End-to-end check of the image and the compose stack, on this machine only.
#
#   1. a docker daemon: the running one, or dockerd started here (as root,
#      --bridge=none --iptables=false) and stopped again at the end
#   2. the base image named by the Dockerfile's FROM: present, or a local
#      stand-in built by ../shared/tools/python-slim-standin.sh (debootstrap +
#      docker import), since there is no registry to pull from
#   3. docker build --network host; image size
#   4. docker run (host network, 127.0.0.1, read-only root, no capabilities):
#      start-to-ready time, health check healthy, a prediction, non-root,
#      read-only, graceful stop on SIGTERM (exit 0); then as KServe runs a
#      custom predictor: PORT, read-only /mnt/models, tritonclient over V2 under
#      load, every write refused with 409 read_only
#   5. compose (docker-compose.yml + docker-compose.test.yml, every compose
#      CLI installed): api healthy and serving the bundled version; the
#      trainer profile publishes a new version which the running api then
#      serves by itself; pin and unpin; two api replicas on one shared volume
#      both serving the pinned version; `down -v` leaves nothing behind
#   6. the rollout loop under load (ROLLOUT_POLICY=staged, two replicas, one
#      compose CLI): feedback posted; the trainer trains on it; the new version
#      becomes the shadow and its disagreement rate appears; a 20% canary
#      answers about a fifth of clients; promotion makes it active on every
#      replica; rollback works; not one request of the load fails
#
# Everything it starts is removed on exit, failure included; running it twice
# in a row works (the second run reuses the base image and the build cache).
# All traffic goes to 127.0.0.1. Every wait has a timeout.
#
# Usage: sudo scripts/container-test.sh
# Environment: CT_PORT (default: a free port), CT_IMAGE (mnist-service:ci-test),
#   CT_PROJECT (mnist-ci), CT_COMPOSE ("docker compose" or "docker-compose";
#   default: each one installed), SHARED_DIR (../shared), DATASETS_DIR
#   ($SHARED_DIR/datasets).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

IMAGE=${CT_IMAGE:-mnist-service:ci-test}
PROJECT=${CT_PROJECT:-mnist-ci}
RUN_NAME=$PROJECT-run
SHARED_DIR=${SHARED_DIR:-$repo/../shared}
DATASETS_DIR=${DATASETS_DIR:-$SHARED_DIR/datasets}
MODEL_NAME=mnist
ADMIN_TOKEN=ci-admin-token-$RANDOM$RANDOM$RANDOM
PY=${PYTHON:-python3}
TEST_PY=${TEST_PYTHON:-$repo/.venv/bin/python}  # the test venv (tritonclient), made by make test

work=$(mktemp -d /tmp/container-test.XXXXXX)
dockerd_pid=""
declare -A timing=()
script_start=$(date +%s.%N)

# -- helpers -------------------------------------------------------------------

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
log() { printf '[%6ss] %s\n' "$(since "$script_start")" "$*"; }

diagnose() {
  echo "---- docker ps -a"
  docker ps -a 2>&1 || true
  local c
  for c in $(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null) \
           $(docker ps -aq --filter "name=^/$RUN_NAME\$" 2>/dev/null); do
    echo "---- logs of $(docker inspect -f '{{.Name}}' "$c" 2>/dev/null) (access lines left out)"
    docker logs "$c" 2>&1 | grep -v '"logger":"service.access"' | tail -n 40 || true
  done
}

die() {
  echo "FAIL: $*" >&2
  diagnose >&2
  exit 1
}

# poll_until TIMEOUT_SECONDS COMMAND...: poll every 0.2 s; fail after the timeout.
poll_until() {
  local limit=$1 start
  shift
  start=$(now)
  until "$@" >/dev/null 2>&1; do
    if awk -v a="$start" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
      return 1
    fi
    sleep 0.2
  done
}

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: poll_until, or die saying what it waited for.
wait_for() {
  local what=$1 limit=$2
  shift 2
  poll_until "$limit" "$@" || die "timed out after ${limit}s waiting for $what"
}

url() { echo "http://127.0.0.1:$PORT$1"; }

# Print the version /readyz reports (nothing if not ready).
ready_version() {
  curl -fsS -m 2 "$(url /readyz)" 2>/dev/null |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["model"]["version"])' 2>/dev/null
}
serves_version() { [ "$(ready_version)" = "$1" ]; }
# The same, but give up at once when the container has exited.
container_serves() {
  [ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ] || die "container $1 is not running"
  serves_version "$2"
}
health_is() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null)" = "$2" ]; }

# POST the test digit; print "<status> <X-Model-Version> <predicted_class>".
predict() {
  local body=$work/predict.json headers=$work/predict.headers status
  status=$(curl -sS -m 10 -o "$body" -D "$headers" -w '%{http_code}' \
    -F "image=@$repo/tests/resources/mnist_test_0_label7.png" "$(url /v1/predict)") || status=000
  printf '%s %s %s\n' "$status" \
    "$(tr -d '\r' <"$headers" | sed -n 's/^[Xx]-[Mm]odel-[Vv]ersion: *//p')" \
    "$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["predicted_class"])' "$body" 2>/dev/null)"
}

expect_prediction() {  # expect_prediction VERSION
  local status version cls
  read -r status version cls < <(predict)
  [ "$status" = 200 ] || die "predict answered $status: $(cat "$work/predict.json" 2>/dev/null)"
  [ "$version" = "$1" ] || die "predict served version '$version', expected $1"
  [[ "$cls" =~ ^[0-9]$ ]] || die "predict returned no class: $(cat "$work/predict.json")"
  log "prediction ok: class $cls from version $version"
}

api_containers() { docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=api"; }
all_healthy() {
  local n=0 c
  for c in $(api_containers); do health_is "$c" healthy || return 1; n=$((n + 1)); done
  [ "$n" = "$1" ]
}
# Every one of N consecutive predictions comes from VERSION.
steadily_serves() {
  local status version cls
  for _ in $(seq 1 "$2"); do
    read -r status version cls < <(predict)
    [ "$status" = 200 ] && [ "$version" = "$1" ] || return 1
  done
}

pin() {  # pin VERSION|latest
  local status
  status=$(curl -sS -m 5 -o "$work/pin.json" -w '%{http_code}' -X PUT \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d "{\"version\": \"$1\"}" "$(url /v1/models/active)") || status=000
  [ "$status" = 200 ] || die "pin $1 answered $status: $(cat "$work/pin.json" 2>/dev/null)"
}

stop_dockerd() {
  [ -n "$dockerd_pid" ] || return 0
  log "stopping dockerd (pid $dockerd_pid)"
  kill -TERM "$dockerd_pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$dockerd_pid" 2>/dev/null; then
    echo "dockerd did not stop within 30 s: killing it" >&2
    kill -KILL "$dockerd_pid" 2>/dev/null || true
  fi
  wait "$dockerd_pid" 2>/dev/null || true
  dockerd_pid=""
}

compose_clis=()
compose_cli=""
compose() {
  # A clean environment: only the test env file sets variables, so neither a
  # developer's .env nor the caller's shell changes the stack under test.
  # shellcheck disable=SC2086  # $compose_cli is "docker compose" or "docker-compose"
  env -i PATH="$PATH" HOME="$HOME" ${DOCKER_HOST:+DOCKER_HOST="$DOCKER_HOST"} \
    timeout 300 $compose_cli -p "$PROJECT" --env-file "$work/test.env" \
    -f docker-compose.yml -f docker-compose.test.yml "$@"
}

compose_down() {
  [ -n "$compose_cli" ] && [ -f "$work/test.env" ] || return 0
  compose --profile train down --volumes --remove-orphans --timeout 30 >"$work/down.log" 2>&1 ||
    { cat "$work/down.log" >&2; return 1; }
}

load_pid=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$load_pid" ]; then  # the rollout loop's background load, by PID
    touch "$work/stop-load"
    kill "$load_pid" 2>/dev/null
    wait "$load_pid" 2>/dev/null
  fi
  if [ -n "$dockerd_pid" ] || docker info >/dev/null 2>&1; then
    docker rm -f "$RUN_NAME" >/dev/null 2>&1
    local cli
    for cli in "${compose_clis[@]}"; do compose_cli=$cli compose_down; done
  fi
  stop_dockerd
  rm -rf "$work"
  if [ "$rc" = 0 ]; then log "container-test: passed"; else log "container-test: FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- 0. prerequisites ------------------------------------------------------------

command -v docker >/dev/null || die "no docker CLI (apt-get install docker.io)"
command -v curl >/dev/null || die "no curl"
if [ -n "${CT_COMPOSE:-}" ]; then
  compose_clis=("$CT_COMPOSE")
else
  if docker compose version >/dev/null 2>&1; then compose_clis+=("docker compose"); fi
  if command -v docker-compose >/dev/null 2>&1; then compose_clis+=("docker-compose"); fi
fi
[ ${#compose_clis[@]} -gt 0 ] || die "neither 'docker compose' nor 'docker-compose' (apt-get install docker-compose)"
bundled=$(find "artifacts/$MODEL_NAME" -mindepth 2 -maxdepth 2 -name model.npz 2>/dev/null |
  awk -F/ '$3 ~ /^[1-9][0-9]*$/ { print $3 }' | sort -n | tail -1)
[ -n "$bundled" ] || die "no bundled artifact under artifacts/$MODEL_NAME/<N>/model.npz"
[ -f "$DATASETS_DIR/mnist/train-images-idx3-ubyte.gz" ] ||
  [ -f "$DATASETS_DIR/train-images-idx3-ubyte.gz" ] || die "no MNIST IDX files under $DATASETS_DIR"
DATASETS_DIR=$(cd "$DATASETS_DIR" && pwd)
PORT=${CT_PORT:-$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
if curl -s -m 2 -o /dev/null "$(url /)"; then die "something already listens on 127.0.0.1:$PORT"; fi
log "repo $repo, image $IMAGE, port $PORT, bundled $MODEL_NAME version $bundled, compose: ${compose_clis[*]}"

# -- 1. docker daemon --------------------------------------------------------------

if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "no docker daemon running, and starting one needs root"
  command -v dockerd >/dev/null || die "no dockerd (apt-get install docker.io)"
  log "starting dockerd --bridge=none --iptables=false"
  dockerd --bridge=none --iptables=false >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  t=$(now)
  for _ in $(seq 1 300); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || { cat "$work/dockerd.log" >&2; dockerd_pid=""; die "dockerd exited"; }
    sleep 0.2
  done
  docker info >/dev/null 2>&1 || { tail -20 "$work/dockerd.log" >&2; die "dockerd not ready after 60 s"; }
  log "dockerd ready in $(since "$t")s (pid $dockerd_pid)"
fi
docker rm -f "$RUN_NAME" >/dev/null 2>&1 || true

# -- 2. base image -------------------------------------------------------------------

base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile | head -n 1)
[ -n "$base" ] || die "no 'ARG PYTHON_IMAGE=' in the Dockerfile"
t=$(now)
base_how="already present"
if docker image inspect "$base" >/dev/null 2>&1; then
  log "base image $base present"
else
  base_how="built as a local stand-in"
  standin=$SHARED_DIR/tools/python-slim-standin.sh
  [ -f "$standin" ] || die "no $base image and no $standin to build a stand-in"
  log "building a local stand-in for $base (debootstrap + docker import)"
  timeout 900 bash "$standin" "$base" || die "stand-in base image build failed"
fi
timing[base]=$(since "$t")

# -- 3. image --------------------------------------------------------------------------

log "docker build --network host -t $IMAGE ."
t=$(now)
timeout 900 docker build --network host -t "$IMAGE" . >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log" >&2; die "docker build failed"; }
timing[build]=$(since "$t")
image_bytes=$(docker image inspect -f '{{.Size}}' "$IMAGE")
base_bytes=$(docker image inspect -f '{{.Size}}' "$base")
mb() { awk -v b="$1" 'BEGIN { printf "%.0f MB", b / 1e6 }'; }
log "built in ${timing[build]}s: $IMAGE $(mb "$image_bytes") = base $(mb "$base_bytes") + $(mb $((image_bytes - base_bytes))) of layers"

# -- 4. docker run ---------------------------------------------------------------------

log "docker run: host network on 127.0.0.1:$PORT, read-only root, no capabilities"
t=$(now)
docker run -d --name "$RUN_NAME" --network host --read-only --tmpfs /tmp \
  --cap-drop ALL --security-opt no-new-privileges:true \
  --health-interval 1s --health-start-period 10s \
  -e HOST=127.0.0.1 -e PORT="$PORT" "$IMAGE" >/dev/null
wait_for "/readyz of the container" 30 container_serves "$RUN_NAME" "$bundled"
timing[ready]=$(since "$t")
log "start to ready: ${timing[ready]}s (target <= 5 s)"
wait_for "every worker to answer" 30 steadily_serves "$bundled" 10
wait_for "the container's health check to turn healthy" 30 health_is "$RUN_NAME" healthy
log "health check: healthy"
expect_prediction "$bundled"
uid=$(docker exec "$RUN_NAME" id -u)
[ "$uid" = 10001 ] || die "the container runs as uid $uid, expected 10001"
if docker exec "$RUN_NAME" touch /app/probe 2>/dev/null; then die "the root filesystem is writable"; fi
log "runs as uid $uid; root filesystem read-only"
t=$(now)
timeout 60 docker stop -t 30 "$RUN_NAME" >/dev/null
timing[stop]=$(since "$t")
code=$(docker inspect -f '{{.State.ExitCode}}' "$RUN_NAME")
[ "$code" = 0 ] || die "gunicorn exited $code on SIGTERM, expected 0"
docker logs "$RUN_NAME" 2>&1 | grep -q "Shutting down: Master" || die "no graceful shutdown in the logs"
docker rm "$RUN_NAME" >/dev/null
log "SIGTERM: graceful stop in ${timing[stop]}s, exit code 0"

# -- 4b. the KServe custom-predictor contract -------------------------------------------
# As KServe runs it (deploy/kserve/inferenceservice.yaml): PORT set by Knative,
# the model directory mounted read-only at /mnt/models, non-root, read-only root
# filesystem, /tmp the only writable path. Driven over V2 by tritonclient (the
# test venv's), under load while every write is refused with a 4xx.

KSERVE_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log "KServe contract: PORT=$KSERVE_PORT, $repo/artifacts read-only at /mnt/models, uid 10001, read-only root"
t=$(now)
docker run -d --name "$RUN_NAME" --network host --read-only --tmpfs /tmp \
  --user 10001:10001 --cap-drop ALL --security-opt no-new-privileges:true \
  -v "$repo/artifacts:/mnt/models:ro" \
  -e HOST=127.0.0.1 -e PORT="$KSERVE_PORT" -e ARTIFACTS_DIR=/mnt/models -e MODEL_NAME="$MODEL_NAME" \
  -e POLL_INTERVAL=30 -e ADMIN_TOKEN=ct-admin-token-0123456789 "$IMAGE" >/dev/null
kserve_ready() {  # (wait_for silences it: an exited container shows in the timeout's diagnosis)
  [ "$(docker inspect -f '{{.State.Running}}' "$RUN_NAME" 2>/dev/null)" = true ] &&
    curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$KSERVE_PORT/v2/health/ready"
}
wait_for "/v2/health/ready on \$PORT" 30 kserve_ready
load_ms=$(docker logs "$RUN_NAME" 2>&1 | grep '"model loaded"' | grep -o '"ms":[0-9.]*' | head -n 1 | cut -d: -f2)
log "ready on \$PORT in $(since "$t")s; one worker loaded, validated and warmed the model in ${load_ms:-?} ms"
"$TEST_PY" - "$KSERVE_PORT" "$MODEL_NAME" "$bundled" "$repo" <<'PY' || die "the KServe contract run failed"
# tritonclient over V2 under load (4 threads x 150 requests) while pins, rollouts
# and feedback are attempted: every write is a 409 read_only, every read a 200.
import json, sys, threading
import numpy as np
import requests
import tritonclient.http as httpclient
from PIL import Image

port, name, version, repo = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
base = f"http://127.0.0.1:{port}"
digit = np.asarray(Image.open(f"{repo}/tests/resources/mnist_test_0_label7.png"), np.float32)[None, ...] / 255
failures = []

def load():
    client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
    for _ in range(150):
        x = httpclient.InferInput("images", [1, 28, 28], "FP32")
        x.set_data_from_numpy(digit)
        try:
            result = client.infer(name, [x], outputs=[httpclient.InferRequestedOutput("probabilities"),
                                                       httpclient.InferRequestedOutput("digit_score")])
            if int(result.as_numpy("probabilities")[0].argmax()) != 7:
                failures.append("wrong class")
        except Exception as exc:  # every failure is counted, none may happen
            failures.append(repr(exc))

threads = [threading.Thread(target=load) for _ in range(4)]
for t in threads:
    t.start()
admin = {"Authorization": "Bearer ct-admin-token-0123456789"}
writes = [("PUT", "/v1/models/active", {"version": version}), ("PUT", "/v1/models/shadow", {"version": version}),
          ("PUT", "/v1/models/canary", {"version": version, "percent": 10})]
for method, path, body in writes * 5:
    r = requests.request(method, base + path, json=body, headers=admin, timeout=10)
    assert r.status_code == 409 and r.json()["code"] == "read_only", (path, r.status_code, r.text)
with open(f"{repo}/tests/resources/mnist_test_0_label7.png", "rb") as f:
    r = requests.post(base + "/v1/feedback", files={"image": f}, data={"label": "7"}, timeout=10)
assert r.status_code == 409 and r.json()["code"] == "read_only", (r.status_code, r.text)
for t in threads:
    t.join()
meta = requests.get(f"{base}/v2/models/{name}", timeout=10).json()
assert {o["name"] for o in meta["outputs"]} >= {"probabilities", "digit_score"}, meta
assert not failures, failures[:5]
print(f"600 V2 infer requests through tritonclient: 0 failed; 16 writes: 409 read_only; version {version}")
PY
log "KServe contract: V2 through tritonclient under load, every write refused; no writable path but /tmp"
timeout 60 docker stop -t 30 "$RUN_NAME" >/dev/null
docker rm "$RUN_NAME" >/dev/null

# -- 5. compose ------------------------------------------------------------------------

cat >"$work/test.env" <<EOF
IMAGE=$IMAGE
TEST_PORT=$PORT
ADMIN_TOKEN=$ADMIN_TOKEN
MODEL_NAME=$MODEL_NAME
DATASETS_DIR=$DATASETS_DIR
EOF

for compose_cli in "${compose_clis[@]}"; do
  log "== compose with '$compose_cli' (project $PROJECT)"
  compose_down  # leftovers of an interrupted run
  t=$(now)
  compose up -d --no-build >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; die "compose up failed"; }
  wait_for "the api to be ready" 30 container_serves "$(api_containers | head -n 1)" "$bundled"
  wait_for "the api's health check" 30 all_healthy 1
  wait_for "every worker to answer" 30 steadily_serves "$bundled" 10
  log "api healthy and serving version $bundled in $(since "$t")s"
  api=$(api_containers)
  [ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}' "$api")" = "true 10001:10001" ] ||
    die "the api is not read-only and non-root"
  expect_prediction "$bundled"

  t=$(now)
  compose --profile train run --rm trainer \
    --arch mlp --epochs 1 --train-size 2000 --hidden 32 --independent 0 --quiet >"$work/train.log" 2>&1 ||
    { cat "$work/train.log" >&2; die "the trainer failed"; }
  new=$(sed -n "s/^published $MODEL_NAME version \([0-9]*\):.*/\1/p" "$work/train.log")
  [ -n "$new" ] && [ "$new" -gt "$bundled" ] || { cat "$work/train.log" >&2; die "the trainer published no new version"; }
  log "trainer published version $new in $(since "$t")s"
  # Each gunicorn worker swaps on its own poll: wait until every answer is
  # from the new version (10 in a row), not just the first one.
  t=$(now)
  wait_for "the running api to swap to version $new" 30 steadily_serves "$new" 10
  log "the api swapped to version $new by itself in $(since "$t")s"
  expect_prediction "$new"

  pin "$bundled"
  wait_for "the pin to version $bundled" 15 steadily_serves "$bundled" 10
  expect_prediction "$bundled"
  pin latest
  wait_for "the unpin" 15 steadily_serves "$new" 10
  log "pin to $bundled and back to latest ($new): ok"

  compose up -d --no-build --scale api=2 >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; die "compose up --scale api=2 failed"; }
  wait_for "two healthy api replicas" 30 all_healthy 2
  scaled_at=$(date +%s)
  pin "$bundled"
  wait_for "both replicas to serve the pinned version $bundled" 15 steadily_serves "$bundled" 20
  hits=""
  for c in $(api_containers); do
    hits+="$(docker logs --since "$scaled_at" "$c" 2>&1 | grep -c '"path":"/v1/predict"' || true) "
  done
  for h in $hits; do [ "$h" -gt 0 ] || die "a replica answered no prediction (per replica: $hits)"; done
  pin latest
  wait_for "both replicas to serve version $new again" 15 steadily_serves "$new" 20
  log "2 replicas on one volume, both following the pin (predictions per replica: $hits)"

  t=$(now)
  compose_down || die "compose down failed"
  log "compose down in $(since "$t")s"
  left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")
  [ -z "$left" ] || die "containers left after down: $left"
  left=$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
  [ -z "$left" ] || die "volumes left after down: $left"
  if curl -s -m 2 -o /dev/null "$(url /healthz)"; then die "something still answers on port $PORT"; fi
  log "nothing left running"
done
compose_cli=""

# -- 6. the rollout loop, under load ---------------------------------------------------

# GET a JSON document and print one field (a Python expression on `d`).
json_field() {  # json_field PATH EXPR
  curl -fsS -m 5 "$(url "$1")" | "$PY" -c "import json, sys; d = json.load(sys.stdin); print($2)"
}
shadow_compared() {  # shadow_compared VERSION: the shadow is VERSION and has compared some images
  [ "$(json_field /v1/models "(d['shadow'] or {}).get('version'), (d['shadow'] or {}).get('compared', 0) > 0")" = "$1 True" ]
}

compose_cli=${compose_clis[0]}
log "== rollout loop with '$compose_cli': ROLLOUT_POLICY=staged, 2 replicas, under load"
echo "ROLLOUT_POLICY=staged" >>"$work/test.env"
compose_down
compose up -d --no-build --scale api=2 >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; die "compose up failed"; }
wait_for "two healthy api replicas" 60 all_healthy 2
wait_for "every worker to answer" 30 steadily_serves "$bundled" 10
: >"$work/load.txt"
(
  while [ ! -e "$work/stop-load" ]; do
    curl -sS -m 10 -o /dev/null -w '%{http_code}\n' \
      -F "image=@$repo/tests/resources/mnist_test_1_label2.png" "$(url /v1/predict)" >>"$work/load.txt" 2>/dev/null ||
      echo 000 >>"$work/load.txt"
  done
) &
load_pid=$!

for label in 7 2 1 0 4 1 4 9 5 9; do
  status=$(curl -sS -m 10 -o "$work/feedback.json" -w '%{http_code}' \
    -F "image=@$(find "$repo/tests/resources" -name "mnist_test_*_label$label.png" | sort | head -n 1)" -F "label=$label" \
    "$(url /v1/feedback)")
  [ "$status" = 202 ] || die "feedback answered $status: $(cat "$work/feedback.json")"
done
[ "$(json_field /v1/feedback "d['count']")" = 10 ] || die "the feedback summary does not count 10 entries"
log "10 feedback entries stored (both replicas write the shared volume)"

t=$(now)
compose --profile train run --rm trainer --feedback /app/feedback \
  --arch mlp --epochs 1 --train-size 2000 --hidden 32 --independent 0 --quiet >"$work/train.log" 2>&1 ||
  { cat "$work/train.log" >&2; die "the trainer failed"; }
grep -q "10 entries, 8 trained on, 2 held out" "$work/train.log" || { cat "$work/train.log" >&2; die "the trainer did not use the feedback"; }
staged=$(sed -n "s/^published $MODEL_NAME version \([0-9]*\):.*/\1/p" "$work/train.log")
[ -n "$staged" ] || die "the trainer published no version"
log "trainer published version $staged (trained on feedback) in $(since "$t")s"
poll_until 30 shadow_compared "$staged" ||
  die "version $staged did not become the shadow and compare in 30 s; /v1/models: $(curl -sS -m 5 "$(url /v1/models)")"
steadily_serves "$bundled" 10 || die "a staged version must not answer before promotion"
log "version $staged is the shadow: $(json_field /v1/models "d['shadow']['compared'], d['shadow']['disagreement_rate']") (compared, disagreement rate); version $bundled still answers"

status=$(curl -sS -m 5 -o "$work/canary.json" -w '%{http_code}' -X PUT -H "Authorization: Bearer $ADMIN_TOKEN" \
  -H 'Content-Type: application/json' -d "{\"version\": \"$staged\", \"percent\": 20}" "$(url /v1/models/canary)")
[ "$status" = 200 ] || die "canary answered $status: $(cat "$work/canary.json")"
sleep 2  # the other replica's next poll (POLL_INTERVAL 0.5)
share=$("$PY" - "$(url /v1/predict)" "$repo/tests/resources/mnist_test_0_label7.png" "$staged" <<'PY'
import sys, urllib.request, uuid
url, path, staged = sys.argv[1:]
data = open(path, "rb").read()
hits = 0
for _ in range(300):
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "image/png", "X-Client-ID": uuid.uuid4().hex})
    with urllib.request.urlopen(request, timeout=10) as response:
        hits += response.headers["X-Model-Version"] == staged
print(f"{hits / 300:.3f}")
PY
)
awk -v s="$share" 'BEGIN { exit !(s >= 0.12 && s <= 0.28) }' || die "the 20% canary answered $share of 300 clients"
log "20% canary: version $staged answered $share of 300 clients"

pin "$staged"
wait_for "both replicas to serve the promoted version $staged" 15 steadily_serves "$staged" 20
[ "$(json_field /v1/models "d['shadow'], d['canary']")" = "None None" ] || die "promotion left the shadow or canary running"
log "promoted: version $staged active on both replicas, shadow and canary ended"
pin "$bundled"
wait_for "the rollback to version $bundled" 15 steadily_serves "$bundled" 20
log "rolled back to version $bundled"
touch "$work/stop-load"
wait "$load_pid" || true
load_pid=""
total=$(grep -c . "$work/load.txt" || true)
failed=$(grep -vc '^200$' "$work/load.txt" || true)
[ "$failed" = 0 ] || die "$failed of $total requests of the load failed: $(sort "$work/load.txt" | uniq -c | tr '\n' ' ')"
log "load during the whole loop: $total requests, 0 failed"
compose_down || die "compose down failed"
compose_cli=""

# -- summary ---------------------------------------------------------------------------

printf '\ncontainer-test summary\n'
printf '  %-34s %s\n' \
  "base image $base" "$(mb "$base_bytes") ($base_how, ${timing[base]}s)" \
  "image $IMAGE" "$(mb "$image_bytes") ($(mb $((image_bytes - base_bytes))) over the base)" \
  "docker build" "${timing[build]}s" \
  "start to ready" "${timing[ready]}s (target <= 5 s)" \
  "graceful stop (SIGTERM)" "${timing[stop]}s" \
  "compose CLIs tested" "${compose_clis[*]}" \
  "total" "$(since "$script_start")s"
