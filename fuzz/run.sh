#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each, on the stable
# toolchain (libFuzzer without sanitizers: `--sanitizer none`; Rust's own
# checks, overflow included, still abort on a bug). Seeds: fuzz/seeds/ and
# the RFC 4475 torture messages in ../shared/testdata/rfc4475 (read from
# there, never copied in). The corpus grows in fuzz/corpus/ between runs;
# a crash leaves its input in fuzz/artifacts/TARGET/ and fails the run.
#
#   fuzz/run.sh                 # 30 s per target
#   fuzz/run.sh 600 engine      # one target, 10 minutes
#
# Needs cargo-fuzz: `cargo install cargo-fuzz --locked`.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sip_message sdp rtp_rtcp_dtmf tcp_framing digest config engine)
torture="../../shared/testdata/rfc4475"

cargo fuzz --version >/dev/null 2>&1 || { echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2; exit 1; }
echo "== building fuzz targets"
cargo fuzz build --sanitizer none

seed() { # TARGET: fills corpus/TARGET from the seeds (never overwrites)
    local t="$1" dir="corpus/$1"
    mkdir -p "$dir"
    cp -n seeds/"$t"/* "$dir"/ 2>/dev/null || true
    [ -d "$torture" ] || return 0
    for f in "$torture"/*.dat; do
        local name
        name="rfc4475-$(basename "$f" .dat)"
        case "$t" in
            sip_message) cp -n "$f" "$dir/$name" ;;
            tcp_framing) { printf '\x07'; cat "$f"; } > "$dir/$name" ;;
            engine) { printf '\x40'; cat "$f"; } > "$dir/$name" ;;
        esac
    done
}

failed=()
for t in "${targets[@]}"; do
    seed "$t"
    echo "== $t: ${secs}s"
    if ! cargo fuzz run --sanitizer none "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -max_len=16384 -timeout=10 \
        -print_final_stats=1 2> "corpus/$t.log"; then
        failed+=("$t")
        tail -40 "corpus/$t.log"
    else
        grep -E "stat::number_of_executed_units|cov:" "corpus/$t.log" | tail -2 || true
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs}s each, no finding"
