#!/usr/bin/env bash
# Source me: installs Ray into its own virtualenv and starts a local Ray head with the Job Submission API
# on loopback; exports RAY_ADDRESS. The ray backend's tests run against it (they are skipped, with the
# reason, where no Ray cluster answers). RAY_STOP is a function that stops the head.
W=${RAY_WORK:-/tmp/mlproj-ci-ray}
mkdir -p "$W"
# The same release the test extra installs for the client side (pip picks the newest of both).
[ -x "$W/venv/bin/ray" ] || { python3 -m venv "$W/venv" && "$W/venv/bin/pip" install -q "ray[default]>=2.40"; }
# Without this Ray ignores --node-ip-address 127.0.0.1 and advertises the machine's other address.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0
if ! curl -sf http://127.0.0.1:8265/api/version >/dev/null; then
  "$W/venv/bin/ray" start --head --num-cpus 2 --include-dashboard=true --dashboard-host 127.0.0.1 \
      --node-ip-address 127.0.0.1 --temp-dir "$W/tmp" --disable-usage-stats >"$W/start.log" 2>&1
fi
for _ in $(seq 1 120); do curl -sf http://127.0.0.1:8265/api/version >/dev/null && break; sleep 0.5; done
export RAY_ADDRESS=http://127.0.0.1:8265
RAY_STOP() { "$W/venv/bin/ray" stop --force >/dev/null 2>&1 || true; }
