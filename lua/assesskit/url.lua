--- URLs: parsing, the loopback rule, percent-encoding and query strings.
--
-- The one place that decides what a URL means to assesskit: every client
-- (`assesskit.client`, `assesskit.talview`, `assesskit.interviewmocha`), the nginx transport
-- (`assesskit.ngx.transport`) and the command line ask this module, so that a URL gets the
-- same answer everywhere. The C core (`assesskit.core`) keeps its own check of plain HTTP as
-- defence in depth; this module reads hosts the way libcurl does, so the two agree.
--
-- **Plain HTTP only to loopback.** `http://` is refused unless the host is a loopback
-- address or `allow_http` is set. Loopback is `localhost` (with or without a final dot, any
-- case), an IPv4 address in 127.0.0.0/8 and the IPv6 address `::1` (any spelling,
-- `[0:0:0:0:0:0:0:1]`, with or without a zone). IPv4 addresses are read as libcurl reads
-- them: one to four parts, each decimal, octal (`0177`) or hexadecimal (`0x7f`), the last
-- part filling the remaining bytes (`127.1` is 127.0.0.1, `2130706433` too); a part out of
-- range makes the host a name (`127.300.0.1` is a name, so not loopback). Names other than
-- `localhost` are never loopback (`foo.localhost` is not: it would go through DNS).
--
-- Runs on Lua 5.4 and LuaJIT (inside nginx). Percent-encoding is the C core's
-- (`assesskit.core`, loaded on first use).
-- @internal assesskit.url
-- @usage
-- local url = require("assesskit.url")
-- local u = assert(url.parse("http://127.1:8080/x?y=1"))
-- print(u.host, u.port, url.is_loopback(u.host))   --> 127.0.0.1  8080  true
-- print(url.encode_query({ ids = { 1, 2 }, q = "a b" }))  --> ids%5B0%5D=1&ids%5B1%5D=2&q=a%20b
local type, tostring, tonumber, pairs, next, error, require =
  type, tostring, tonumber, pairs, next, error, require
local string_find, string_sub, string_lower, string_gsub, string_format, string_byte,
  string_match, string_char, string_gmatch =
  string.find, string.sub, string.lower, string.gsub, string.format, string.byte,
  string.match, string.char, string.gmatch
local table_concat, table_sort = table.concat, table.sort
local math_floor, math_huge = math.floor, math.huge

local null -- cjson.null, loaded on first use (a JSON null is left out of a query)

local M = {}

local DEFAULT_PORT = { http = 80, https = 443 }

-- Characters libcurl refuses in a host name (after percent-decoding), and control bytes.
local BAD_HOST_CHAR = "[%c%s/:#%?!@{}%[%]\\%$'\"%^`%*<>=;,%+&%(%)%%|~]"

local function decode_pct(s)
  if not string_find(s, "%", 1, true) then return s end
  return (string_gsub(s, "%%(%x%x)", function(h) return string_char(tonumber(h, 16)) end))
end

-- One part of an IPv4 address as libcurl's strtoul(.., 0) reads it, or nil when the part is
-- not a number in that syntax.
local function ipv4_part(p)
  if string_find(p, "^0[xX]%x+$") then return tonumber(string_sub(p, 3), 16) end
  if string_find(p, "^0[0-7]*$") then return tonumber(p, 8) end
  if string_find(p, "^[1-9]%d*$") then return tonumber(p, 10) end
  return nil
end

local IPV4_LIMITS = { -- per number of parts: the limit of each part
  { 0xffffffff },
  { 0xff, 0xffffff },
  { 0xff, 0xff, 0xffff },
  { 0xff, 0xff, 0xff, 0xff },
}

--- Read a host as an IPv4 address the way libcurl does (`127.1`, `0x7f.0.0.1`,
-- `2130706433`, `127.0.0.1`).
-- @tparam string host
-- @treturn string|nil the dotted-quad form, or nil when the host is a name
function M.ipv4(host)
  if type(host) ~= "string" or not string_find(host, "^%d") then return nil end
  local parts, n = {}, 0
  for p in string_gmatch(host .. ".", "([^.]*)%.") do
    n = n + 1
    if n > 4 then return nil end
    local v = ipv4_part(p)
    if not v or v > 0xffffffff then return nil end
    parts[n] = v
  end
  if n == 0 or string_sub(host, -1) == "." then return nil end
  local limits = IPV4_LIMITS[n]
  for i = 1, n do
    if parts[i] > limits[i] then return nil end
  end
  local last, bytes = parts[n], {}
  for i = 1, n - 1 do bytes[i] = parts[i] end
  for i = 4, n, -1 do
    bytes[i] = last % 256
    last = math_floor(last / 256)
  end
  return string_format("%d.%d.%d.%d", bytes[1], bytes[2], bytes[3], bytes[4])
end

-- The eight 16-bit groups of an IPv6 address (without brackets or zone), or nil.
local function ipv6_groups(s)
  if not string_find(s, "^[%x:.]+$") then return nil end
  local tail4
  local head = string_match(s, "^(.*:)%d+%.%d+%.%d+%.%d+$")
  if head then
    local quad = string_sub(s, #head + 1)
    local a, b, c, d = string_match(quad, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
    if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
    tail4 = { a * 256 + b, c * 256 + d }
    s = head
    if string_sub(s, -2) ~= "::" then s = string_sub(s, 1, -2) end
  end
  local function split(part)
    local out = {}
    if part == "" then return out end
    for g in string_gmatch(part .. ":", "([^:]*):") do
      if not string_find(g, "^%x%x?%x?%x?$") then return nil end
      out[#out + 1] = tonumber(g, 16)
    end
    return out
  end
  local want = tail4 and 6 or 8
  local groups
  local a, b = string_find(s, "::", 1, true)
  if a then
    if string_find(s, "::", b, true) then return nil end
    local left, right = split(string_sub(s, 1, a - 1)), split(string_sub(s, b + 1))
    if not left or not right or #left + #right >= want then return nil end
    groups = left
    for _ = 1, want - #left - #right do groups[#groups + 1] = 0 end
    for i = 1, #right do groups[#groups + 1] = right[i] end
  else
    groups = split(s)
    if not groups or #groups ~= want then return nil end
  end
  if tail4 then groups[7], groups[8] = tail4[1], tail4[2] end
  return groups
end

--- Whether a host is a loopback address: `localhost` (or `localhost.`), 127.0.0.0/8 in any
-- form libcurl reads (see the module description), or `::1` (with or without brackets and a
-- zone).
-- @tparam string host a host, as `parse` gives it or as written in a URL
-- @treturn boolean
function M.is_loopback(host)
  if type(host) ~= "string" then return false end
  host = string_lower(host)
  if host == "localhost" or host == "localhost." then return true end
  local inner = string_match(host, "^%[(.*)%]$") or host
  if string_find(inner, ":", 1, true) then
    inner = string_gsub(inner, "%%.*$", "") -- the zone
    local g = ipv6_groups(inner)
    if not g then return false end
    for i = 1, 7 do
      if g[i] ~= 0 then return false end
    end
    return g[8] == 1
  end
  local quad = M.ipv4(host)
  return quad ~= nil and string_sub(quad, 1, 4) == "127."
end

--- Parse an absolute http(s) URL.
-- The host comes back the way libcurl uses it: percent-decoded, lower case, an IPv4 address
-- in dotted-quad form (`127.1` -> `127.0.0.1`), an IPv6 address without brackets (and its
-- zone apart). Userinfo (`user:pass@`) ends at the first `@`.
-- @tparam string s the URL
-- @tparam[opt] table schemes the schemes accepted, name -> default port (default: `http` 80 and
--   `https` 443; `assesskit.redis` passes `{redis = 6379}`)
-- @treturn[1] table `{scheme =, userinfo =, host =, ipv6 =, zone =, port =, path =, query =,
--   fragment =, origin =}`: `port` the number written (nil when none), `path` from the
--   first `/` (`""` when the URL has none), `query` and `fragment` without their `?`/`#`
--   (nil when absent), `origin` `scheme://host[:port]` with the port only when it is not the
--   scheme's default (an IPv6 host in brackets)
-- @treturn[2] nil
-- @treturn[2] string why the URL is not one (`"malformed URL (bad host)"`, ...)
function M.parse(s, schemes)
  local default_port = schemes or DEFAULT_PORT
  if type(s) ~= "string" then return nil, "URL must be a string" end
  if string_find(s, "[%c ]") then
    return nil, "malformed URL (whitespace or control character)"
  end
  local scheme, rest = string_match(s, "^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "malformed URL (no scheme://)" end
  scheme = string_lower(scheme)
  if not default_port[scheme] then
    if schemes then
      local names = {}
      for name in pairs(schemes) do names[#names + 1] = name end
      table.sort(names)
      return nil, "unsupported URL scheme '" .. scheme .. "' (" .. table.concat(names, " or ")
        .. " expected)"
    end
    return nil, "unsupported URL scheme '" .. scheme .. "' (http or https expected)"
  end
  local authority = string_match(rest, "^[^/?#]*")
  local tail = string_sub(rest, #authority + 1)
  local u = { scheme = scheme }
  local at = string_find(authority, "@", 1, true)
  if at then
    u.userinfo = string_sub(authority, 1, at - 1)
    authority = string_sub(authority, at + 1)
  end
  local host, port
  if string_byte(authority, 1) == 91 then -- "["
    local inner
    inner, port = string_match(authority, "^%[([^%]]*)%](.*)$")
    if not inner then return nil, "malformed URL (bad host)" end
    local addr, zone = string_match(inner, "^([^%%]*)%%(.*)$")
    if addr then
      zone = decode_pct((string_gsub(zone, "^25", "")))
      if string_find(zone, "[^%w%-._~]") then return nil, "malformed URL (bad IPv6 zone)" end
      if zone ~= "" then u.zone = zone end
    else
      addr = inner
    end
    if not ipv6_groups(addr) then return nil, "malformed URL (bad IPv6 address)" end
    host, u.ipv6 = string_lower(addr), true
  else
    host, port = string_match(authority, "^([^:]*)(.*)$")
    host = string_lower(decode_pct(host))
    if host == "" or string_find(host, BAD_HOST_CHAR) then
      return nil, "malformed URL (bad host)"
    end
    host = M.ipv4(host) or host
  end
  if port ~= "" then
    local digits = string_match(port, "^:(%d*)$")
    if not digits then return nil, "malformed URL (bad port)" end
    if digits ~= "" then
      port = tonumber(digits)
      if port > 65535 then return nil, "malformed URL (bad port)" end
    else
      port = nil
    end
  else
    port = nil
  end
  u.host, u.port = host, port
  local path, query, fragment = string_match(tail, "^([^?#]*)%??([^#]*)(#?.*)$")
  u.path = path
  if string_find(tail, "?", 1, true) and string_find(tail, "?", 1, true) <= #path + 1 then
    u.query = query
  end
  if fragment ~= "" then u.fragment = string_sub(fragment, 2) end
  local h = u.ipv6 and ("[" .. host .. "]") or host
  if port and port ~= default_port[scheme] then h = h .. ":" .. port end
  u.origin = scheme .. "://" .. h
  return u
end

--- The one rule for plain HTTP: may a request go to this URL?
-- @tparam string|table u a URL, or what `parse` returned
-- @tparam[opt=false] boolean allow_http permit plain `http://` to any host
-- @treturn[1] true
-- @treturn[2] false
-- @treturn[2] string the reason: `refusing plain http:// to <host> (use https, or
--   allow_http = true)`, or why the URL does not parse
function M.allowed(u, allow_http)
  if type(u) ~= "table" then
    local perr
    u, perr = M.parse(u)
    if not u then return false, perr end
  end
  if u.scheme == "http" and not allow_http and not M.is_loopback(u.host) then
    return false, "refusing plain http:// to " .. (u.ipv6 and ("[" .. u.host .. "]") or u.host)
      .. " (use https, or allow_http = true)"
  end
  return true
end

-- ------------------------------------------------------------------------------------------
-- Percent-encoding and query strings

local core_encode -- assesskit.core's url_encode, loaded on first use

--- Percent-encode a string (RFC 3986: only `A-Za-z0-9-._~` are kept), with the C core's
-- `url_encode`.
-- @tparam string s
-- @treturn string
function M.encode(s)
  local f = core_encode
  if not f then
    f = require("assesskit.core").url_encode
    core_encode = f
  end
  return f(s)
end

--- Format a scalar for a URL: integral numbers without a fraction, booleans as
-- `true`/`false`, strings as they are.
-- @param v a string, number or boolean
-- @treturn string|nil the text, or nil for other types (and NaN, infinities)
function M.scalar(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    if v == math_floor(v) and v > -2^53 and v < 2^53 then return string_format("%d", v) end
    if v ~= v or v == math_huge or v == -math_huge then return nil end
    return string_format("%.14g", v)
  end
  if t == "boolean" then return v and "true" or "false" end
  return nil
end
local scalar = M.scalar

local function is_array(t)
  local n = #t
  if n == 0 then return next(t) == nil end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function sorted_keys(t)
  local keys, n = {}, 0
  for k in pairs(t) do
    n = n + 1
    keys[n] = k
  end
  if n > 1 then
    table_sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  end
  return keys, n
end

local function flatten_into(out, name, v, comma)
  if v == nil or v == null then return end
  if type(v) == "table" then
    if comma and comma[name] and is_array(v) then
      local items = {}
      for i = 1, #v do items[i] = scalar(v[i]) or tostring(v[i]) end
      out[#out + 1] = { name, table_concat(items, ",") }
    elseif is_array(v) then
      for i = 1, #v do flatten_into(out, name .. "[" .. (i - 1) .. "]", v[i]) end
    else
      local keys, n = sorted_keys(v)
      for i = 1, n do
        local k = keys[i]
        flatten_into(out, name .. "[" .. tostring(k) .. "]", v[k])
      end
    end
    return
  end
  local s = scalar(v)
  if s == nil then
    error("assesskit: parameter '" .. name .. "' cannot be a " .. type(v), 0)
  end
  out[#out + 1] = { name, s }
end

--- Flatten parameters into name/value pairs, the way a query string or a multipart form
-- carries them: keys sorted; `nil` and JSON `null` left out; arrays as `name[0]`,
-- `name[1]`... (or one comma-separated value when `comma[name]` is set); maps as
-- `name[key]`.
-- @tparam table params
-- @tparam[opt] table comma set of parameter names sent as comma lists
-- @treturn table array of `{name, value}` (strings)
-- @raise when a value is a function, a userdata other than `null`, or a thread
function M.flatten(params, comma)
  if null == nil then null = require("cjson").null end
  local out = {}
  local keys, n = sorted_keys(params)
  for i = 1, n do
    local k = keys[i]
    flatten_into(out, tostring(k), params[k], comma)
  end
  return out
end

--- Encode a query string (without the `?`) or an `application/x-www-form-urlencoded` body,
-- from `flatten`ed parameters; names and values percent-encoded (so `name[0]` is written
-- `name%5B0%5D`).
-- @tparam table params
-- @tparam[opt] table comma set of parameter names sent as comma lists
-- @treturn string
-- @raise as `flatten`
function M.encode_query(params, comma)
  local flat = M.flatten(params, comma)
  local encode = M.encode
  local buf = {}
  for i = 1, #flat do
    local p = flat[i]
    buf[i] = encode(p[1]) .. "=" .. encode(p[2])
  end
  return table_concat(buf, "&")
end

--- Decode `%XX` escapes (nothing else: `+` stays `+`).
-- @tparam string s
-- @treturn string
M.decode = decode_pct

return M
