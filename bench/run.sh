#!/usr/bin/env bash
# Benchmark mai-provision against the practical lower bound: the sqlite3 shell
# doing the same upsert in one process, and on PostgreSQL `psql` doing the same
# upsert against the same local server (started here, as the postgres user,
# on a loopback port; skipped when Debian's postgresql is not installed). Prints a table of medians, peak RSS,
# binary and image size, and the ratios with their goals. Timings belong here,
# never in the test suite.
#
#   bench/run.sh                 # everything (builds the 1 GiB database once)
#   BENCH_RUNS=50 bench/run.sh   # more runs per case (default 30)
#   BENCH_LARGE_ROWS=500000 ...  # a smaller "large" database, for a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${BENCH_RUNS:-30}
LARGE_ROWS=${BENCH_LARGE_ROWS:-5000000}
CACHE="$ROOT/target/bench"
mkdir -p "$CACHE"

section() { printf '\n=== %s ===\n' "$*" >&2; }
# A loopback port nothing listens on, for the PostgreSQL server and the
# OpenRouter stand-in.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The PostgreSQL server and its tools run as the postgres user.
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

install_tools() {
    local missing=()
    command -v hyperfine >/dev/null || missing+=(hyperfine)
    command -v sqlite3 >/dev/null || missing+=(sqlite3)
    [ -x /usr/bin/time ] || missing+=(time)
    [ ${#missing[@]} -eq 0 ] && return
    section "installing ${missing[*]}"
    if [ "$(id -u)" = 0 ]; then
        apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >&2
    else
        echo "missing tools: ${missing[*]} (apt-get install ${missing[*]})" >&2
        exit 1
    fi
}

build_binary() {
    section "building the release binary"
    if [ -x scripts/build-static.sh ]; then
        scripts/build-static.sh | tail -n 1
    else
        cargo build --release --locked >&2
        echo "$ROOT/target/release/mai-provision"
    fi
}

install_tools
BIN=$(build_binary)
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mai-bench.XXXXXX")
STANDIN_PID=
PG_STOP=
cleanup() {
    [ -n "$STANDIN_PID" ] && kill "$STANDIN_PID" 2>/dev/null
    [ -n "$PG_STOP" ] && $PG_STOP >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

export ORGANIZATION_NAME='ABC Company Sp. z o.o.'
export OPENROUTER_API_KEY=sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
export WEBUI_SECRET_KEY=bench-secret-key-0123456789
export LOG_LEVEL=warn
ID=mai_client_362862c8
KEY_HASH=$(printf '%s' "$OPENROUTER_API_KEY" | sha256sum | cut -d' ' -f1)

# The statement our binary runs on the insert path, for the sqlite3 shell.
upsert_sql() {
    local shape=$1 now
    now=$(date +%s)
    local cols="id, name, openrouter_api_key, markup_rate, is_active, created_at, updated_at, openrouter_key_hash"
    local vals="'$ID', '$ORGANIZATION_NAME', '$OPENROUTER_API_KEY', 1.3, 1, $now, $now, '$KEY_HASH'"
    if [ "$shape" = startup ]; then
        cols="$cols, timezone"
        vals="$vals, 'Europe/Warsaw'"
    fi
    printf "BEGIN IMMEDIATE; INSERT INTO client_organizations (%s) VALUES (%s) ON CONFLICT(id) DO UPDATE SET name = excluded.name, openrouter_api_key = excluded.openrouter_api_key, openrouter_key_hash = excluded.openrouter_key_hash, markup_rate = excluded.markup_rate, is_active = excluded.is_active, updated_at = excluded.updated_at; COMMIT;" "$cols" "$vals"
}

fixture_db() {
    local shape=$1 out=$2
    rm -f "$out"
    sqlite3 "$out" < "tests/fixtures/mai-$shape-schema.sql"
}

# ~5 million usage rows (about 1 GiB) in the start-up shape, built once.
large_db() {
    local out="$CACHE/large-v2-$LARGE_ROWS.db"
    if [ ! -f "$out" ]; then
        section "building the large database ($LARGE_ROWS usage rows, once; cached in $out)"
        fixture_db startup "$out.tmp"
        sqlite3 "$out.tmp" >/dev/null <<SQL
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $LARGE_ROWS)
INSERT INTO client_user_daily_usage
    (id, client_org_id, user_id, usage_date, openrouter_user_id, total_tokens, total_requests, raw_cost, markup_cost, created_at, updated_at)
SELECT printf('%08x', i), '$ID', printf('user-%05d', i % 5000),
       date('2024-01-01', '+' || (i % 700) || ' days'), printf('${ID}_user_%08x', i % 5000),
       i % 100000, i % 50, (i % 1000) / 100.0, (i % 1000) / 76.9, 1700000000 + i, 1700000000 + i
FROM n;
SQL
        mv "$out.tmp" "$out"
    fi
    echo "$out"
}

# hyperfine a command; $1 = result name, $2 = prepare command, $3 = command.
measure() {
    local name=$1 prepare=$2 cmd=$3
    local args=(--runs "$RUNS" --warmup 3 -N --export-json "$WORK/$name.json" --style none)
    # -N runs commands without a shell (no shell start-up in the timings), so
    # the prepare step, which needs one, gets its own.
    [ -n "$prepare" ] && args+=(--prepare "sh -c '$prepare'")
    hyperfine "${args[@]}" "$cmd" >/dev/null 2>&1 || {
        echo "benchmark $name failed: $cmd" >&2
        sh -c "${prepare:-true}" && $cmd >&2 || true
        exit 1
    }
}

# Peak RSS in KiB of one run of a command, after its prepare step.
peak_rss() {
    local name=$1 prepare=$2 cmd=$3
    [ -n "$prepare" ] && sh -c "$prepare"
    /usr/bin/time -v sh -c "exec $cmd" 2> "$WORK/$name.time" >/dev/null
    awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/$name.time" > "$WORK/$name.rss"
}

for shape in alembic startup; do
    section "$shape shape: full run (insert) and no-op run"
    fixture_db "$shape" "$WORK/$shape.fixture.db"
    run="$WORK/run-$shape"
    mkdir -p "$run"
    ours="env DATA_DIR=$run ENV_FILE=$run/.env $BIN --init-database"
    fresh="cp $WORK/$shape.fixture.db $run/webui.db && rm -f $run/.env $run/.env.backup"
    measure "ours-full-$shape" "$fresh" "$ours"
    peak_rss "ours-full-$shape" "$fresh" "$ours"
    sql=$(upsert_sql "$shape")
    printf '%s\n' "$sql" > "$WORK/upsert-$shape.sql"
    lower="sqlite3 $run/webui.db \".read $WORK/upsert-$shape.sql\""
    measure "sqlite3-full-$shape" "cp $WORK/$shape.fixture.db $run/webui.db" "$lower"

    # The no-op: everything already in place.
    sh -c "$fresh" && $ours
    measure "ours-noop-$shape" "" "$ours"
    peak_rss "ours-noop-$shape" "" "$ours"
    measure "sqlite3-noop-$shape" "" "$lower"
done

# ---------------------------------------------------------------- PostgreSQL
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
PG_DONE=""
if [ -n "$PG_BIN" ] && [ "$(id -u)" = 0 ]; then
    section "PostgreSQL: a local server, full run (insert) and no-op run, next to psql"
    pg_dir="$WORK/pg"
    # The server runs as postgres, which must reach its folder.
    chmod 0755 "$WORK"
    mkdir -p "$pg_dir" && chown postgres:postgres "$pg_dir"
    as_pg "$PG_BIN/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync >/dev/null
    pg_port=$(free_port)
    as_pg "$PG_BIN/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
        -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null
    PG_STOP="as_pg $PG_BIN/pg_ctl -D $pg_dir/data -m fast stop"
    export PGHOST=127.0.0.1 PGPORT=$pg_port PGUSER=postgres PGSSLMODE=disable
    psql -q -X -d postgres -c "CREATE DATABASE bench" >/dev/null
    # The migration's shape with the column the job adds on its first run:
    # what every later run finds.
    psql -q -X -d bench -f tests/fixtures/mai-alembic-schema.postgres.sql >/dev/null
    psql -q -X -d bench -c "ALTER TABLE client_organizations ADD COLUMN timezone TEXT DEFAULT 'Europe/Warsaw'" >/dev/null
    pg_run="$WORK/run-pg"
    mkdir -p "$pg_run"
    ours_pg="env DATA_DIR=$pg_run ENV_FILE=$pg_run/.env DATABASE_URL=postgresql://postgres@127.0.0.1:$pg_port/bench?sslmode=disable $BIN --init-database"
    fresh_pg="psql -q -X -d bench -c \"TRUNCATE client_organizations\" && rm -f $pg_run/.env $pg_run/.env.backup"
    now=$(date +%s)
    pg_sql="BEGIN; INSERT INTO client_organizations (id, name, openrouter_api_key, markup_rate, is_active, created_at, updated_at, openrouter_key_hash, timezone) VALUES ('$ID', '$ORGANIZATION_NAME', '$OPENROUTER_API_KEY', 1.3, 1, $now, $now, NULL, 'Europe/Warsaw') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, openrouter_api_key = EXCLUDED.openrouter_api_key, openrouter_key_hash = EXCLUDED.openrouter_key_hash, markup_rate = EXCLUDED.markup_rate, is_active = EXCLUDED.is_active, updated_at = EXCLUDED.updated_at; COMMIT;"
    printf '%s\n' "$pg_sql" > "$WORK/upsert-pg.sql"
    lower_pg="psql -q -X -d bench -f $WORK/upsert-pg.sql"
    measure "ours-full-postgres" "$fresh_pg" "$ours_pg"
    peak_rss "ours-full-postgres" "$fresh_pg" "$ours_pg"
    measure "psql-full-postgres" "psql -q -X -d bench -c \"TRUNCATE client_organizations\"" "$lower_pg"
    sh -c "$fresh_pg" && $ours_pg
    measure "ours-noop-postgres" "" "$ours_pg"
    peak_rss "ours-noop-postgres" "" "$ours_pg"
    measure "psql-noop-postgres" "" "$lower_pg"
    PG_DONE=1
else
    section "PostgreSQL: skipped (needs root and Debian's postgresql: apt-get install postgresql)"
fi

section "no-op run with a management key (one request to the OpenRouter stand-in)"
if [ -x scripts/build-static.sh ]; then
    STANDIN=$(scripts/build-static.sh --example openrouter-standin | tail -n 1)
else
    cargo build --release --locked --example openrouter-standin >&2
    STANDIN="$ROOT/target/release/examples/openrouter-standin"
fi
MANAGEMENT_KEY=sk-or-v1-benchmgmt0000aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff
printf '%s\n' "$MANAGEMENT_KEY" > "$WORK/management-key"
PORT=$(free_port)
"$STANDIN" "$PORT" "$WORK/management-key" > "$WORK/openrouter.log" 2>&1 &
STANDIN_PID=$!
for _ in $(seq 100); do
    grep -q 'listening on' "$WORK/openrouter.log" && break
    sleep 0.1
done
mint="$WORK/run-mint"
mkdir -p "$mint"
fixture_db startup "$mint/webui.db"
ours_mint="env -u OPENROUTER_API_KEY DATA_DIR=$mint ENV_FILE=$mint/.env OPENROUTER_MANAGEMENT_KEY=$MANAGEMENT_KEY OPENROUTER_HOST=http://127.0.0.1:$PORT/api/v1 $BIN --init-database"
$ours_mint
# The stand-in writes its log every 20 ms.
sleep 0.2
before=$(grep -c ' request ' "$WORK/openrouter.log" || true)
$ours_mint
sleep 0.2
requests=$(( $(grep -c ' request ' "$WORK/openrouter.log" || true) - before ))
[ "$requests" = 1 ] || { echo "the no-op run with a management key made $requests requests, not 1" >&2; exit 1; }
measure "ours-noop-minting" "" "$ours_mint"
peak_rss "ours-noop-minting" "" "$ours_mint"
kill "$STANDIN_PID"
STANDIN_PID=

section "no-op run against a large database"
LARGE=$(large_db)
big="$WORK/run-large"
mkdir -p "$big"
cp "$LARGE" "$big/webui.db"
ours_big="env DATA_DIR=$big ENV_FILE=$big/.env $BIN --init-database"
$ours_big
measure "ours-noop-large" "" "$ours_big"
peak_rss "ours-noop-large" "" "$ours_big"
LARGE_BYTES=$(stat -c %s "$big/webui.db")

# The image: from a running Docker engine, else as the last end-to-end run
# (tests/e2e/run.sh, which starts its own engine) recorded it.
IMAGE_BYTES="" IMAGE_SOURCE=""
if command -v docker >/dev/null && docker image inspect mai-provision:latest >/dev/null 2>&1; then
    IMAGE_BYTES=$(docker image inspect --format '{{.Size}}' mai-provision:latest)
    IMAGE_SOURCE="mai-provision:latest"
elif [ -f target/e2e-image-size ]; then
    IMAGE_BYTES=$(cat target/e2e-image-size)
    IMAGE_SOURCE="mai-provision:e2e, built by tests/e2e/run.sh on $(date -r target/e2e-image-size +%F)"
fi

section "results"
python3 bench/report.py "$WORK" \
    --binary "$BIN" --binary-bytes "$(stat -c %s "$BIN")" \
    --large-bytes "$LARGE_BYTES" --large-rows "$LARGE_ROWS" \
    --image-bytes "$IMAGE_BYTES" --image-source "$IMAGE_SOURCE" --runs "$RUNS" \
    ${PG_DONE:+--postgres}
