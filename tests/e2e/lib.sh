# Helpers for the end-to-end scripts: sourced, not run.
#
# Every check goes through `check` or `pass`, so that the run ends with one
# "e2e: N passed, N failed" line; the first failed check ends the run.
# A part that cannot run here is skipped LOUDLY, and with
# MAI_PROVISION_REQUIRE_E2E=1 (set by .ci/run) a skip is a failure.

E2E_PASSED=${E2E_PASSED:-0}
E2E_FAILED=${E2E_FAILED:-0}

say() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

section() { printf '\n[e2e] --- %s ---\n' "$*" >&2; }

pass() {
  E2E_PASSED=$((E2E_PASSED + 1))
  printf '[e2e] ok: %s\n' "$*" >&2
}

fail() {
  E2E_FAILED=$((E2E_FAILED + 1))
  printf '\n[e2e] FAILED: %s\n' "$*" >&2
  exit 1
}

# check DESCRIPTION COMMAND...: pass when the command succeeds.
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

# skip PART REASON: say so loudly; a failure when the run requires e2e.
skip() {
  printf '\n*** SKIPPED e2e %s: %s ***\n\n' "$1" "$2" >&2
  if [ "${MAI_PROVISION_REQUIRE_E2E:-0}" = 1 ]; then
    fail "MAI_PROVISION_REQUIRE_E2E=1, but $1 could not run: $2"
  fi
}

contains() { case $1 in *"$2"*) return 0 ;; *) return 1 ;; esac }

# expect_contains WHAT HAYSTACK NEEDLE
expect_contains() {
  if contains "$2" "$3"; then
    pass "$1"
  else
    printf '%s\n' "$2" | tail -40 >&2
    fail "$1: no \"$3\" in the output above"
  fi
}

# expect_not_contains WHAT HAYSTACK NEEDLE
expect_not_contains() {
  if contains "$2" "$3"; then
    printf '%s\n' "$2" | tail -40 >&2
    fail "$1: \"$3\" in the output above"
  else
    pass "$1"
  fi
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: got \"$2\", expected \"$3\""; fi
}

summary() {
  printf '\ne2e: %d passed, %d failed\n' "$E2E_PASSED" "$E2E_FAILED"
}

# json_field JSON PATH: a field of a JSON object, by dotted path (Python's
# rendering: True/False for booleans).
json_field() {
  python3 -c '
import json, sys
value = json.loads(sys.argv[1])
for part in sys.argv[2].split("."):
    value = value[part]
print(value)' "$1" "$2"
}

# sqlite_value DB SQL: the first column of the first row.
sqlite_value() {
  python3 -c '
import sqlite3, sys
row = sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()
print("" if row is None else row[0])' "$1" "$2"
}
