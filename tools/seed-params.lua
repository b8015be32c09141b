-- Writes lua/assesskit/talview/params.lua: the type and the one-line description that the
-- Talview seed gives each parameter of each catalogue endpoint, read from the parameter tables
-- that follow the endpoint's request line (its `seed_line`) up to the next request line.
--
--   lua5.4 tools/seed-params.lua [SEED [OUT]]
--   (defaults: ../shared/seeds/002_3384fbf1d7adbc06.txt, lua/assesskit/talview/params.lua)
--
-- The catalogue stays the source of truth for which parameters exist, where they go and which
-- are required; this adds what the seed says about them. Seed types become LuaLS type names:
-- integer/smallint/bigint -> integer, float/numeric -> number, boolean, text/string/varchar/
-- email/timestamps/dates/intervals -> string, object/json/jsonb -> table, "array of X" -> X[]
-- (table[] for objects, table when the element type is not said); anything else, or a
-- parameter no table documents, is left out (the runtime reports "any"). Path placeholders get
-- their description only: their type is the client's rule (a string or an integer).
-- spec/annotations_spec.lua checks that the committed file is what this writes (when the seed
-- is beside the checkout).

local seed_path = arg[1] or "../shared/seeds/002_3384fbf1d7adbc06.txt"
local out_path = arg[2] or "lua/assesskit/talview/params.lua"

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local catalogue = require("assesskit.talview.catalogue")

local lines = {}
for l in assert(io.lines(seed_path)) do lines[#lines + 1] = l end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- request lines, in order
local requests = {}
for i, l in ipairs(lines) do
  local m = l:match("^%s*(%u+)%s")
  if m == "GET" or m == "POST" or m == "PUT" or m == "PATCH" or m == "DELETE" then
    requests[#requests + 1] = i
  end
end
local function next_request(after)
  for _, i in ipairs(requests) do
    if i > after then return i end
  end
  return #lines + 1
end

local FLAGS = { yes = true, ["true"] = true, ["true,"] = true, no = false, ["false"] = false,
  flase = false, ["false,"] = false }

local STRINGY = { text = 1, string = 1, varchar = 1, email = 1, timestamptz = 1, timestamp = 1,
  date = 1, datetime = 1, time = 1, interval = 1, url = 1, uuid = 1, file = 1, binary = 1,
  char = 1, character = 1, ["timestamp(0)"] = 1, inet = 1, password = 1, phone = 1 }
local INTEGER = { integer = 1, int = 1, smallint = 1, bigint = 1, inetger = 1, ["id:"] = 1,
  id = 1, ids = 1, int64 = 1 }

-- the LuaLS type of a seed type (a list of words), or nil
local function lua_type(words)
  local w1 = (words[1] or ""):lower()
  local rest = {}
  for k = 2, #words do rest[#rest + 1] = words[k] end
  if w1 == "array" or w1 == "array/integer" then
    local elem = rest
    if (elem[1] or ""):lower() == "of" then table.remove(elem, 1) end
    local e = (elem[1] or ""):lower()
    if w1 == "array/integer" or INTEGER[e] then return "integer[]" end
    if e:match("^object") or e == "objects" then return "table[]" end
    if STRINGY[e] or e == "strings" then return "string[]" end
    return "table"
  end
  if w1 == "arrayofobjects" or w1:match("^array") then return "table" end
  if INTEGER[w1] then return "integer" end
  if w1 == "float" or w1 == "numeric" or w1 == "number" or w1 == "double" then return "number" end
  if w1 == "boolean" or w1 == "bool" then return "boolean" end
  if w1 == "json" and (rest[1] or ""):lower() == "string" then return "string" end
  if w1 == "object" or w1 == "json" or w1 == "jsonb" then return "table" end
  if STRINGY[w1] then return "string" end
  return nil
end

-- how many words after the name make the type: "array of integer" 3, "interval second" 2,
-- "timestamp(0) with time zone" 4, "JSON String" 2, "array Integer" 2, else 1
local function type_width(toks, k)
  local a, b = (toks[k] or ""):lower(), (toks[k + 1] or ""):lower()
  if a == "array" and b == "of" then return 3 end
  if a == "array" and (INTEGER[b] or b == "object" or b == "string") then return 2 end
  if a == "interval" and b == "second" then return 2 end
  if a == "timestamp(0)" and b == "with" then return 4 end
  if a == "json" and b == "string" then return 2 end
  return 1
end

-- the parameter tables of lines [from, to): { {label =, rows = { {name, type, description} } } }
local function tables_in(from, to)
  local out = {}
  local i = from
  while i < to do
    local hdr = trim(lines[i]):lower()
    if hdr:match("^p*arameters?%s+type") then
      local j = i - 1
      while j > from and trim(lines[j]) == "" do j = j - 1 end
      local label = trim(lines[j] or ""):lower()
      local kind = label:match("^query") and "query" or label:match("^body") and "body"
        or label:match("^url") and "path" or label:match("^json") and "body" or nil
      local flag_after_type = hdr:match("^%S+%s+type%s+mandatory") or hdr:match("^%S+%s+type%s+is%s*optional")
        or hdr:match("^%S+%s+type%s+required")
      local flag_last = not flag_after_type and (hdr:match("optional") or hdr:match("required"))
      local default_last = hdr:match("default%s+value$")
      local t = { label = kind, rows = {} }
      i = i + 1
      while i < to and trim(lines[i]) ~= "" do
        local toks = {}
        for w in trim(lines[i]):gmatch("%S+") do toks[#toks + 1] = w end
        local name = toks[1]
        if name:match("^[%a_][%w_]*$") and not FLAGS[name:lower()] and #toks >= 2 then
          local width = type_width(toks, 2)
          local words = {}
          for k = 2, 1 + width do words[#words + 1] = toks[k] end
          local k = 2 + width
          if flag_after_type and toks[k] and FLAGS[toks[k]:lower()] ~= nil then k = k + 1 end
          local last = #toks
          if flag_last and last >= k and FLAGS[toks[last]:lower()] ~= nil then last = last - 1 end
          if default_last and last > k then last = last - 1 end
          local desc = {}
          for n = k, last do desc[#desc + 1] = toks[n] end
          t.rows[#t.rows + 1] = { name = name, type = lua_type(words), description = table.concat(desc, " ") }
        end
        i = i + 1
      end
      out[#out + 1] = t
    end
    i = i + 1
  end
  return out
end

-- the documentation of one parameter: a row of a table labelled `where` first, then any row
local function find(tables, name, where)
  local found
  for _, t in ipairs(tables) do
    for _, r in ipairs(t.rows) do
      if r.name == name then
        if t.label == where then return r end
        found = found or r
      end
    end
  end
  return found
end

local function clean(s)
  s = s:gsub("%s+", " ")
  if #s > 160 then s = s:sub(1, 157):gsub("%s+%S*$", "") .. "..." end
  return s
end

local entries = {}
for _, e in ipairs(catalogue.endpoints) do
  local start = e.seed_line
  local tables = start and tables_in(start + 1, next_request(start)) or {}
  local docs = {}
  local function doc(name, where)
    if docs[name] then return end
    local r = find(tables, name, where)
    local ty = where ~= "path" and r and r.type or nil -- path values: the client's rule, not the seed's
    if r and (ty or r.description ~= "") then
      docs[name] = { type = ty, description = r.description ~= "" and clean(r.description) or nil }
    end
  end
  for name in e.path:gmatch("{([%w_]+)}") do doc(name, "path") end
  for _, n in ipairs(e.query or {}) do doc(n, "query") end
  for _, n in ipairs(e.body or {}) do doc(n, "body") end
  if next(docs) then entries[#entries + 1] = { name = e.name, docs = docs } end
end

local out = {}
local function w(s) out[#out + 1] = s end
w("--- The type and one-line description the Talview seed gives each documented parameter.\n")
w("--\n")
w("-- Generated by tools/seed-params.lua from the seed's parameter tables (002_*.txt); do not\n")
w("-- edit by hand: fix the tool or the catalogue and run it again. Keyed by catalogue name,\n")
w("-- then parameter name: `{type =, description =}` (`type` a LuaLS type name; either may be\n")
w("-- absent). Read by `tv:endpoints()` (its `params`) and by tools/annotations.lua; the\n")
w("-- catalogue says which parameters exist, where they go and which are required.\n")
w("-- @internal assesskit.talview.params\n\n")
w("-- luacheck: no max line length\n\n")
w("return {\n")
for _, ent in ipairs(entries) do
  w(("  [%q] = {\n"):format(ent.name))
  local names = {}
  for n in pairs(ent.docs) do names[#names + 1] = n end
  table.sort(names)
  for _, n in ipairs(names) do
    local d = ent.docs[n]
    local parts = {}
    if d.type then parts[#parts + 1] = ("type = %q"):format(d.type) end
    if d.description then parts[#parts + 1] = ("description = %q"):format(d.description) end
    local key = n:match("^[%a_][%w_]*$") and n or ("[%q]"):format(n)
    w(("    %s = { %s },\n"):format(key, table.concat(parts, ", ")))
  end
  w("  },\n")
end
w("}\n")

local f = assert(io.open(out_path, "w"))
f:write(table.concat(out))
f:close()
io.stderr:write(("seed-params: %d endpoints documented, written to %s\n"):format(#entries, out_path))
