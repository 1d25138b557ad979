# Shared pieces of the media load scripts (moh_load.sh, relay_load.sh):
# sourced, not run. Everything on 127.0.0.1.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
OPTIONS_SCEN="$repo/tests/sipp/options_udp.xml"
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

work=$(mktemp -d -t sipacd-bench-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    # sipacd drains its calls for up to drain_s (2 s) on SIGTERM.
    for _ in $(seq 30); do
        local alive=""
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# A UDP port on 127.0.0.1 that nobody listens on, outside the RTP ranges used.
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 10000))
        if ! command -v ss >/dev/null || [ -z "$(ss -Hlnu "sport = :$p" 2>/dev/null)" ]; then
            echo "$p"
            return
        fi
    done
    echo "no free port" >&2
    exit 1
}

# Waits (bounded) until HOST:PORT answers OPTIONS; gives up if PID died.
wait_options() {
    local target=$1 pid=${2:-}
    for _ in $(seq 30); do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            echo "process $pid died" >&2
            return 1
        fi
        if (cd "$work" && sipp "$target" -sf "$OPTIONS_SCEN" -s ping -i 127.0.0.1 -p "$(free_port)" \
            -m 1 -timeout 1s -timeout_error -nostdin >/dev/null 2>&1); then
            return 0
        fi
        sleep 0.5
    done
    echo "$target does not answer OPTIONS" >&2
    return 1
}

# 8 kHz mono 16-bit PCM WAV: $1 path, $2 samples, $3 "tone" for a square
# wave (music is not silence: nothing in the path may skip it), else zeros.
write_wav() {
    local path=$1 n=$2 kind=${3:-silence}
    python3 - "$path" "$n" "$kind" <<'EOF'
import struct, sys
path, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "tone":
    data = b"".join(struct.pack("<h", 8000 if (i // 10) % 2 else -8000) for i in range(n))
else:
    data = b"\0\0" * n
hdr = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
    "<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", len(data))
open(path, "wb").write(hdr + data)
EOF
}

# sipacd binary: --bin / $SIPACD_BIN, else a release build.
ensure_bin() {
    if [ -z "${BIN:-}" ]; then
        echo "building sipacd (release)..." >&2
        (cd "$repo" && cargo build --release --bin sipacd >&2)
        BIN="${CARGO_TARGET_DIR:-$repo/target}/release/sipacd"
    fi
}

# Starts sipacd on config $1 (the [server] sip port is $2); sets DAEMON_PID, TARGET.
start_sipacd() {
    local cfg=$1 port=$2
    "$BIN" check --config "$cfg" >&2 || exit 1
    RUST_LOG=warn "$BIN" --config "$cfg" 2>"$work/sipacd.log" &
    DAEMON_PID=$!
    PIDS+=("$DAEMON_PID")
    TARGET="127.0.0.1:$port"
    wait_options "$TARGET" "$DAEMON_PID" || { tail -20 "$work/sipacd.log" >&2; exit 1; }
}

# utime+stime of PID in clock ticks (all its threads).
cpu_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# Host-wide UDP datagrams sent (a sanity check on packet rates; other
# processes on the machine add to it).
udp_out() {
    awk '/^Udp:/ { if (h) { print $5; exit } h = 1 }' /proc/net/snmp
}

# Last value of column NAME in a SIPp -trace_stat file.
stat_col() {
    local file=$1 name=$2
    [ -s "$file" ] || { echo 0; return; }
    awk -F';' -v n="$name" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i }
                            END { print (c ? $c : 0) + 0 }' "$file"
}

# write_config DIR AGENTS: the benches' contact center: a queue `support`
# (number 1500) served by AGENTS agents with passwords (a0001...), and the
# IVR `hello` (number 1600) that plays a 0.2 s prompt and hangs up. Ports:
# SIP_PORT, ADMIN_PORT; domain DOMAIN; SERVER_KEYS, if set, are more
# [server] lines.
write_config() {
    local d=$1 n=$2 i extra=${SERVER_KEYS:-}
    mkdir -p "$d/data" "$d/prompts"
    write_wav "$d/prompts/hello.wav" 1600
    cat >"$d/sipacd.toml" <<EOF
[server]
sip = ["udp:127.0.0.1:$SIP_PORT"]
advertise = "127.0.0.1"
domain = "$DOMAIN"
rtp_ports = "40000-59999"
admin = "127.0.0.1:$ADMIN_PORT"
data_dir = "$d/data"
prompts = "$d/prompts"
timezone = "UTC"
drain_s = 2
max_calls = 100000
# Every call leaves two server transactions (its INVITE, the caller's BYE)
# alive for 64*T1 = 32 s, so the default bound (100000) holds a sustained
# rate of short calls to ~1,500/s and answers 503 above it. The peer gets
# 2 GB of shared memory from ../shared/bench/peer-kamailio.sh; sipacd gets
# a bound that fits the same memory (~700 B a transaction).
max_transactions = 1000000
$extra

[queues.support]
skills = { support = 1 }
strategy = "longest_idle"
wrapup_s = 0
ring_timeout_s = 15

[[numbers]]
number = "${NUMBER_QUEUE:-1500}"
to = "queue:support"

[[numbers]]
number = "${NUMBER_IVR:-1600}"
to = "ivr:hello"

[ivr.hello]
start = "prompt"

[ivr.hello.nodes.prompt]
type = "play"
prompt = "hello.wav"
next = "bye"

[ivr.hello.nodes.bye]
type = "hangup"
EOF
    echo SEQUENTIAL >"$d/agents.csv"
    for i in $(seq "$n"); do
        printf '\n[agents.a%04d]\npassword = "pw%d"\nskills = { support = 5 }\n' "$i" "$i" >>"$d/sipacd.toml"
        printf 'a%04d;[authentication username=a%04d password=pw%d]\n' "$i" "$i" "$i" >>"$d/agents.csv"
    done
}

# Sum of a metric's samples whose labels contain $2 (e.g. 'queue="support"').
metric() {
    curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk -v m="$1" -v l="${2:-}" 'index($1, m) == 1 && (l == "" || index($1, l)) { s += $2 } END { print s + 0 }'
}
