#!/usr/bin/env bash
# sipacd's call-rate figures next to Kamailio's, from the same run, with the
# shared yardstick (../shared/bench: cps.sh, peer-kamailio.sh). A benchmark,
# not a test: it prints figures and ratios, it asserts nothing about speed.
#
# Usage: benches/vs_kamailio.sh [options] MODE...
#   ivr      calls to a number whose IVR plays a prompt and hangs up, zero
#            talk (cps.sh's uac.xml, no answerer): sipacd's max calls/s next
#            to Kamailio's (aim: ratio >= 1.0)
#   routed   calls through one queue to --agents (1200) registered agents,
#            each caller talking 1 s (uac_hold.xml); cps.sh's SIPp answerer
#            plays every agent's phone. Every call must reach an agent: the
#            daemon's answered counter is checked against the calls placed.
#            Max calls/s next to Kamailio's (aim: ratio >= 0.5)
#   cpu      the daemon's CPU per routed call at --cpu-rate (200) calls/s
#            (few enough that nobody waits), with 400 and with 4000
#            registered agents, --cpu-steps (3) steps each, medians
#            (aim: 4000/400 <= 1.25); Kamailio's CPU per (plain) call at
#            the same rate beside it
#   all      the three
# Options:
#   --bin PATH        sipacd binary (default $SIPACD_BIN, else cargo build --release)
#   --agents N        agents of the routed run (default 1200)
#   --cpu-agents "A B"  agent counts of the cpu run (default "400 4000")
#   --cpu-rate R      calls/s of the cpu run (default 200)
#   --cpu-steps K     steps per agent count in the cpu run (default 3)
#   --step-s S        seconds per cps.sh step (default: cps.sh's 10; cpu: 20)
#   --no-kamailio     sipacd's figures only
#   --log LEVEL       the daemon's RUST_LOG (default warn: per-call info
#                     lines would be measured too)
#   --limits          the per-source limits working on every message: no
#                     network allow-listed (the default allows loopback,
#                     where all of this traffic comes from), thresholds
#                     high enough never to block the bench; run a mode with
#                     and without it to see what the limits cost
#   --perf DIR        cpu mode: `perf record` the daemon over each agent
#                     count's steps, into DIR/perf-AGENTS.data (then e.g.
#                     `perf report -i DIR/perf-4000.data --no-children`)
# Environment: KEEP=1 keeps the logs; CPS_* reach cps.sh (see its head).
# Needs sipp, kamailio, curl, GNU time; everything on 127.0.0.1, every step
# bounded in calls and time (cps.sh's limits).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
YARD=${BENCH_YARDSTICK:-$repo/../shared/bench}
[ -x "$YARD/cps.sh" ] || { echo "the shared yardstick (../shared/bench/cps.sh) is missing" >&2; exit 2; }

BIN="${SIPACD_BIN:-}"
AGENTS=1200
CPU_AGENTS="400 4000"
CPU_RATE=200
CPU_STEPS=3
STEP_S=""
KAMAILIO=1
LOG=warn
PERF_DIR=""
LIMITS=0
MODES=()
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) BIN=$2; shift ;;
    --agents) AGENTS=$2; shift ;;
    --cpu-agents) CPU_AGENTS=$2; shift ;;
    --cpu-rate) CPU_RATE=$2; shift ;;
    --cpu-steps) CPU_STEPS=$2; shift ;;
    --step-s) STEP_S=$2; shift ;;
    --no-kamailio) KAMAILIO=0 ;;
    --log) LOG=$2; shift ;;
    --perf) PERF_DIR=$2; shift ;;
    --limits) LIMITS=1 ;;
    ivr | routed | cpu) MODES+=("$1") ;;
    all) MODES+=(ivr routed cpu) ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ ${#MODES[@]} -gt 0 ] || { echo "which mode? ivr, routed, cpu or all (see --help)" >&2; exit 2; }
for t in sipp curl; do command -v $t >/dev/null || { echo "$t not found" >&2; exit 1; }; done
[ "$KAMAILIO" = 0 ] || command -v kamailio >/dev/null || { echo "kamailio not found (apt-get install kamailio)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

# shellcheck source=benches/bench_lib.sh
. "$here/bench_lib.sh"
ensure_bin
DOMAIN=bench.sipacd.local
NUMBER_IVR=1600
NUMBER_QUEUE=1500
SUMMARY=()

# --------------------------------------------------------------- the daemon
# The [server] keys of --limits: the flood gate counts every message from
# 127.0.0.1, and never blocks at the bench's rates.
limit_keys() {
    [ "$LIMITS" = 1 ] || return 0
    printf 'allow_networks = []\npike_window_s = 1\npike_max_requests = 1000000\nmax_calls_in_setup_per_source = 1000000\n'
}

SERVER_KEYS=$(limit_keys)  # bench_lib.sh's write_config adds them

lim_tag() { if [ "$LIMITS" = 1 ]; then echo " (limits on)"; fi; }

DAEMON_PID=""
# start_daemon AGENTS LABEL: a fresh daemon (and data_dir) with AGENTS agents.
start_daemon() {
    local n=$1 label=$2
    stop_daemon
    SIP_PORT=$(free_port)
    ADMIN_PORT=$(free_port)
    local d="$work/$label"
    write_config "$d" "$n"
    "$BIN" check --config "$d/sipacd.toml" >/dev/null || exit 1
    RUST_LOG=$LOG "$BIN" --config "$d/sipacd.toml" 2>"$d/sipacd.log" &
    DAEMON_PID=$!
    PIDS+=("$DAEMON_PID")
    DAEMON_DIR=$d
    wait_options "127.0.0.1:$SIP_PORT" "$DAEMON_PID" || { tail -20 "$d/sipacd.log" >&2; exit 1; }
}

stop_daemon() {
    [ -n "$DAEMON_PID" ] || return 0
    kill "$DAEMON_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
}

# register_agents N PORT: N agents of the current config register from
# 127.0.0.1:PORT (where the answerer listens later). Prints the time taken.
register_agents() {
    local n=$1 port=$2 t0 t1 avail
    t0=$(date +%s.%N)
    (cd "$DAEMON_DIR" && timeout $((n / 50 + 60)) sipp "127.0.0.1:$SIP_PORT" -sf "$here/register_agents.xml" \
        -inf "$DAEMON_DIR/agents.csv" -key domain "$DOMAIN" -i 127.0.0.1 -p "$port" \
        -r 500 -l 500 -m "$n" -recv_timeout 10000 -timeout $((n / 50 + 50))s -nostdin \
        -trace_stat -stf reg_stat.csv -fd 1 >"$DAEMON_DIR/register.out" 2>&1) || true
    t1=$(date +%s.%N)
    avail=$(metric sipacd_queue_agents 'state="available"')
    awk -v a="$t0" -v b="$t1" -v n="$n" -v ok="$avail" \
        'BEGIN { printf "# registered %d of %d agents in %.1f s (%.0f/s)\n", ok, n, b - a, ok / (b - a) }'
    [ "$avail" -eq "$n" ] || { echo "only $avail of $n agents are available: see $DAEMON_DIR/register.out" >&2; KEEP=1; exit 1; }
}

# --------------------------------------------------------------- yardstick
# run_cps LABEL OUTFILE [ENV=VALUE...]: cps.sh against the daemon.
run_cps() {
    local label=$1 out=$2
    shift 2
    env CPS_TARGET_PID="$DAEMON_PID" CPS_UAC_PORT="$(free_port)" ${STEP_S:+CPS_STEP_S=$STEP_S} "$@" \
        "$YARD/cps.sh" "127.0.0.1:$SIP_PORT" "$label" 2>&1 | tee "$out" | sed 's/^/    /'
}

# kamailio_cps OUTFILE [ENV=VALUE...]: peer-kamailio.sh, as the yardstick runs it.
kamailio_cps() {
    local out=$1
    shift
    env KAM_PORT="$(free_port)" CPS_UAS_PORT="$(free_port)" CPS_UAC_PORT="$(free_port)" \
        ${STEP_S:+CPS_STEP_S=$STEP_S} "$@" "$YARD/peer-kamailio.sh" 2>&1 | tee "$out" | sed 's/^/    /'
}

max_cps() { sed -n 's/^max_cps=\([0-9]*\).*/\1/p' "$1" | tail -1; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

KAM_MAX=""
kamailio_max() {
    [ "$KAMAILIO" = 1 ] || return 0
    [ -n "$KAM_MAX" ] && return 0
    echo "== Kamailio (peer-kamailio.sh), max calls/s"
    kamailio_cps "$work/kamailio.txt"
    KAM_MAX=$(max_cps "$work/kamailio.txt")
}

# "ok wall_s target_cpu% verdict" of the one step of a cps.sh run (CPS_OUT
# folder, printed output): its counters and the target's CPU% of one core.
step_figures() { # CPS_OUT OUTPUT
    local ok wall cpu verdict
    ok=$(sed -n 's/.* ok=\([0-9]*\) .*/\1/p' "$1/details.txt" | tail -1)
    wall=$(sed -n 's/.* wall_s=\([0-9.]*\) .*/\1/p' "$1/details.txt" | tail -1)
    cpu=$(sed -n 's|.*cpu%(uac/uas/target/other)=[0-9-]*/[0-9-]*/\([0-9-]*\)/.*|\1|p' "$2" | tail -1)
    verdict=$(grep -q ' PASS' "$2" && echo pass || echo fail)
    echo "${ok:-0} ${wall:-0} ${cpu:--} $verdict"
}

# µs of CPU per call of a step line from step_figures (cps.sh's CPU%, a
# whole percent: coarse below ~20%).
step_us() { awk '$1 > 0 && $3 != "-" { printf "%.0f", $3 / 100 * $2 / $1 * 1e6; exit } { print "-" }' <<<"$1"; }

# run_cpu_step PID LABEL OUT IDLE_TICKS_PER_S [ENV...]: one cps.sh step; prints
# the CPU µs per call of process PID, from its clock ticks over the whole
# cps.sh run less what it burns idle (IDLE_TICKS_PER_S) outside the calls.
run_cpu_step() {
    local pid=$1 label=$2 out=$3 idle=$4 t0 t1 c0 c1 f
    shift 4
    c0=$(cpu_ticks "$pid")
    t0=$(date +%s.%N)
    "$@" >/dev/null
    c1=$(cpu_ticks "$pid")
    t1=$(date +%s.%N)
    f=$(step_figures "$out" "$out.txt")
    awk -v f="$f" -v c=$((c1 - c0)) -v idle="$idle" -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN {
        split(f, x, " "); ok = x[1]; wall = x[2]
        busy = c - idle * (b - a - wall); if (busy < 0) busy = 0
        if (ok > 0) printf "%.0f %s\n", busy / hz / ok * 1e6, x[4]; else print "- fail" }'
}

# Clock ticks per second process PID burns over S seconds with no calls.
idle_rate() {
    local c0 c1
    c0=$(cpu_ticks "$1"); sleep "$2"; c1=$(cpu_ticks "$1")
    awk -v c=$((c1 - c0)) -v s="$2" 'BEGIN { printf "%.2f", c / s }'
}

median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }

# --------------------------------------------------------------- modes
mode_ivr() {
    kamailio_max
    echo "== sipacd: number $NUMBER_IVR, IVR plays a prompt and hangs up (zero talk)"
    start_daemon 1 ivr
    run_cps sipacd-ivr "$work/ivr.txt" CPS_START_UAS=0 CPS_SERVICE=$NUMBER_IVR CPS_OUT="$work/ivr-cps"
    local s
    s=$(max_cps "$work/ivr.txt")
    stop_daemon
    SUMMARY+=("$(printf '%-44s sipacd %6s cps   kamailio %6s cps   ratio %s (aim >= 1.0)' \
        "IVR answer, prompt, hang-up$(lim_tag):" "$s" "${KAM_MAX:--}" "$(ratio "$s" "${KAM_MAX:-0}")")")
}

mode_routed() {
    kamailio_max
    echo "== sipacd: number $NUMBER_QUEUE, one queue, $AGENTS registered agents, 1 s talk"
    start_daemon "$AGENTS" routed
    local uas_port a0 o0 a1 o1 placed
    uas_port=$(free_port)
    register_agents "$AGENTS" "$uas_port"
    a0=$(metric sipacd_queue_calls_answered_total 'queue="support"')
    o0=$(metric sipacd_queue_calls_offered_total 'queue="support"')
    run_cps sipacd-routed "$work/routed.txt" CPS_UAS_PORT="$uas_port" CPS_SERVICE=$NUMBER_QUEUE \
        CPS_HOLD_S=1 CPS_UAC_XML="$YARD/scenarios/uac_hold.xml" CPS_OUT="$work/routed-cps"
    sleep 1
    a1=$(metric sipacd_queue_calls_answered_total 'queue="support"')
    o1=$(metric sipacd_queue_calls_offered_total 'queue="support"')
    placed=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^ok=/) { sub("ok=", "", $i); s += $i } } END { print s + 0 }' \
        "$work/routed-cps/details.txt")
    local s ok_s agents_s
    s=$(max_cps "$work/routed.txt")
    # Over all steps, failing ones included (an overloaded step's callers
    # hang up after 1 s of music, before any agent answered).
    echo "# all steps: calls the callers completed: $placed; answered by an agent (daemon's counter): $((a1 - a0)); offers: $((o1 - o0))"
    # At the rate reported: the agents' SIPp answered every caller's call.
    read -r ok_s agents_s <<<"$(awk -v r="$s" '{ delete v; for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
        v["rate"] == r { ok = v["ok"]; a = v["uas_calls"] - v["uas_failed"] } END { print ok + 0, a + 0 }' \
        "$work/routed-cps/details.txt")"
    echo "# at $s cps: $ok_s calls completed, $agents_s answered by an agent"
    local reach="every call reached an agent"
    [ "$ok_s" -gt 0 ] && [ "$agents_s" -ge "$ok_s" ] || reach="NOT every call reached an agent ($agents_s of $ok_s at $s cps)"
    stop_daemon
    SUMMARY+=("$(printf '%-44s sipacd %6s cps   kamailio %6s cps   ratio %s (aim >= 0.5); %s' \
        "routed, 1 queue, $AGENTS agents, 1 s talk$(lim_tag):" "$s" "${KAM_MAX:--}" "$(ratio "$s" "${KAM_MAX:-0}")" "$reach")")
}

mode_cpu() {
    local n uas_port k f us figs=() line first="" last="" all idle
    local step=${STEP_S:-20}
    for n in $CPU_AGENTS; do
        echo "== sipacd CPU per routed call at $CPU_RATE cps, $n registered agents, 1 s talk, $CPU_STEPS steps of ${step} s"
        start_daemon "$n" "cpu-$n"
        uas_port=$(free_port)
        register_agents "$n" "$uas_port"
        idle=$(idle_rate "$DAEMON_PID" 5)
        echo "# idle daemon: $idle clock ticks/s (of $CLK_TCK)"
        all=""
        local perf_pid=""
        if [ -n "$PERF_DIR" ]; then
            mkdir -p "$PERF_DIR"
            perf record -e cpu-clock -F 997 -g -p "$DAEMON_PID" -o "$PERF_DIR/perf-$n.data" >/dev/null 2>&1 &
            perf_pid=$!
            PIDS+=("$perf_pid")
        fi
        for k in $(seq "$CPU_STEPS"); do
            f=$(run_cpu_step "$DAEMON_PID" "sipacd-cpu-$n" "$work/cpu-$n-$k" "$idle" \
                run_cps "sipacd-cpu-$n" "$work/cpu-$n-$k.txt" CPS_UAS_PORT="$uas_port" CPS_SERVICE=$NUMBER_QUEUE \
                CPS_HOLD_S=1 CPS_UAC_XML="$YARD/scenarios/uac_hold.xml" CPS_RATES="$CPU_RATE" CPS_REFINE=0 \
                CPS_STEP_S="$step" CPS_OUT="$work/cpu-$n-$k")
            grep '^ *rate=' "$work/cpu-$n-$k.txt" | sed 's/^ */    /' | cut -c1-230
            us=${f%% *}
            echo "# step $k: daemon CPU ${us} µs per call (${f##* }; cps.sh's whole-percent figure: $(step_us "$(step_figures "$work/cpu-$n-$k" "$work/cpu-$n-$k.txt")") µs)"
            all="$all $us"
        done
        if [ -n "$perf_pid" ]; then
            kill -INT "$perf_pid" 2>/dev/null || true
            wait "$perf_pid" 2>/dev/null || true
        fi
        stop_daemon
        us=$(echo "$all" | median)
        echo "# median CPU per routed call with $n agents: $us µs (steps:$all)"
        figs+=("$n:$us")
        [ -z "$first" ] && first=$us
        last=$us
    done
    local kam="-"
    if [ "$KAMAILIO" = 1 ]; then
        echo "== Kamailio CPU per (plain, zero-talk) call at $CPU_RATE cps, $CPU_STEPS steps of ${step} s"
        all=""
        for k in $(seq "$CPU_STEPS"); do
            kamailio_cps "$work/kam-cpu-$k.txt" CPS_RATES="$CPU_RATE" CPS_REFINE=0 CPS_STEP_S="$step" \
                CPS_OUT="$work/kam-cpu-$k" | { grep '^ *rate=' || true; }
            f=$(step_figures "$work/kam-cpu-$k" "$work/kam-cpu-$k.txt")
            all="$all $(step_us "$f")"
        done
        kam=$(echo "$all" | median)
        echo "# median Kamailio CPU per call: $kam µs (steps:$all)"
    fi
    line=""
    for f in "${figs[@]}"; do line="$line ${f%%:*} agents ${f#*:} µs,"; done
    SUMMARY+=("$(printf '%-44s%s kamailio (plain call) %s µs; %s/%s agents: %s (aim <= 1.25)' \
        "CPU per routed call at $CPU_RATE cps:" "$line" "$kam" "${figs[-1]%%:*}" "${figs[0]%%:*}" "$(ratio "$last" "$first")")")
}

for m in "${MODES[@]}"; do "mode_$m"; done
echo
echo "== summary (sipacd $("$BIN" --version 2>/dev/null | head -1), $(nproc) cores, daemon RUST_LOG=$LOG)"
printf '%s\n' "${SUMMARY[@]}"
