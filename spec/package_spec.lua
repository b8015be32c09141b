-- The released package: one version constant that the rockspecs carry, `make dist`'s source
-- rocks installed offline into an empty tree and used from another directory (the installed
-- `assesskit-sandbox` started, the installed `assesskit` command calling it), `luarocks make`
-- leaving nothing beside the sources, and luarocks' Lua 5.1 meaning LuaJIT 2.1.

local sys = require "support.sys"
local nginx = require "support.nginx"

local q = sys.quote
local REPO = nginx.repo

-- the fields of a rockspec file
local function rockspec(path)
  local env = {}
  assert(loadfile(path, "t", env))()
  return env
end

-- the release rockspecs (NAME-X.Y.Z-N.rockspec) in the repository
local function releases()
  local out = {}
  for _, f in ipairs(sys.ls(REPO)) do
    if f:match("^[%w-]+%-[%d.]+%-%d+%.rockspec$") then out[#out + 1] = f end
  end
  return out
end

-- an environment with nothing of the checkout in it: the tree's paths, when given
local function clean_env(tree_paths)
  local env = {
    PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", HOME = os.getenv("HOME") or "/root",
    LANG = "C.UTF-8",
  }
  for k, v in pairs(tree_paths or {}) do env[k] = v end
  return env
end

describe("the assesskit package", function()
  local dirs = {}
  local function tmp(what)
    local d = sys.tmpdir(what)
    dirs[#dirs + 1] = d
    return d
  end

  after_each(function()
    for _, d in ipairs(dirs) do sys.rmdir(d) end
    dirs = {}
  end)

  it("has one version constant, and it is the release rockspecs' version", function()
    local files = releases()
    assert.same({ "assesskit-0.2.0-1.rockspec", "assesskit-sandbox-0.2.0-1.rockspec" }, files)
    local ak = require "assesskit"
    for _, f in ipairs(files) do
      local spec = rockspec(REPO .. "/" .. f)
      assert.equal(ak._VERSION .. "-1", spec.version, f)
      assert.equal(ak._VERSION, spec.source.dir:match("^assesskit%-(.*)$"), f)
    end
    -- what every part reports is that constant
    local core = require "assesskit.core"
    assert.equal(ak._VERSION, core._VERSION)
    assert.equal(ak._VERSION, core.versions().assesskit)
    assert.equal(ak._VERSION, require("assesskit.talview")._VERSION)
    assert.equal(ak._VERSION, require("assesskit.interviewmocha")._VERSION)
    assert.equal(ak._VERSION, require("assesskit.cli")._VERSION)
  end)

  it("installs from make dist's source rocks into an empty tree, offline, and runs a request "
    .. "against the installed sandbox from another directory", function()
    local out, tree, elsewhere, run_dir = tmp("dist"), tmp("tree"), tmp("elsewhere"), tmp("sbdir")
    sys.must("cd " .. q(REPO) .. " && .ci/dist.sh " .. q(out))
    local rocks = {}
    for _, f in ipairs(sys.ls(out)) do
      if f:match("%.src%.rock$") then rocks[#rocks + 1] = f end
    end
    assert.same({ "assesskit-0.2.0-1.src.rock", "assesskit-sandbox-0.2.0-1.src.rock" }, rocks)
    -- the packed rockspec names the published source, not the local archive dist used
    local packed = sys.must("unzip -p " .. q(out .. "/assesskit-0.2.0-1.src.rock") .. " assesskit-0.2.0-1.rockspec")
    assert.matches('url = "https://github%.com/assesskit/assesskit/archive/refs/tags/v0%.2%.0%.tar%.gz"', packed)

    -- offline: no proxy reachable and no server to ask; the Debian packages give cjson,
    -- LuaSocket and luaossl, so dependency resolution is off (README.md, "Installing")
    local env = clean_env({ http_proxy = "http://127.0.0.1:9", https_proxy = "http://127.0.0.1:9" })
    for _, rock in ipairs(rocks) do
      local code, o, e = sys.exec("luarocks --lua-version=5.4 --tree " .. q(tree)
        .. " install --deps-mode=none --only-server=" .. q(out) .. " " .. q(out .. "/" .. rock),
        { env = env, cwd = elsewhere })
      assert.equal(0, code, o .. e)
    end

    -- the paths the README has users eval
    local paths = {}
    local code, o = sys.exec("luarocks --lua-version=5.4 --tree " .. q(tree) .. " path", { env = env })
    assert.equal(0, code, o)
    for name, value in o:gmatch("export ([%w_]+)='([^']*)'") do paths[name] = value end
    assert.truthy(paths.LUA_PATH and paths.LUA_CPATH and paths.PATH)
    local tenv = clean_env({ LUA_PATH = paths.LUA_PATH, LUA_CPATH = paths.LUA_CPATH, PATH = paths.PATH })
    code, o = sys.exec([[sh -c "command -v assesskit; command -v assesskit-sandbox"]], { env = tenv })
    assert.equal(tree .. "/bin/assesskit\n" .. tree .. "/bin/assesskit-sandbox\n", o)

    local started = false
    local ok, err = pcall(function()
      code, o = sys.exec("assesskit-sandbox start --port 0 --dir " .. q(run_dir), { env = tenv, cwd = elsewhere })
      assert.equal(0, code, o)
      started = true
      tenv.ASSESSKIT_SANDBOX_DIR = run_dir
      local e
      code, o, e = sys.exec("assesskit talview models.candidate.get --id 10001", { env = tenv, cwd = elsewhere })
      assert.equal(0, code, e)
      local cand = require("cjson").decode(o)
      assert.equal(10001, math.tointeger(cand.id))
      assert.equal("candidate001@example.test", cand.email)
      -- the modules came from the tree, not from the checkout
      code, o = sys.exec([[lua5.4 -e 'io.write(package.searchpath("assesskit.talview", package.path))']],
        { env = tenv, cwd = elsewhere })
      assert.equal(tree .. "/share/lua/5.4/assesskit/talview/init.lua", o)
    end)
    if started then sys.exec("assesskit-sandbox stop --dir " .. q(run_dir), { env = tenv }) end
    assert(ok, err)
  end)

  it("is built by luarocks make without leaving objects or core.so beside the sources", function()
    local src, tree = tmp("src"), tmp("tree")
    sys.must("cd " .. q(REPO) .. " && cp -r *.rockspec Makefile bin csrc lua types .ci " .. q(src))
    local before = sys.must("cd " .. q(src) .. " && find . | LC_ALL=C sort")
    local code, o, e = sys.exec("luarocks --lua-version=5.4 --tree " .. q(tree)
      .. " make --deps-mode=none assesskit-scm-1.rockspec", { env = clean_env(), cwd = src })
    assert.equal(0, code, o .. e)
    assert.equal(before, sys.must("cd " .. q(src) .. " && find . | LC_ALL=C sort"))
    assert.truthy(sys.read(tree .. "/lib/lua/5.4/assesskit/core.so"))
  end)

  it("builds for LuaJIT 2.1 with luarocks --lua-version=5.1 and no extra variable", function()
    local src, tree = tmp("src"), tmp("tree")
    sys.must("cd " .. q(REPO) .. " && cp -r *.rockspec Makefile bin csrc lua types .ci " .. q(src))
    local code, o, e = sys.exec("luarocks --lua-version=5.1 --tree " .. q(tree)
      .. " make --deps-mode=none assesskit-scm-1.rockspec", { env = clean_env(), cwd = src })
    assert.equal(0, code, o .. e)
    local lt = tree .. "/share/lua/5.1/"
    local script = [[local c = require "assesskit.core"; io.write(c.versions().lua, " ", c.b64url_encode("foobar"))]]
    code, o, e = sys.exec("luajit -e " .. q(script),
      { env = clean_env({ LUA_PATH = lt .. "?.lua;" .. lt .. "?/init.lua;;",
                          LUA_CPATH = tree .. "/lib/lua/5.1/?.so;;" }) })
    assert.equal(0, code, e)
    assert.matches("^LuaJIT 2%.1.* Zm9vYmFy$", o)
  end)

  it("refuses Lua 5.1 headers without LuaJIT's, saying what to install", function()
    local empty = tmp("pc")
    local code, o, e = sys.exec(q(REPO .. "/.ci/rock-lua.sh") .. " lua5.1 /usr/include/lua5.1",
      { env = clean_env({ PKG_CONFIG_LIBDIR = empty, PKG_CONFIG_PATH = empty }) })
    assert.equal(1, code, o)
    assert.matches("LuaJIT 2%.1", e)
    assert.matches("apt%-get install libluajit2%-5%.1%-dev", e)
    assert.matches("LUA_INCDIR=", e)
    -- and Lua 5.4 headers are taken as luarocks found them
    code, o = sys.exec(q(REPO .. "/.ci/rock-lua.sh") .. " lua5.4 /usr/include/lua5.4", { env = clean_env() })
    assert.equal(0, code)
    assert.equal("-I/usr/include/lua5.4\n", o)
  end)
end)
