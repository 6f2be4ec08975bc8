#!/usr/bin/env bash
# Makes a Docker engine available for the container tests, on a fresh Debian machine or this one.
# Idempotent: every step is skipped when already done.
#
#   1. installs Debian's docker.io (dockerd, containerd, runc, docker-init) when dockerd is missing,
#      and busybox-static when /bin/busybox is missing (the offline image's /bin/sh);
#   2. starts dockerd in the background when no engine answers (log: $OPENRUNNER_DOCKERD_LOG,
#      default /tmp/openrunner-dockerd.log; extra flags: $OPENRUNNER_DOCKERD_ARGS);
#   3. waits for the socket (up to $OPENRUNNER_DOCKERD_WAIT_S seconds, default 60);
#   4. builds the offline agent image (FROM scratch, no registry), tag $OPENRUNNER_TEST_IMAGE
#      (default openrunner-agent:latest); the engine's build cache makes a rebuild take seconds.
#      It carries Claude Code and claude-code-acp from .agents when scripts/install-agents.sh
#      (--acp) ran first (~480 MB image, ~20 s cold build, ~2 s cached; without them 107 MB; a
#      missing one is left out with a note). The task.json tests build their batch images
#      (test/fixtures/task-image) FROM it themselves.
#   5. builds the desktop image (openrunner-desktop:latest, `image build --desktop`: debootstrap of this
#      machine's suite from its apt mirror, then an engine import; ~1.5 GB, about 4-6 min with the
#      mirror of this workplace). Its label openrunner.image.content-hash makes a rebuild a no-op while
#      docker/desktop/packages.txt, the suite, the mirror and node's version stay the same, so CI builds it
#      once per machine and the desktop tests share it. OPENRUNNER_SKIP_DESKTOP_IMAGE=1 skips this step.
#
# Needs root (or passwordless sudo) for steps 1, 2 and 5. Honours DOCKER_HOST: with a remote engine
# only steps 3 and 4 run.
set -euo pipefail

script_path="${BASH_SOURCE[0]}"
[[ "$script_path" == */* ]] || script_path="./$script_path"
repo_root="$(cd "${script_path%/*}/.." && pwd)"
log_file="${OPENRUNNER_DOCKERD_LOG:-/tmp/openrunner-dockerd.log}"
wait_s="${OPENRUNNER_DOCKERD_WAIT_S:-60}"
image="${OPENRUNNER_TEST_IMAGE:-openrunner-agent:latest}"

say() { echo "ci-docker: $*"; }
die() { echo "ci-docker: $*" >&2; exit 1; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
  else die "need root for: $* (run as root or give passwordless sudo)"
  fi
}

engine_up() {
  if command -v docker >/dev/null 2>&1; then
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  else
    local sock="${DOCKER_HOST#unix://}"
    [[ -z "${DOCKER_HOST:-}" ]] && sock=/var/run/docker.sock
    curl -fsS --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1
  fi
}

# 1. Packages.
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
[[ -x /bin/busybox ]] || missing+=(busybox-static)
[[ "${OPENRUNNER_SKIP_DESKTOP_IMAGE:-}" == 1 ]] || command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ -n "${DOCKER_HOST:-}" && "$DOCKER_HOST" != unix://* && " ${missing[*]} " != *" busybox-static "* ]]; then
    say "DOCKER_HOST=$DOCKER_HOST is remote; not installing a local engine"
  else
    say "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# 2. Engine.
if engine_up; then
  say "docker engine already running"
elif [[ -n "${DOCKER_HOST:-}" && "$DOCKER_HOST" != unix://* ]]; then
  die "DOCKER_HOST=$DOCKER_HOST does not answer"
else
  command -v dockerd >/dev/null 2>&1 || die "dockerd not found after installing docker.io"
  say "starting dockerd (log: $log_file)"
  # shellcheck disable=SC2086 # extra flags are split on purpose
  as_root bash -c "nohup dockerd ${OPENRUNNER_DOCKERD_ARGS:-} >>'$log_file' 2>&1 </dev/null &"
fi

# 3. Wait for it.
for ((i = 0; i < wait_s * 4; i++)); do
  engine_up && break
  sleep 0.25
done
if ! engine_up; then
  [[ -f "$log_file" ]] && tail -n 30 "$log_file" >&2
  die "docker engine did not answer within ${wait_s}s"
fi
say "docker engine up: $(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null || echo ok)"

# 4. The offline test image.
cd "$repo_root"
[[ -d node_modules/dockerode ]] || die "node_modules missing: run npm ci first"
say "building $image (offline)"
node --import tsx src/main.ts image build --offline --tag "$image" | grep -E '^(built|Step|Successfully)' || die "image build failed"

# 5. The desktop image (cached by its content hash).
if [[ "${OPENRUNNER_SKIP_DESKTOP_IMAGE:-}" != 1 ]]; then
  say "building openrunner-desktop:latest (debootstrap; a no-op when current)"
  as_root node --import tsx src/main.ts image build --desktop | grep -E '^(built|current|debootstrap|importing)' || die "desktop image build failed"
fi
