#!/usr/bin/env bash
# What share of a legitimate caller's calls sipacd completes while another
# source floods it with INVITEs it never ACKs (issue figures: before the
# per-source limits, 3.7% at a 10x flood and 0.9% at 50x). A benchmark, not
# a test: it prints the figures, it asserts nothing.
#
# Usage: benches/flood.sh [--bin PATH] [--rate R] [--seconds S] [FACTOR...]
#   The legitimate caller (SIPp from 127.0.0.3) places R calls/s (20) for S
#   seconds (30) to the IVR number (a 0.2 s prompt, then sipacd hangs up);
#   the flooder (SIPp from 127.0.0.2) sends FACTOR times R INVITEs/s with an
#   SDP offer, from 2 s before the first call to the last (FACTORs: 0 10 50).
#   A fresh daemon per factor, with the default limits (pike_*, per-source
#   setup cap). The legitimate calls stand for a carrier trunk (all from
#   one address at 20 calls/s, over the default pike limit for one phone),
#   so 127.0.0.3 is in allow_networks, as docs/sip-behaviour.md tells
#   operators to do for a trunk; the flooder's 127.0.0.2 is not.
# Runs itself again inside a network namespace of its own (loopback only;
# needs root and `ip`), so nothing leaves the machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${SIPACD_FLOOD_NETNS:-}" ]; then
    ns="sipacd-flood-$$"
    ip netns add "$ns"
    trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
    ip netns exec "$ns" ip link set lo up
    SIPACD_FLOOD_NETNS=$ns ip netns exec "$ns" "$0" "$@"
    exit
fi

BIN="${SIPACD_BIN:-}"
RATE=20
SECONDS_OF_CALLS=30
FACTORS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --seconds) SECONDS_OF_CALLS=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) FACTORS+=("$1"); shift ;;
    esac
done
[ ${#FACTORS[@]} -gt 0 ] || FACTORS=(0 10 50)
# shellcheck source=benches/bench_lib.sh
. "$here/bench_lib.sh"
ensure_bin
DOMAIN=bench.local
SERVER_KEYS='allow_networks = ["127.0.0.1", "127.0.0.3"]'
CALLS=$((RATE * SECONDS_OF_CALLS))
SCEN="$repo/tests/sipp/call_daemon_hangs_up.xml"

echo "# sipacd $("$BIN" --version 2>/dev/null || echo '?'), legitimate caller $RATE calls/s x ${SECONDS_OF_CALLS} s = $CALLS calls"
for f in "${FACTORS[@]}"; do
    SIP_PORT=$(free_port)
    ADMIN_PORT=$(free_port)
    d="$work/x$f"
    write_config "$d" 1
    start_sipacd "$d/sipacd.toml" "$SIP_PORT"
    flood_pid=""
    if [ "$f" -gt 0 ]; then
        (cd "$d" && timeout $((SECONDS_OF_CALLS + 20)) sipp "$TARGET" -sf "$here/flood_invite.xml" \
            -s 1600 -i 127.0.0.2 -p 5090 -r $((RATE * f)) -l 1000000 \
            -m $((RATE * f * (SECONDS_OF_CALLS + 4))) -nostdin -trace_stat -stf flood_stat.csv \
            -fd 1 >flood.out 2>&1) &
        flood_pid=$!
        PIDS+=("$flood_pid")
        sleep 2
    fi
    (cd "$d" && timeout $((SECONDS_OF_CALLS + 60)) sipp "$TARGET" -sf "$SCEN" -s 1600 \
        -i 127.0.0.3 -p 5070 -r "$RATE" -m "$CALLS" -l 1000 -recv_timeout 10000 \
        -timeout $((SECONDS_OF_CALLS + 50))s -nostdin -trace_stat -stf stat.csv -fd 1 \
        >caller.out 2>&1) || true
    [ -n "$flood_pid" ] && { kill "$flood_pid" 2>/dev/null || true; wait "$flood_pid" 2>/dev/null || true; }
    ok=$(stat_col "$d/stat.csv" "SuccessfulCall(C)")
    sent=$(stat_col "$d/flood_stat.csv" "SuccessfulCall(C)")
    blocked=$(metric sipacd_sip_flood_blocks_total)
    rss=$(awk '/VmHWM/ { print $2 }' "/proc/$DAEMON_PID/status" 2>/dev/null || echo 0)
    awk -v f="$f" -v ok="$ok" -v n="$CALLS" -v s="$sent" -v b="$blocked" -v r="$rss" 'BEGIN {
        printf "flood %3dx: legitimate calls completed %d of %d (%.1f%%); flood INVITEs sent %d; blocks %d; daemon peak RSS %.0f MB\n",
            f, ok, n, 100 * ok / n, s, b, r / 1024 }'
    kill "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
done
