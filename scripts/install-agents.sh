#!/usr/bin/env bash
# Install the agent CLIs that OpenRunner drives into a project-local npm prefix, at the versions
# the test suite was run against (scripts/agents.lock.json).
#
#   scripts/install-agents.sh                 # the four CLIs: claude-code, codex, opencode, gemini
#   scripts/install-agents.sh --codex --gemini
#   scripts/install-agents.sh --acp           # also the ACP adapters claude-code-acp and codex-acp
#   scripts/install-agents.sh --codex-acp     # one adapter only (also --claude-code-acp)
#   scripts/install-agents.sh --latest        # the registry's latest instead of the pins (untested;
#                                             # prints each pin -> latest that differs)
#   scripts/install-agents.sh --prefix /opt/agents
#   scripts/install-agents.sh --codex --version 0.171.0 --prefix /tmp/codex-0.171   # one package, any version
#
# Prefix: --prefix, else $OPENRUNNER_AGENTS_PREFIX, else <repo>/.agents (git-ignored).
# Binaries land in <prefix>/bin, where the adapters look after config and PATH.
# Idempotent: a package already installed in the prefix at the wanted version is skipped; another
# version is replaced. One package may be set by hand, e.g. CODEX_VERSION=0.171.0 (also
# CLAUDE_CODE_VERSION, OPENCODE_VERSION, GEMINI_CLI_VERSION, CLAUDE_CODE_ACP_VERSION, CODEX_ACP_VERSION).
# Exit: 0 when everything asked for is installed, 1 when an install failed, 2 on a usage error.
set -euo pipefail

script_path="${BASH_SOURCE[0]}"
[[ "$script_path" == */* ]] || script_path="./$script_path"
repo_root="$(cd "${script_path%/*}/.." && pwd)"
lock_file="$repo_root/scripts/agents.lock.json"
prefix="${OPENRUNNER_AGENTS_PREFIX:-$repo_root/.agents}"

usage() {
  sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

selected=()
with_acp=0
latest=0
version_arg=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --claude-code) selected+=(claude-code) ;;
    --codex) selected+=(codex) ;;
    --opencode) selected+=(opencode) ;;
    --gemini) selected+=(gemini) ;;
    --claude-code-acp) selected+=(claude-code-acp) ;;
    --codex-acp) selected+=(codex-acp) ;;
    --acp) with_acp=1 ;;
    --latest) latest=1 ;;
    --version)
      [[ $# -ge 2 ]] || { echo "install-agents: --version needs a version" >&2; exit 2; }
      version_arg="$2"; shift ;;
    --version=*) version_arg="${1#--version=}" ;;
    --prefix)
      [[ $# -ge 2 ]] || { echo "install-agents: --prefix needs a directory" >&2; exit 2; }
      prefix="$2"; shift ;;
    --prefix=*) prefix="${1#--prefix=}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-agents: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "install-agents: npm not found on PATH; install Node.js 20+ (which ships npm) and retry" >&2
  exit 1
fi
[[ -f "$lock_file" ]] || { echo "install-agents: $lock_file is missing" >&2; exit 1; }

# lock_field NAME FIELD: one field of packages.NAME in the lock file ("" when absent).
lock_field() {
  node -e '
    const lock = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const p = lock.packages[process.argv[2]];
    if (!p) { console.error(`install-agents: ${process.argv[2]} is not in ${process.argv[1]}`); process.exit(3); }
    const v = p[process.argv[3]];
    process.stdout.write(v === undefined ? "" : String(v));' "$lock_file" "$1" "$2"
}

if [[ -n "$version_arg" && ( ${#selected[@]} -ne 1 || $with_acp -eq 1 ) ]]; then
  echo "install-agents: --version needs exactly one package (e.g. --codex --version 0.171.0)" >&2
  exit 2
fi
if [[ ${#selected[@]} -eq 0 ]]; then
  selected=(claude-code codex opencode gemini)
fi
if [[ $with_acp -eq 1 ]]; then
  selected+=(claude-code-acp codex-acp)
fi

# A hand-set version for one package (environment variable), or nothing.
env_pin_of() {
  case "$1" in
    claude-code) echo "${CLAUDE_CODE_VERSION:-}" ;;
    codex) echo "${CODEX_VERSION:-}" ;;
    opencode) echo "${OPENCODE_VERSION:-}" ;;
    gemini) echo "${GEMINI_CLI_VERSION:-}" ;;
    claude-code-acp) echo "${CLAUDE_CODE_ACP_VERSION:-}" ;;
    codex-acp) echo "${CODEX_ACP_VERSION:-}" ;;
  esac
}

# Prints the version installed in the prefix, or nothing.
installed_version() {
  local manifest="$prefix/lib/node_modules/$1/package.json"
  [[ -f "$manifest" ]] || return 0
  node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).version||""))' "$manifest"
}

mkdir -p "$prefix"
failed=0
for name in "${selected[@]}"; do
  pkg="$(lock_field "$name" package)"
  pinned="$(lock_field "$name" version)"
  want="${version_arg:-$(env_pin_of "$name")}"
  if [[ -z "$want" && $latest -eq 1 ]]; then
    if ! want="$(npm view "$pkg" version 2>/dev/null)" || [[ -z "$want" ]]; then
      echo "install-agents: cannot read the latest version of $pkg from the registry" >&2
      failed=1
      continue
    fi
    if [[ "$want" != "$pinned" ]]; then
      echo "install-agents: $name: tested $pinned -> latest $want (untested; see docs/compatibility.md)"
    fi
  fi
  [[ -n "$want" ]] || want="$pinned"
  have="$(installed_version "$pkg")"
  if [[ "$have" == "$want" ]]; then
    echo "install-agents: $pkg@$have already installed in $prefix, skipping"
    continue
  fi
  [[ -n "$have" ]] && echo "install-agents: replacing $pkg@$have"
  echo "install-agents: installing $pkg@$want into $prefix"
  if ! npm install --global --prefix "$prefix" --no-fund --no-audit --loglevel=error "$pkg@$want"; then
    echo "install-agents: failed to install $pkg@$want" >&2
    failed=1
    continue
  fi
  echo "install-agents: $pkg@$(installed_version "$pkg") installed"
done

echo "install-agents: binaries in $prefix/bin"
exit "$failed"
