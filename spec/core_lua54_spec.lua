-- Lua 5.4 only: to-be-closed variables on core handles. Untagged (not run under LuaJIT); the
-- 5.4 syntax lives in a string so that LuaJIT can still load this file.

local core = require "assesskit.core"
local pki_lib = require "support.pki"
local sys = require "support.sys"

describe("assesskit.core under Lua 5.4", function()
  local function chunk(src)
    if _VERSION ~= "Lua 5.4" then return nil end
    return assert(load(src, "=close54", "t", { core = core, error = error, assert = assert }))
  end

  it("closes a session at the end of a <close> scope", function()
    local f = chunk [[
      local kept
      do
        local s <close> = core.session()
        kept = s
        assert(not s:is_closed())
      end
      return kept
    ]]
    if not f then return pending("needs Lua 5.4") end
    local s = f()
    assert.is_true(s:is_closed())
    local ok, _, kind = s:request { url = "http://127.0.0.1:1/" }
    assert.is_nil(ok)
    assert.equal("closed", kind)
  end)

  it("closes a session and a key when the scope is left by an error", function()
    local pki = pki_lib.new()
    local pem = sys.read(pki:rsa_key(2048).private)
    pki:cleanup()
    local f = chunk [[
      local pem, out = ...
      local s <close> = core.session()
      local key <close> = assert(core.load_key(pem))
      out.s, out.key = s, key
      error("leaving")
    ]]
    if not f then return pending("needs Lua 5.4") end
    local out = {}
    local ok, err = pcall(f, pem, out)
    assert.is_false(ok)
    assert.matches("leaving", err)
    assert.is_true(out.s:is_closed())
    assert.is_false(out.key:is_private())
    assert.equal("key is closed", select(2, out.key:sign("x")))
  end)
end)
