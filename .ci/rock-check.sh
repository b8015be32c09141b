#!/usr/bin/env bash
# Proves the two rocks (run by `make test`):
#  1. listing: every file under lua/ is in build.install.lua of exactly one scm rockspec
#     (lua/assesskit/sandbox/ in assesskit-sandbox-scm-1.rockspec, the rest in
#     assesskit-scm-1.rockspec), under the key its path gives; every script under bin/ in the
#     build.install.bin of exactly one; nothing listed is missing; each release rockspec
#     (NAME-X.Y.Z-N.rockspec) is its scm rockspec apart from version, source and the version of
#     the dependency on assesskit, and the release rockspecs share one version. Prints what is
#     wrong (the line to add, for a missing file) and exits 1;
#  2. Debian's luarocks, offline and without dependency resolution, installs both scm rocks
#     into build/rocktree from a copy of the sources, and leaves that copy as it was (no
#     object, no core.so, no build/ directory beside the sources);
#  3. from another directory, with only that tree on the module paths, `require "assesskit"`,
#     `require "assesskit.core"` and `require "assesskit.jwt"` load the installed files.
#
#   .ci/rock-check.sh                  all three
#   .ci/rock-check.sh --list-only DIR  only the listing check, for the sources in DIR
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MAIN=assesskit-scm-1.rockspec
SANDBOX=assesskit-sandbox-scm-1.rockspec

list_check() {  # $1: source directory holding the rockspecs, lua/ and bin/
  lua5.4 - "$1" "$MAIN" "$SANDBOX" <<'LUA'
local dir, main, sandbox = arg[1], arg[2], arg[3]
local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = string.format(fmt, ...) end
local function load_spec(name)
  local env = {}
  local chunk, err = loadfile(dir .. "/" .. name, "t", env)
  if not chunk then problem("%s does not load: %s", name, err); return nil end
  chunk()
  return env
end
local function files(sub, pattern)
  local out = {}
  local p = io.popen("cd '" .. dir .. "' && find " .. sub .. " -type f 2>/dev/null | LC_ALL=C sort")
  for f in p:read("a"):gmatch("[^\n]+") do
    if not pattern or f:match(pattern) then out[#out + 1] = f end
  end
  p:close()
  return out
end
local function exists(path)
  local f = io.open(dir .. "/" .. path, "rb")
  if f then f:close() end
  return f ~= nil
end
-- the build.install.lua key of a file under lua/: its path as a module name (init.lua kept,
-- so the installed tree has the source layout); a data file: its directory as a module path,
-- then its name with every non-alphanumeric character as _ (luarocks installs a non-.lua file
-- under the key's directory part, with its own name)
local function key_of(f)
  if f:match("%.lua$") then
    return (f:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/", "."))
  end
  local d, base = f:match("^lua/(.+)/([^/]+)$")
  return d:gsub("/", ".") .. "." .. base:gsub("[^%w]", "_")
end
local function owner_of_lua(f) return f:match("^lua/assesskit/sandbox/") and sandbox or main end
local function owner_of_bin(f) return f:match("sandbox") and sandbox or main end

local specs = { [main] = load_spec(main), [sandbox] = load_spec(sandbox) }
local listed_lua, listed_bin = {}, {}   -- file -> { rockspec, ... }
for _, name in ipairs({ main, sandbox }) do
  local spec = specs[name]
  local install = spec and spec.build and spec.build.install or {}
  for key, f in pairs(install.lua or {}) do
    listed_lua[f] = listed_lua[f] or {}
    table.insert(listed_lua[f], name)
    if not exists(f) then
      problem('%s: build.install.lua["%s"] names a missing file: %s', name, key, f)
    elseif f:match("^lua/") and key ~= key_of(f) then
      problem('%s: build.install.lua["%s"] should be ["%s"] = "%s",', name, key, key_of(f), f)
    end
  end
  for key, f in pairs(install.bin or {}) do
    listed_bin[f] = listed_bin[f] or {}
    table.insert(listed_bin[f], name)
    if not exists(f) then problem('%s: build.install.bin["%s"] names a missing file: %s', name, key, f) end
  end
end
for _, f in ipairs(files("lua")) do
  local where = listed_lua[f]
  if not where then
    problem('missing from %s build.install.lua: ["%s"] = "%s",', owner_of_lua(f), key_of(f), f)
  elseif #where > 1 then
    problem("%s is listed in both rockspecs (one rock installs it)", f)
  end
end
for _, f in ipairs(files("bin")) do
  local where = listed_bin[f]
  if not where then
    problem('missing from %s build.install.bin: ["%s"] = "%s",', owner_of_bin(f), f:gsub("^bin/", ""), f)
  elseif #where > 1 then
    problem("%s is listed in both rockspecs (one rock installs it)", f)
  end
end

-- release rockspecs: the scm one apart from version, source and the assesskit dependency
local function same(a, b, path, out)
  if type(a) ~= type(b) then out[#out + 1] = path; return end
  if type(a) ~= "table" then
    if a ~= b then out[#out + 1] = path end
    return
  end
  for k, v in pairs(a) do same(v, b[k], path .. "." .. tostring(k), out) end
  for k in pairs(b) do if a[k] == nil then out[#out + 1] = path .. "." .. tostring(k) end end
end
local release_version
for _, f in ipairs(files(".", "^%./[%w-]+%-[%d.]+%-%d+%.rockspec$")) do
  f = f:gsub("^%./", "")
  local pkg, version = f:match("^(.-)%-([%d.]+%-%d+)%.rockspec$")
  local scm_name = pkg .. "-scm-1.rockspec"
  local rel, scm = load_spec(f), specs[scm_name]
  if not scm then
    problem("%s has no %s beside it", f, scm_name)
  elseif rel then
    if rel.version ~= version then problem("%s says version %s", f, tostring(rel.version)) end
    release_version = release_version or version
    if version ~= release_version then
      problem("release rockspecs disagree on the version: %s and %s", release_version, version)
    end
    local up = version:match("^(.-)%-%d+$")
    local a = { dependencies = {} }
    local b = { dependencies = {} }
    for k, v in pairs(rel) do if k ~= "version" and k ~= "source" then a[k] = v end end
    for k, v in pairs(scm) do if k ~= "version" and k ~= "source" then b[k] = v end end
    a.dependencies, b.dependencies = {}, {}
    for i, d in ipairs(rel.dependencies or {}) do a.dependencies[i] = (d:gsub("^assesskit == " .. up:gsub("%.", "%%.") .. "$", "assesskit == VERSION")) end
    for i, d in ipairs(scm.dependencies or {}) do b.dependencies[i] = (d:gsub("^assesskit == scm$", "assesskit == VERSION")) end
    local diff = {}
    same(a, b, "", diff)
    table.sort(diff)
    for _, path in ipairs(diff) do
      problem("%s differs from %s at %s (only version, source and the assesskit version may)", f, scm_name, path:sub(2))
    end
    if not (rel.source and rel.source.url and rel.source.file and rel.source.dir) then
      problem("%s: source needs url, file and dir (make dist builds source.file)", f)
    end
  end
end

if #problems > 0 then
  table.sort(problems)
  io.stderr:write("the rockspecs are out of date (add your module to the rockspec):\n  "
    .. table.concat(problems, "\n  ") .. "\n")
  os.exit(1)
end
print("the rockspecs list every file under lua/ and bin/ once; the release rockspecs match")
LUA
}

if [ "${1:-}" = "--list-only" ]; then
  list_check "${2:?usage: rock-check.sh --list-only DIR}"
  exit 0
fi

cd "$ROOT"
list_check "$ROOT"

TREE=$ROOT/build/rocktree
work=$(mktemp -d /tmp/assesskit-rock.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src" "$work/elsewhere"
# Build from a copy, to see what luarocks leaves beside the sources.
cp -r "$MAIN" "$SANDBOX" Makefile bin csrc lua types .ci "$work/src/"
(cd "$work/src" && find . | LC_ALL=C sort) > "$work/before"
rm -rf "$TREE"
for spec in "$MAIN" "$SANDBOX"; do
  (cd "$work/src" && luarocks --lua-version=5.4 --tree "$TREE" make --deps-mode=none "$spec") \
    >"$work/luarocks.log" 2>&1 || {
    cat "$work/luarocks.log" >&2
    echo "rock-check: luarocks make $spec failed" >&2
    exit 1
  }
done
echo "luarocks make: both rocks installed into build/rocktree"
(cd "$work/src" && find . | LC_ALL=C sort) > "$work/after"
if ! diff -u "$work/before" "$work/after" >"$work/left" ; then
  cat "$work/left" >&2
  echo "rock-check: luarocks make left files beside the sources (above)" >&2
  exit 1
fi
echo "luarocks make: nothing left beside the sources"

for f in $(cd lua && find . -type f | sed 's|^\./||'); do
  [ -f "$TREE/share/lua/5.4/$f" ] || { echo "rock-check: lua/$f was not installed" >&2; exit 1; }
done
for f in bin/*; do
  [ -e "$f" ] || continue
  [ -x "$TREE/bin/$(basename "$f")" ] || { echo "rock-check: $f was not installed" >&2; exit 1; }
done
rockdir=$(luarocks --lua-version=5.4 --tree "$TREE" show --rock-dir assesskit)
for f in $(cd types && find . -type f | sed 's|^\./||'); do
  [ -f "$rockdir/types/$f" ] || { echo "rock-check: types/$f was not installed in $rockdir/types" >&2; exit 1; }
done
echo "luarocks make: the annotation files are in $rockdir/types"

cd "$work/elsewhere"
env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 \
  LUA_PATH="$TREE/share/lua/5.4/?.lua;$TREE/share/lua/5.4/?/init.lua;;" \
  LUA_CPATH="$TREE/lib/lua/5.4/?.so;;" \
  lua5.4 - "$TREE" <<'LUA'
local tree = arg[1]
local function from_tree(name)
  local path = assert(package.searchpath(name, package.path) or package.searchpath(name, package.cpath))
  assert(path:sub(1, #tree) == tree, name .. " loads from " .. path .. ", not from the rock tree")
  return path
end
local ak = require "assesskit"
local core = require "assesskit.core"
local jwt = require "assesskit.jwt"
from_tree("assesskit")
from_tree("assesskit.core")
from_tree("assesskit.jwt")
from_tree("assesskit.sandbox")
assert(type(ak._VERSION) == "string")
assert(type(core.session) == "function" and type(jwt.encode) == "function")
assert(core.b64url_encode("foobar") == "Zm9vYmFy")
local v = core.versions()
print(("require works from another directory: assesskit %s, libcurl %s, %s")
  :format(ak._VERSION, v.curl, v.openssl))
LUA
