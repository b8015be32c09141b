--- A small JSON codec for the sandbox that keeps what lua-cjson 2.1.0 loses: empty arrays
-- stay arrays (`json.array`), null stays null (`json.null`), and objects keep a stable key
-- order (the order recorded by `json.object`, then the remaining keys sorted), so answers read
-- like the seed's samples.
--
-- Runs on LuaJIT (inside nginx) and Lua 5.4.
-- @module assesskit.sandbox.json

local type, pairs, ipairs, tostring, tonumber, pcall = type, pairs, ipairs, tostring, tonumber, pcall
local setmetatable, getmetatable, rawget, error = setmetatable, getmetatable, rawget, error
local string_format, string_byte, string_char, string_sub, string_find, string_gsub, string_match =
  string.format, string.byte, string.char, string.sub, string.find, string.gsub, string.match
local table_concat, table_sort, math_floor, math_huge = table.concat, table.sort, math.floor, math.huge

local M = {}

local ARRAY = { __name = "json.array" }
local OBJECT = { __name = "json.object" }

--- The JSON null: a unique sentinel that survives being stored in a table.
M.null = setmetatable({}, { __name = "json.null", __tostring = function() return "null" end })

--- Mark a table as a JSON array (so that an empty one encodes as `[]`).
-- @tparam[opt] table t the table (a new one when nil)
-- @treturn table t
function M.array(t)
  return setmetatable(t or {}, ARRAY)
end

--- Mark a table as a JSON object, optionally recording its key order.
-- @tparam[opt] table t the table (a new one when nil)
-- @tparam[opt] {string,...} order keys in output order
-- @treturn table t
function M.object(t, order)
  t = t or {}
  local mt = { __name = "json.object", order = order }
  return setmetatable(t, order and mt or OBJECT)
end

--- True if `t` is marked as a JSON array.
-- @param t any value
-- @treturn boolean
function M.is_array(t)
  return type(t) == "table" and getmetatable(t) == ARRAY
end

--- Key order recorded for an object, if any.
-- @tparam table t
-- @treturn ?table
function M.order_of(t)
  local mt = getmetatable(t)
  return mt and rawget(mt, "order") or nil
end

--- Deep copy a decoded value, keeping array marks and key order.
-- @param v any JSON value
-- @return the copy
function M.copy(v)
  if type(v) ~= "table" or v == M.null then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = M.copy(x) end
  local mt = getmetatable(v)
  if mt then setmetatable(out, mt) end
  return out
end

-- Position of the first byte that breaks UTF-8 well-formedness (overlongs, surrogates,
-- beyond U+10FFFF, truncated sequences), or nil when the string is well formed.
local function utf8_scan(s, from)
  local i, n = from or 1, #s
  if not string_find(s, "[\128-\255]", i) then return nil end
  while i <= n do
    local c = string_byte(s, i)
    if c < 0x80 then
      i = i + 1
    else
      local len, min
      if c >= 0xC2 and c <= 0xDF then len, min = 2, 0x80
      elseif c >= 0xE0 and c <= 0xEF then len, min = 3, 0x800
      elseif c >= 0xF0 and c <= 0xF4 then len, min = 4, 0x10000
      else return i end
      if i + len - 1 > n then return i end
      local cp = c % (2 ^ (7 - len))
      for k = 1, len - 1 do
        local cc = string_byte(s, i + k)
        if cc < 0x80 or cc > 0xBF then return i end
        cp = cp * 64 + (cc - 0x80)
      end
      if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return i end
      i = i + len
    end
  end
  return nil
end

--- Whether a string is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
-- @tparam string s
-- @treturn boolean
function M.valid_utf8(s)
  return utf8_scan(s) == nil
end

-- Replace every byte that breaks UTF-8 with U+FFFD, so that the output is always valid JSON.
local function utf8_clean(s)
  local bad = utf8_scan(s)
  if not bad then return s end
  local out, start = {}, 1
  while bad do
    out[#out + 1] = string_sub(s, start, bad - 1)
    out[#out + 1] = "\239\191\189"
    start = bad + 1
    bad = utf8_scan(s, start)
  end
  out[#out + 1] = string_sub(s, start)
  return table_concat(out)
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encode_string(s)
  s = utf8_clean(s)
  return '"' .. string_gsub(s, '[%c"\\]', function(c)
    return escapes[c] or string_format("\\u%04x", string_byte(c))
  end) .. '"'
end

local function is_sequence(t)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or math_floor(k) ~= k then return false end
    if k > n then n = k end
  end
  for i = 1, n do if t[i] == nil then return false end end
  return n > 0, n
end

local function sorted_keys(t, order)
  local keys, seen = {}, {}
  if order then
    for _, k in ipairs(order) do
      if t[k] ~= nil and not seen[k] then keys[#keys + 1] = k; seen[k] = true end
    end
  end
  local rest = {}
  for k in pairs(t) do
    if not seen[k] then rest[#rest + 1] = k end
  end
  table_sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end

local encode_value

local function encode_table(t, depth, buf)
  -- deeper than anything the decoder (200) and the query parser (64) let in, with records
  -- expanded into records on top: the limit only stops a table that contains itself
  if depth > 2000 then error("json: nesting too deep", 0) end
  local mt = getmetatable(t)
  local seq, n = is_sequence(t)
  if mt == ARRAY or (seq and mt == nil) then
    n = n or 0
    if mt == ARRAY then n = #t end
    buf[#buf + 1] = "["
    for i = 1, n do
      if i > 1 then buf[#buf + 1] = "," end
      encode_value(t[i], depth + 1, buf)
    end
    buf[#buf + 1] = "]"
    return
  end
  buf[#buf + 1] = "{"
  local first = true
  for _, k in ipairs(sorted_keys(t, mt and rawget(mt, "order"))) do
    local v = t[k]
    if type(v) ~= "function" then
      if not first then buf[#buf + 1] = "," end
      first = false
      buf[#buf + 1] = encode_string(tostring(k))
      buf[#buf + 1] = ":"
      encode_value(v, depth + 1, buf)
    end
  end
  buf[#buf + 1] = "}"
end

encode_value = function(v, depth, buf)
  local tv = type(v)
  if v == nil or v == M.null then
    buf[#buf + 1] = "null"
  elseif tv == "boolean" then
    buf[#buf + 1] = v and "true" or "false"
  elseif tv == "number" then
    if v ~= v or v == math_huge or v == -math_huge then
      buf[#buf + 1] = "null"
    elseif math_floor(v) == v and v > -1e15 and v < 1e15 then
      buf[#buf + 1] = string_format("%d", v)
    else
      buf[#buf + 1] = string_format("%.14g", v)
    end
  elseif tv == "string" then
    buf[#buf + 1] = encode_string(v)
  elseif tv == "table" then
    encode_table(v, depth, buf)
  else
    error("json: cannot encode a " .. tv, 0)
  end
end

--- Encode a Lua value as JSON.
-- @param v the value
-- @treturn string JSON text
-- @usage json.encode({ ids = json.array() })  --> {"ids":[]}
function M.encode(v)
  local buf = {}
  encode_value(v, 0, buf)
  return table_concat(buf)
end

-- Decoder -------------------------------------------------------------------------------

local function decode_error(pos, what)
  error({ json_error = string_format("%s at character %d", what, pos) }, 0)
end

local function skip_ws(s, pos)
  local _, e = string_find(s, "^[ \t\r\n]*", pos)
  return e + 1
end

local function utf8_char(cp)
  if cp < 0x80 then return string_char(cp) end
  if cp < 0x800 then
    return string_char(0xC0 + math_floor(cp / 64), 0x80 + cp % 64)
  end
  if cp < 0x10000 then
    return string_char(0xE0 + math_floor(cp / 4096), 0x80 + math_floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return string_char(0xF0 + math_floor(cp / 262144), 0x80 + math_floor(cp / 4096) % 64,
    0x80 + math_floor(cp / 64) % 64, 0x80 + cp % 64)
end

local decode_at

local function decode_string(s, pos)
  -- pos is just after the opening quote
  local buf, i = {}, pos
  while true do
    local j = string_find(s, '["\\%c]', i)
    if not j then decode_error(pos, "unterminated string") end
    buf[#buf + 1] = string_sub(s, i, j - 1)
    local c = string_sub(s, j, j)
    if c == '"' then return table_concat(buf), j + 1 end
    if c ~= "\\" then decode_error(j, "control character in string") end
    local e = string_sub(s, j + 1, j + 1)
    local simple = ({ ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f",
                      n = "\n", r = "\r", t = "\t" })[e]
    if simple then
      buf[#buf + 1] = simple
      i = j + 2
    elseif e == "u" then
      local hex = string_sub(s, j + 2, j + 5)
      if not string_find(hex, "^%x%x%x%x$") then decode_error(j, "bad unicode escape") end
      local cp = tonumber(hex, 16)
      i = j + 6
      if cp >= 0xD800 and cp <= 0xDBFF then
        local lo = string_sub(s, i, i + 5)
        if string_find(lo, "^\\u[dD][c-fC-F]%x%x$") then
          cp = 0x10000 + (cp - 0xD800) * 1024 + (tonumber(string_sub(lo, 3), 16) - 0xDC00)
          i = i + 6
        else
          cp = 0xFFFD
        end
      elseif cp >= 0xDC00 and cp <= 0xDFFF then
        cp = 0xFFFD
      end
      buf[#buf + 1] = utf8_char(cp)
    else
      decode_error(j, "bad escape")
    end
  end
end

decode_at = function(s, pos, depth)
  if depth > 200 then decode_error(pos, "nesting too deep") end
  pos = skip_ws(s, pos)
  local c = string_sub(s, pos, pos)
  if c == "{" then
    local obj, order = {}, {}
    pos = skip_ws(s, pos + 1)
    if string_sub(s, pos, pos) == "}" then return M.object(obj, order), pos + 1 end
    while true do
      if string_sub(s, pos, pos) ~= '"' then decode_error(pos, "expected a string key") end
      local k
      k, pos = decode_string(s, pos + 1)
      pos = skip_ws(s, pos)
      if string_sub(s, pos, pos) ~= ":" then decode_error(pos, "expected ':'") end
      local v
      v, pos = decode_at(s, pos + 1, depth + 1)
      if obj[k] == nil then order[#order + 1] = k end
      obj[k] = v
      pos = skip_ws(s, pos)
      local d = string_sub(s, pos, pos)
      if d == "}" then return M.object(obj, order), pos + 1 end
      if d ~= "," then decode_error(pos, "expected ',' or '}'") end
      pos = skip_ws(s, pos + 1)
    end
  elseif c == "[" then
    local arr, n = M.array(), 0
    pos = skip_ws(s, pos + 1)
    if string_sub(s, pos, pos) == "]" then return arr, pos + 1 end
    while true do
      local v
      v, pos = decode_at(s, pos, depth + 1)
      n = n + 1
      arr[n] = v
      pos = skip_ws(s, pos)
      local d = string_sub(s, pos, pos)
      if d == "]" then return arr, pos + 1 end
      if d ~= "," then decode_error(pos, "expected ',' or ']'") end
      pos = pos + 1
    end
  elseif c == '"' then
    return decode_string(s, pos + 1)
  elseif string_find(s, "^true", pos) then
    return true, pos + 4
  elseif string_find(s, "^false", pos) then
    return false, pos + 5
  elseif string_find(s, "^null", pos) then
    return M.null, pos + 4
  else
    local num = string_match(s, "^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if not num or num == "" or num == "-" then decode_error(pos, "unexpected character") end
    local v = tonumber(num)
    if not v then decode_error(pos, "bad number") end
    return v, pos + #num
  end
end

--- Decode JSON text. Arrays come back marked (`json.is_array`), null as `json.null`, objects
-- with their key order.
-- @tparam string s JSON text
-- @return the value, or nil and a message
function M.decode(s)
  if type(s) ~= "string" then error("json.decode: string expected", 2) end
  local ok, v, pos = pcall(decode_at, s, 1, 0)
  if not ok then
    if type(v) == "table" and v.json_error then return nil, v.json_error end
    return nil, tostring(v)
  end
  pos = skip_ws(s, pos)
  if pos <= #s then return nil, string_format("trailing data at character %d", pos) end
  return v
end

return M
