-- `make test` shows where it is: busted's output (.busted: spec/support/output.lua) prints each
-- spec file's name as the file starts, before its tests' progress characters.

local sys = require "support.sys"
local nginx = require "support.nginx"

local q = sys.quote
local REPO = nginx.repo

describe("make test's output", function()
  local tmp
  after_each(function()
    if tmp then sys.rmdir(tmp) end
    tmp = nil
  end)

  it("names each spec file as it starts, then its results", function()
    tmp = sys.tmpdir("output")
    sys.write(tmp .. "/first_spec.lua", 'describe("a", function() it("passes", function() end) end)\n')
    sys.write(tmp .. "/second_spec.lua",
      'describe("b", function() it("fails", function() assert.is_true(false) end) end)\n')
    local code, out = sys.exec("lua5.4 /usr/bin/busted -o " .. q(REPO .. "/spec/support/output.lua") .. " "
      .. q(tmp .. "/first_spec.lua") .. " " .. q(tmp .. "/second_spec.lua"), { cwd = tmp })
    assert.equal(1, code)
    local first = out:find(tmp .. "/first_spec.lua +", 1, true)
    local second = out:find(tmp .. "/second_spec.lua ", 1, true)
    assert(first and second and first < second, out)
    assert.matches("1 success / 1 failure", out)
    -- and make test uses it
    local cfg = dofile(REPO .. "/.busted")
    assert.equal("spec/support/output.lua", cfg._all.output)
  end)
end)
