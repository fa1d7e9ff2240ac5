#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try batch scripts before queueing on a real one.
#
#   eval "$(launch/slurm/local-cluster.sh start)"   # starts munged, slurmctld, slurmd; exports SLURM_CONF
#   sbatch -n 4 launch/slurm/train.sbatch nets/lenet_digits/solver.prototxt --max-iter 60
#   srun --mpi=pmi2 -n 4 firecaffe train nets/lenet_digits/solver.prototxt --max-iter 30
#   launch/slurm/local-cluster.sh status
#   launch/slurm/local-cluster.sh stop
#
# Needs Debian's slurmctld, slurmd, slurm-client and munge (.ci/install-slurm.sh installs them)
# and root (slurmd launches jobs as their submitting user). Everything it writes (config, munge
# key and socket, state, spool, pid files, logs) lies under one folder; the system's own
# /etc/slurm, /etc/munge and any running SLURM are left alone.
#
# The node is declared with more CPUs than the machine has (SlurmdParameters=config_overrides),
# so a 2-core laptop accepts a 16-rank job: ranks are then oversubscribed, which is fine for
# correctness runs, not for timings.
#
# Environment:
#   FIRECAFFE_SLURM_DIR    folder for everything (default /tmp/firecaffe-slurm)
#   FIRECAFFE_SLURM_CPUS   CPUs the node claims (default 128)
#   FIRECAFFE_SLURM_PORT   slurmctld port; slurmd uses PORT+1 (default 16817)
#   FIRECAFFE_SLURM_KEEP=1 "stop" keeps the folder (logs) instead of removing it
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

DIR="${FIRECAFFE_SLURM_DIR:-/tmp/firecaffe-slurm}"
CPUS="${FIRECAFFE_SLURM_CPUS:-128}"
PORT="${FIRECAFFE_SLURM_PORT:-16817}"
CONF="$DIR/slurm.conf"
MARK="$DIR/.created-by-firecaffe-local-cluster"
NODE="$(hostname -s)"

say() { echo "local-cluster: $*" >&2; }
die() { say "$*"; exit 1; }
fail() { say "$*"; stop_daemons; exit 1; }   # after daemons may have started

# The pid file's process is alive and is still that daemon (not a recycled pid).
pid_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$(basename "$1" .pid)" ]
}

mpi_default() {
    # pmi2 lets PMI-2 MPIs (MPICH, including PyPI's mpich wheel) start under plain srun.
    local f
    for f in /usr/lib/*/slurm-wlm/mpi_pmi2.so /usr/lib*/slurm/mpi_pmi2.so /usr/lib/*/slurm/mpi_pmi2.so; do
        [ -e "$f" ] && { echo pmi2; return; }
    done
    echo none
}

write_conf() {
    local mem
    FIRST_JOB_ID=$(( (RANDOM * 32768 + RANDOM) % 60000000 + 1000 ))
    mem=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
    cat > "$CONF" <<EOF
# Written by launch/slurm/local-cluster.sh: a one-node cluster for trying batch scripts.
ClusterName=firecaffe-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=$(mpi_default)
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
# Job ids start at a random number: srun's PMI names a job's key space after its id, and MPICH
# names its shared memory after that, so a cluster started again (job 1, 2, ... once more) could
# meet the segments a killed job of an earlier cluster left in /dev/shm
# ("Message from rank 1 ... truncated" in MPI_Init).
FirstJobId=$FIRST_JOB_ID
MinJobAge=600
KillWait=5
InactiveLimit=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
}

start() {
    for exe in munged mungekey slurmctld slurmd sinfo; do
        command -v "$exe" >/dev/null || die "$exe not found: install slurmctld slurmd slurm-client munge (.ci/install-slurm.sh)"
    done
    [ "$(id -u)" = 0 ] || die "must run as root (slurmd starts jobs as their user)"
    if pid_alive "$DIR/run/slurmctld.pid" && pid_alive "$DIR/run/slurmd.pid"; then
        say "already running under $DIR"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    if [ ! -d "$DIR" ]; then
        mkdir -p "$DIR"
        touch "$MARK"
    fi
    mkdir -p "$DIR"/{munge,state,spool,run,log}
    chmod 700 "$DIR/munge"
    write_conf

    if ! pid_alive "$DIR/run/munged.pid"; then
        [ -s "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key"
        chmod 400 "$DIR/munge/munge.key"
        # --force: munged refuses root and world-writable parents (/tmp) without it.
        munged --force --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
            --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
            --seed-file="$DIR/munge/munged.seed" 2>>"$DIR/log/munged.log" \
            || fail "munged failed to start; see $DIR/log/munged.log"
    fi
    # a daemon that fails to start takes the ones already started down with it (fail)
    pid_alive "$DIR/run/slurmctld.pid" || slurmctld -f "$CONF" -c -i \
        || fail "slurmctld failed to start; see $DIR/log/slurmctld.log"
    pid_alive "$DIR/run/slurmd.pid" || slurmd -f "$CONF" -N "$NODE" \
        || fail "slurmd failed to start; see $DIR/log/slurmd.log"

    export SLURM_CONF="$CONF"
    local state=""
    for _ in $(seq 60); do
        state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
        case "$state" in idle*|mixed*|allocated*) break ;; esac
        sleep 0.5
    done
    case "$state" in
        idle*|mixed*|allocated*) ;;
        *) say "node $NODE not ready (state '${state:-unknown}'); logs in $DIR/log"
           tail -n 5 "$DIR"/log/*.log >&2 || true
           stop_daemons; exit 1 ;;
    esac
    say "up: node $NODE, $CPUS CPUs, MpiDefault=$(mpi_default), folder $DIR"
    echo "export SLURM_CONF=$CONF"
}

stop_pids() {  # daemon names: SIGTERM all at once (each takes a second or two), SIGKILL after 5 s
    local name pid pids=()
    for name in "$@"; do
        pid_alive "$DIR/run/$name.pid" && pids+=("$(cat "$DIR/run/$name.pid")")
    done
    [ ${#pids[@]} -eq 0 ] || kill -TERM "${pids[@]}" 2>/dev/null || true
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            say "pid $pid ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for name in "$@"; do rm -f "$DIR/run/$name.pid"; done
}

stop_daemons() {
    if pid_alive "$DIR/run/slurmctld.pid"; then
        # Cancel what is still queued or running so no slurmstepd outlives the cluster.
        SLURM_CONF="$CONF" scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
        # jobs' slurmstepd processes exit with their jobs; give them a moment
        for _ in $(seq 30); do
            [ -z "$(SLURM_CONF="$CONF" squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    stop_pids slurmd slurmctld munged
}

stop() {
    [ -d "$DIR" ] || { say "nothing under $DIR"; return 0; }
    stop_daemons
    if [ -e "$MARK" ] && [ "${FIRECAFFE_SLURM_KEEP:-0}" != 1 ]; then
        rm -rf "$DIR"
        say "stopped; removed $DIR"
    else
        say "stopped; kept $DIR"
    fi
}

status() {
    local rc=0 d
    for d in munged slurmctld slurmd; do
        if pid_alive "$DIR/run/$d.pid"; then
            say "$d running (pid $(cat "$DIR/run/$d.pid"))"
        else
            say "$d not running"; rc=1
        fi
    done
    if [ "$rc" = 0 ]; then
        SLURM_CONF="$CONF" sinfo >&2 || rc=1
        echo "export SLURM_CONF=$CONF"
    fi
    return "$rc"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status   (see the header of this file)" >&2; exit 2 ;;
esac
