--- Output helpers of the `assesskit` command line: JSON (pretty or one line), terminal
-- detection, a progress bar, and the name of a Talview action's status.
--
-- The JSON writer sorts object keys so that output is stable, keeps `/` unescaped, writes
-- JSON `null` (`cjson.null`) as `null`, and writes an empty table as `{}` unless the caller
-- knows it is a list (`opts.list`).
-- @internal assesskit.cli.output
local type, tostring, pairs, ipairs, next, error, setmetatable, getmetatable, math_type =
  type, tostring, pairs, ipairs, next, error, setmetatable, getmetatable, math.type
local string_format, string_gsub, string_rep, string_byte =
  string.format, string.gsub, string.rep, string.byte
local table_concat, table_sort = table.concat, table.sort
local math_floor, math_huge, math_min = math.floor, math.huge, math.min

local null = require("cjson").null
local action_status = require("assesskit.talview.action_status")

local M = {}

local ESCAPES = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t",
}

local function quote(s)
  s = string_gsub(s, '[%c"\\]', function(c)
    return ESCAPES[c] or string_format("\\u%04x", string_byte(c))
  end)
  return '"' .. s .. '"'
end

local function number(v)
  if v ~= v or v == math_huge or v == -math_huge then return "null" end
  if math_type and math_type(v) == "integer" then return tostring(v) end
  if v == math_floor(v) and v > -2^53 and v < 2^53 then return string_format("%d", v) end
  return string_format("%.14g", v)
end

local function is_array(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table_sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local encode -- forward

local function encode_table(t, indent, level, seen, empty_as)
  if seen[t] then error("cannot encode a table that contains itself", 0) end
  if next(t) == nil then return empty_as or "{}" end
  seen[t] = true
  local pad, inner, sep, colon = "", "", ",", ":"
  if indent then
    pad = "\n" .. string_rep(indent, level)
    inner = "\n" .. string_rep(indent, level + 1)
    colon = ": "
  end
  local parts = {}
  local open, close
  if is_array(t) then
    open, close = "[", "]"
    for i = 1, #t do
      parts[i] = inner .. encode(t[i], indent, level + 1, seen)
    end
  else
    open, close = "{", "}"
    for _, k in ipairs(sorted_keys(t)) do
      parts[#parts + 1] = inner .. quote(tostring(k)) .. colon .. encode(t[k], indent, level + 1, seen)
    end
  end
  seen[t] = nil
  return open .. table_concat(parts, sep) .. pad .. close
end

encode = function(v, indent, level, seen, empty_as)
  local t = type(v)
  if v == nil or v == null then return "null" end
  if t == "string" then return quote(v) end
  if t == "number" then return number(v) end
  if t == "boolean" then return v and "true" or "false" end
  if t == "table" then return encode_table(v, indent, level, seen, empty_as) end
  return quote(tostring(v))
end

--- Encode a value as JSON.
-- @param v any value (functions and userdata other than `null` are written as strings)
-- @tparam[opt] table opts `pretty` (indent with two spaces), `list` (an empty table is `[]`)
-- @treturn string
-- @raise when a table contains itself
-- @usage print(output.json({ id = 1, tags = {} }, { pretty = true }))
function M.json(v, opts)
  if opts ~= nil and type(opts) ~= "table" then error("output.json: opts must be a table", 2) end
  opts = opts or {}
  return encode(v, opts.pretty and "  " or nil, 0, {}, opts.list and "[]" or nil)
end

--- Whether a file descriptor of this process is a terminal.
-- Asks `test -t`, which inherits the descriptor; answers false when that cannot be run.
-- @tparam number fd 0, 1 or 2
-- @treturn boolean
function M.isatty(fd)
  if fd ~= 0 and fd ~= 1 and fd ~= 2 then error("output.isatty: fd must be 0, 1 or 2", 2) end
  local a, _, c = os.execute("test -t " .. fd)
  if c ~= nil then return a == true and c == 0 end
  return a == 0 or a == true
end

-- == Progress bar ==

local Bar = {}
Bar.__index = Bar

--- A progress bar drawn on one line of a terminal (`\r`, no newline until `finish`).
-- @tparam table opts `stream` (a file with `write`, required), `label` (text after the
--   counts), `width` (bar cells, default 30), `total` (may be set later)
-- @treturn table the bar, with `update(done[, total])` and `finish([message])`
-- @usage local bar = output.progress{ stream = io.stderr, label = "candidates" }
-- bar:update(10, 40)
-- bar:finish()
function M.progress(opts)
  if type(opts) ~= "table" or opts.stream == nil then
    error("output.progress: opts.stream is required", 2)
  end
  return setmetatable({
    stream = opts.stream, label = opts.label or "", width = opts.width or 30,
    total = opts.total, done = 0, drawn = false,
  }, Bar)
end

--- Redraw the bar.
-- @tparam number done units done so far
-- @tparam[opt] number total units in all (unknown: the bar shows a count only)
function Bar:update(done, total)
  self.done = done
  if total then self.total = total end
  local line
  local tot = self.total
  if tot and tot > 0 then
    local frac = math_min(1, done / tot)
    local full = math_floor(frac * self.width + 0.5)
    line = string_format("[%s%s] %3d%% %d/%d %s", string_rep("#", full),
      string_rep(".", self.width - full), math_floor(frac * 100 + 0.5), done, tot, self.label)
  else
    line = string_format("%d %s", done, self.label)
  end
  self.stream:write("\r", line, "\27[K")
  self.drawn = true
end

--- End the bar's line (and print a message after it).
-- @tparam[opt] string message
function Bar:finish(message)
  if self.drawn then self.stream:write("\n") end
  if message then self.stream:write(message, "\n") end
  self.drawn = false
end

--- A Talview action object with its status's name beside its number: a copy with
-- `status_name` (`"requested"`, `"processing"`, `"completed"`, `"failed"`, `"deleted"`) when
-- `status` is a known one; anything else is returned as it is.
-- @param v the value an `actions.*` endpoint answered
-- @return v, or the copy
-- @usage output.with_status_name({ id = 7, status = 1 })  --> { id = 7, status = 1, status_name = "requested" }
function M.with_status_name(v)
  if type(v) ~= "table" or v == null then return v end
  local name = action_status.name(v.status)
  if not name then return v end
  local out = setmetatable({}, getmetatable(v))
  for k, x in pairs(v) do out[k] = x end
  out.status_name = name
  return out
end

--- The JSON `null` sentinel (`cjson.null`).
M.null = null

return M
