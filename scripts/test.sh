#!/usr/bin/env bash
# The test command: bash scripts/test.sh [pytest args...]
#
# Sets everything up on a fresh Debian machine and runs the whole suite against
# SQLite, PostgreSQL and a real (headless) Chromium:
#   1. as root: apt-get install chromium + postgresql if they are missing
#   2. pip install -r requirements.txt, pip install -e .
#   3. a throwaway PostgreSQL cluster on 127.0.0.1 (unless VERSIONED_ADMIN_TEST_PG
#      is already set), exported as VERSIONED_ADMIN_TEST_PG and stopped on exit
#   4. python -m pytest "$@"; exits with pytest's status (5, "no tests collected",
#      is a failure too)
# Not root: step 1 is skipped; if PostgreSQL cannot be started the PG tests skip
# locally (with CI=true the suite turns skips into failures).
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif command -v python >/dev/null 2>&1; then PY=python
else PY=python3; fi

step_start=0
step() { step_start=$SECONDS; echo "== test.sh: $*" >&2; }
done_step() { echo "   ($((SECONDS - step_start))s)" >&2; }
die() { echo "test.sh: $*" >&2; exit 1; }

# -- 1. system packages -----------------------------------------------------
have_chromium() { [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; }
have_pg() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; }

missing=()
have_chromium || missing+=(chromium)
have_pg || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        step "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        aptlog="$(mktemp)"
        if ! { apt-get update -q && apt-get install -y -q "${missing[@]}"; } >"$aptlog" 2>&1; then
            tail -n 40 "$aptlog" >&2; rm -f "$aptlog"; die "apt-get install failed"
        fi
        rm -f "$aptlog"
        done_step
    else
        echo "test.sh: WARNING: missing ${missing[*]} and not root: those tests will skip" >&2
    fi
fi

# -- 2. Python packages -----------------------------------------------------
step "pip install -r requirements.txt && pip install -e ."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
"$PY" -m pip install -q -r requirements.txt || die "pip install -r requirements.txt failed"
"$PY" -m pip install -q -e . || die "pip install -e . failed"
done_step

# -- 3. PostgreSQL ----------------------------------------------------------
PG_DIR=""
cleanup() {
    if [ -n "$PG_DIR" ]; then bash "$ROOT/scripts/pg.sh" stop "$PG_DIR" || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${VERSIONED_ADMIN_TEST_PG:-}" ]; then
    echo "== test.sh: using VERSIONED_ADMIN_TEST_PG from the environment" >&2
else
    step "start a throwaway PostgreSQL"
    if out="$(bash "$ROOT/scripts/pg.sh" start "${VERSIONED_ADMIN_PG_PORT:-54329}")"; then
        PG_DIR="${out%% *}"
        export VERSIONED_ADMIN_TEST_PG="${out#* }"
        echo "   $VERSIONED_ADMIN_TEST_PG" >&2
        done_step
    else
        echo "test.sh: WARNING: could not start PostgreSQL; PostgreSQL tests will skip" >&2
    fi
fi

# -- 4. pytest --------------------------------------------------------------
if [ -z "${VERSIONED_ADMIN_CHROMIUM:-}" ]; then
    if [ -x /usr/bin/chromium ]; then VERSIONED_ADMIN_CHROMIUM=/usr/bin/chromium
    else VERSIONED_ADMIN_CHROMIUM="$(command -v chromium || true)"; fi
fi
export VERSIONED_ADMIN_CHROMIUM
# Playwright must never try to download its own browsers here.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

step "python -m pytest $*"
"$PY" -m pytest "$@"
rc=$?
echo "   (pytest: ${SECONDS}s total, exit $rc)" >&2
if [ "$rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests: that is a failure" >&2
fi
exit "$rc"
