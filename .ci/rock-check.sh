#!/usr/bin/env bash
# Proves the rock (run by `make test`):
#  1. every Lua module under lua/ is in the rockspec's build.modules, every script under bin/ in
#     build.install.bin, every csrc/*.c in assesskit.core's sources, and nothing listed is
#     missing (prints what is wrong, exits 1);
#  2. Debian's luarocks, offline and without dependency resolution, installs the rock into
#     build/rocktree from a copy of the sources;
#  3. from another directory, with only that tree on the module paths, `require "assesskit"`,
#     `require "assesskit.core"` and `require "assesskit.jwt"` load the installed files.
#
#   .ci/rock-check.sh                  all three
#   .ci/rock-check.sh --list-only DIR  only the listing check, for the sources in DIR
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROCKSPEC=assesskit-scm-1.rockspec

list_check() {  # $1: source directory holding the rockspec, lua/, bin/, csrc/
  lua5.4 - "$1" "$ROCKSPEC" <<'LUA'
local dir, rockspec = arg[1], arg[2]
local env = {}
local chunk = assert(loadfile(dir .. "/" .. rockspec, "t", env))
chunk()
local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = string.format(fmt, ...) end
local function files(sub, pattern)
  local out = {}
  local p = io.popen("cd '" .. dir .. "' && find " .. sub .. " -type f 2>/dev/null | LC_ALL=C sort")
  for f in p:read("a"):gmatch("[^\n]+") do
    if f:match(pattern) then out[#out + 1] = f end
  end
  p:close()
  return out
end
local function exists(path)
  local f = io.open(dir .. "/" .. path, "rb")
  if f then f:close() end
  return f ~= nil
end
local modules = env.build and env.build.modules or {}
for _, f in ipairs(files("lua", "%.lua$")) do
  local name = f:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  if modules[name] == nil then
    problem('missing from build.modules: ["%s"] = "%s",', name, f)
  elseif modules[name] ~= f then
    problem('build.modules["%s"] is %s, expected "%s"', name, tostring(modules[name]), f)
  end
end
local core_sources = {}
for name, v in pairs(modules) do
  if type(v) == "string" and not exists(v) then
    problem('build.modules["%s"] names a missing file: %s', name, v)
  elseif type(v) == "table" then
    for _, src in ipairs(v.sources or v) do
      core_sources[src] = true
      if not exists(src) then problem('build.modules["%s"] names a missing source: %s', name, src) end
    end
  end
end
for _, f in ipairs(files("csrc", "%.c$")) do
  if not core_sources[f] then problem('missing from build.modules["assesskit.core"].sources: "%s"', f) end
end
local bins = {}
for name, f in pairs(env.build and env.build.install and env.build.install.bin or {}) do
  bins[f] = true
  if not exists(f) then problem('build.install.bin["%s"] names a missing file: %s', name, f) end
end
for _, f in ipairs(files("bin", ".")) do
  if not bins[f] then
    problem('missing from build.install.bin: ["%s"] = "%s",', f:gsub("^bin/", ""), f)
  end
end
if #problems > 0 then
  io.stderr:write(rockspec .. " is out of date (add your module to the rockspec):\n  "
    .. table.concat(problems, "\n  ") .. "\n")
  os.exit(1)
end
print("rockspec lists every module, source and script")
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
# Build from a copy: luarocks leaves objects next to the sources.
cp -r "$ROCKSPEC" bin csrc lua "$work/src/"
rm -rf "$TREE"
lua_incdir=$(pkg-config --variable=includedir lua5.4 2>/dev/null || echo /usr/include)/lua5.4
(cd "$work/src" && luarocks --lua-version=5.4 --tree "$TREE" make --deps-mode=none \
  "$ROCKSPEC" LUA_INCDIR="$lua_incdir") >"$work/luarocks.log" 2>&1 || {
  cat "$work/luarocks.log" >&2
  echo "rock-check: luarocks make failed" >&2
  exit 1
}
echo "luarocks make: installed into build/rocktree"

for f in $(cd lua && find . -type f | sed 's|^\./||'); do
  [ -f "$TREE/share/lua/5.4/$f" ] || { echo "rock-check: lua/$f was not installed" >&2; exit 1; }
done
for f in bin/*; do
  [ -e "$f" ] || continue
  [ -x "$TREE/bin/$(basename "$f")" ] || { echo "rock-check: $f was not installed" >&2; exit 1; }
done

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
assert(type(ak._VERSION) == "string")
assert(type(core.session) == "function" and type(jwt.encode) == "function")
assert(core.b64url_encode("foobar") == "Zm9vYmFy")
local v = core.versions()
print(("require works from another directory: assesskit %s, libcurl %s, %s")
  :format(ak._VERSION, v.curl, v.openssl))
LUA
