# Starts an ephemeral PostgreSQL cluster for bosun's tests and probes (sourced by
# scripts/test and scripts/probe): initdb + pg_ctl, as the `postgres` user when run as
# root, on a free loopback port with its data under a temporary directory, removed on
# exit, even on failure. Sets PG_PORT and PG_PASSWORD; the caller defines `log`, and may
# define `before_exit` to stop what it started.

find_pg_bin() {
    local dir
    for dir in "${PG_BIN:-}" /usr/lib/postgresql/*/bin; do
        [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && { echo "$dir"; return 0; }
    done
    return 1
}

if ! PG_BIN=$(find_pg_bin); then
    log "PostgreSQL server binaries not found; installing postgresql with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PG_BIN=$(find_pg_bin) || { log "could not install PostgreSQL server binaries"; exit 1; }
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

PG_DIR=$(mktemp -d /tmp/bosun-test-pg.XXXXXX)
PG_PORT=$(free_port)
PG_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
    # PostgreSQL refuses to run as root.
    chown postgres: "$PG_DIR"
    as_pg=(runuser -u postgres --)
fi

cleanup() {
    local status=$?
    if declare -F before_exit >/dev/null; then before_exit || true; fi
    "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    exit "$status"
}
trap cleanup EXIT INT TERM

printf '%s\n' "$PG_PASSWORD" >"$PG_DIR/pwfile"
[[ ${#as_pg[@]} -gt 0 ]] && chown postgres: "$PG_DIR/pwfile"
"${as_pg[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --pwfile="$PG_DIR/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-instructions >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
# The cluster is thrown away after the run and never crashes under the tests (only client
# processes are killed), so fsync buys nothing here.
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=300 -c fsync=off -c full_page_writes=off" \
    start >/dev/null || { cat "$PG_DIR/server.log" >&2; exit 1; }
log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (data in $PG_DIR)"
