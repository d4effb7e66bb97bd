#!/usr/bin/env bash
# Source me: installs Podman, builds the test image without a registry (busybox-static from Debian),
# and starts Podman's Docker-compatible API; exports DOCKER_HOST. Tests that need a container engine
# run against it (they are skipped, with the reason, where no Docker API answers).
# Settings that work on these VMs: runc (crun fails with hybrid cgroups), cgroupfs, low rlimits.
W=${PODMAN_WORK:-/tmp/mlproj-ci-podman}
mkdir -p "$W/conf"
# catatonit: the pods of `podman kube play` (the kubernetes backend's tests); netavark: so that podman
# does not read a CNI configuration from /etc.
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || [ ! -x /usr/libexec/podman/catatonit ] \
    || [ ! -x /usr/lib/podman/netavark ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc catatonit netavark >/dev/null
fi
cat > "$W/conf/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]
netns = "none"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
network_config_dir = "$W/networks"
CONF
cat > "$W/conf/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$W/storage"
runroot = "$W/run"
CONF
# The tests' own registry (.ci/registry.sh) serves plain HTTP on loopback.
cat > "$W/conf/registries.conf" <<CONF
[[registry]]
location = "127.0.0.1:5000"
insecure = true
CONF
export CONTAINERS_CONF=$W/conf/containers.conf CONTAINERS_STORAGE_CONF=$W/conf/storage.conf
export CONTAINERS_REGISTRIES_CONF=$W/conf/registries.conf
if ! podman image exists mlproj-test-busybox 2>/dev/null; then
  [ -n "$(ls "$W"/busybox-static_*.deb 2>/dev/null)" ] || { apt-get update -qq; ( cd "$W" && apt-get download busybox-static >/dev/null 2>&1 ); }
  ( cd "$W" && rm -rf bbx rootfs && dpkg-deb -x busybox-static_*.deb bbx )
  mkdir -p "$W/rootfs/bin" "$W/rootfs/tmp" && cp "$W/bbx/bin/busybox" "$W/rootfs/bin/"
  for tool in sh echo cat ls sleep env pwd touch mkdir test true false; do ln -sf busybox "$W/rootfs/bin/$tool"; done
  tar -C "$W/rootfs" -c . | podman import -q - mlproj-test-busybox >/dev/null
fi
podman system service --time=0 "unix://$W/podman.sock" >"$W/service.log" 2>&1 &
PODMAN_SERVICE_PID=$!
for _ in $(seq 1 100); do
  curl -sf --unix-socket "$W/podman.sock" http://d/_ping >/dev/null && break
  sleep 0.1
done
export DOCKER_HOST=unix://$W/podman.sock MLPROJ_TEST_IMAGE=mlproj-test-busybox
