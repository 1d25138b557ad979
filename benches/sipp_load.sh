#!/usr/bin/env bash
# SIPp load stepping for sipacd (a benchmark, not a test).
#
# Steps the rate of INVITE/100/200/ACK/(pause)/BYE/200 calls (benches/load_call.xml)
# and prints the highest rate at which under 0.1% of the calls fail, with the
# median call setup time (INVITE sent -> 200 received, SIPp's 1 ms resolution),
# and (when it starts sipacd itself) call records written per second next to
# calls completed per second, and the record writer's backlog at the end.
# With --compare it measures Kamailio (Debian package; installed with apt if
# missing) as a stateful proxy (tm, t_relay) in front of a SIPp answerer
# (`sipp -sn uas`) the same way, and prints both figures side by side.
#
# Usage: benches/sipp_load.sh [options]
#   --compare            sipacd and Kamailio, side by side
#   --agents N           routing run: every call is routed by the ACD to one of N
#                        auto-answering agents (static contacts, all on one SIPp UAS,
#                        benches/relay_agent.xml); a step is clean only if under
#                        0.1% of calls fail AND the agents answered all but 0.1%
#   --route              --agents 200
#   --kamailio           Kamailio only
#   --target HOST:PORT   an already running sipacd (loopback only) instead of
#                        starting one from a temporary config
#   --bin PATH           sipacd binary (default: $SIPACD_BIN, else cargo build --release)
#   --number N           number dialed at sipacd (default 1500: answered, the caller hangs up)
#   --rates "R1 R2 ..."  calls per second to step through (default "50 100 200 400 800 1600 3200")
#   --step-seconds S     seconds of calls per step (default 10; calls per step = rate * S)
#   --hold-ms MS         pause between ACK and BYE (default 200)
#   --quick              "--rates '20 40' --step-seconds 2": checks that everything runs
# Environment: KEEP=1 keeps the logs (temporary directory named at exit).
# Everything runs on 127.0.0.1; every SIPp step is bounded in calls and time.
set -euo pipefail

RATES="50 100 200 400 800 1600 3200"
STEP_S=10
HOLD_MS=200
NUMBER=1500
MODE=sipacd
TARGET=""
BIN="${SIPACD_BIN:-}"
MAX_CALLS_PER_STEP=100000
AGENTS=0

while [ $# -gt 0 ]; do
    case "$1" in
    --compare) MODE=both ;;
    --kamailio) MODE=kamailio ;;
    --agents) AGENTS=$2; shift ;;
    --route) AGENTS=200 ;;
    --target) TARGET=$2; shift ;;
    --bin) BIN=$2; shift ;;
    --number) NUMBER=$2; shift ;;
    --rates) RATES=$2; shift ;;
    --step-seconds) STEP_S=$2; shift ;;
    --hold-ms) HOLD_MS=$2; shift ;;
    --quick) RATES="20 40"; STEP_S=2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
SCEN="$here/load_call.xml"
OPTIONS_SCEN="$repo/tests/sipp/options_udp.xml"
command -v sipp >/dev/null || { echo "sipp not found: apt-get install sip-tester" >&2; exit 1; }
if [ "$AGENTS" -gt 0 ]; then
    [ "$MODE" = sipacd ] || { echo "--agents is for sipacd alone" >&2; exit 2; }
    [ -z "$TARGET" ] || { echo "--agents starts its own sipacd (no --target)" >&2; exit 2; }
    ulimit -n "$(ulimit -Hn)"
fi

# Temp dir, process cleanup, free_port and wait_options are shared with the
# media load scripts.
# shellcheck source=benches/bench_lib.sh
. "$here/bench_lib.sh"

require_loopback() {
    case "$1" in
    127.*:* | localhost:* | \[::1\]:*) ;;
    *) echo "target $1 is not a loopback address: refused" >&2; exit 2 ;;
    esac
}

# 8 kHz mono 16-bit PCM, half a second of silence.
write_wav() {
    {
        printf 'RIFF\x64\x1f\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00'
        printf '\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x40\x1f\x00\x00'
        head -c 8000 /dev/zero
    } >"$1"
}

start_sipacd() {
    if [ -z "$BIN" ]; then
        echo "building sipacd (release)..." >&2
        (cd "$repo" && cargo build --release --bin sipacd >&2)
        BIN="${CARGO_TARGET_DIR:-$repo/target}/release/sipacd"
    fi
    local d="$work/sipacd" port admin
    port=$(free_port)
    admin=$(free_port)
    mkdir -p "$d/data" "$d/prompts"
    write_wav "$d/prompts/moh.wav"
    cat >"$d/sipacd.toml" <<EOF
[server]
sip = ["udp:127.0.0.1:$port"]
advertise = "127.0.0.1"
domain = "support.example.com"
rtp_ports = "40000-49999"
admin = "127.0.0.1:$admin"
data_dir = "$d/data"
prompts = "$d/prompts"
timezone = "UTC"
drain_s = 2
max_calls = 100000

[agents.1001]
name = "Load"
password = "load-test"
skills = { support = 5 }

[queues.support]
skills = { support = 1 }
strategy = "longest_idle"
music = "moh.wav"
wrapup_s = 0

[[numbers]]
number = "1500"
to = "queue:support"
EOF
    if [ "$AGENTS" -gt 0 ]; then
        UAS_PORT=$(free_port)
        for i in $(seq "$AGENTS"); do
            printf '\n[agents.%d]\nname = "Agent %d"\ncontact = "sip:%d@127.0.0.1:%d"\nskills = { support = 5 }\n' \
                $((5000 + i)) "$i" $((5000 + i)) "$UAS_PORT" >>"$d/sipacd.toml"
        done
        # The agents' phone: answers every offer, and OPTIONS pings (-aa).
        local mp
        mp=$(free_port)
        (cd "$d" && exec sipp -sf "$here/relay_agent.xml" -i 127.0.0.1 -p "$UAS_PORT" -mp "$mp" \
            -key agent_rtp "$mp" -key agent_pt 0 -aa -recv_timeout 120000 -nostdin -max_recv_loops 10000 \
            -trace_stat -stf "$work/agents.csv" -fd 1 >"$d/agents.out" 2>&1) &
        PIDS+=($!)
    fi
    ADMIN="127.0.0.1:$admin"
    RUST_LOG=warn "$BIN" --config "$d/sipacd.toml" 2>"$work/sipacd.log" &
    PIDS+=($!)
    TARGET="127.0.0.1:$port"
    wait_options "$TARGET" "$!" || { tail -20 "$work/sipacd.log" >&2; exit 1; }
}

start_kamailio() {
    if ! command -v kamailio >/dev/null; then
        echo "installing kamailio..." >&2
        local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
        $sudo apt-get update >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends kamailio >&2
    fi
    local d="$work/kamailio" kport uport mpath
    mkdir -p "$d"
    kport=$(free_port)
    uport=$(free_port)
    mpath=$(dirname "$(find /usr/lib /usr/local/lib -name tm.so -path '*kamailio*' 2>/dev/null | head -1)")
    cat >"$d/kamailio.cfg" <<EOF
#!KAMAILIO
debug=1
log_stderror=yes
children=4
listen=udp:127.0.0.1:$kport
mpath="$mpath/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"

request_route {
    if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
    if (is_method("OPTIONS") && \$rU == "ping") { sl_send_reply("200", "OK"); exit; }
    if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
    if (has_totag()) {
        # sipp -sn uas does not echo Record-Route: in-dialog requests then come
        # without Route, straight to the answerer's Contact.
        if (loose_route() || uri != myself) { t_relay(); exit; }
        if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
        sl_send_reply("404", "Not here");
        exit;
    }
    t_check_trans();
    record_route();
    \$du = "sip:127.0.0.1:$uport";
    if (!t_relay()) { sl_reply_error(); }
    exit;
}
EOF
    (cd "$d" && exec sipp -sn uas -i 127.0.0.1 -p "$uport" -nostdin >"$d/uas.out" 2>&1) &
    PIDS+=($!)
    kamailio -f "$d/kamailio.cfg" -DD -E -m 256 -M 16 -w "$d" -P "$d/kamailio.pid" >"$d/kamailio.out" 2>"$d/kamailio.log" &
    PIDS+=($!)
    TARGET="127.0.0.1:$kport"
    wait_options "$TARGET" "$!" || { tail -20 "$d/kamailio.log" >&2; exit 1; }
    KAMAILIO_VERSION=$(kamailio -v 2>/dev/null | head -1 | awk '{print $3}')
}

# A sample of sipacd's /metrics (started here: ADMIN is set), or "".
metric() {
    [ -n "${ADMIN:-}" ] && [ "$1" = sipacd ] || return 0
    { curl -sf "http://$ADMIN/metrics" 2>/dev/null || true; } | awk -v m="$2" '$1 == m { print $2 + 0 }'
}

# One step: RATE cps for STEP_S seconds against TARGET. Sets FAIL_PCT and MEDIAN_MS,
# and RECORDS (call-record writes per second next to completed calls per second).
step() {
    local label=$1 target=$2 rate=$3 calls dir stat succ med t0 t1 w0 w1
    calls=$((rate * STEP_S))
    [ "$calls" -gt "$MAX_CALLS_PER_STEP" ] && calls=$MAX_CALLS_PER_STEP
    dir="$work/$label-$rate"
    mkdir -p "$dir"
    w0=$(metric "$label" sipacd_cdr_records_written_total)
    t0=$(date +%s.%N)
    (cd "$dir" && timeout $((STEP_S * 3 + 60)) sipp "$target" -sf "$SCEN" -s "$NUMBER" -d "$HOLD_MS" \
        -i 127.0.0.1 -p "$(free_port)" -r "$rate" -m "$calls" -l $((rate * 2 + 50)) \
        -timeout $((STEP_S * 2 + 30))s -nostdin -max_recv_loops 10000 \
        -trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 1 >sipp.out 2>&1) || true
    t1=$(date +%s.%N)
    w1=$(metric "$label" sipacd_cdr_records_written_total)
    stat="$dir/stat.csv"
    local routed="" a0=${AGENTS_DONE:-0}
    if [ "$AGENTS" -gt 0 ]; then
        sleep 2 # the agents' stat file is written every second
        AGENTS_DONE=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "SuccessfulCall(C)") c = i }
                                 END { print $c + 0 }' "$work/agents.csv" 2>/dev/null || echo 0)
        routed=$((AGENTS_DONE - a0))
    fi
    succ=0
    if [ -s "$stat" ]; then
        succ=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "SuccessfulCall(C)") c = i }
                          END { print $c + 0 }' "$stat")
    fi
    # Calls not completed (timed out, never sent) count as failed.
    FAIL_PCT=$(awk -v n="$calls" -v s="$succ" 'BEGIN { printf "%.3f", (n - s) * 100 / n }')
    if [ -n "$routed" ]; then
        # A call no agent answered was not routed: it counts as failed too.
        FAIL_PCT=$(awk -v n="$calls" -v s="$succ" -v r="$routed" \
            'BEGIN { m = (s < r ? s : r); printf "%.3f", (n - m) * 100 / n }')
    fi
    med=$({ cat "$dir"/*_rtt.csv 2>/dev/null || true; } | awk -F';' '$3 == "setup" { print $2 }' | sort -n |
        awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "?" }')
    MEDIAN_MS=$med
    RECORDS=""
    if [ -n "$w0" ] && [ -n "$w1" ]; then
        RECORDS=$(awk -v a="$w0" -v b="$w1" -v s="$succ" -v t0="$t0" -v t1="$t1" \
            'BEGIN { d = t1 - t0; printf "%.0f records/s written for %.0f calls/s completed", (b - a) / d, s / d }')
    fi
    printf '  %-10s %6d cps: %7d calls, %7d ok,%s %7s%% failed, median setup %s ms%s\n' \
        "$label" "$rate" "$calls" "$succ" "${routed:+ $routed answered by agents,}" "$FAIL_PCT" "$MEDIAN_MS" \
        "${RECORDS:+; $RECORDS}"
}

# Steps through RATES until a step fails; sets BEST_RATE, BEST_MEDIAN, BEST_RECORDS.
series() {
    local label=$1 target=$2 r
    BEST_RATE=0
    BEST_MEDIAN="-"
    BEST_RECORDS=""
    echo "$label at $target (hold ${HOLD_MS} ms, ${STEP_S} s per step):"
    for r in $RATES; do
        step "$label" "$target" "$r"
        if awk -v p="$FAIL_PCT" 'BEGIN { exit !(p < 0.1) }'; then
            BEST_RATE=$r
            BEST_MEDIAN=$MEDIAN_MS
            BEST_RECORDS=$RECORDS
        else
            break
        fi
    done
}

declare -A RATE MEDIAN
if [ "$MODE" != kamailio ]; then
    if [ -n "$TARGET" ]; then require_loopback "$TARGET"; wait_options "$TARGET"; else start_sipacd; fi
    series sipacd "$TARGET"
    RATE[sipacd]=$BEST_RATE MEDIAN[sipacd]=$BEST_MEDIAN
    CDR_AT_BEST=$BEST_RECORDS
    sleep 2 # the last calls' records
    CDR_BACKLOG=$(metric sipacd sipacd_cdr_backlog)
fi
if [ "$MODE" != sipacd ]; then
    start_kamailio
    series kamailio "$TARGET"
    RATE[kamailio]=$BEST_RATE MEDIAN[kamailio]=$BEST_MEDIAN
fi

echo
printf '%-40s %-28s %s\n' "target" "max rate with <0.1% failed" "median setup"
[ -n "${RATE[sipacd]:-}" ] &&
    printf '%-40s %-28s %s\n' "sipacd$([ "$AGENTS" -gt 0 ] && echo " routed to $AGENTS agents")" "${RATE[sipacd]} cps" "${MEDIAN[sipacd]} ms"
[ -n "${RATE[kamailio]:-}" ] &&
    printf '%-40s %-28s %s\n' "kamailio ${KAMAILIO_VERSION:-} (tm, t_relay) + sipp uas" \
        "${RATE[kamailio]} cps" "${MEDIAN[kamailio]} ms"
[ -n "${CDR_AT_BEST:-}" ] && echo "call records at the highest clean rate: $CDR_AT_BEST"
[ -n "${CDR_BACKLOG:-}" ] && echo "call-record writer backlog at the end: $CDR_BACKLOG records"
echo "(rates stepped: $RATES; 0 cps = the first step already failed; median in whole ms, 0 = under 1 ms)"
