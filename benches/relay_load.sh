#!/usr/bin/env bash
# Bridged RTP relay efficiency: sipacd next to rtpengine (a benchmark, not a test).
#
# M calls are bridged through sipacd: SIPp callers dial a number whose IVR
# plays a short prompt and then queues them; M static-contact agents, all on
# one auto-answering SIPp UAS (benches/relay_agent.xml), take the calls.
# benches/rtp_peer.py plays the RTP of both ends of every call (50 packets
# per second per direction, PCMA, 20 ms) and counts what the relay delivers
# over a window, while the relay's CPU (utime+stime, /proc/PID/stat) is
# sampled. Then the same RTP traffic goes through rtpengine (Debian package
# rtpengine-daemon, userspace forwarding: --table=-1, no kernel module), its
# M sessions created with offer/answer over the ng control protocol.
# Prints relayed packets per second and per CPU-second for both.
#
# Usage: benches/relay_load.sh [options]
#   --bin PATH       sipacd binary (default: $SIPACD_BIN, else cargo build --release)
#   --calls M        bridged calls (default 200: 20,000 relayed packets per second)
#   --window S       measurement window in seconds (default 10)
#   --transcode      callers offer PCMU only, agents answer PCMA: sipacd transcodes
#                    (rtpengine is then not run: it would be forwarding only)
#   --sipacd-only | --rtpengine-only
#   --quick          "--calls 10 --window 2": checks that everything runs
# Environment: KEEP=1 keeps the logs.
set -euo pipefail

CALLS=200
WINDOW=10
WARMUP=3
TRANSCODE=""
RUN_SIPACD=1
RUN_RTPENGINE=1
BIN="${SIPACD_BIN:-}"
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) BIN=$2; shift ;;
    --calls) CALLS=$2; shift ;;
    --window) WINDOW=$2; shift ;;
    --transcode) TRANSCODE=1; RUN_RTPENGINE="" ;;
    --sipacd-only) RUN_RTPENGINE="" ;;
    --rtpengine-only) RUN_SIPACD="" ;;
    --quick) CALLS=10; WINDOW=2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# shellcheck source=benches/bench_lib.sh
. "$(dirname "$0")/bench_lib.sh"
command -v sipp >/dev/null || { echo "sipp not found: apt-get install sip-tester" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
RATE=100
setup_s=$(((CALLS + RATE - 1) / RATE))
WAIT_S=$((setup_s * 3 + 15))

declare -A RESULT
run_peer() { # label, extra args...
    local label=$1 out
    shift
    out="$work/peer-$label.out"
    python3 "$here/rtp_peer.py" --caller-port "$P1" --agent-port "$P2" --expect "$CALLS" \
        --wait "$WAIT_S" --warmup "$WARMUP" --window "$WINDOW" "$@" >"$out" 2>&1 || true
    sed 's/^/  /' "$out"
    RESULT[$label]=$(awk -F= '$1 == "pkts_per_cpu_s" { ppc = $2 } $1 == "relayed_pps" { pps = $2 }
        $1 == "cpu_pct_of_one_core" { cpu = $2 }
        END { if (ppc != "") printf "%s pkt/s relayed, %s%% of one core, %s pkt per CPU-s", pps, cpu, ppc;
              else print "no figure (see above)" }' "$out")
}

if [ -n "$RUN_SIPACD" ]; then
    ensure_bin
    d="$work/sipacd"
    mkdir -p "$d/data" "$d/prompts"
    write_wav "$d/prompts/hello.wav" 1600 tone # 0.2 s: tells the caller side where to send
    write_wav "$d/prompts/moh.wav" 8000 tone
    port=$(free_port)
    uas_port=$(free_port)
    P1=$(free_port) P2=$(free_port)
    {
        cat <<EOF
[server]
sip = ["udp:127.0.0.1:$port"]
advertise = "127.0.0.1"
domain = "bench.example.com"
rtp_ports = "30000-$((30000 + CALLS * 4 + 1000))"
admin = "127.0.0.1:$(free_port)"
data_dir = "$d/data"
prompts = "$d/prompts"
timezone = "UTC"
drain_s = 2
max_calls = $((CALLS + 100))
rtp_timeout_s = 3600

[queues.relay]
skills = { relay = 1 }
strategy = "round_robin"
music = "moh.wav"
wrapup_s = 0

[[numbers]]
number = "1700"
to = "ivr:relay"

[ivr.relay]
start = "hello"

[ivr.relay.nodes.hello]
type = "play"
prompt = "hello.wav"
next = "queue"

[ivr.relay.nodes.queue]
type = "queue"
queue = "relay"
EOF
        for i in $(seq "$CALLS"); do
            printf '\n[agents.%d]\nname = "Agent %d"\ncontact = "sip:%d@127.0.0.1:%d"\nskills = { relay = 5 }\n' \
                $((5000 + i)) "$i" $((5000 + i)) "$uas_port"
        done
    } >"$d/sipacd.toml"
    start_sipacd "$d/sipacd.toml" "$port"
    caller_pt=8 agent_pt=8
    [ -n "$TRANSCODE" ] && caller_pt=0
    (cd "$work" && exec timeout $((WAIT_S + WINDOW + 120)) sipp -sf "$here/relay_agent.xml" -i 127.0.0.1 \
        -p "$uas_port" -mp "$(free_port)" -key agent_rtp "$P2" -key agent_pt "$agent_pt" -aa -recv_timeout 120000 -nostdin \
        -max_recv_loops 10000 >"$work/agent.out" 2>&1) &
    PIDS+=($!)
    sleep 1
    hold_ms=$(((WAIT_S + WARMUP + WINDOW + 5) * 1000))
    (cd "$work" && exec timeout $((WAIT_S + WARMUP + WINDOW + 60)) sipp "$TARGET" -sf "$here/relay_caller.xml" \
        -s 1700 -d "$hold_ms" -i 127.0.0.1 -p "$(free_port)" -mp "$(free_port)" -key caller_rtp "$P1" \
        -key caller_pt "$caller_pt" -r "$RATE" -m "$CALLS" -l "$CALLS" -nostdin -max_recv_loops 10000 \
        -trace_stat -stf caller.csv -fd 1 >"$work/caller.out" 2>&1) &
    caller_pid=$!
    PIDS+=("$caller_pid")
    echo "sipacd (pid $DAEMON_PID): $CALLS bridged calls${TRANSCODE:+, PCMU callers and PCMA agents (transcoded)}"
    run_peer sipacd --pid "$DAEMON_PID"
    echo "  caller SIPp: $(stat_col "$work/caller.csv" "CurrentCall") calls up at the end of the window," \
        "$(stat_col "$work/caller.csv" "FailedCall(C)") failed"
    kill "$caller_pid" 2>/dev/null || true
fi

if [ -n "$RUN_RTPENGINE" ]; then
    if ! command -v rtpengine >/dev/null; then
        echo "installing rtpengine-daemon..." >&2
        sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
        $sudo apt-get update >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends rtpengine-daemon >&2
    fi
    P1=$(free_port) P2=$(free_port) ngp=$(free_port)
    rtpengine --table=-1 --interface=127.0.0.1 --listen-ng="127.0.0.1:$ngp" --port-min=40000 \
        --port-max=$((40000 + CALLS * 4 + 1000)) --foreground --log-stderr --log-level=4 \
        --pidfile="$work/rtpengine.pid" --num-threads="$NCPU" >"$work/rtpengine.log" 2>&1 &
    PIDS+=($!)
    sleep 1.5
    kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -20 "$work/rtpengine.log" >&2; exit 1; }
    echo "rtpengine $(rtpengine --version 2>&1 | awk '{print $2}') (pid ${PIDS[-1]}, userspace, $NCPU threads): $CALLS sessions"
    run_peer rtpengine --pid "${PIDS[-1]}" --ng "127.0.0.1:$ngp" --sessions "$CALLS"
fi

echo
for k in sipacd rtpengine; do
    [ -n "${RESULT[$k]:-}" ] && printf '%-10s %s\n' "$k" "${RESULT[$k]}"
done
echo "($CALLS calls, 2 x 50 pkt/s each, ${WINDOW} s window; CPU = utime+stime of the relay process)"
