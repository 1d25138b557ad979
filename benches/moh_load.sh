#!/usr/bin/env bash
# Music-on-hold load for sipacd (a benchmark, not a test).
#
# N SIPp callers dial a queue with `music = "moh.wav"` that no agent can
# serve (it needs a skill nobody has), so every caller stays queued hearing
# paced music (50 RTP packets per second each; SIPp's media port just
# receives them). For each N of the steps: the N calls are set up, and once
# all are up the daemon's CPU (utime+stime from /proc/PID/stat) is sampled
# over a window; CPU % is of all cores (100% = every core busy). A step
# passes if the CPU stays under the limit AND the music really goes out:
# the host's UDP datagrams sent (/proc/net/snmp, every process counts, so
# it can only overstate) reach 95% of 50 x N per second. Prints each step
# and the largest N that passes, with the CPU cost per caller.
#
# Usage: benches/moh_load.sh [options]
#   --bin PATH          sipacd binary (default: $SIPACD_BIN, else cargo build --release)
#   --steps "N1 N2 ..." callers on hold per step (default "250 500 1000 2000 3000")
#   --rate R            call setup rate, calls per second (default 200)
#   --window S          measurement window in seconds (default 10)
#   --limit PCT         CPU limit, % of all cores (default 80)
#   --quick             "--steps '20 40' --window 2": checks that everything runs
# Environment: KEEP=1 keeps the logs.
set -euo pipefail

STEPS="250 500 1000 2000 3000"
RATE=200
WINDOW=10
LIMIT=80
BIN="${SIPACD_BIN:-}"
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) BIN=$2; shift ;;
    --steps) STEPS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --window) WINDOW=$2; shift ;;
    --limit) LIMIT=$2; shift ;;
    --quick) STEPS="20 40"; WINDOW=2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# shellcheck source=benches/bench_lib.sh
. "$(dirname "$0")/bench_lib.sh"
command -v sipp >/dev/null || { echo "sipp not found: apt-get install sip-tester" >&2; exit 1; }

max_n=0
for n in $STEPS; do [ "$n" -gt "$max_n" ] && max_n=$n; done
# One socket per leg and per SIPp call, plus slack.
ulimit -n "$(ulimit -Hn)"
need=$((max_n * 2 + 1000))
[ "$(ulimit -n)" -lt "$need" ] && echo "warning: fd limit $(ulimit -n) < $need" >&2

ensure_bin
d="$work/sipacd"
mkdir -p "$d/data" "$d/prompts"
write_wav "$d/prompts/moh.wav" 80000 tone # 10 s of music, looped
port=$(free_port)
cat >"$d/sipacd.toml" <<EOF
[server]
sip = ["udp:127.0.0.1:$port"]
advertise = "127.0.0.1"
domain = "bench.example.com"
rtp_ports = "30000-$((30000 + max_n * 2 + 2000))"
admin = "127.0.0.1:$(free_port)"
data_dir = "$d/data"
prompts = "$d/prompts"
timezone = "UTC"
drain_s = 2
max_calls = $((max_n + 1000))
rtp_timeout_s = 3600

[agents.1001]
name = "Nobody fits"
password = "bench-1001"
skills = { sales = 5 }

[queues.hold]
skills = { unobtainium = 1 }
strategy = "longest_idle"
music = "moh.wav"

[[numbers]]
number = "1600"
to = "queue:hold"
EOF
start_sipacd "$d/sipacd.toml" "$port"
echo "sipacd pid $DAEMON_PID, $NCPU cores, window ${WINDOW} s, limit ${LIMIT}% of all cores"

best=0
best_cpu=""
for n in $STEPS; do
    dir="$work/moh-$n"
    mkdir -p "$dir"
    setup_s=$(((n + RATE - 1) / RATE))
    hold_ms=$(((setup_s + 5 + WINDOW + 3) * 1000))
    (cd "$dir" && exec timeout $((setup_s * 3 + WINDOW + 90)) sipp "$TARGET" -sf "$here/load_call.xml" -s 1600 \
        -d "$hold_ms" -i 127.0.0.1 -p "$(free_port)" -mp "$(free_port)" -r "$RATE" -m "$n" -l "$n" \
        -timeout $((setup_s * 3 + WINDOW + 60))s -nostdin -max_recv_loops 10000 \
        -trace_stat -stf stat.csv -fd 1 >sipp.out 2>&1) &
    sipp_pid=$!
    # Wait (bounded) for all N calls to be up.
    up=0
    for _ in $(seq $((setup_s * 10 + 100))); do
        sleep 0.2
        up=$(stat_col "$dir/stat.csv" "CurrentCall")
        [ "$up" -ge "$n" ] && break
    done
    sleep 1 # the last callers reach the queue and their music starts
    t0=$(date +%s.%N) c0=$(cpu_ticks "$DAEMON_PID") o0=$(udp_out)
    sleep "$WINDOW"
    t1=$(date +%s.%N) c1=$(cpu_ticks "$DAEMON_PID") o1=$(udp_out)
    still=$(stat_col "$dir/stat.csv" "CurrentCall")
    wait "$sipp_pid" || true
    failed=$(stat_col "$dir/stat.csv" "FailedCall(C)")
    ok=$(stat_col "$dir/stat.csv" "SuccessfulCall(C)")
    read -r cpu per_caller pps <<<"$(awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" \
        -v cores="$NCPU" -v n="$n" -v o0="$o0" -v o1="$o1" 'BEGIN {
            s = (c1 - c0) / hz; w = t1 - t0
            printf "%.1f %.3f %.0f", 100 * s / w / cores, 100 * s / w / n, (o1 - o0) / w }')"
    printf '  %5d callers (%d up at start, %d at end): daemon CPU %5.1f%% of %d cores, %s%% of one core per caller, host UDP out %s pkt/s; calls ok %d failed %d\n' \
        "$n" "$up" "$still" "$cpu" "$NCPU" "$per_caller" "$pps" "$ok" "$failed"
    if [ "$up" -lt "$n" ] || [ "$still" -lt "$n" ]; then
        echo "  not all $n calls stayed up: stopping" >&2
        break
    fi
    if ! awk -v p="$pps" -v n="$n" 'BEGIN { exit !(p >= 0.95 * 50 * n) }'; then
        echo "  music falls behind: $pps pkt/s sent for $((50 * n)) due: stopping"
        break
    fi
    if awk -v c="$cpu" -v l="$LIMIT" 'BEGIN { exit !(c < l) }'; then
        best=$n best_cpu="$cpu% of $NCPU cores, $per_caller% of one core per caller"
    else
        break
    fi
    kill -0 "$DAEMON_PID" 2>/dev/null || { echo "sipacd died" >&2; tail -20 "$work/sipacd.log" >&2; exit 1; }
    sleep 2
done

echo
echo "largest N on hold under ${LIMIT}% of $NCPU cores with music on time: $best${best_cpu:+ ($best_cpu)}"
echo "(steps: $STEPS; music 50 pkt/s per caller, 0 = the first step already failed)"
