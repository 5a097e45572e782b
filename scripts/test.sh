#!/usr/bin/env bash
# Runs every hubcast test on a fresh Debian machine: installs the system packages the tests
# need (only those missing), checks the README's quick-start command, then runs the whole
# suite. Usage: ./scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hubcast-target}"

# System packages the suite uses: a real redis-server (multi-node tests), Debian's Chromium
# and chromedriver (browser tests, never a downloaded browser), iproute2 (network namespaces),
# nftables (firewall rules inside test namespaces, e.g. blocking UDP for ICE-TCP), curl (the
# quick-start check), libxml2-utils (xmllint: CAP 1.2 schema validation).
packages=(redis-server chromium chromium-driver iproute2 nftables curl libxml2-utils)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "test.sh: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Tools taken from Debian packages but unpacked under the cache instead of installed: the
# packages would set up and start servers (Prometheus; nginx on port 80).
tools="$HOME/.cache/hubcast-tools"
# unpack PACKAGE FILE: unpacks Debian's PACKAGE under $tools unless $tools/FILE is there.
unpack() {
  [ -x "$tools/$2" ] && return 0
  echo "test.sh: unpacking $2 from Debian's $1 package"
  mkdir -p "$tools"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  (cd "$tools" && { apt-get download -qq "$1" 2>/dev/null \
    || { $sudo apt-get update -qq && apt-get download -qq "$1"; }; } \
    && dpkg-deb -x "$1"_*.deb . && rm -f "$1"_*.deb)
}
# promtool lints `/metrics` (tests/metrics_promtool.rs).
if ! command -v promtool >/dev/null 2>&1; then
  unpack prometheus usr/bin/promtool
  export PATH="$tools/usr/bin:$PATH"
fi
# nginx runs the shipped reverse-proxy front (tests/deploy_nginx.rs finds it there).
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  unpack nginx usr/sbin/nginx
fi

# aiortc (PyPI), an independent WebRTC stack for the interop test; wheels bundle FFmpeg.
if ! python3 -c "import aiortc" 2>/dev/null; then
  echo "test.sh: installing aiortc"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore aiortc
fi
# PyJWT (PyPI) mints tokens as an identity provider would (tests/auth_tokens.rs).
if [ "$(python3 -c 'import jwt, cryptography; print(jwt.__version__)' 2>/dev/null)" != "2.10.1" ]; then
  echo "test.sh: installing PyJWT"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "pyjwt[crypto]==2.10.1"
fi
# schemathesis (PyPI) checks the hub against its OpenAPI document (tests/openapi_conformance.rs);
# pinned: the test's seeds fix what it generates for this release.
schemathesis_version=4.32.5
if [ "$(python3 -c 'import schemathesis; print(schemathesis.__version__)' 2>/dev/null)" != "$schemathesis_version" ]; then
  echo "test.sh: installing schemathesis $schemathesis_version"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "schemathesis==$schemathesis_version"
fi

# The README's run command, on a free port with a throwaway data dir: /healthz must answer.
echo "test.sh: quick-start check (cargo run --release -- serve)"
cargo build --release --quiet
tmp="$(mktemp -d)"
# Stop the hub if the check fails half-way (never `kill 0`: that is the whole process group).
trap 'if [ -n "${hub_pid:-}" ]; then kill "$hub_pid" 2>/dev/null || true; fi; rm -rf "$tmp"' EXIT
cargo run --release --quiet -- serve --listen 127.0.0.1:0 --data-dir "$tmp/data" >"$tmp/out" 2>"$tmp/err" &
hub_pid=$!
for _ in $(seq 1 300); do
  grep -q '^hubcast listening on ' "$tmp/out" 2>/dev/null && break
  sleep 0.1
done
url="$(sed -n 's/^hubcast listening on //p' "$tmp/out")"
[ -n "$url" ] || { echo "hub did not start:"; cat "$tmp/err"; exit 1; }
# Into files, then grep: `curl | grep -q` fails with curl's "(23) Failed writing body" under
# pipefail whenever grep has matched and exited before curl wrote the rest.
curl -fsS "$url/healthz" -o "$tmp/healthz"
grep -q '"ok"' "$tmp/healthz"
curl -fsS "$url/metrics" -o "$tmp/metrics"
grep -q '^hubcast_build_info{' "$tmp/metrics"
kill -TERM "$hub_pid"
wait "$hub_pid"
hub_pid=""
echo "test.sh: quick-start check passed ($url)"

# Doc examples first, then every unit, integration and bench-in-test-mode target. nextest
# (shipped with the machine's toolchain) runs each test in its own process. The real-client
# media tests (Chromium, aiortc, webrtc-rs) and the slow-consumer latency comparison run last
# and one at a time, so their frame-rate, freeze and p99 assertions measure the hub rather
# than CPU starvation on a 2-core machine. That includes testkit's own webrtc-rs loopback
# (two peers streaming three simulcast layers: once, at the end of the parallel run, its
# receiver saw 9 audio packets and no video in 15 s).
cargo test --workspace --doc --quiet
media='binary(/^(sfu_(bandwidth|browser|ice_tcp|loss|aiortc|port_reuse|public_ips|ipv6|webrtc_rs)|rtc_loopback|alerts_slow_consumer|alerts_browser|deploy_nginx|media_cors)$/)'
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast -E "not ($media)" "$@"
  cargo nextest run --workspace --all-targets --no-fail-fast -E "$media" -j 1 "$@"
else
  cargo test --workspace --all-targets --no-fail-fast "$@"
fi
