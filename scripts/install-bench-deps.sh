#!/usr/bin/env bash
# Installs the baselines some benchmarks compare against (not needed by the tests):
# Debian's nginx-light (proxy benchmark) and openssh-server (the tunnel's `ssh -R` anchor).
# The benchmarks start their own nginx/sshd with private configs and stop them by PID.
set -euo pipefail
missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server openssh-client)
if [[ ${#missing[@]} -gt 0 ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
mkdir -p /run/sshd
echo "bench baselines ready: $(nginx -v 2>&1), $(/usr/sbin/sshd -V 2>&1 | head -1 || true)"
