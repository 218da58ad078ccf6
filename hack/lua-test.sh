#!/usr/bin/env bash
# Tests kubeinvoke's Argo CD health checks with a real Lua 5.1 (Debian's lua5.1, the language
# version Argo CD's gopher-lua implements): every gitops/argocd/health/<group>/<Kind>/health.lua
# against the cases in its health_test.lua, then checks that gitops/argocd/argocd-cm.yaml is what
# hack/gen-argocd-cm.sh generates from those scripts. Never skips: a missing lua5.1 is a failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if ! command -v lua5.1 >/dev/null; then
  echo "lua-test: lua5.1 is not installed; install Debian's lua5.1 package (make prereqs does it as root: apt-get install lua5.1)" >&2
  exit 1
fi

dirs=()
while IFS= read -r script; do dirs+=("$(dirname "$script")"); done \
  < <(find gitops/argocd/health -mindepth 3 -maxdepth 3 -name health.lua | LC_ALL=C sort)
if [ ${#dirs[@]} -eq 0 ]; then
  echo "lua-test: no gitops/argocd/health/<group>/<Kind>/health.lua found" >&2
  exit 1
fi
for dir in "${dirs[@]}"; do
  [ -f "$dir/health_test.lua" ] || { echo "lua-test: $dir has health.lua but no health_test.lua" >&2; exit 1; }
done

lua5.1 gitops/argocd/health/test.lua "${dirs[@]}"

generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
hack/gen-argocd-cm.sh --stdout > "$generated"
if ! cmp -s "$generated" gitops/argocd/argocd-cm.yaml; then
  echo "lua-test: gitops/argocd/argocd-cm.yaml differs from the health checks; run hack/gen-argocd-cm.sh" >&2
  diff -u gitops/argocd/argocd-cm.yaml "$generated" | head -n 40 >&2 || true
  exit 1
fi
echo "lua-test: gitops/argocd/argocd-cm.yaml matches the health checks"
