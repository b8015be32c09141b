-- The sandbox's modules require one another without a cycle (issue 14.9: `control` and
-- `init` used to require each other), whether a require sits at the top of a file or inside a
-- function.
local sys = require("support.sys")

local DIR = sys.repo .. "/lua/assesskit/sandbox"

-- module name -> set of the assesskit.sandbox modules its code requires (comments left out)
local function graph()
  local g = {}
  for _, file in ipairs(sys.ls(DIR)) do
    local base = file:match("^(.+)%.lua$")
    if base then
      local name = base == "init" and "assesskit.sandbox" or ("assesskit.sandbox." .. base)
      local deps = {}
      for line in assert(sys.read(DIR .. "/" .. file)):gmatch("[^\n]+") do
        local code = line:gsub("%-%-.*$", "")
        for dep in code:gmatch('require%(?%s*["\'](assesskit%.sandbox[%w_.]*)["\']') do
          if dep ~= name then deps[dep] = true end
        end
      end
      g[name] = deps
    end
  end
  return g
end

-- the first cycle found, as a list of names, or nil
local function find_cycle(g)
  local state, stack = {}, {}
  local function visit(n)
    state[n] = "open"
    stack[#stack + 1] = n
    local deps = {}
    for d in pairs(g[n] or {}) do deps[#deps + 1] = d end
    table.sort(deps)
    for _, d in ipairs(deps) do
      if state[d] == "open" then
        local cycle, on = {}, false
        for _, s in ipairs(stack) do
          if s == d then on = true end
          if on then cycle[#cycle + 1] = s end
        end
        cycle[#cycle + 1] = d
        return cycle
      elseif state[d] == nil then
        local c = visit(d)
        if c then return c end
      end
    end
    stack[#stack] = nil
    state[n] = "done"
  end
  local names = {}
  for n in pairs(g) do names[#names + 1] = n end
  table.sort(names)
  for _, n in ipairs(names) do
    if state[n] == nil then
      local c = visit(n)
      if c then return c end
    end
  end
end

describe("the sandbox's modules", function()
  it("require one another without a cycle", function()
    local g = graph()
    assert.truthy(g["assesskit.sandbox"], "init.lua not found")
    assert.truthy(next(g["assesskit.sandbox"]), "no require found in init.lua: the scan is broken")
    local cycle = find_cycle(g)
    assert.is_nil(cycle, cycle and ("require cycle: " .. table.concat(cycle, " -> ")))
  end)

  it("finds a cycle when there is one (the check can fail)", function()
    local g = { a = { b = true }, b = { c = true }, c = { a = true } }
    assert.same({ "a", "b", "c", "a" }, find_cycle(g))
  end)
end)
