#!/usr/bin/env bash
# Source me: starts Debian's docker-registry (CNCF distribution) on 127.0.0.1:5000, with its config and
# storage under $W; exports MLPROJ_TEST_REGISTRY. The kubernetes backend's tests push their images there
# (through the Docker API) and `podman kube play` pulls them back. The package is unpacked, not installed:
# its postinst would add a system user and start a service on *:5000. REGISTRY_STOP stops it.
W=${REGISTRY_WORK:-/tmp/mlproj-ci-registry}
mkdir -p "$W"
if [ ! -x "$W/reg/usr/bin/docker-registry" ]; then
  apt-get update -qq
  ( cd "$W" && rm -f ./*.deb && apt-get download -q docker-registry >/dev/null 2>&1 && rm -rf reg \
    && dpkg-deb -x docker-registry_*.deb reg )
fi
cat > "$W/registry.yml" <<CONF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $W/data}
  delete: {enabled: true}
http: {addr: "127.0.0.1:5000", secret: ci-only-not-secret}
CONF
if ! curl -sf --max-time 2 http://127.0.0.1:5000/v2/ >/dev/null; then
  setsid "$W/reg/usr/bin/docker-registry" serve "$W/registry.yml" >"$W/registry.log" 2>&1 &
  echo $! > "$W/registry.pid"
fi
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:5000/v2/ >/dev/null && break; sleep 0.1; done
export MLPROJ_TEST_REGISTRY=127.0.0.1:5000
REGISTRY_STOP() {
  local pid; pid=$(cat "$W/registry.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && grep -qF "$W/registry.yml" "/proc/$pid/cmdline" 2>/dev/null; then   # ours, by PID
    kill -- -"$pid" 2>/dev/null || true
  fi
  rm -f "$W/registry.pid"
}
