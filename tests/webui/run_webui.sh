#!/usr/bin/env bash
# The chat page in a real browser: runs webui.test.mjs (which starts
# `shardlm serve` on the embedded model and Debian's headless chromium).
#   run_webui.sh BIN_DIR
# Exits 77 (skip) only when node, npm or chromium is absent (CI installs
# them: scripts/install_deps.sh). Installs the npm package (npm ci) when
# node_modules is missing. SHARDLM_CHROMIUM overrides the browser's path.
set -euo pipefail
bin=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
chromium=${SHARDLM_CHROMIUM:-$(command -v chromium || true)}
for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "$tool is needed for this test" >&2
    exit 77
  fi
done
if [ -z "$chromium" ] || [ ! -x "$chromium" ]; then
  echo "chromium is needed for this test (apt-get install chromium)" >&2
  exit 77
fi
if [ ! -d "$here/node_modules" ]; then
  (cd "$here" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
fi
cd "$here"
SHARDLM_BIN="$bin" SHARDLM_CHROMIUM="$chromium" timeout 240 node --test webui.test.mjs
