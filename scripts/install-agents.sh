#!/usr/bin/env bash
# Install the agent CLIs that OpenRunner drives into a project-local npm prefix.
#
#   scripts/install-agents.sh                 # all four: claude-code, codex, opencode, gemini
#   scripts/install-agents.sh --codex --gemini
#   scripts/install-agents.sh --acp           # also the ACP adapters @zed-industries/claude-code-acp and codex-acp
#   scripts/install-agents.sh --prefix /opt/agents
#
# Prefix: --prefix, else $OPENRUNNER_AGENTS_PREFIX, else <repo>/.agents (git-ignored).
# Binaries land in <prefix>/bin, where the adapters look after config and PATH.
# Idempotent: a package already installed in the prefix (at the pinned version when a pin is
# given, at any version otherwise) is skipped. Pin with e.g. CLAUDE_CODE_VERSION=2.1.197
# (also CODEX_VERSION, OPENCODE_VERSION, GEMINI_CLI_VERSION, CLAUDE_CODE_ACP_VERSION, CODEX_ACP_VERSION).
set -euo pipefail

script_path="${BASH_SOURCE[0]}"
[[ "$script_path" == */* ]] || script_path="./$script_path"
repo_root="$(cd "${script_path%/*}/.." && pwd)"
prefix="${OPENRUNNER_AGENTS_PREFIX:-$repo_root/.agents}"

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

selected=()
with_acp=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --claude-code) selected+=(claude-code) ;;
    --codex) selected+=(codex) ;;
    --opencode) selected+=(opencode) ;;
    --gemini) selected+=(gemini) ;;
    --acp) with_acp=1 ;;
    --prefix)
      [[ $# -ge 2 ]] || { echo "install-agents: --prefix needs a directory" >&2; exit 2; }
      prefix="$2"; shift ;;
    --prefix=*) prefix="${1#--prefix=}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-agents: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if ! command -v npm >/dev/null 2>&1; then
  echo "install-agents: npm not found on PATH; install Node.js 20+ (which ships npm) and retry" >&2
  exit 1
fi

if [[ ${#selected[@]} -eq 0 ]]; then
  selected=(claude-code codex opencode gemini)
fi
if [[ $with_acp -eq 1 ]]; then
  selected+=(claude-code-acp codex-acp)
fi

# name -> npm package and optional version pin (environment variable).
package_of() {
  case "$1" in
    claude-code) echo "@anthropic-ai/claude-code" ;;
    codex) echo "@openai/codex" ;;
    opencode) echo "opencode-ai" ;;
    gemini) echo "@google/gemini-cli" ;;
    claude-code-acp) echo "@zed-industries/claude-code-acp" ;;
    codex-acp) echo "@zed-industries/codex-acp" ;;
  esac
}
pin_of() {
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
  pkg="$(package_of "$name")"
  pin="$(pin_of "$name")"
  have="$(installed_version "$pkg")"
  if [[ -n "$have" && ( -z "$pin" || "$have" == "$pin" ) ]]; then
    echo "install-agents: $pkg@$have already installed in $prefix, skipping"
    continue
  fi
  spec="$pkg"
  [[ -n "$pin" ]] && spec="$pkg@$pin"
  echo "install-agents: installing $spec into $prefix"
  if ! npm install --global --prefix "$prefix" --no-fund --no-audit --loglevel=error "$spec"; then
    echo "install-agents: failed to install $spec" >&2
    failed=1
    continue
  fi
  echo "install-agents: $pkg@$(installed_version "$pkg") installed"
done

echo "install-agents: binaries in $prefix/bin"
exit "$failed"
