--- Path routing over catalogue-shaped endpoint tables: `{method=, path="/models/x/{id}"}`.
-- Literal segments win over placeholders; a path that exists with another method is reported
-- so that the caller can answer 405 with an `Allow` header.
-- @module assesskit.sandbox.router

local ipairs, pairs, next, type, error, setmetatable = ipairs, pairs, next, type, error, setmetatable
local string_gmatch, string_match, table_concat, table_sort =
  string.gmatch, string.match, table.concat, table.sort

local M = {}
local Router = {}
Router.__index = Router

local function split(path)
  local out = {}
  for seg in string_gmatch(path, "[^/]+") do out[#out + 1] = seg end
  return out
end

--- Build a router.
-- @tparam {table,...} endpoints each with `method` and `path` (placeholders `{name}`)
-- @treturn table the router
function M.new(endpoints)
  if type(endpoints) ~= "table" then error("router.new: endpoints table expected", 2) end
  local self = setmetatable({ root = { lit = {}, var = nil, here = {} } }, Router)
  for _, e in ipairs(endpoints) do self:add(e) end
  return self
end

--- Add one endpoint. A later endpoint with the same method and path is ignored.
-- @tparam table e endpoint
function Router:add(e)
  local node = self.root
  for _, seg in ipairs(split(e.path)) do
    local name = string_match(seg, "^{([%w_]+)}$")
    if name then
      node.var = node.var or { lit = {}, var = nil, here = {}, name = name }
      node = node.var
    else
      node.lit[seg] = node.lit[seg] or { lit = {}, var = nil, here = {} }
      node = node.lit[seg]
    end
  end
  if not node.here[e.method] then
    node.here[e.method] = { endpoint = e, names = M.names_for(e.path) }
  end
end

--- Placeholder names of a path template, in order.
-- @tparam string path
-- @treturn table
function M.names_for(path)
  local names = {}
  for name in string_gmatch(path, "{([%w_]+)}") do names[#names + 1] = name end
  return names
end

local function walk(node, segs, i, vals, out)
  if i > #segs then
    if next(node.here) then
      local copy = {}
      for k, v in ipairs(vals) do copy[k] = v end
      out[#out + 1] = { node = node, vals = copy }
    end
    return
  end
  local seg = segs[i]
  local lit = node.lit[seg]
  if lit then walk(lit, segs, i + 1, vals, out) end
  if node.var then
    vals[#vals + 1] = seg
    walk(node.var, segs, i + 1, vals, out)
    vals[#vals] = nil
  end
end

--- Match a request.
-- @tparam string method
-- @tparam string path (already percent-decoded)
-- @treturn[1] table endpoint
-- @treturn[1] table params placeholder name -> value
-- @treturn[2] nil
-- @treturn[2] ?string the allowed methods ("GET, PUT") when the path exists, nil when not
function Router:match(method, path)
  local segs = split(path)
  local found = {}
  walk(self.root, segs, 1, {}, found)
  if #found == 0 then return nil, nil end
  local allowed = {}
  for _, f in ipairs(found) do
    local hit = f.node.here[method] or (method == "HEAD" and f.node.here.GET)
    if hit then
      local params = {}
      for k, name in ipairs(hit.names) do params[name] = f.vals[k] end
      return hit.endpoint, params
    end
    for m in pairs(f.node.here) do allowed[m] = true end
  end
  local list = {}
  for m in pairs(allowed) do list[#list + 1] = m end
  table_sort(list)
  return nil, table_concat(list, ", ")
end

return M
