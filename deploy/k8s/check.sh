#!/usr/bin/env bash
# Renders every kustomization under deploy/k8s (the base and each overlay)
# with `kubectl kustomize` and validates the objects offline (validate.mjs:
# Kubernetes schemas + shardlm's rules); also schema-checks examples/.
# Installs the validator's npm packages (npm ci) if node_modules is missing.
# Exits non-zero on any invalid manifest. ctest runs it as k8s_manifests.
#
#   deploy/k8s/check.sh [BIN_DIR]
#
# With BIN_DIR (the build's bin/), the commands' flags are checked against
# the binaries' own --help; without it, against validate.mjs's copy.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for tool in kubectl node npm; do
  command -v "$tool" >/dev/null || { echo "check.sh: $tool is required" >&2; exit 1; }
done
if [ ! -d "$here/node_modules/kubernetes-models" ] || [ ! -d "$here/node_modules/yaml" ]; then
  echo "check.sh: npm ci (validator dependencies)" >&2
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ $# -ge 1 ]; then
  export SHARDLM_BIN_DIR="$(cd "$1" && pwd)"
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
rendered=()
for dir in "$here/base" "$here"/overlays/*/; do
  dir="${dir%/}"
  name="$(basename "$dir")"
  kubectl kustomize "$dir" >"$out/$name.yaml"
  rendered+=("$out/$name.yaml")
done
cd "$here"
node validate.mjs "${rendered[@]}"
node validate.mjs --schema-only examples/*.yaml
echo "check.sh: ${#rendered[@]} kustomizations and examples/ valid"
