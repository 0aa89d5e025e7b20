#!/usr/bin/env bash
# test-deb.sh: build the amd64 .deb and install it into a throwaway root by
# extraction (no dpkg database needed), then check files, permissions,
# conffiles and maintainer scripts, and run the installed binary on the
# installed config.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f dist/edge-agent_*_amd64.deb
scripts/deb.sh amd64 >/dev/null
deb=$(ls dist/edge-agent_*_amd64.deb)
root=$(mktemp -d); ctl=$(mktemp -d); trap 'rm -rf "$root" "$ctl"' EXIT
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$ctl"
fail() { echo "deb test: $*" >&2; exit 1; }
mode() { stat -c %a "$root$1"; }
[ "$(mode /usr/bin/edge-agent)" = 755 ] || fail "binary mode $(mode /usr/bin/edge-agent)"
[ "$(mode /usr/lib/edge-agent/iio-perms)" = 755 ] || fail "iio-perms not executable"
for f in /usr/lib/systemd/system/edge-agent.service /usr/lib/sysusers.d/edge-agent.conf \
	/usr/lib/udev/rules.d/60-edge-agent.rules /usr/share/doc/edge-agent/watch-dir.conf; do
	[ "$(mode "$f")" = 644 ] || fail "$f mode $(mode "$f")"
done
# The config may hold inline secrets: 0640 root:edge-agent in the archive,
# and postinst sets the group where dpkg could not (first install).
[ "$(mode /etc/edge-agent/config.yaml)" = 640 ] || fail "config mode $(mode /etc/edge-agent/config.yaml), want 640"
dpkg-deb -c "$deb" | grep -E '^-rw-r----- root/edge-agent .* \./etc/edge-agent/config\.yaml$' >/dev/null \
	|| fail "config is not root/edge-agent 0640 in the archive: $(dpkg-deb -c "$deb" | grep config.yaml)"
grep -q 'chgrp edge-agent "$cfg" && chmod 0640 "$cfg"' "$ctl/postinst" || fail "postinst does not give the config to group edge-agent"
grep -qx /etc/edge-agent/config.yaml "$ctl/conffiles" || fail "config is not a conffile"
for s in postinst prerm postrm; do
	[ -x "$ctl/$s" ] || fail "$s missing"
	sh -n "$ctl/$s" || fail "$s syntax"
done
grep -q 'systemctl enable' "$ctl/postinst" && ! grep -Eq '^[[:space:]]*systemctl (start|restart)|enable --now' "$ctl/postinst" \
	|| fail "postinst must enable without starting on first install"
dpkg-deb -f "$deb" Architecture | grep -qx amd64 || fail "architecture"
# Output first, then grep: `version | grep -q` under pipefail fails when grep
# exits before the binary has written everything (SIGPIPE), as it did once.
version=$("$root/usr/bin/edge-agent" version) || fail "installed binary does not run"
grep -q '^edge-agent ' <<<"$version" || fail "installed binary does not say its version"
"$root/usr/bin/edge-agent" check-config "$root/etc/edge-agent/config.yaml" >/dev/null || fail "installed config invalid"
echo "deb ok: $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
