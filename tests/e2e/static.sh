# The static binary: `file` and `ldd` agree that it is static, and it runs
# --version and a whole provisioning inside an empty root that holds only the
# binary and the mounted volumes, as uid 65532. Sourced by run.sh.

# static_checks BINARY LABEL
static_checks() {
  local bin=$1 label=$2 out
  section "static binary ($label): $bin, $(stat -c %s "$bin") bytes"
  out=$(file -b "$bin")
  if contains "$out" "statically linked" || contains "$out" "static-pie linked"; then
    pass "file says the $label binary is static ($out)"
  else
    fail "file says the $label binary is not static: $out"
  fi
  expect_not_contains "file finds no ELF interpreter in the $label binary" "$out" "interpreter"
  out=$(ldd "$bin" 2>&1 || true)
  if contains "$out" "not a dynamic executable" || contains "$out" "statically linked"; then
    pass "ldd says the $label binary is static ($out)"
  else
    fail "ldd lists libraries for the $label binary: $out"
  fi

  if [ "$(id -u)" != 0 ]; then
    skip "empty-root run ($label)" "chroot and mount namespaces need root"
    return 0
  fi
  local tool
  for tool in unshare chroot mount python3; do
    command -v "$tool" >/dev/null || { skip "empty-root run ($label)" "$tool is missing"; return 0; }
  done
  empty_root_checks "$bin" "$label"
}

empty_root_checks() {
  local bin=$1 label=$2 dir root out rc
  dir=$(mktemp -d "$E2E_TMP/static.XXXXXX")
  root=$dir/root
  # The root: the binary and three empty mount points, nothing else: no
  # /dev (so no /dev/urandom), no /proc, no /etc, no /tmp.
  mkdir -p "$root/app/backend/data" "$root/run/mai" "$root/run/secrets"
  install -m 0755 "$bin" "$root/mai-provision"
  # The volumes, owned by the job's user as the image and fsGroup make them.
  mkdir -p "$dir/data" "$dir/run" "$dir/secrets"
  printf '%s\n' "$E2E_KEY" >"$dir/secrets/openrouter_api_key"
  python3 - "$dir/data/webui.db" "$REPO/tests/fixtures/mai-alembic-schema.sql" <<'PY'
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.executescript(open(sys.argv[2]).read())
conn.close()
PY
  chown -R 65532:65532 "$dir/data" "$dir/run" "$dir/secrets"
  chmod 0400 "$dir/secrets/openrouter_api_key"

  rc=0
  out=$(in_empty_root "$dir" --version 2>&1) || rc=$?
  [ "$rc" = 0 ] || fail "--version in the empty root ($label) exited $rc: $out"
  expect_contains "the $label binary runs --version in an empty root as 65532" "$out" "mai-provision "

  rc=0
  out=$(in_empty_root "$dir" --production --output json 2>"$dir/stderr") || rc=$?
  [ "$rc" = 0 ] || { cat "$dir/stderr" >&2; fail "provisioning in the empty root ($label) exited $rc"; }
  expect_eq "empty root ($label): status" "$(json_field "$out" status)" applied
  expect_eq "empty root ($label): row inserted" "$(json_field "$out" database.action)" insert
  expect_eq "empty root ($label): verified" "$(json_field "$out" verified)" True
  expect_eq "empty root ($label): WEBUI_SECRET_KEY generated without /dev/urandom" \
    "$(json_field "$out" secret_key)" generated
  expect_eq "empty root ($label): .env owner and mode" "$(stat -c '%u:%g %a' "$dir/run/.env")" "65532:65532 600"
  expect_eq "empty root ($label): stored key is 64 hex digits" \
    "$(tr -cd '0-9a-f' <"$dir/data/.webui_secret_key" | wc -c)" 64
  expect_eq "empty root ($label): the row has the markup" \
    "$(sqlite_value "$dir/data/webui.db" "SELECT markup_rate FROM client_organizations WHERE id = '$E2E_ID'")" 1.5

  rc=0
  out=$(in_empty_root "$dir" --production --output json 2>"$dir/stderr") || rc=$?
  [ "$rc" = 0 ] || { cat "$dir/stderr" >&2; fail "second provisioning in the empty root ($label) exited $rc"; }
  expect_eq "empty root ($label): a second run changes nothing" "$(json_field "$out" status)" unchanged
  rm -rf "$dir"
}

# in_empty_root DIR ARGS...: run the binary in DIR/root, in a private mount
# namespace (so the bind mounts vanish with it), with an empty environment
# but for the job's configuration, as 65532:65532.
in_empty_root() {
  local dir=$1
  shift
  unshare --mount --propagation private -- /bin/sh -c '
    set -e
    dir=$1; shift
    mount --bind "$dir/data" "$dir/root/app/backend/data"
    mount --bind "$dir/run" "$dir/root/run/mai"
    mount --bind "$dir/secrets" "$dir/root/run/secrets"
    mount -o remount,bind,ro "$dir/root/run/secrets"
    exec "$@"' sh "$dir" \
    env -i ORGANIZATION_NAME="$E2E_NAME" MARKUP_RATE=1.5 \
    OPENROUTER_API_KEY_FILE=/run/secrets/openrouter_api_key \
    DATA_DIR=/app/backend/data ENV_FILE=/run/mai/.env \
    "$(command -v chroot)" --userspec=65532:65532 "$dir/root" /mai-provision "$@"
}
