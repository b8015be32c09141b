-- The built core exports one symbol, the module's entry point (-fvisibility=hidden): its
-- helpers cannot clash with another library's in the process (nginx, a Lua host).

local sys = require "support.sys"

describe("assesskit.core shared object #luajit", function()
  it("exports only luaopen_assesskit_core", function()
    local lua = jit and "luajit" or "lua5.4"
    local so = sys.repo .. "/build/" .. lua .. "/assesskit/core.so"
    local ok, out = sys.run("nm -D --defined-only " .. sys.quote(so))
    assert.is_true(ok, out)
    local names = {}
    for name in out:gmatch("%x+ %a ([%w_]+)") do names[#names + 1] = name end
    assert.same({ "luaopen_assesskit_core" }, names)
  end)
end)
