-- The rockspec lists every module: .ci/rock-check.sh's listing check, on the real sources and
-- on copies with a module, a script or a C source missing from the rockspec.

local sys = require "support.sys"
local nginx = require "support.nginx"

local q = sys.quote
local REPO = nginx.repo

describe("assesskit rockspec", function()
  local tmp

  local function copy_sources()
    local dir = sys.tmpdir("rockspec")
    sys.must("cd " .. q(REPO) .. " && cp -r assesskit-scm-1.rockspec bin csrc lua " .. q(dir))
    return dir
  end

  local function check(dir)
    return sys.run(q(REPO .. "/.ci/rock-check.sh") .. " --list-only " .. q(dir))
  end

  after_each(function()
    if tmp then sys.rmdir(tmp) end
    tmp = nil
  end)

  it("lists every Lua module under lua/, every bin/ script and every csrc/*.c", function()
    local ok, out = check(REPO)
    assert.is_true(ok, out)
  end)

  it("fails, naming the file, when a Lua module is missing from it", function()
    tmp = copy_sources()
    sys.must("mkdir -p " .. q(tmp .. "/lua/assesskit/extra"))
    sys.write(tmp .. "/lua/assesskit/extra/init.lua", "return {}\n")
    sys.write(tmp .. "/lua/assesskit/extra/thing.lua", "return {}\n")
    local ok, out = check(tmp)
    assert.is_false(ok)
    assert.matches('%["assesskit%.extra"%] = "lua/assesskit/extra/init%.lua"', out)
    assert.matches('%["assesskit%.extra%.thing"%] = "lua/assesskit/extra/thing%.lua"', out)
  end)

  it("fails when a listed module, a bin/ script or a C source is not in step", function()
    tmp = copy_sources()
    sys.must("rm " .. q(tmp .. "/lua/assesskit/jwt.lua"))
    sys.write(tmp .. "/bin/assesskit-extra", "#!/bin/sh\n")
    sys.write(tmp .. "/csrc/extra.c", "int extra;\n")
    local ok, out = check(tmp)
    assert.is_false(ok)
    assert.matches("names a missing file: lua/assesskit/jwt%.lua", out)
    assert.matches('%["assesskit%-extra"%] = "bin/assesskit%-extra"', out)
    assert.matches('sources: "csrc/extra%.c"', out)
  end)
end)
