#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests (trust auth, 127.0.0.1 only, fsync off).
#
#   scripts/pg.sh start [PORT]   -> prints "DIR URL" on stdout (logs on stderr)
#   scripts/pg.sh stop DIR       -> stops the cluster and removes DIR
#
# Uses Debian's /usr/lib/postgresql/<ver>/bin (or initdb/pg_ctl on PATH).
# initdb/pg_ctl refuse to run as root, so as root they run as the `postgres`
# user (runuser); as any other user they run as that user.
set -euo pipefail

log() { echo "pg.sh: $*" >&2; }

pg_bindir() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
    return 1
}

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_free() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

free_port() {
    local p="${1:-54329}"
    if port_free "$p"; then echo "$p"; return 0; fi
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

cmd_start() {
    local bindir port dir
    bindir="$(pg_bindir)" || { log "no initdb found (apt-get install postgresql)"; return 1; }
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        log "running as root but there is no 'postgres' user to run the server as"; return 1
    fi
    port="$(free_port "${1:-54329}")"
    dir="$(mktemp -d "${TMPDIR:-/tmp}/versioned_admin_pg.XXXXXX")"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    chmod 700 "$dir"
    # run from a directory the postgres user can read
    if ! (cd "$dir" && as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A trust \
            -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1); then
        log "initdb failed:"; cat "$dir/initdb.log" >&2; rm -rf "$dir"; return 1
    fi
    local opts="-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir"
    opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    opts+=" -c max_connections=200"
    if ! (cd "$dir" && as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "$opts" start >"$dir/pg_ctl.log" 2>&1); then
        log "pg_ctl start failed:"; cat "$dir/pg_ctl.log" "$dir/server.log" >&2 2>/dev/null || true
        rm -rf "$dir"; return 1
    fi
    echo "$dir postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}

cmd_stop() {
    local dir="$1" bindir
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    bindir="$(pg_bindir)" || true
    if [ -n "${bindir:-}" ] && [ -f "$dir/data/postmaster.pid" ]; then
        (cd "$dir" && as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1) || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "${1:-}" ;;
    *) echo "usage: $0 start [PORT] | stop DIR" >&2; exit 2 ;;
esac
