#!/usr/bin/env bash
# No Docker engine runs in CI, so the image is never built there: this checks
# instead that the Dockerfile's runtime stage installs every shared library
# the built binaries load. For each library `ldd` lists, the Debian package
# owning it (dpkg -S) must be one the runtime stage names, a dependency apt
# pulls in with them, or part of debian:12-slim itself.
#
#   deploy/docker/check_runtime_deps.sh BIN_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:?usage: $0 BIN_DIR}"
# The package names of the runtime stage's apt-get install (after "AS runtime").
listed=$(sed -n '/AS runtime/,$p' "$here/Dockerfile" |
  sed -n '/apt-get install/,/rm -rf/p' | tr ' \\' '\n\n' | grep -E '^lib[a-z0-9.+-]+$' | sort -u)
[ -n "$listed" ] || { echo "FAIL: no runtime packages found in the Dockerfile" >&2; exit 1; }
# shellcheck disable=SC2086
allowed=$( (echo "$listed"; echo libc6 libgcc-s1 libstdc++6 zlib1g | tr ' ' '\n'
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances $listed 2>/dev/null | grep -E '^[a-z0-9]') | sed 's/:.*//' | sort -u)
# Every library any binary loads, resolved, then one dpkg -S for all of them.
declare -A user
for b in shardlm shardlm-worker shardlm-coordinator shardlm-inspect shardlm-tokenize shardlm-mkmodel; do
  [ -x "$bin/$b" ] || continue
  for lib in $(ldd "$bin/$b" | awk '$3 ~ /^\// {print $3}'); do
    user[$(readlink -f "$lib")]=$b
  done
done
[ "${#user[@]}" -gt 0 ] || { echo "FAIL: no binaries in $bin" >&2; exit 1; }
# dpkg records some libraries under /lib, others under /usr/lib (usrmerge):
# ask for both spellings of each path.
paths=()
for lib in "${!user[@]}"; do paths+=("$lib" "${lib#/usr}"); done
declare -A owner
while IFS= read -r line; do
  owner[${line#*: }]=${line%%:*}
done < <(dpkg -S "${paths[@]}" 2>/dev/null || true)
missing=0
for lib in "${!user[@]}"; do
  pkg=${owner[$lib]:-${owner[${lib#/usr}]:-}}
  if [ -z "$pkg" ]; then
    echo "FAIL: ${user[$lib]} loads $lib, which no Debian package owns" >&2
    missing=1
  elif ! grep -qx "$pkg" <<<"$allowed"; then
    echo "FAIL: ${user[$lib]} loads $lib from $pkg, which the runtime stage does not install" >&2
    missing=1
  fi
done
[ "$missing" = 0 ] && echo "runtime stage installs every library the binaries load: $(echo $listed)"
exit "$missing"
