#!/usr/bin/env bash
# make dist: the source rocks of the release rockspecs (assesskit-X.Y.Z-N.rockspec and
# assesskit-sandbox-X.Y.Z-N.rockspec), made by `luarocks pack`, offline.
#
#   .ci/dist.sh [OUT]        (default build/dist)
#
# OUT receives the source archive the rockspecs name (source.file, e.g. assesskit-0.2.0.tar.gz:
# the files git tracks or would track, as in the working tree, under source.dir), both
# rockspecs and both .src.rock files. `luarocks pack` fetches a rockspec's source.url, which
# is where the release is published; here it is given the local archive instead (a copy of
# the rockspec with a file:// URL), and the packed rock then gets the rockspec as released
# (`zip` replaces that entry), so what is installed from it names the published URL.
# Install them offline with
#   luarocks --lua-version=5.4 --tree T install --deps-mode=none OUT/assesskit-0.2.0-1.src.rock
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$ROOT/build/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$ROOT"

work=$(mktemp -d /tmp/assesskit-dist.XXXXXX)
trap 'rm -rf "$work"' EXIT

# name version file dir of a rockspec, one per line
fields() {
  lua5.4 - "$1" <<'LUA'
local env = {}
assert(loadfile(arg[1], "t", env))()
local s = env.source or {}
local file = s.file or (s.url or ""):match("([^/]+)$")
print(env.package, env.version, file, s.dir or "")
LUA
}

specs=()
for f in *.rockspec; do
  case $f in *-scm-*.rockspec) continue ;; esac
  specs+=("$f")
done
[ ${#specs[@]} -gt 0 ] || { echo "dist: no release rockspec (NAME-X.Y.Z-N.rockspec) here" >&2; exit 1; }

archive=""
for spec in "${specs[@]}"; do
  read -r name version file dir < <(fields "$spec")
  [ -n "$file" ] && [ -n "$dir" ] || { echo "dist: $spec needs source.file and source.dir" >&2; exit 1; }
  if [ -z "$archive" ]; then
    archive=$file
    # the working tree's files that git tracks or would track (not ignored), deleted ones left out
    git ls-files -z --cached --others --exclude-standard \
      | while IFS= read -r -d '' p; do [ -f "$p" ] && printf '%s\0' "$p"; done \
      | LC_ALL=C sort -z \
      | tar --null -T - --transform "s,^,$dir/," --owner=0 --group=0 --numeric-owner \
          --mtime="@$(git log -1 --format=%ct 2>/dev/null || date +%s)" -czf "$work/$file"
    cp "$work/$file" "$out/$file"
  elif [ "$file" != "$archive" ]; then
    echo "dist: $spec names $file, another rockspec $archive: one source archive for both" >&2
    exit 1
  fi
  mkdir -p "$work/$name"
  lua5.4 - "$spec" "$work/$name/$spec" "file://$work/$file" <<'LUA'
local src, dst, url = arg[1], arg[2], arg[3]
local text = assert(io.open(src)):read("a")
local n
text, n = text:gsub('(source%s*=%s*{%s*url%s*=%s*)"[^"]*"', function(head) return head .. '"' .. url .. '"' end, 1)
assert(n == 1, src .. ": no source.url to point at the local archive")
assert(io.open(dst, "w")):write(text)
LUA
  rm -f "$out/$name-$version.src.rock"
  (cd "$out" && luarocks --lua-version=5.4 pack "$work/$name/$spec" >"$work/pack.log" 2>&1) || {
    cat "$work/pack.log" >&2
    echo "dist: luarocks pack $spec failed" >&2
    exit 1
  }
  # the released rockspec, not the file:// copy, goes into the rock
  (cd "$ROOT" && zip -q "$out/$name-$version.src.rock" "$spec")
  cp "$spec" "$out/$spec"
  echo "dist: $out/$name-$version.src.rock"
done
