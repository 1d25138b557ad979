#!/usr/bin/env bash
# The Debian package, end to end, as root on a Debian machine: build it with
# cargo-deb, install it with dpkg -i, check its files, owners and modes and
# the sipacd user, run `sipacd check` as that user, verify the installed
# unit, start the installed daemon as that user on loopback test ports
# (tests/package_installed.rs), then remove and purge and check what stays
# and what goes. systemd is not PID 1 in CI: nothing here uses systemctl.
#
# Usage: tests/package/check.sh [PATH.deb]   (without one, builds it)
# Prints one line per check and ends with `package: N passed, M failed`.
set -uo pipefail
cd "$(dirname "$0")/../.."

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $*"; }
# check NAME CMD...: one check, passed when CMD succeeds.
check() {
    local name="$1"
    shift
    if out=$("$@" 2>&1); then ok "$name"; else bad "$name"; echo "$out" | sed 's/^/     /'; fi
}
finish() {
    echo "package: $PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    exit $?
}
# stat_is PATH OWNER:GROUP MODE
stat_is() {
    local got
    got=$(stat -c '%U:%G %a' "$1") || return 1
    [ "$got" = "$2 $3" ] || { echo "$1: $got, want $2 $3"; return 1; }
}

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/package/check.sh must run as root (dpkg -i, user switch)" >&2
    bad "running as root"
    finish
fi

# A leftover from an earlier, interrupted run.
dpkg --purge sipacd >/dev/null 2>&1 || true

DEB="${1:-}"
if [ -z "$DEB" ]; then
    echo "== cargo deb --profile deb"
    rm -f target/debian/sipacd_*.deb
    if cargo deb --profile deb --locked; then
        DEB=$(ls target/debian/sipacd_*.deb 2>/dev/null | head -1)
    fi
fi
if [ -n "$DEB" ] && [ -f "$DEB" ]; then ok "package built: $DEB"; else bad "package built"; finish; fi

echo "== dpkg -i"
check "dpkg -i installs it" dpkg -i "$DEB"
check "dpkg says installed" sh -c "dpkg-query -W -f='\${Status}' sipacd | grep -qx 'install ok installed'"
check "conffile /etc/sipacd/sipacd.toml" sh -c "dpkg-query -W -f='\${Conffiles}' sipacd | grep -q ' /etc/sipacd/sipacd.toml '"

echo "== files, owners, modes"
check "sipacd system user and group" sh -c '
    u=$(getent passwd sipacd) && getent group sipacd >/dev/null || exit 1
    uid=$(echo "$u" | cut -d: -f3); shell=$(echo "$u" | cut -d: -f7)
    [ "$uid" -lt 1000 ] && [ "$shell" = /usr/sbin/nologin ] || { echo "$u"; exit 1; }'
check "/usr/bin/sipacd root:root 755" stat_is /usr/bin/sipacd root:root 755
check "/etc/sipacd root:sipacd 750" stat_is /etc/sipacd root:sipacd 750
check "/etc/sipacd/sipacd.toml root:sipacd 640" stat_is /etc/sipacd/sipacd.toml root:sipacd 640
check "/var/lib/sipacd sipacd:sipacd 750" stat_is /var/lib/sipacd sipacd:sipacd 750
check "unit /lib/systemd/system/sipacd.service 644" stat_is /lib/systemd/system/sipacd.service root:root 644
check "every prompt installed, 644" sh -c '
    for f in prompts/*.wav; do
        g=/usr/share/sipacd/prompts/$(basename "$f")
        cmp -s "$f" "$g" && [ "$(stat -c %a "$g")" = 644 ] || { echo "$g"; exit 1; }
    done'
check "config is the packaged demo (data_dir, prompts)" sh -c '
    grep -qx "data_dir = \"/var/lib/sipacd\"" /etc/sipacd/sipacd.toml &&
    grep -qx "prompts = \"/usr/share/sipacd/prompts\"" /etc/sipacd/sipacd.toml'
check "config unreadable to other users" sh -c '! setpriv --reuid nobody --regid nogroup --clear-groups cat /etc/sipacd/sipacd.toml'

echo "== as the service user"
check "sipacd check --config /etc/sipacd/sipacd.toml as sipacd" sh -c '
    out=$(runuser -u sipacd -- /usr/bin/sipacd check --config /etc/sipacd/sipacd.toml) &&
    [ "$out" = ok ] || { echo "$out"; exit 1; }'
check "systemd-analyze verify on the installed unit" systemd-analyze verify /lib/systemd/system/sipacd.service
check "the unit runs /usr/bin/sipacd as sipacd" sh -c '
    u=/lib/systemd/system/sipacd.service
    grep -qx "User=sipacd" $u && grep -qx "ExecStart=/usr/bin/sipacd --config /etc/sipacd/sipacd.toml" $u'
check "installed daemon runs as sipacd, /health answers (tests/package_installed.rs)" \
    cargo test --locked --test package_installed -- --ignored

echo "== dpkg -r"
check "dpkg -r removes it" dpkg -r sipacd
check "binary, unit and prompts gone" sh -c '
    ! [ -e /usr/bin/sipacd ] && ! [ -e /lib/systemd/system/sipacd.service ] && ! [ -e /usr/share/sipacd ]'
check "config and state kept after remove" sh -c '[ -f /etc/sipacd/sipacd.toml ] && [ -d /var/lib/sipacd ]'

echo "== dpkg --purge"
check "dpkg --purge purges it" dpkg --purge sipacd
check "config, state and overrides gone after purge" sh -c '
    ! [ -e /etc/sipacd ] && ! [ -e /var/lib/sipacd ] &&
    ! dpkg-statoverride --list /etc/sipacd/sipacd.toml >/dev/null &&
    ! dpkg-statoverride --list /etc/sipacd >/dev/null'
check "dpkg knows it no more" sh -c '! dpkg-query -W -f="\${Status}" sipacd 2>/dev/null | grep -q installed'

finish
