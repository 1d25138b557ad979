#!/usr/bin/env bash
# Instructions the whole release daemon executes per call, counted (not
# timed) under valgrind's callgrind, so the figure does not depend on what
# else runs on the machine. A benchmark, not a test: it prints figures.
#
# Two runs, each on a fresh daemon (the configuration of vs_kamailio.sh):
#   routed  --calls calls to number 1500, one queue served by --agents
#           agents registered from one SIPp answerer (cps.sh's uas.xml),
#           each caller talking --hold-ms (cps.sh's uac_hold.xml: 1 s)
#   ivr     --calls calls to number 1600, an IVR that answers (uac.xml)
# The counters are zeroed once the daemon is up (and the agents are
# registered), the calls are placed at --rate calls/s, then the counters are
# dumped. What the daemon burns idle over the same wall time (its timers,
# measured for --idle-s seconds before the calls) is taken off, and the
# rest divided by the calls completed. The call-record writer thread's
# share is printed apart: it commits one SQLite transaction per wake-up,
# so at this low rate it costs more per call than under load. Prints
#   instructions per routed call: N, per IVR call: M
#
# Usage: benches/instructions_per_call.sh [options]
#   --bin PATH     sipacd binary (default $SIPACD_BIN, else cargo build --release)
#   --calls N      calls per run (default 300)
#   --rate R       calls/s (default 15; valgrind runs the daemon ~50x slower)
#   --agents N     agents of the routed run (default 50)
#   --idle-s S     idle measurement (default 10)
#   --only MODE    routed or ivr only
#   --annotate     keep the callgrind files and print the top functions
# Environment: KEEP=1 keeps the logs and callgrind files.
# Needs sipp, valgrind (callgrind_control), curl; everything on 127.0.0.1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
SCEN=${BENCH_YARDSTICK:-$repo/../shared/bench}/scenarios
[ -r "$SCEN/uac.xml" ] || { echo "the shared yardstick's scenarios ($SCEN) are missing" >&2; exit 2; }

BIN="${SIPACD_BIN:-}"
CALLS=300
RATE=15
AGENTS=50
IDLE_S=10
ONLY=""
ANNOTATE=0
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) BIN=$2; shift ;;
    --calls) CALLS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --agents) AGENTS=$2; shift ;;
    --idle-s) IDLE_S=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --annotate) ANNOTATE=1 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for t in sipp curl valgrind callgrind_control; do
    command -v $t >/dev/null || { echo "$t not found" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)"

# shellcheck source=benches/bench_lib.sh
. "$here/bench_lib.sh"
ensure_bin
[ "$ANNOTATE" = 0 ] || KEEP=1
DOMAIN=bench.sipacd.local

# Instructions (Ir) of the daemon's Nth callgrind dump (PID N), taken now.
dump_ir() {
    local f="$D/cg.out.$1.$2"
    callgrind_control -d "$1" >/dev/null 2>&1
    for _ in $(seq 100); do [ -s "$f" ] && grep -qE '^(summary|totals):' "$f" && break; sleep 0.2; done
    awk '/^(summary|totals):/ { print $2; exit }' "$f"
}

# run_mode MODE: prints "calls instructions idle_ir_per_s wall_s".
run_mode() {
    local mode=$1 pid uas_pid="" uac_port uas_port t0 t1 idle0 idle_ir ir ok retrans
    D="$work/$mode"
    SIP_PORT=$(free_port)
    ADMIN_PORT=$(free_port)
    local n=0
    [ "$mode" = routed ] && n=$AGENTS
    write_config "$D" "$n"
    "$BIN" check --config "$D/sipacd.toml" >/dev/null
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$D/cg.out.%p" \
        "$BIN" --config "$D/sipacd.toml" 2>"$D/sipacd.log" &
    pid=$!
    PIDS+=("$pid")
    # valgrind needs a while to start the daemon
    for _ in $(seq 12); do
        if wait_options "127.0.0.1:$SIP_PORT" "$pid" 2>/dev/null; then break; fi
    done
    wait_options "127.0.0.1:$SIP_PORT" "$pid" || { tail -20 "$D/sipacd.log" >&2; exit 1; }
    uas_port=$(free_port)
    if [ "$mode" = routed ]; then
        (cd "$D" && timeout 120 sipp "127.0.0.1:$SIP_PORT" -sf "$here/register_agents.xml" \
            -inf "$D/agents.csv" -key domain "$DOMAIN" -i 127.0.0.1 -p "$uas_port" \
            -r 20 -l 20 -m "$n" -recv_timeout 20000 -timeout 110s -nostdin \
            -fd 1 >"$D/register.out" 2>&1) || true
        local avail
        avail=$(metric sipacd_queue_agents 'state="available"')
        [ "$avail" -eq "$n" ] || { echo "only $avail of $n agents available" >&2; KEEP=1; exit 1; }
    fi
    sleep 2
    # idle: what the daemon's timers cost per second with no calls
    callgrind_control -z "$pid" >/dev/null 2>&1
    idle0=$(date +%s.%N)
    sleep "$IDLE_S"
    idle_ir=$(dump_ir "$pid" 1)
    idle_ir=$(awk -v i="$idle_ir" -v a="$idle0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", i / (b - a) }')

    if [ "$mode" = routed ]; then
        (cd "$D" && exec sipp -sf "$SCEN/uas.xml" -i 127.0.0.1 -bind_local -p "$uas_port" \
            -nostdin -timeout $((CALLS / RATE + 120))s -fd 1 >"$D/uas.out" 2>&1) &
        uas_pid=$!
        PIDS+=("$uas_pid")
        sleep 1
    fi
    local xml=$SCEN/uac.xml number=1600
    [ "$mode" = routed ] && xml=$SCEN/uac_hold.xml && number=1500
    uac_port=$(free_port)
    callgrind_control -z "$pid" >/dev/null 2>&1
    t0=$(date +%s.%N)
    (cd "$D" && timeout $((CALLS / RATE + 120)) sipp -sf "$xml" "127.0.0.1:$SIP_PORT" \
        -i 127.0.0.1 -bind_local -p "$uac_port" -nostdin -s "$number" \
        -r "$RATE" -m "$CALLS" -recv_timeout 30000 -timeout $((CALLS / RATE + 100))s \
        -trace_stat -stf uac_stat.csv -fd 1 >"$D/uac.out" 2>&1) || true
    # let the last BYEs' transactions and the calls' records settle
    sleep 2
    t1=$(date +%s.%N)
    ir=$(dump_ir "$pid" 2)
    ok=$(stat_col "$D/uac_stat.csv" 'SuccessfulCall(C)')
    retrans=$(stat_col "$D/uac_stat.csv" 'Retransmissions(C)')
    # The call-record writer thread commits a batch per wake-up: at this
    # low rate a batch holds a call or two, so its share is reported apart.
    local cdr
    cdr=$(callgrind_annotate --inclusive=yes --threshold=100 "$D/cg.out.$pid.2" 2>/dev/null |
        awk '/sipacd::cdr::writer::run / { gsub(",", "", $1); print $1; exit }')
    [ -n "$uas_pid" ] && kill "$uas_pid" 2>/dev/null
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if [ "$ANNOTATE" = 1 ]; then
        echo "== $mode: top functions ($D/cg.out.$pid.2)" >&2
        callgrind_annotate "$D/cg.out.$pid.2" 2>/dev/null | sed -n '1,60p' >&2
    fi
    echo "$ok $ir $idle_ir $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') ${cdr:-0} $retrans"
}

per_call() { # "ok ir idle wall" -> net instructions per call
    awk '{ if ($1 > 0) printf "%.0f", ($2 - $3 * $4) / $1; else print "-" }' <<<"$1"
}

declare -A FIG
for mode in routed ivr; do
    [ -z "$ONLY" ] || [ "$ONLY" = "$mode" ] || continue
    line=$(run_mode "$mode")
    read -r ok ir idle wall cdr retrans <<<"$line"
    FIG[$mode]=$(per_call "$line")
    echo "# $mode: $ok of $CALLS calls in ${wall} s, $ir instructions; idle $idle instructions/s taken off;" \
        "raw $(awk -v i="$ir" -v o="$ok" 'BEGIN { if (o > 0) printf "%.0f", i / o }') per call," \
        "of which the call-record writer $(awk -v i="$cdr" -v o="$ok" 'BEGIN { if (o > 0) printf "%.0f", i / o }');" \
        "$retrans retransmissions by the callers (each one is work counted too)"
done
echo "instructions per routed call: ${FIG[routed]:--}, per IVR call: ${FIG[ivr]:--}"
