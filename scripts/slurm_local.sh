#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine (Debian packages, no systemd), to try
# and test the hydra-submitit launchers:
#
#   sudo scripts/slurm_local.sh install   # apt-get install slurm-wlm munge slurmdbd mariadb-server
#   sudo scripts/slurm_local.sh start     # munged, mariadbd, slurmdbd, slurmctld, slurmd; waits for the node
#   scripts/slurm_local.sh status         # sinfo + the daemons' PIDs
#   sudo scripts/slurm_local.sh stop      # stops what `start` started, by PID
#
# Node = `hostname -s` at 127.0.0.1 with CPUs = nproc, partition `debug` (default),
# select/cons_tres + CR_Core, proctrack/linuxproc, task/none, MailProg=/bin/true.
# Accounting goes through slurmdbd + MariaDB: without it `sacct` fails and submitit waits
# forever on a job that was hard-killed; with it the job is reported FAILED.
# State, logs and the database live in $SLURM_LOCAL_DIR (default /var/tmp/bertlab-slurm);
# slurm.conf/slurmdbd.conf are written to /etc/slurm (the path the Debian clients read).
set -euo pipefail

STATE=${SLURM_LOCAL_DIR:-/var/tmp/bertlab-slurm}
ETC=/etc/slurm
DB_PORT=${SLURM_LOCAL_DB_PORT:-3307}
NODE=$(hostname -s)
CPUS=$(nproc)
# memory the node advertises (MB): 90 % of the machine
MEM_MB=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)

die() { echo "slurm_local: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "must run as root (it starts system daemons)"; }
alive() { [ -f "$STATE/pids/$1" ] && kill -0 "$(cat "$STATE/pids/$1")" 2>/dev/null; }

cmd_install() {
    need_root
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm slurmdbd munge mariadb-server >/dev/null
    echo "slurm_local: installed $(sbatch --version)"
}

write_confs() {
    mkdir -p "$ETC" "$STATE"/{pids,log,ctld,slurmd,mysql}
    cat > "$ETC/slurm.conf" <<EOF
# written by scripts/slurm_local.sh for a single-node test cluster on $NODE
ClusterName=bertlab
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MailProg=/bin/true
JobRequeue=1
KillWait=10
MinJobAge=300
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    cat > "$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=bertlab
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$ETC/slurmdbd.conf"
    chmod 644 "$ETC/slurm.conf"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local secs=$1 what=$2; shift 2
    for _ in $(seq $((secs * 4))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    die "$what did not come up in ${secs}s (logs: $STATE/log)"
}

start_daemon() {  # start_daemon NAME COMMAND...: foreground daemon in its own session, PID recorded
    local name=$1; shift
    if alive "$name"; then echo "slurm_local: $name already running (pid $(cat "$STATE/pids/$name"))"; return; fi
    setsid "$@" >>"$STATE/log/$name.out" 2>&1 < /dev/null &
    echo $! > "$STATE/pids/$name"
}

cmd_start() {
    need_root
    command -v slurmctld >/dev/null || die "slurm is not installed: run '$0 install'"
    local t0=$SECONDS
    write_confs

    # munge: key owned by the munge user, daemon as that user
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    start_daemon munged runuser -u munge -- /usr/sbin/munged --foreground
    wait_for 15 munged sh -c 'munge -n | unmunge'

    # MariaDB on 127.0.0.1:$DB_PORT with its own data dir
    if [ ! -d "$STATE/mysql/mysql" ]; then
        mariadb-install-db --user=root --datadir="$STATE/mysql" --skip-test-db >"$STATE/log/mariadb-install.out" 2>&1
    fi
    start_daemon mariadbd /usr/sbin/mariadbd --no-defaults --user=root --datadir="$STATE/mysql" \
        --socket="$STATE/mysql.sock" --pid-file="$STATE/mariadbd.pid" --bind-address=127.0.0.1 \
        --port="$DB_PORT" --log-error="$STATE/log/mariadbd.log" --innodb-buffer-pool-size=64M
    wait_for 60 mariadbd mariadb --no-defaults --socket="$STATE/mysql.sock" -uroot -e 'select 1'
    mariadb --no-defaults --socket="$STATE/mysql.sock" -uroot <<'EOF'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'bertlab';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'bertlab';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF

    start_daemon slurmdbd /usr/sbin/slurmdbd -D
    wait_for 60 slurmdbd sacctmgr -i list cluster
    # register the cluster (slurmctld would do it too, but then the first jobs may miss accounting)
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx bertlab; then
        sacctmgr -i add cluster bertlab >/dev/null
    fi
    start_daemon slurmctld /usr/sbin/slurmctld -D -i
    wait_for 60 slurmctld scontrol ping
    start_daemon slurmd /usr/sbin/slurmd -D -N "$NODE"
    wait_for 60 "node $NODE" sh -c "sinfo -h -n $NODE -o %t | grep -Eq '^(idle|mix|alloc)'"
    echo "slurm_local: cluster up in $((SECONDS - t0))s: node $NODE, $CPUS CPUs, ${MEM_MB} MB, partition debug"
}

cmd_stop() {
    need_root
    local name pid
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        if alive "$name"; then
            pid=$(cat "$STATE/pids/$name")
            # the recorded PID is the daemon itself (or runuser, which forwards the signal)
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
            echo "slurm_local: stopped $name (pid $pid)"
        fi
        rm -f "$STATE/pids/$name"
    done
}

cmd_status() {
    local name
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        if alive "$name"; then echo "$name: running (pid $(cat "$STATE/pids/$name"))"; else echo "$name: stopped"; fi
    done
    sinfo 2>/dev/null || true
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    status) cmd_status ;;
    *) echo "usage: $0 install|start|stop|restart|status" >&2; exit 2 ;;
esac
