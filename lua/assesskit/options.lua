--- Strict options: an unknown option is a mistake, and the error names the nearest valid one.
--
-- The one checker every option table of assesskit goes through (`client.new`,
-- `talview.new`, `interviewmocha.new`, `auth`, per-call options, `each`/`pages`, the command
-- line's config file; `map` too): `options.check(opts, KNOWN, where, level)` raises
-- `<where>: unknown option 'timout' (did you mean 'timeout'?)` at the caller's line, before
-- anything is sent. `nearest` ranks names by edit distance (also for the command line's
-- "did you mean" of endpoint names).
--
-- Runs on Lua 5.4 and LuaJIT; requires nothing.
-- @module assesskit.options
-- @usage
-- local options = require("assesskit.options")
-- local KNOWN = { "timeout", "retries" }
-- function M.new(opts) options.check(opts, KNOWN, "mylib.new", 2) ... end
local type, tostring, pairs, error = type, tostring, pairs, error
local string_byte, string_lower, string_gsub, string_format =
  string.byte, string.lower, string.gsub, string.format
local table_sort = table.sort
local math_floor = math.floor

local M = {}

--- The edit distance between two strings (insertions, deletions, substitutions and swaps of
-- two neighbours each count one).
-- @tparam string a
-- @tparam string b
-- @treturn number
function M.distance(a, b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev2, prev, cur = {}, {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca = string_byte(a, i)
    for j = 1, lb do
      local cb = string_byte(b, j)
      local cost = (ca == cb) and 0 or 1
      local d = prev[j - 1] + cost
      if prev[j] + 1 < d then d = prev[j] + 1 end
      if cur[j - 1] + 1 < d then d = cur[j - 1] + 1 end
      if i > 1 and j > 1 and ca == string_byte(b, j - 1) and string_byte(a, i - 1) == cb
        and prev2[j - 2] + 1 < d then
        d = prev2[j - 2] + 1
      end
      cur[j] = d
    end
    prev2, prev, cur = prev, cur, prev2
  end
  return prev[lb]
end
local distance = M.distance

--- The names of a list ranked by edit distance to `name` (closest first, then by name), and
-- the nearest one when it is close enough to be what was meant (at most 2 edits, or a third
-- of the name's length, for longer names; case and `-`/`_` differences count nothing).
-- @tparam string name what was given
-- @tparam table names the valid names: an array, or a set (name -> true)
-- @treturn string|nil the nearest valid name, when close enough
-- @treturn table all valid names, ranked
-- @treturn table each valid name's distance to `name`
function M.nearest(name, names)
  local list = {}
  if names[1] ~= nil then
    for i = 1, #names do list[i] = names[i] end
  else
    for k in pairs(names) do list[#list + 1] = k end
  end
  local function norm(s) return string_lower((string_gsub(tostring(s), "[-_]", ""))) end
  local key, d = norm(name), {}
  for i = 1, #list do d[list[i]] = distance(key, norm(list[i])) end
  table_sort(list, function(x, y)
    if d[x] ~= d[y] then return d[x] < d[y] end
    return x < y
  end)
  local best = list[1]
  local limit = #tostring(name) > 6 and math_floor(#tostring(name) / 3) or 2
  if best ~= nil and d[best] <= limit then return best, list, d end
  return nil, list, d
end
local nearest = M.nearest

--- Raise on an option that is not one of `known`, naming the nearest valid one:
-- `<where>: unknown option 'timout' (did you mean 'timeout'?)`. The reusable checker of every
-- option table (client constructors, `auth`, per-call options, `each`/`pages`, `map`).
-- @tparam table opts the options given
-- @tparam table known the valid names: a set (name -> true) or an array
-- @tparam string where the function named in the error (`"assesskit.talview.new"`)
-- @tparam[opt=1] number level as for `error`, counted from the caller of `check_options`
-- @raise on the first unknown key (a key that is not a string too)
function M.check(opts, known, where, level)
  local set = known
  if known[1] ~= nil then
    set = {}
    for i = 1, #known do set[known[i]] = true end
  end
  for k in pairs(opts) do
    if not set[k] then
      local near = type(k) == "string" and nearest(k, known)
      error(string_format("%s: unknown option '%s'%s", where, tostring(k),
        near and (" (did you mean '" .. near .. "'?)") or ""), (level or 1) + 1)
    end
  end
end

return M
