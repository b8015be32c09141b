-- The two rockspecs (assesskit, assesskit-sandbox) list every file once: .ci/rock-check.sh's
-- listing check, on the real sources and on copies where a file is missing, listed twice, or a
-- release rockspec drifted from its scm one.

local sys = require "support.sys"
local nginx = require "support.nginx"

local q = sys.quote
local REPO = nginx.repo

describe("assesskit rockspecs", function()
  local tmp

  local function copy_sources()
    local dir = sys.tmpdir("rockspec")
    sys.must("cd " .. q(REPO) .. " && cp -r *.rockspec bin lua " .. q(dir))
    return dir
  end

  local function check(dir)
    return sys.run(q(REPO .. "/.ci/rock-check.sh") .. " --list-only " .. q(dir))
  end

  local function edit(path, from, to)
    local text = assert(sys.read(path))
    local s, e = text:find(from, 1, true)
    assert(s, "not found in " .. path .. ": " .. from)
    sys.write(path, text:sub(1, s - 1) .. to .. text:sub(e + 1))
  end

  after_each(function()
    if tmp then sys.rmdir(tmp) end
    tmp = nil
  end)

  it("list every file under lua/ and bin/ in exactly one of them", function()
    local ok, out = check(REPO)
    assert.is_true(ok, out)
  end)

  it("fail, naming the rockspec and the line to add, when a file is in neither", function()
    tmp = copy_sources()
    sys.must("mkdir -p " .. q(tmp .. "/lua/assesskit/extra"))
    sys.write(tmp .. "/lua/assesskit/extra/init.lua", "return {}\n")
    sys.write(tmp .. "/lua/assesskit/extra/thing.lua", "return {}\n")
    sys.write(tmp .. "/lua/assesskit/sandbox/extra.lua", "return {}\n")
    sys.write(tmp .. "/lua/assesskit/sandbox/extra.conf.in", "# data\n")
    local ok, out = check(tmp)
    assert.is_false(ok)
    assert.matches('missing from assesskit%-scm%-1%.rockspec build%.install%.lua: '
      .. '%["assesskit%.extra%.init"%] = "lua/assesskit/extra/init%.lua"', out)
    assert.matches('%["assesskit%.extra%.thing"%] = "lua/assesskit/extra/thing%.lua"', out)
    assert.matches('missing from assesskit%-sandbox%-scm%-1%.rockspec build%.install%.lua: '
      .. '%["assesskit%.sandbox%.extra"%] = "lua/assesskit/sandbox/extra%.lua"', out)
    assert.matches('%["assesskit%.sandbox%.extra_conf_in"%] = "lua/assesskit/sandbox/extra%.conf%.in"', out)
  end)

  it("fail when a file is listed in both, or a listed file or script is missing", function()
    tmp = copy_sources()
    edit(tmp .. "/assesskit-sandbox-scm-1.rockspec", "    lua = {\n",
      '    lua = {\n      ["assesskit.errors"] = "lua/assesskit/errors.lua",\n')
    sys.must("rm " .. q(tmp .. "/lua/assesskit/jwt.lua"))
    sys.write(tmp .. "/bin/assesskit-extra", "#!/bin/sh\n")
    local ok, out = check(tmp)
    assert.is_false(ok)
    assert.matches("lua/assesskit/errors%.lua is listed in both rockspecs", out)
    assert.matches("names a missing file: lua/assesskit/jwt%.lua", out)
    assert.matches('%["assesskit%-extra"%] = "bin/assesskit%-extra"', out)
  end)

  it("fail when a module's key would install it elsewhere than its path", function()
    tmp = copy_sources()
    edit(tmp .. "/assesskit-scm-1.rockspec", '["assesskit.cli.init"]', '["assesskit.cli"]')
    local ok, out = check(tmp)
    assert.is_false(ok)
    assert.matches('build%.install%.lua%["assesskit%.cli"%] should be %["assesskit%.cli%.init"%]', out)
  end)

  it("fail when a release rockspec differs from its scm rockspec beyond version and source", function()
    tmp = copy_sources()
    edit(tmp .. "/assesskit-0.2.0-1.rockspec", '"luasocket",', '"luasocket", "lpeg",')
    edit(tmp .. "/assesskit-sandbox-0.2.0-1.rockspec", '"assesskit == 0.2.0"', '"assesskit == 0.1.0"')
    local ok, out = check(tmp)
    assert.is_false(ok)
    assert.matches("assesskit%-0%.2%.0%-1%.rockspec differs from assesskit%-scm%-1%.rockspec at dependencies%.4", out)
    assert.matches("assesskit%-sandbox%-0%.2%.0%-1%.rockspec differs from "
      .. "assesskit%-sandbox%-scm%-1%.rockspec at dependencies%.2", out)
  end)
end)
