#!/usr/bin/env bash
# Bring the test databases (PostgreSQL, MariaDB) up or down on a Debian 12 machine, as root,
# without systemd, and install the tools the deployment files are checked with (`tools`:
# systemd-analyze, logrotate). Idempotent: safe on a fresh machine, on one where they are
# already up, and when run twice in a row.
#
# Usage: scripts/services.sh up|down|status [postgresql|mariadb|tools ...]   (no names = all)
#
# Environment (defaults in brackets):
#   EFI_TEST_DB_USER [efi]  EFI_TEST_DB_PASSWORD [efi]  EFI_TEST_DB_NAME [efi_test]
#   EFI_TEST_PG_PORT [5432]  EFI_TEST_MARIADB_PORT [3306]  EFI_TEST_SERVICES_TIMEOUT [60] (s)
# The databases listen on 127.0.0.1; the test suite reads EFI_TEST_POSTGRESQL_URL and
# EFI_TEST_MARIADB_URL (defaults match the defaults here).
set -euo pipefail

DB_USER="${EFI_TEST_DB_USER:-efi}"
DB_PASSWORD="${EFI_TEST_DB_PASSWORD:-efi}"
DB_NAME="${EFI_TEST_DB_NAME:-efi_test}"
PG_PORT="${EFI_TEST_PG_PORT:-5432}"
MARIADB_PORT="${EFI_TEST_MARIADB_PORT:-3306}"
TIMEOUT="${EFI_TEST_SERVICES_TIMEOUT:-60}"
HOST=127.0.0.1
MARIADB_PORT_CNF=/etc/mysql/mariadb.conf.d/99-efi-test-port.cnf

log() { echo "[services] $*"; }
die() { echo "[services] ERROR: $*" >&2; exit 1; }

[[ "$DB_USER" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "EFI_TEST_DB_USER must be a plain identifier"
[[ "$DB_NAME" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "EFI_TEST_DB_NAME must be a plain identifier"
[[ "$DB_PASSWORD" != *[\'\\]* ]] || die "EFI_TEST_DB_PASSWORD must not contain ' or \\"
[[ "$PG_PORT$MARIADB_PORT$TIMEOUT" =~ ^[0-9]+$ ]] || die "ports and timeout must be numbers"

# --- package installation -------------------------------------------------------------------
APT_UPDATED=0
POLICY_RC_D=/usr/sbin/policy-rc.d
POLICY_RC_D_OURS=0

cleanup() {
    if [[ $POLICY_RC_D_OURS == 1 ]]; then rm -f "$POLICY_RC_D"; fi
}
trap cleanup EXIT

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

ensure_packages() {
    local missing=() pkg
    for pkg in "$@"; do is_installed "$pkg" || missing+=("$pkg"); done
    if [[ ${#missing[@]} == 0 ]]; then
        log "packages already installed: $*"
        return
    fi
    [[ $(id -u) == 0 ]] || die "installing ${missing[*]} needs root"
    if [[ ! -e $POLICY_RC_D ]]; then
        # Keep the package scripts from starting daemons: this script starts them itself.
        printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC_D"
        chmod 755 "$POLICY_RC_D"
        POLICY_RC_D_OURS=1
    fi
    if [[ $APT_UPDATED == 0 ]]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    if [[ $POLICY_RC_D_OURS == 1 ]]; then rm -f "$POLICY_RC_D"; POLICY_RC_D_OURS=0; fi
}

# Retry "$@" once a second until it succeeds or TIMEOUT seconds have passed.
wait_for() {
    local what="$1"; shift
    local deadline=$((SECONDS + TIMEOUT)) err
    until err=$("$@" 2>&1 >/dev/null); do
        if ((SECONDS >= deadline)); then
            die "$what did not answer within ${TIMEOUT}s: ${err:-no output}"
        fi
        sleep 1
    done
}

# --- PostgreSQL -----------------------------------------------------------------------------
PG_VERSION=15
PG_CLUSTER=main

pg_detect_cluster() {
    local line
    if command -v pg_lsclusters >/dev/null; then
        # Highest version first; take its first cluster.
        line=$(pg_lsclusters --no-header 2>/dev/null | sort -k1,1nr | head -n1 || true)
        if [[ -n $line ]]; then
            read -r PG_VERSION PG_CLUSTER _ <<<"$line"
        fi
    fi
}

pg_running() { pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1; }

pg_cluster_port() { pg_conftool -s "$PG_VERSION" "$PG_CLUSTER" show port 2>/dev/null || echo 5432; }

# psql as the postgres superuser over the unix socket; SQL on stdin.
pg_admin_psql() {
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres "$@")
}

pg_tcp_login() {
    PGPASSWORD="$DB_PASSWORD" PGCONNECT_TIMEOUT=3 psql -X -q -h "$HOST" -p "$PG_PORT" \
        -U "$DB_USER" -d "$DB_NAME" -c 'select 1'
}

pg_up() {
    if ! command -v pg_ctlcluster >/dev/null || [[ -z $(pg_lsclusters --no-header 2>/dev/null) ]]
    then
        ensure_packages postgresql postgresql-client
    fi
    pg_detect_cluster
    log "postgresql: cluster $PG_VERSION/$PG_CLUSTER"
    if [[ $(pg_cluster_port) != "$PG_PORT" ]]; then
        log "postgresql: setting port $PG_PORT in the cluster configuration"
        pg_conftool "$PG_VERSION" "$PG_CLUSTER" set port "$PG_PORT"
        if pg_running; then pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" restart; fi
    fi
    if pg_running; then
        log "postgresql: already running"
    else
        log "postgresql: starting (pg_ctlcluster $PG_VERSION $PG_CLUSTER start)"
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
    fi
    wait_for "postgresql (unix socket)" pg_admin_psql -c 'select 1'
    log "postgresql: provisioning role $DB_USER and database $DB_NAME"
    pg_admin_psql -v user="$DB_USER" -v password="$DB_PASSWORD" -v db="$DB_NAME" <<'SQL'
SELECT format('CREATE ROLE %I', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" WITH LOGIN SUPERUSER CREATEDB PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
    wait_for "postgresql login as $DB_USER on $HOST:$PG_PORT" pg_tcp_login
    log "postgresql: up, password login over TCP works"
}

pg_down() {
    if ! command -v pg_lsclusters >/dev/null; then log "postgresql: not installed"; return; fi
    pg_detect_cluster
    if pg_running; then
        log "postgresql: stopping $PG_VERSION/$PG_CLUSTER"
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop
    else
        log "postgresql: already stopped"
    fi
}

pg_status() {
    if ! command -v pg_lsclusters >/dev/null; then log "postgresql: not installed"; return 1; fi
    pg_detect_cluster
    if ! pg_running; then log "postgresql: down"; return 1; fi
    if ! pg_tcp_login >/dev/null 2>&1; then
        log "postgresql: running, but login as $DB_USER on $HOST:$PG_PORT fails"
        return 1
    fi
    log "postgresql: up ($HOST:$PG_PORT, login as $DB_USER works)"
}

# --- MariaDB --------------------------------------------------------------------------------
mariadb_running() { mariadb-admin ping >/dev/null 2>&1; }

# Stop the system server through its own socket: /etc/init.d/mariadb stop falls back to
# `killall mariadbd`, which would also kill other instances (the Slurm lab's accounting DB).
mariadb_stop() {
    mariadb-admin shutdown >/dev/null 2>&1 || true
    local i
    for ((i = 0; i < 60; i++)); do
        mariadb_running || return 0
        sleep 0.5
    done
    log "mariadb: did not stop within 30s"
    return 1
}

mariadb_tcp_login() {
    mariadb --connect-timeout=3 -h"$HOST" -P"$MARIADB_PORT" -u"$DB_USER" -p"$DB_PASSWORD" \
        -D"$DB_NAME" -e 'select 1'
}

mariadb_up() {
    ensure_packages mariadb-server mariadb-client
    # A non-default port goes into a config file of its own (removed again for 3306).
    local want_cnf="" have_cnf
    [[ $MARIADB_PORT == 3306 ]] || want_cnf="[mysqld] port = $MARIADB_PORT"
    have_cnf=$(tr '\n' ' ' 2>/dev/null <"$MARIADB_PORT_CNF" | sed 's/ *$//' || true)
    if [[ $have_cnf != "$want_cnf" ]]; then
        log "mariadb: configuring port $MARIADB_PORT"
        if [[ -n $want_cnf ]]; then
            printf '[mysqld]\nport = %s\n' "$MARIADB_PORT" >"$MARIADB_PORT_CNF"
        else
            rm -f "$MARIADB_PORT_CNF"
        fi
        if mariadb_running; then mariadb_stop; fi
    fi
    if mariadb_running; then
        log "mariadb: already running"
    else
        log "mariadb: starting (/etc/init.d/mariadb start)"
        /etc/init.d/mariadb start >/dev/null
    fi
    wait_for "mariadb (unix socket)" mariadb -uroot -e 'select 1'
    log "mariadb: provisioning user $DB_USER and database $DB_NAME"
    local host sql=""
    for host in 127.0.0.1 localhost; do
        sql+="CREATE USER IF NOT EXISTS '$DB_USER'@'$host' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'$host' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'$host' WITH GRANT OPTION;
"
    done
    sql+="CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;"
    mariadb -uroot -e "$sql"
    wait_for "mariadb login as $DB_USER on $HOST:$MARIADB_PORT" mariadb_tcp_login
    log "mariadb: up, password login over TCP works"
}

mariadb_down() {
    if [[ ! -x /etc/init.d/mariadb ]]; then log "mariadb: not installed"; return; fi
    if mariadb_running; then
        log "mariadb: stopping"
        mariadb_stop
    else
        log "mariadb: already stopped"
    fi
}

mariadb_status() {
    if ! command -v mariadb-admin >/dev/null; then log "mariadb: not installed"; return 1; fi
    if ! mariadb_running; then log "mariadb: down"; return 1; fi
    if ! mariadb_tcp_login >/dev/null 2>&1; then
        log "mariadb: running, but login as $DB_USER on $HOST:$MARIADB_PORT fails"
        return 1
    fi
    log "mariadb: up ($HOST:$MARIADB_PORT, login as $DB_USER works)"
}

# --- tools ----------------------------------------------------------------------------------
# tests/test_deploy_files.py checks the systemd unit with systemd-analyze and the logrotate
# example with logrotate; nothing runs as a service.
tools_up() { ensure_packages systemd logrotate; }
tools_down() { :; }
tools_status() {
    local tool rc=0
    for tool in systemd-analyze logrotate; do
        if PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null; then
            log "tools: $tool installed"
        else
            log "tools: $tool not installed"; rc=1
        fi
    done
    return "$rc"
}

# --- main -----------------------------------------------------------------------------------
usage() { echo "usage: $0 up|down|status [postgresql|mariadb|tools ...]" >&2; exit 2; }

(($# >= 1)) || usage
action="$1"; shift
case "$action" in up | down | status) ;; *) usage ;; esac
services=("$@")
((${#services[@]})) || services=(postgresql mariadb tools)
for s in "${services[@]}"; do
    case "$s" in postgresql | mariadb | tools) ;; *) usage ;; esac
done

rc=0
for s in "${services[@]}"; do
    fn="$([[ $s == postgresql ]] && echo pg || echo "$s")_$action"
    if [[ $action == status ]]; then
        "$fn" || rc=1
    else
        "$fn"  # not in a condition: errexit must stay in force inside up/down
    fi
done

if [[ $action == up ]]; then
    for s in "${services[@]}"; do
        case "$s" in
            postgresql) log "postgresql+psycopg://$DB_USER:***@$HOST:$PG_PORT/$DB_NAME" ;;
            mariadb) log "mysql+pymysql://$DB_USER:***@$HOST:$MARIADB_PORT/$DB_NAME" ;;
        esac
    done
fi
exit "$rc"
