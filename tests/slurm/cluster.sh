#!/usr/bin/env bash
# A real single-node Slurm 22.05 cluster (Debian's packages) and a real sshd on 127.0.0.1, for
# the slurm connector's tests. Everything lives in one directory; nothing else on the machine is
# touched (a system MariaDB on 3306 keeps running; /etc/slurm and /etc/munge are not used).
#
# Usage: tests/slurm/cluster.sh up|down|status|purge|token
#        tests/slurm/cluster.sh stop|start munged|mariadb|slurmdbd|slurmctld|slurmd|sshd|slurmrestd|
#                                          slurmrestd-jwt
#
#   up       install the packages if missing, then start every daemon that is not running, in
#            order munged -> mariadb -> slurmdbd -> slurmctld -> slurmd -> sshd -> slurmrestd ->
#            slurmrestd-jwt, each waited for.
#            On a lab that is already up it says so and exits 0. Stale PID files (a previous
#            boot, a crash) are cleaned first; jobs a crash left "RUNNING" are cancelled.
#   down     cancel the lab's jobs, then stop every daemon by its recorded PID in reverse order
#            (and the lab's slurmstepd with the job processes under them). Accounting history,
#            keys and the job id counter survive down/up.
#   status   print each daemon up/down; exit 0 when all are up, 3 otherwise.
#   stop X / start X   stop or start one daemon (simulate an outage of slurmctld or sshd).
#   purge    down, then delete the lab directory (next up starts from nothing).
#   token [SECONDS [USER]]   print a JWT for slurmrestd-jwt (default 3600 s, for efijm; root
#            stands for a manager on a file system it shares with the cluster): the line
#            `SLURM_JWT=...` of `scontrol token`.
#
# Must run as root. Environment (defaults in brackets):
#   EFI_SLURM_LAB [/tmp/efi-slurm-lab]   EFI_SLURM_SSH_PORT [2222]   EFI_SLURM_DB_PORT [3317]
#   EFI_SLURM_CTLD_PORT [6817]  EFI_SLURM_SLURMD_PORT [6818]  EFI_SLURM_DBD_PORT [6819]
#   EFI_SLURM_REST_PORT [6820] slurmrestd-jwt's listener on 127.0.0.1
#   EFI_SLURM_CPUS [16] job slots declared  EFI_SLURM_TIMEOUT [60] seconds per daemon
#
# Layout of $EFI_SLURM_LAB:
#   env.sh              exports SLURM_CONF, EFI_SLURM_LAB, EFI_SLURM_SSH_CONFIG,
#                       EFI_SLURM_SSH_HOST (slurm-lab), EFI_SLURM_SSH_PORT, EFI_SLURM_SSH_USER,
#                       EFI_SLURM_SCRATCH, EFI_SLURM_REST_SOCKET, EFI_SLURM_REST_URL
#   etc/                slurm.conf, slurmdbd.conf (600), my.cnf, munge.key (400),
#                       jwt_hs256.key (600: slurmctld and slurmdbd check tokens with it)
#   run/                <daemon>.pid (PIDs recorded by this script), daemons' own pid files,
#                       munge socket, mariadb socket
#   log/                <daemon>.log (daemon log) and <daemon>.out (its stdout/stderr)
#   state/              slurmctld state, slurmd spool, munge seed;  db/  MariaDB data
#   ssh/                sshd_config, host key, id_ed25519(.pub), authorized_keys, known_hosts,
#                       config (Host slurm-lab: User efijm, BatchMode, StrictHostKeyChecking)
#   scratch/            mode 1777, where test jobs write
#   rest/               efijm's: slurmrestd.sock (local auth: the peer's uid is the user)
#
# Users: SlurmUser is root (daemons all run as root; simplest, and slurmd must be root anyway).
# Jobs are submitted by root (account root) or by `efijm` (account efi, created here with
# useradd and `usermod -p '*'` so sshd accepts its key), who logs in over ssh with the lab key.
# slurmrestd refuses to run as root or SlurmUser: two of them run as efijm, one with local auth
# on its unix socket (the caller's uid; root and efijm may use it), one with JWT on
# 127.0.0.1:EFI_SLURM_REST_PORT (`token`). One process cannot do both: JWT needs
# SLURM_JWT=daemon, after which its requests on the socket fail ("Unspecified error").
set -euo pipefail

LAB="${EFI_SLURM_LAB:-/tmp/efi-slurm-lab}"
SSH_PORT="${EFI_SLURM_SSH_PORT:-2222}"
DB_PORT="${EFI_SLURM_DB_PORT:-3317}"
CTLD_PORT="${EFI_SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${EFI_SLURM_SLURMD_PORT:-6818}"
DBD_PORT="${EFI_SLURM_DBD_PORT:-6819}"
REST_PORT="${EFI_SLURM_REST_PORT:-6820}"
CPUS="${EFI_SLURM_CPUS:-16}"
TIMEOUT="${EFI_SLURM_TIMEOUT:-60}"
CLUSTER=efilab
SSH_USER=efijm
SSH_ALIAS=slurm-lab
DB_USER=slurm
DB_PASS=slurmlab
DAEMONS=(munged mariadb slurmdbd slurmctld slurmd sshd slurmrestd slurmrestd-jwt)

ETC="$LAB/etc" RUN="$LAB/run" LOGD="$LAB/log" STATE="$LAB/state" SSHD="$LAB/ssh"
SLURM_CONF_FILE="$ETC/slurm.conf"
MUNGE_SOCKET="$RUN/munge.socket.2"
MYCNF="$ETC/my.cnf"
JWT_KEY="$ETC/jwt_hs256.key"
REST_DIR="$LAB/rest"
REST_SOCKET="$REST_DIR/slurmrestd.sock"
export SLURM_CONF="$SLURM_CONF_FILE"

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S.%3N)" "$*"; }
die() { printf '[cluster %s] ERROR: %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "must run as root"
[[ "$SSH_PORT$DB_PORT$CTLD_PORT$SLURMD_PORT$DBD_PORT$REST_PORT$CPUS$TIMEOUT" =~ ^[0-9]+$ ]] \
    || die "ports, EFI_SLURM_CPUS and EFI_SLURM_TIMEOUT must be numbers"
[[ "$LAB" == /* && "$LAB" != / && "$LAB" != *[[:space:]]* ]] \
    || die "EFI_SLURM_LAB must be an absolute path without spaces (got '$LAB')"

# --- installation ---------------------------------------------------------------------------
PACKAGES=(slurm-wlm slurmctld slurmd slurmdbd slurm-client slurmrestd slurm-wlm-jwt-plugin munge
          mariadb-server openssh-server rsync curl)
POLICY_RC_D=/usr/sbin/policy-rc.d
POLICY_RC_D_OURS=0
cleanup() { if [[ $POLICY_RC_D_OURS == 1 ]]; then rm -f "$POLICY_RC_D"; fi; }
trap cleanup EXIT

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing ${missing[*]}"
    if [[ ! -e $POLICY_RC_D ]]; then
        printf '#!/bin/sh\n# cluster.sh: package scripts must not start daemons\nexit 101\n' \
            > "$POLICY_RC_D"
        chmod 755 "$POLICY_RC_D"
        POLICY_RC_D_OURS=1
    fi
    local apt=(apt-get -o DPkg::Lock::Timeout=300 -y -q --no-install-recommends)
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "${missing[@]}"; then
        log "install failed; running apt-get update and trying again"
        apt-get -o DPkg::Lock::Timeout=300 -q update
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "${missing[@]}"
    fi
    cleanup
    POLICY_RC_D_OURS=0
}

# --- PIDs -------------------------------------------------------------------------------------
exe_of() {  # the file a daemon's process runs (slurmctld and slurmd are alternatives: *-wlm)
    local prog=$1
    [[ $prog == mariadb ]] && prog=mariadbd
    [[ $prog == sshd ]] && prog=/usr/sbin/sshd
    [[ $prog == slurmrestd-jwt ]] && prog=slurmrestd
    readlink -f "$(command -v "$prog")"
}

pid_of() {  # prints the recorded PID if that process is alive and is the expected program
    local name=$1 pid exe
    [[ -r "$RUN/$name.pid" ]] || return 1
    pid=$(<"$RUN/$name.pid")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    [[ "$exe" == "$(exe_of "$name")" ]] || return 1  # not ours: a PID reused after a reboot
    echo "$pid"
}

is_up() { pid_of "$1" >/dev/null; }

# A process that has exited but not been reaped yet (a zombie) counts as gone: on these
# machines PID 1 reaps orphans only every second or two.
alive() {
    local st
    st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z ]]
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

tail_log() {
    local f
    for f in "$LOGD/$1.log" "$LOGD/$1.out"; do
        [[ -s $f ]] || continue
        echo "---- last lines of $f" >&2
        tail -n 25 "$f" >&2
    done
}

# Start "$@" detached in its own session, stdout/stderr to log/<name>.out, and record its PID.
start_bg() {
    local name=$1; shift
    # 9>&-: the daemon must not inherit the lock on $LAB.lock.
    setsid "$@" </dev/null >>"$LOGD/$name.out" 2>&1 9>&- &
    echo $! >"$RUN/$name.pid"
}

# wait_for NAME DESCRIPTION COMMAND...: poll COMMAND until it succeeds, the daemon dies, or
# the timeout passes.
wait_for() {
    local name=$1 what=$2; shift 2
    local deadline=$((SECONDS + TIMEOUT)) pid
    pid=$(<"$RUN/$name.pid")
    while ! "$@" >/dev/null 2>&1; do
        # alive, not is_up: right after the fork /proc/PID/exe is still bash, not the daemon.
        if ! alive "$pid"; then
            tail_log "$name"
            die "$name exited while starting (waiting for: $what); see $LOGD/$name.log"
        fi
        if ((SECONDS >= deadline)); then
            tail_log "$name"
            die "$name did not become ready within ${TIMEOUT}s (waiting for: $what)"
        fi
        sleep 0.2
    done
}

# --- configuration (written on every start: cheap, and follows changes to this script) ------------
ensure_user() {
    if ! id "$SSH_USER" >/dev/null 2>&1; then
        log "creating user $SSH_USER"
        useradd --create-home --shell /bin/bash "$SSH_USER"
    fi
    # useradd leaves the password locked ('!'): sshd then refuses even a key login.
    if [[ "$(getent shadow "$SSH_USER" | cut -d: -f2)" != '*' ]]; then
        usermod -p '*' "$SSH_USER"
    fi
}

write_layout() {
    mkdir -p "$ETC" "$RUN" "$LOGD" "$STATE/slurmctld" "$STATE/slurmd" "$STATE/munge" \
        "$SSHD" "$LAB/scratch"
    chmod 755 "$LAB" "$ETC" "$RUN" "$LOGD" "$SSHD"
    # Not 700: slurmd keeps each job's script under state/slurmd and the job's user runs it.
    chmod 755 "$STATE" "$STATE/slurmd"
    chmod 1777 "$LAB/scratch"
    mkdir -p "$REST_DIR"
    chown "$SSH_USER:" "$REST_DIR"
    chmod 755 "$REST_DIR"
}

write_slurm_conf() {
    local hw realmem
    # The real hardware, renamed; the job slots are declared (config_overrides) so that tests
    # can run many jobs at once on a two-core machine.
    if [[ ! -f $JWT_KEY ]]; then
        (umask 077; dd if=/dev/urandom of="$JWT_KEY" bs=32 count=1 status=none)
    fi
    chown root:root "$JWT_KEY"
    chmod 600 "$JWT_KEY"
    hw=$(slurmd -C 2>/dev/null | head -n 1)
    realmem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    [[ -n "$realmem" ]] || die "could not read RealMemory from 'slurmd -C' (got: $hw)"
    ((realmem >= 4096)) || realmem=4096
    cat >"$SLURM_CONF_FILE" <<EOF
# Written by tests/slurm/cluster.sh; rewritten on every start.
# slurmd -C printed: $hw
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
# slurmrestd's TCP listener: tokens from `scontrol token`, checked with this key
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.own.pid
SlurmdPidFile=$RUN/slurmd.own.pid
SlurmctldLogFile=$LOGD/slurmctld.log
SlurmdLogFile=$LOGD/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups on these machines
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# memory enforcement without cgroups: a job over --mem is killed within ~1 s (FAILED 0:9)
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
MailProg=/bin/true
SchedulerParameters=batch_sched_delay=0
MinJobAge=60
MaxJobCount=50000
KillWait=5
ReturnToService=2
PropagateResourceLimits=NONE
SlurmdParameters=config_overrides
SwitchType=switch/none
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# For connections to slurmdbd (slurmctld, sacct, sacctmgr) the munge socket comes from here, not
# from AuthInfo: without it they look for /run/munge/munge.socket.2.
AccountingStoragePass=$MUNGE_SOCKET
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$realmem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=UNLIMITED State=UP
PartitionName=efi Nodes=localhost Default=NO MaxTime=UNLIMITED State=UP
EOF
    chmod 644 "$SLURM_CONF_FILE"

    (umask 077; cat >"$ETC/slurmdbd.conf" <<EOF
# Written by tests/slurm/cluster.sh; rewritten on every start.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.own.pid
LogFile=$LOGD/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
# 127.0.0.1, not localhost: the client library turns "localhost" into the default Unix socket,
# which is the system MariaDB's.
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    )
    chown root:root "$ETC/slurmdbd.conf"
    chmod 600 "$ETC/slurmdbd.conf"

    cat >"$MYCNF" <<EOF
# Written by tests/slurm/cluster.sh: the lab's private MariaDB (not the system one).
[client]
socket=$RUN/mariadb.sock
port=$DB_PORT
user=root
[mysqld]
user=root
datadir=$LAB/db
socket=$RUN/mariadb.sock
port=$DB_PORT
bind-address=127.0.0.1
pid-file=$RUN/mariadb.own.pid
log-error=$LOGD/mariadb.log
skip-name-resolve
innodb_buffer_pool_size=128M
innodb_log_file_size=64M
innodb_lock_wait_timeout=900
max_allowed_packet=64M
EOF
    chmod 644 "$MYCNF"
}

write_env() {
    {
        echo "# Written by tests/slurm/cluster.sh: source it to use the lab."
        printf 'export SLURM_CONF=%q\n' "$SLURM_CONF_FILE"
        printf 'export EFI_SLURM_LAB=%q\n' "$LAB"
        printf 'export EFI_SLURM_SSH_CONFIG=%q\n' "$SSHD/config"
        printf 'export EFI_SLURM_SSH_HOST=%q\n' "$SSH_ALIAS"
        printf 'export EFI_SLURM_SSH_PORT=%q\n' "$SSH_PORT"
        printf 'export EFI_SLURM_SSH_USER=%q\n' "$SSH_USER"
        printf 'export EFI_SLURM_SCRATCH=%q\n' "$LAB/scratch"
        printf 'export EFI_SLURM_REST_SOCKET=%q\n' "$REST_SOCKET"
        printf 'export EFI_SLURM_REST_URL=%q\n' "http://127.0.0.1:$REST_PORT"
    } >"$LAB/env.sh.tmp"
    mv "$LAB/env.sh.tmp" "$LAB/env.sh"
}

write_ssh_files() {
    [[ -f "$SSHD/ssh_host_ed25519_key" ]] \
        || ssh-keygen -q -t ed25519 -N '' -C "efi-slurm-lab host" -f "$SSHD/ssh_host_ed25519_key"
    [[ -f "$SSHD/id_ed25519" ]] \
        || ssh-keygen -q -t ed25519 -N '' -C "efi-slurm-lab client" -f "$SSHD/id_ed25519"
    chmod 600 "$SSHD/ssh_host_ed25519_key" "$SSHD/id_ed25519"
    # One file for root and efijm; sshd reads it as the user who logs in, so it must be readable.
    cp "$SSHD/id_ed25519.pub" "$SSHD/authorized_keys"
    chmod 644 "$SSHD/authorized_keys" "$SSHD/id_ed25519.pub"
    printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" \
        "$(cut -d' ' -f1-2 "$SSHD/ssh_host_ed25519_key.pub")" >"$SSHD/known_hosts"
    cat >"$SSHD/sshd_config" <<EOF
# Written by tests/slurm/cluster.sh
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSHD/ssh_host_ed25519_key
PidFile $RUN/sshd.own.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
AuthorizedKeysFile $SSHD/authorized_keys
StrictModes no
MaxSessions 64
MaxStartups 64:30:128
SetEnv SLURM_CONF=$SLURM_CONF_FILE
Subsystem sftp internal-sftp
LogLevel INFO
EOF
    cat >"$SSHD/config" <<EOF
# Written by tests/slurm/cluster.sh: ssh -F $SSHD/config $SSH_ALIAS <command>
Host $SSH_ALIAS
    HostName 127.0.0.1
    Port $SSH_PORT
    User $SSH_USER
    IdentityFile $SSHD/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $SSHD/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 10
EOF
    chmod 644 "$SSHD/sshd_config" "$SSHD/config" "$SSHD/known_hosts"
}

configure() {
    ensure_user  # first: the layout gives efijm its slurmrestd directory
    write_layout
    write_slurm_conf
    write_ssh_files
    write_env
}

# --- readiness probes ---------------------------------------------------------------------------
munge_ok() { munge -n --socket="$MUNGE_SOCKET" | unmunge --socket="$MUNGE_SOCKET"; }
mariadb_ok() { mariadb --defaults-file="$MYCNF" -N -e 'SELECT 1'; }
slurmdbd_ok() { timeout 10 sacctmgr -n -P show cluster format=cluster; }
slurmctld_ok() { timeout 10 scontrol ping | grep -q 'is UP'; }
slurmd_ok() {
    local st
    st=$(timeout 10 sinfo -h --nodes=localhost -o %T) || return 1
    if [[ $st == drain* ]]; then  # e.g. "Kill task failed" after a crash: the lab's own node
        timeout 10 scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
        return 1
    fi
    [[ "$st" =~ ^(idle|mixed|allocated|completing)$ ]]
}
sshd_ok() { timeout 20 ssh -F "$SSHD/config" "$SSH_ALIAS" sinfo -h -o %P; }
slurmrestd_ok() {
    curl -sf --max-time 10 --unix-socket "$REST_SOCKET" http://localhost/slurm/v0.0.38/ping \
        | grep -q '"UP"'
}
slurmrestd-jwt_ok() {
    local token
    token=$(timeout 10 scontrol token username="$SSH_USER" lifespan=60) || return 1
    curl -sf --max-time 10 -H "X-SLURM-USER-NAME: $SSH_USER" \
        -H "X-SLURM-USER-TOKEN: ${token#SLURM_JWT=}" \
        "http://127.0.0.1:$REST_PORT/slurm/v0.0.38/ping" | grep -q '"UP"'
}

check_port() {  # refuse to start when another program holds the port
    if port_busy "$1"; then
        die "port $1 for $2 is already in use by another program ($(ss -Hltnp "sport = :$1" \
            | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1)); set $3 to another port"
    fi
}

# --- the daemons --------------------------------------------------------------------------------
start_munged() {
    if [[ ! -f "$ETC/munge.key" ]]; then
        (umask 077; dd if=/dev/urandom of="$ETC/munge.key" bs=1024 count=1 status=none)
    fi
    chmod 400 "$ETC/munge.key"
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    start_bg munged munged --foreground --socket="$MUNGE_SOCKET" --key-file="$ETC/munge.key" \
        --pid-file="$RUN/munged.own.pid" --log-file="$LOGD/munged.log" \
        --seed-file="$STATE/munge/munged.seed"
    wait_for munged "munge -n | unmunge" munge_ok
}

start_mariadb() {
    check_port "$DB_PORT" "the lab's MariaDB" EFI_SLURM_DB_PORT
    if [[ ! -d "$LAB/db/mysql" ]]; then
        log "creating the MariaDB data directory $LAB/db"
        rm -rf "$LAB/db"
        mariadb-install-db --defaults-file="$MYCNF" --user=root --skip-test-db \
            --auth-root-authentication-method=socket >>"$LOGD/mariadb.out" 2>&1 \
            || { tail_log mariadb; die "mariadb-install-db failed"; }
    fi
    rm -f "$RUN/mariadb.sock" "$RUN/mariadb.own.pid"
    # --defaults-file must come first: it is then the only option file read.
    start_bg mariadb mariadbd --defaults-file="$MYCNF"
    wait_for mariadb "SELECT 1 on $RUN/mariadb.sock" mariadb_ok
    mariadb --defaults-file="$MYCNF" <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO '$DB_USER'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO '$DB_USER'@'localhost';
EOF
}

register_accounting() {
    # Without these, sacct does not show the users' jobs. Re-adding prints "already exists".
    local out
    sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER" \
        || sacctmgr -i add cluster "$CLUSTER" >/dev/null
    sacctmgr -n -P show account format=account | grep -qx efi \
        || sacctmgr -i add account efi Cluster="$CLUSTER" Description=efi Organization=efi \
            >/dev/null
    out=$(sacctmgr -n -P show user format=user)
    grep -qx root <<<"$out" || sacctmgr -i add user root DefaultAccount=root >/dev/null
    grep -qx "$SSH_USER" <<<"$out" \
        || sacctmgr -i add user "$SSH_USER" DefaultAccount=efi >/dev/null
    out=$(sacctmgr -n -P show user format=user)
    grep -qx "$SSH_USER" <<<"$out" || die "could not register user $SSH_USER in slurmdbd"
}

start_slurmdbd() {
    check_port "$DBD_PORT" slurmdbd EFI_SLURM_DBD_PORT
    start_bg slurmdbd slurmdbd -D
    wait_for slurmdbd "sacctmgr show cluster" slurmdbd_ok
    register_accounting
}

start_slurmctld() {
    check_port "$CTLD_PORT" slurmctld EFI_SLURM_CTLD_PORT
    start_bg slurmctld slurmctld -D
    wait_for slurmctld "scontrol ping says UP" slurmctld_ok
}

start_slurmd() {
    check_port "$SLURMD_PORT" slurmd EFI_SLURM_SLURMD_PORT
    start_bg slurmd slurmd -D -N localhost
    if ! is_up slurmctld; then  # started alone (start slurmd) with no controller to ask
        sleep 0.5; is_up slurmd || { tail_log slurmd; die "slurmd exited while starting"; }
        return 0
    fi
    wait_for slurmd "sinfo shows node localhost idle" slurmd_ok
    cancel_phantoms
}

# A fresh slurmd runs no job, but after a crash (or kill -9) slurmctld still lists the jobs
# that were running as RUNNING, for ever: the node did not reboot, so it does not purge them.
# Cancel them so that they do not hold job slots.
cancel_phantoms() {
    local ids
    ids=$(timeout 10 squeue -h -t RUNNING,SUSPENDED,CONFIGURING -o %A | paste -sd, -) || return 0
    [[ -z $ids ]] && return 0
    log "cancelling jobs left RUNNING by a previous slurmd: $ids"
    # shellcheck disable=SC2086
    timeout 10 scancel ${ids//,/ } || true
}

# down: the lab's jobs do not survive it (their processes are killed with slurmd anyway).
cancel_all_jobs() {
    local ids i
    ids=$(timeout 10 squeue -h -o %A | paste -sd' ' -) || return 0
    [[ -z $ids ]] && return 0
    log "cancelling the lab's jobs: $ids"
    # shellcheck disable=SC2086
    timeout 10 scancel $ids || true
    for ((i = 0; i < 100; i++)); do  # until slurmd has reported them ended (10 s at most)
        [[ -z $(timeout 5 squeue -h -o %A) ]] && return 0
        sleep 0.1
    done
}

start_sshd() {
    check_port "$SSH_PORT" sshd EFI_SLURM_SSH_PORT
    mkdir -p /run/sshd
    chmod 755 /run/sshd
    /usr/sbin/sshd -t -f "$SSHD/sshd_config" || die "sshd -t rejected $SSHD/sshd_config"
    start_bg sshd /usr/sbin/sshd -D -f "$SSHD/sshd_config" -E "$LOGD/sshd.log"
    if ! is_up slurmctld; then  # sinfo cannot answer without a controller: check login only
        wait_for sshd "an ssh login" timeout 20 ssh -F "$SSHD/config" "$SSH_ALIAS" true
        return 0
    fi
    wait_for sshd "an ssh sinfo" sshd_ok
}

# slurmrestd refuses root: it runs as efijm (setpriv execs it, so the PID recorded is its own).
REST_PLUGINS=openapi/v0.0.38,openapi/dbv0.0.38
start_slurmrestd() {
    rm -f "$REST_SOCKET"
    start_bg slurmrestd setpriv --reuid="$SSH_USER" --regid="$SSH_USER" --init-groups \
        slurmrestd -a rest_auth/local -s "$REST_PLUGINS" "unix:$REST_SOCKET"
    rest_ready slurmrestd "GET /slurm/v0.0.38/ping on $REST_SOCKET" slurmrestd_ok
}

start_slurmrestd-jwt() {
    check_port "$REST_PORT" slurmrestd-jwt EFI_SLURM_REST_PORT
    start_bg slurmrestd-jwt env SLURM_JWT=daemon setpriv --reuid="$SSH_USER" \
        --regid="$SSH_USER" --init-groups \
        slurmrestd -a rest_auth/jwt -s "$REST_PLUGINS" "127.0.0.1:$REST_PORT"
    rest_ready slurmrestd-jwt "GET /slurm/v0.0.38/ping with a token" slurmrestd-jwt_ok
}

rest_ready() {  # NAME WHAT PROBE: ping needs a controller; without one, only "still running"
    if ! is_up slurmctld; then
        sleep 0.5; is_up "$1" || { tail_log "$1"; die "$1 exited while starting"; }
        return 0
    fi
    wait_for "$@"
}

cmd_token() {
    local lifespan=${1:-3600} user=${2:-$SSH_USER}
    [[ $lifespan =~ ^[0-9]+$ ]] || die "token: the lifespan is a number of seconds"
    [[ $user == root || $user == "$SSH_USER" ]] || die "token: the user is $SSH_USER or root"
    is_up slurmctld || die "token: slurmctld is not running"
    timeout 10 scontrol token username="$user" lifespan="$lifespan"
}

# The lab's slurmstepd (they inherit SLURM_CONF from the lab's slurmd) and everything under them.
lab_stepds() {
    local p
    for p in /proc/[0-9]*; do
        [[ "$(cat "$p/comm" 2>/dev/null)" == slurmstepd ]] || continue
        tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qx "SLURM_CONF=$SLURM_CONF_FILE" \
            && echo "${p#/proc/}"
    done
}

descendants() {  # PIDs of the processes under $1 (not $1)
    local kids k
    kids=$(cat /proc/"$1"/task/*/children 2>/dev/null || true)
    for k in $kids; do
        echo "$k"
        descendants "$k"
    done
}

kill_stepds() {
    local pids=() kids=() s
    for s in $(lab_stepds); do
        mapfile -t kids < <(descendants "$s")
        pids+=("$s" "${kids[@]}")
    done
    [[ ${#pids[@]} -eq 0 ]] && return 0
    log "killing ${#pids[@]} leftover slurmstepd/job processes"
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

stop_daemon() {
    local name=$1 pid i
    if ! pid=$(pid_of "$name"); then
        rm -f "$RUN/$name.pid"
        [[ $name == slurmd ]] && kill_stepds
        log "$name is not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do  # 15 s (slurmctld saves its state, MariaDB flushes)
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        log "$name (pid $pid) ignored SIGTERM for 15 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while alive "$pid"; do sleep 0.1; done
    fi
    rm -f "$RUN/$name.pid"
    [[ $name == slurmd ]] && kill_stepds
    log "$name stopped (pid $pid)"
}

start_daemon() {
    local name=$1 t0=$SECONDS pid
    if pid=$(pid_of "$name"); then
        case $name in  # running is not enough: it must answer (a start that was interrupted)
            munged) wait_for munged "munge -n | unmunge" munge_ok ;;
            mariadb) wait_for mariadb "SELECT 1" mariadb_ok ;;
            slurmdbd) wait_for slurmdbd "sacctmgr show cluster" slurmdbd_ok ;;
            slurmctld) wait_for slurmctld "scontrol ping says UP" slurmctld_ok ;;
            slurmrestd) is_up slurmctld && wait_for slurmrestd "ping" slurmrestd_ok ;;
            slurmrestd-jwt) is_up slurmctld && wait_for slurmrestd-jwt "ping" slurmrestd-jwt_ok ;;
            *) ;;  # slurmd and sshd are checked through the daemons above them
        esac
        log "$name is already running (pid $pid)"
        return 0
    fi
    rm -f "$RUN/$name.pid"
    "start_$name"
    pid=$(pid_of "$name") || die "$name answers, but its recorded PID is not $name"
    log "$name up (pid $pid, $((SECONDS - t0)) s)"
}

# --- commands -----------------------------------------------------------------------------------
cmd_status() {
    local name pid all=0
    for name in "${DAEMONS[@]}"; do
        if pid=$(pid_of "$name"); then
            printf '%-14s up    (pid %s)\n' "$name" "$pid"
        else
            printf '%-14s down\n' "$name"
            all=3
        fi
    done
    printf 'lab: %s\n' "$LAB"
    return $all
}

cmd_up() {
    local name all=1 t0
    t0=$EPOCHREALTIME
    for name in "${DAEMONS[@]}"; do is_up "$name" || all=0; done
    if ((all)) && [[ -f "$LAB/env.sh" ]]; then
        log "lab already up at $LAB (source $LAB/env.sh)"
        return 0
    fi
    install_packages
    # Stale PID files (previous boot, crash) and the daemons' own leftovers go first.
    for name in "${DAEMONS[@]}"; do
        is_up "$name" || rm -f "$RUN/$name.pid" "$RUN/$name.own.pid"
    done
    is_up slurmd || kill_stepds
    configure
    # A lab started by an older cluster.sh runs without JWT (slurmrestd-jwt needs it):
    # slurmdbd and slurmctld read AuthAltTypes only when they start.
    if is_up slurmctld && ! timeout 10 scontrol show config 2>/dev/null \
            | grep -q '^AuthAltTypes *= *auth/jwt'; then
        log "slurmctld runs without auth/jwt (an older lab): restarting slurmdbd and slurmctld"
        stop_daemon slurmctld
        stop_daemon slurmdbd
    fi
    for name in "${DAEMONS[@]}"; do start_daemon "$name"; done
    log "lab up at $LAB in $(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $t0 }") s;" \
        "source $LAB/env.sh"
}

cmd_down() {
    local i
    if is_up slurmctld && is_up slurmd; then cancel_all_jobs; fi
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop_daemon "${DAEMONS[i]}"; done
    log "lab down ($LAB kept; 'purge' deletes it)"
}

valid_daemon() {
    local d
    for d in "${DAEMONS[@]}"; do [[ $d == "${1:-}" ]] && return 0; done
    die "unknown daemon '${1:-}' (one of: ${DAEMONS[*]})"
}

main() {
    local cmd=${1:-}
    mkdir -p "$(dirname "$LAB")"
    # One cluster.sh at a time per lab (concurrent test sessions, CI retries).
    exec 9>"$LAB.lock"
    flock -w 300 9 || die "another cluster.sh holds $LAB.lock"
    case $cmd in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        purge) cmd_down; rm -rf "$LAB"; log "deleted $LAB" ;;
        token) cmd_token "${2:-}" "${3:-}" ;;
        stop) valid_daemon "${2:-}"; stop_daemon "$2" ;;
        start)
            valid_daemon "${2:-}"
            [[ -f "$SLURM_CONF_FILE" ]] || die "the lab was never set up: run '$0 up' first"
            write_layout
            start_daemon "$2"
            ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
}

main "$@"
