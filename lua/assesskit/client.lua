--- The shared API client: transport, hooks, retries, JSON, error mapping, paging.
--
-- The Talview and InterviewMocha clients are thin layers over this module: they supply a
-- base URL, an authenticator, and a few API-specific functions (envelope unwrapping, paging
-- headers, error bodies); everything else happens here. Users normally meet it only through
-- those clients; its interface (for people building an API client) is in docs/DESIGN.md.
--
-- **Results.** A successful call returns `value, nil, response` (so the usual
-- `local v, err = ...` idiom holds, and the response is the third value). `value` is the
-- decoded JSON body (a table, with JSON `null` as `client.null`), `true` for a 204 or an
-- empty body, or the body string when it is not JSON. `response` is a plain table
-- `{status =, headers =, method =, url =, attempts =, paging =}` (`headers` with lower-cased
-- names, `url` with secrets masked, `paging` only on list calls). For table values,
-- `client.response(value)` returns the same response later, without touching the value's own
-- fields; and `c:last_response()` returns the latest one.
--
-- **Errors.** `nil, err` with `err` from `assesskit.errors`.
--
-- **Retries.** Network failures, timeouts, 429, 502, 503 and 504 are retried up to
-- `max_retries` times for GET, HEAD, OPTIONS, PUT and DELETE; POST and PATCH only when the
-- call passes `retry = true`. The wait is exponential (`retry_base_delay * 2^(n-1)`, capped by
-- `retry_max_delay`) with jitter (50% to 100% of it), or the server's `Retry-After` (seconds or
-- HTTP-date) capped by `max_retry_after`. TLS failures are never retried.
--
-- @internal assesskit.client
local type, tostring, tonumber, pairs, ipairs, next, setmetatable, error, pcall,
  require, rawget =
  type, tostring, tonumber, pairs, ipairs, next, setmetatable, error, pcall,
  require, rawget
local string_find, string_sub, string_lower, string_gsub, string_format, string_byte,
  string_match, string_gmatch, string_upper =
  string.find, string.sub, string.lower, string.gsub, string.format, string.byte,
  string.match, string.gmatch, string.upper
local table_concat, table_sort = table.concat, table.sort
local math_floor, math_min, math_max, math_random, math_huge =
  math.floor, math.min, math.max, math.random, math.huge
local os_time = os.time
local io_open = io.open

local cjson = require("cjson")
local errors = require("assesskit.errors")

local json = cjson.new()
local json_decode, json_encode = json.decode, json.encode

local M = {}
M._VERSION = "0.2.0"

--- The JSON `null` sentinel (`cjson.null`): decoded JSON nulls are this value, and a body
-- field set to it is sent as `null`.
M.null = cjson.null
local null = M.null

local Client = {}
Client.__index = Client

-- Results (tables) -> their response, without touching the result's fields or metatable.
local responses = setmetatable({}, { __mode = "k" })

local IDEMPOTENT = { GET = true, HEAD = true, OPTIONS = true, PUT = true, DELETE = true }
local RETRY_STATUS = { [429] = true, [502] = true, [503] = true, [504] = true }
local RETRY_KIND = { network = true, timeout = true }
local KIND_MAP = {
  timeout = "timeout", network = "network", tls = "tls", too_large = "too_large",
  insecure = "insecure", io = "io", aborted = "aborted", closed = "network",
}
local MASK = "***"
local EMPTY = setmetatable({}, { __newindex = function() error("read-only", 2) end })

-- ------------------------------------------------------------------------------------------
-- Small helpers

-- The function `ngx[ngx_name]` inside nginx, else LuaSocket's `socket_name`, else nil.
local function runtime_function(ngx_name, socket_name)
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx[ngx_name]) == "function" then
    return ngx[ngx_name]
  end
  local ok, socket = pcall(require, "socket")
  if ok and type(socket) == "table" and socket[socket_name] then return socket[socket_name] end
  return nil
end

local function default_clock()
  return runtime_function("now", "gettime") or os_time
end

local function default_sleep(clock)
  return runtime_function("sleep", "sleep") or function(s) -- last resort: wait on the clock
    local t = clock() + s
    while clock() < t do end
  end
end

local LOOPBACK = { localhost = true, ["::1"] = true, ["[::1]"] = true }

--- Split a URL into scheme, host, port and the rest.
-- @tparam string url
-- @treturn string scheme (lower case)
-- @treturn string host (lower case, IPv6 in brackets)
-- @treturn string|nil port
-- @treturn string the path, query and fragment
function M.parse_url(url)
  local scheme, authority, rest = string_match(url, "^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then return nil end
  authority = string_gsub(authority, "^.*@", "")
  local host, port = string_match(authority, "^(%[[^%]]*%]):?(%d*)$")
  if not host then host, port = string_match(authority, "^([^:]*):?(%d*)$") end
  if port == "" then port = nil end
  return string_lower(scheme), string_lower(host or ""), port, rest
end

--- Whether a host name is a loopback address (127.0.0.0/8, `::1`, `localhost`).
-- @tparam string host
-- @treturn boolean
function M.is_loopback(host)
  return LOOPBACK[host] == true or string_find(host, "^127%.%d+%.%d+%.%d+$") ~= nil
end

-- Percent-encode a string (RFC 3986); exported as M.url_encode below.
local function url_encode(s)
  if not string_find(s, "[^%w%-%._~]") then return s end
  return (string_gsub(s, "[^%w%-%._~]", function(c)
    return string_format("%%%02X", string_byte(c))
  end))
end
--- Percent-encode a string (RFC 3986: only `A-Za-z0-9-._~` are kept).
-- @function url_encode
-- @tparam string s
-- @treturn string
-- @usage client.url_encode("a b/c") --> "a%20b%2Fc"
M.url_encode = url_encode

-- Format a scalar for a URL; exported as M.scalar below.
local function scalar(v)
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
--- Format a scalar for a URL: integral numbers without a fraction, other numbers with up to
-- 14 significant digits, booleans as `true`/`false`, strings as they are.
-- @function scalar
-- @param v a string, number or boolean
-- @treturn string|nil the text, or nil for other types (and NaN or an infinity)
-- @usage client.scalar(42.0) --> "42"
M.scalar = scalar

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
-- carries them: keys sorted; `nil` and `null` left out; arrays as `name[0]`, `name[1]`...
-- (or one comma-separated value when `comma[name]` is set); maps as `name[key]`.
-- @tparam table params
-- @tparam[opt] table comma set of parameter names sent as comma lists
-- @treturn table array of `{name, value}` (strings)
-- @raise when a value is a function, a userdata other than `null`, or a thread
function M.flatten(params, comma)
  local out = {}
  local keys, n = sorted_keys(params)
  for i = 1, n do
    local k = keys[i]
    flatten_into(out, tostring(k), params[k], comma)
  end
  return out
end

--- Encode a query string (without the `?`), from `flatten`ed parameters; names and values
-- percent-encoded (so `name[0]` is written `name%5B0%5D`).
-- @tparam table params
-- @tparam[opt] table comma set of parameter names sent as comma lists
-- @treturn string
-- @raise as `flatten`
function M.encode_query(params, comma)
  local pairs_ = M.flatten(params, comma)
  local buf = {}
  for i = 1, #pairs_ do
    local p = pairs_[i]
    buf[i] = url_encode(p[1]) .. "=" .. url_encode(p[2])
  end
  return table_concat(buf, "&")
end

--- Encode a table as `application/x-www-form-urlencoded`.
-- @tparam table form
-- @treturn string
function M.encode_form(form)
  return M.encode_query(form)
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
  Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math_floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math_floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math_floor(yoe / 4) - math_floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Parse a `Retry-After` value into seconds from `now`.
-- @tparam string|nil value delay-seconds or an HTTP-date (IMF-fixdate)
-- @tparam number now the current time (epoch seconds)
-- @treturn number|nil seconds (0 for a date in the past), nil when absent or unparseable
function M.parse_retry_after(value, now)
  if type(value) == "table" then value = value[1] end
  if type(value) ~= "string" then return nil end
  local secs = string_match(value, "^%s*(%d+%.?%d*)%s*$")
  if secs then return tonumber(secs) end
  local d, mon, y, hh, mm, ss =
    string_match(value, "^%s*%a+,%s*(%d+)%s+(%a+)%s+(%d+)%s+(%d+):(%d+):(%d+)%s+GMT%s*$")
  if not d or not MONTHS[mon] then return nil end
  local t = days_from_civil(tonumber(y), MONTHS[mon], tonumber(d)) * 86400
    + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
  return math_max(0, t - now)
end

--- Parse an RFC 8288 `Link` header into a map rel -> URL.
-- @tparam string|table|nil value the header (or the array of its repeated values)
-- @treturn table map of relation type to URL (empty when absent)
function M.parse_link(value)
  local links = {}
  if type(value) == "table" then value = table_concat(value, ",") end
  if type(value) ~= "string" then return links end
  for target, params in string_gmatch(value, "<([^>]*)>([^<]*)") do
    local rel = string_match(params, '[Rr][Ee][Ll]%s*=%s*"([^"]*)"')
      or string_match(params, "[Rr][Ee][Ll]%s*=%s*([^;,%s]+)")
    if rel then
      for r in string_gmatch(rel, "%S+") do
        r = string_lower(r)
        if links[r] == nil then links[r] = target end
      end
    end
  end
  return links
end

local function header_number(h, name)
  local v = h[name]
  if type(v) == "table" then v = v[1] end
  return v and tonumber(v)
end

--- Paging metadata from the `Link` header only: `{next =, prev =, first =, last =}`.
-- @tparam table res the response
-- @treturn table paging
function M.link_paging(res)
  local links = M.parse_link(res.headers.link)
  return { next = links.next, prev = links.prev, first = links.first, last = links.last }
end

--- Paging metadata in the Yii2 REST convention: `X-Pagination-Total-Count`,
-- `X-Pagination-Page-Count`, `X-Pagination-Current-Page`, `X-Pagination-Per-Page`, and the
-- `Link` header. Returns `{total =, page_count =, page =, per_page =, next =, ...}`.
-- @tparam table res the response
-- @treturn table paging
function M.yii2_paging(res)
  local p = M.link_paging(res)
  local h = res.headers
  p.total = header_number(h, "x-pagination-total-count")
  p.page_count = header_number(h, "x-pagination-page-count")
  p.page = header_number(h, "x-pagination-current-page")
  p.per_page = header_number(h, "x-pagination-per-page")
  return p
end

--- The default reading of an error body: Yii2 (`{name, message, code, status}`), a 422
-- list of `{field, message}`, `{"errors": [...]}`, OAuth2 (`{error, error_description}`)
-- and `{description}`.
-- @tparam number status
-- @param body the decoded body (a table), or nil when it was not JSON
-- @treturn table `{name =, message =, code =, fields =}` (any may be nil)
function M.parse_error(status, body)
  local out = {}
  if type(body) ~= "table" then return out end
  if body[1] ~= nil and is_array(body) then
    local fields = {}
    for _, f in ipairs(body) do
      if type(f) == "table" and (f.field ~= nil or f.message ~= nil) then
        fields[#fields + 1] = { field = f.field, message = f.message }
      elseif type(f) == "string" then
        fields[#fields + 1] = { message = f }
      end
    end
    if #fields > 0 then
      out.fields = fields
      if status ~= 422 then
        out.message = fields[1].message
      end
    end
    return out
  end
  local function str(v) return type(v) == "string" and v ~= "" and v or nil end
  out.name = str(body.name) or str(body.error)
  out.message = str(body.message) or str(body.error_description) or str(body.description)
  if body.code ~= nil and body.code ~= null then out.code = body.code end
  if type(body.errors) == "table" then
    local fields, msgs = {}, {}
    for k, e in pairs(body.errors) do
      if type(e) == "table" then
        local m = str(e.message) or str(e.description) or str(e.detail)
        fields[#fields + 1] = { field = e.field or (type(k) == "string" and k or nil), message = m }
        msgs[#msgs + 1] = m
        if out.code == nil and e.code ~= nil and e.code ~= null then out.code = e.code end
      elseif type(e) == "string" then
        fields[#fields + 1] = { field = type(k) == "string" and k or nil, message = e }
        msgs[#msgs + 1] = e
      end
    end
    if #fields > 0 then out.fields = fields end
    if not out.message and #msgs > 0 then out.message = table_concat(msgs, "; ") end
  end
  if type(body.fields) == "table" and not out.fields then out.fields = body.fields end
  return out
end

local function header_value(h, name)
  local v = h and h[name]
  if type(v) == "table" then v = v[#v] end
  return v
end

local function masked_headers(h)
  if not h then return nil end
  local out = {}
  for k, v in pairs(h) do
    if errors.is_secret_name(k) then
      out[k] = MASK
    else
      out[k] = v
    end
  end
  return out
end

local function looks_json(body)
  local c = string_match(body, "^%s*(.)")
  return c == "{" or c == "["
end

-- ------------------------------------------------------------------------------------------
-- Construction

local function check(opts, name, want)
  local v = opts[name]
  if v ~= nil and type(v) ~= want then
    error("assesskit.client.new: option '" .. name .. "' must be a " .. want, 3)
  end
  return v
end

local function check_nonneg(opts, name)
  local v = check(opts, name, "number")
  if v ~= nil and (v ~= v or v < 0) then
    error("assesskit.client.new: option '" .. name .. "' must be >= 0", 3)
  end
  return v
end

--- Create a client.
-- @tparam table opts
-- @tparam string opts.base_url the API root, e.g. `https://apiv4.talview.com` (required)
-- @tparam[opt] table opts.transport an object with `request(self, req)` following the core
--   session (docs/DESIGN.md); default: a `core.session` built from the options below (inside
--   nginx, `assesskit.ngx.transport` instead, which has no `ca_file`, `ca_path`, `proxy`), closed
--   by `c:close()`
-- @tparam[opt] string opts.ca_file CA bundle for the default transport
-- @tparam[opt] string opts.ca_path CA directory for the default transport
-- @tparam[opt] string opts.proxy proxy URL for the default transport
-- @tparam[opt] string opts.user_agent User-Agent for the default transport
-- @tparam[opt] number opts.max_response_size bytes, for the default transport
-- @tparam[opt=false] boolean opts.allow_http permit plain `http://` to a non-loopback host
-- @tparam[opt=30] number opts.timeout seconds for a whole transfer
-- @tparam[opt=10] number opts.connect_timeout seconds
-- @tparam[opt=2] number opts.max_retries retries after the first attempt
-- @tparam[opt=0.5] number opts.retry_base_delay first backoff, seconds
-- @tparam[opt=8] number opts.retry_max_delay largest backoff, seconds
-- @tparam[opt=60] number opts.max_retry_after largest `Retry-After` honoured, seconds
-- @tparam[opt] function opts.on_request hook `function(info)`: `info.method`, `info.url`
--   (masked), `info.headers` (credentials masked), `info.attempt`
-- @tparam[opt] function opts.on_response hook `function(info)`: the same plus `info.status`
--   (nil on failure), `info.headers` (response headers), `info.duration` (seconds),
--   `info.error` (the error object on failure), `info.retrying` (true when another attempt
--   follows). Errors raised by hooks are caught and ignored.
-- @tparam[opt] table opts.auth authenticator (docs/DESIGN.md: `authorize`, `renew`,
--   `describe`, `secrets`)
-- @tparam[opt] table opts.headers headers sent with every request
-- @tparam[opt] function opts.unwrap `function(value, res, req) -> value | nil, fields`: API
--   envelope handling; `fields` builds an error (`kind` defaults to `http`)
-- @tparam[opt] function opts.paging `function(res, value) -> table`: paging metadata
--   (default `client.link_paging`)
-- @tparam[opt] function opts.parse_error `function(status, body) -> {name, message, code,
--   fields}` (default `client.parse_error`)
-- @tparam[opt] table opts.comma_params set of query parameter names sent as comma lists
-- @tparam[opt="page"] string opts.page_param the query parameter holding the page number
-- @tparam[opt="per_page"] string opts.per_page_param the query parameter holding the page size
-- @tparam[opt] string opts.name prefix for `tostring` (default `assesskit.client`)
-- @tparam[opt] function opts.sleep `function(seconds)` (default: the transport's `sleep`
--   method, `ngx.sleep`, or LuaSocket's)
-- @tparam[opt] function opts.clock `function() -> epoch seconds` (default: `ngx.now`,
--   LuaSocket's `gettime`)
-- @tparam[opt] function opts.random `function() -> [0, 1)` for jitter (default `math.random`)
-- @treturn table the client
-- @raise on a wrong option, or a plain `http://` base URL to a non-loopback host without
--   `allow_http`
-- @usage
-- local c = client.new{ base_url = "https://api.example.com", max_retries = 3 }
-- local v, err, res = c:request("GET", "/things/1")
function M.new(opts)
  if type(opts) ~= "table" then error("assesskit.client.new: opts must be a table", 2) end
  local base_url = opts.base_url
  if type(base_url) ~= "string" then
    error("assesskit.client.new: base_url must be a string", 2)
  end
  local scheme, host, port = M.parse_url(base_url)
  if not scheme or (scheme ~= "https" and scheme ~= "http") or host == "" then
    error("assesskit.client.new: base_url must be an http(s) URL", 2)
  end
  for _, name in ipairs({ "ca_file", "ca_path", "proxy", "user_agent", "name", "page_param",
    "per_page_param" }) do
    check(opts, name, "string")
  end
  for _, name in ipairs({ "on_request", "on_response", "unwrap", "paging", "parse_error",
    "sleep", "clock", "random" }) do
    check(opts, name, "function")
  end
  for _, name in ipairs({ "auth", "headers", "comma_params" }) do check(opts, name, "table") end
  check(opts, "allow_http", "boolean")
  for _, name in ipairs({ "timeout", "connect_timeout", "max_retries", "retry_base_delay",
    "retry_max_delay", "max_retry_after", "max_response_size" }) do
    check_nonneg(opts, name)
  end
  if scheme == "http" and not opts.allow_http and not M.is_loopback(host) then
    error("assesskit.client.new: refusing plain http:// to " .. host
      .. " (use https, or allow_http = true)", 2)
  end
  local transport, owned = opts.transport, false
  if transport ~= nil then
    if (type(transport) ~= "table" and type(transport) ~= "userdata")
      or type(transport.request) ~= "function" then
      error("assesskit.client.new: transport must have a request method", 2)
    end
  else
    local topts = {
      ca_file = opts.ca_file, ca_path = opts.ca_path, proxy = opts.proxy,
      user_agent = opts.user_agent, allow_http = opts.allow_http,
      max_response_size = opts.max_response_size,
    }
    local ngx_transport = rawget(_G, "ngx") and require("assesskit.ngx.transport")
    if ngx_transport and ngx_transport.inside_nginx() then
      -- inside nginx: its non-blocking cosockets, never a libcurl transfer that would block
      -- the worker (docs/openresty.md); it raises on ca_file, ca_path and proxy
      transport = ngx_transport.new(topts)
    else
      transport = require("assesskit.core").session(topts)
    end
    owned = true
  end
  local base = string_gsub(base_url, "/+$", "")
  local self = {
    base_url = base,
    origin = scheme .. "://" .. host .. (port and (":" .. port) or ""),
    transport = transport,
    owned = owned,
    timeout = opts.timeout or 30,
    connect_timeout = opts.connect_timeout or 10,
    max_retries = math_floor(opts.max_retries or 2),
    retry_base_delay = opts.retry_base_delay or 0.5,
    retry_max_delay = opts.retry_max_delay or 8,
    max_retry_after = opts.max_retry_after or 60,
    on_request = opts.on_request,
    on_response = opts.on_response,
    auth = opts.auth,
    headers = opts.headers,
    unwrap = opts.unwrap,
    paging = opts.paging or M.link_paging,
    parse_error = opts.parse_error or M.parse_error,
    comma = opts.comma_params,
    page_param = opts.page_param or "page",
    per_page_param = opts.per_page_param or "per_page",
    name = opts.name or "assesskit.client",
    random = opts.random or math_random,
    last = nil,
  }
  self.clock = opts.clock or default_clock()
  if opts.sleep then
    self.sleep = opts.sleep
  elseif type(transport.sleep) == "function" then
    self.sleep = function(s) return transport:sleep(s) end
  else
    self.sleep = default_sleep(self.clock)
  end
  return setmetatable(self, Client)
end

--- `tostring(c)`: the name and base URL, nothing secret.
-- @treturn string
function Client:__tostring()
  local grant = self.auth and self.auth.describe and self.auth:describe()
  return string_format("%s(%s%s)", self.name, errors.mask_url(self.base_url),
    grant and (", " .. grant) or "")
end

--- The secret values to redact from errors (from the authenticator).
-- @treturn table array of strings (may be empty)
function Client:secrets()
  local a = self.auth
  if a and a.secrets then return a:secrets() end
  return {}
end

--- Build an error object with this client's secrets redacted.
-- @tparam table fields see `assesskit.errors`
-- @treturn table the error
function Client:error(fields)
  return errors.new(fields, self:secrets())
end

--- Close the default transport (a custom transport is left to its owner). Idempotent.
function Client:close()
  if self.owned and self.transport and self.transport.close then
    self.transport:close()
  end
end

--- The response of the latest completed request (`nil` before the first).
-- With several coroutines sharing a client, prefer the second return value of each call.
-- @treturn table|nil
function Client:last_response()
  return self.last
end

--- The response a result came from (for table results), or nil.
-- @tparam table value a value returned by a call
-- @treturn table|nil the response `{status =, headers =, method =, url =, attempts =,
--   paging =}`
function M.response(value)
  if type(value) ~= "table" then return nil end
  return responses[value]
end

--- The absolute URL for a path (or an absolute URL of the same origin).
-- @tparam string path `/...` relative to `base_url`, or an absolute `http(s)://` URL
-- @tparam[opt] string query an encoded query string
-- @treturn string
function Client:url(path, query)
  local url
  if string_byte(path, 1) == 47 then -- "/"
    url = self.base_url .. path
  elseif string_find(path, "^%a[%w+.-]*://") then
    url = path
  else
    url = self.base_url .. "/" .. path
  end
  if query and query ~= "" then
    url = url .. (string_find(url, "?", 1, true) and "&" or "?") .. query
  end
  return url
end

--- Whether a URL is on this client's origin (credentials are only sent there).
-- @tparam string url
-- @treturn boolean
function Client:same_origin(url)
  local o = self.origin
  if string_lower(string_sub(url, 1, #o)) ~= o then return false end
  local c = string_sub(url, #o + 1, #o + 1)
  return c == "" or c == "/" or c == "?" or c == "#"
end

-- ------------------------------------------------------------------------------------------
-- Sending

local function call_hook(hook, info)
  pcall(hook, info)
end

--- The backoff before retry `n` (1-based), with jitter.
-- @tparam number n
-- @treturn number seconds
function Client:backoff(n)
  local d = math_min(self.retry_max_delay, self.retry_base_delay * 2 ^ (n - 1))
  return d * (0.5 + 0.5 * self.random())
end

local function transport_error(self, req, message, kind)
  local k = KIND_MAP[kind] or "network"
  return self:error({
    kind = k, message = message or k,
    retryable = RETRY_KIND[k] == true, method = req.method, url = req.url,
  })
end

--- Send one prepared request with hooks, authentication, 401 renewal and retries.
-- This is the layer under `request`: it returns the raw response, whatever its status.
-- @tparam table req `method`, `url` (absolute), `headers` (map), `body` (string) or
--   `multipart`, `timeout`, `connect_timeout`, `output`, `on_progress` (passed to the
--   transport), and `retry` (true: retry even a POST/PATCH; false: never), `max_retries`,
--   `auth` (false: send no credentials)
-- @treturn table the response `{status =, headers =, body =, method =, url =, attempts =}`
-- @return or nil and an error object (transport failures only; HTTP statuses are returned)
function Client:send(req)
  local method = req.method or "GET"
  local url = req.url
  local transport = self.transport
  local max_retries = req.max_retries or self.max_retries
  local can_retry = req.retry
  if can_retry == nil then can_retry = IDEMPOTENT[method] == true end
  local auth = self.auth
  if req.auth == false then
    auth = nil
  elseif auth and not req.local_path and not self:same_origin(url) then
    return nil, self:error({ kind = "validation", method = method, url = url,
      message = "refusing to send credentials to another origin" })
  end
  local hooks = self.on_request or self.on_response
  local clock = self.clock
  local treq = {
    method = method, url = url, body = req.body, multipart = req.multipart,
    timeout = req.timeout or self.timeout,
    connect_timeout = req.connect_timeout or self.connect_timeout,
    output = req.output, on_progress = req.on_progress,
  }
  local base_headers = self.headers
  local attempt, retries, renewed = 0, 0, false
  local masked_url = hooks and errors.mask_url(url)
  while true do
    attempt = attempt + 1
    local headers
    if req.own_headers and not base_headers and attempt == 1 then
      headers = req.headers -- built by `request` for this call alone
    else
      headers = {}
      if base_headers then for k, v in pairs(base_headers) do headers[k] = v end end
      if req.headers then for k, v in pairs(req.headers) do headers[k] = v end end
    end
    if auth then
      local ok, err = auth:authorize(self, headers)
      if not ok then return nil, err end
    end
    treq.headers = headers
    local started
    if hooks then
      started = clock()
      if self.on_request then
        call_hook(self.on_request, {
          method = method, url = masked_url, headers = masked_headers(headers), attempt = attempt,
        })
      end
    end
    local status, rheaders, body = transport:request(treq)
    local err
    if not status then
      err = transport_error(self, treq, rheaders, body)
    end
    -- decide whether to go again: a retry (counted, after a delay) or a renewal (once)
    local again, delay = false, 0
    if err then
      if err.retryable and can_retry and retries < max_retries then
        retries = retries + 1
        again, delay = true, self:backoff(retries)
      end
    elseif status == 401 and auth and not renewed and auth.renew then
      renewed, again = true, "renew"
    elseif RETRY_STATUS[status] and can_retry and retries < max_retries then
      retries = retries + 1
      local retry_after = M.parse_retry_after(rheaders["retry-after"], os_time())
      if retry_after then
        delay = math_min(retry_after, self.max_retry_after)
      else
        delay = self:backoff(retries)
      end
      again = true
    end
    if hooks and self.on_response then
      call_hook(self.on_response, {
        method = method, url = masked_url, status = status, attempt = attempt,
        headers = status and masked_headers(rheaders) or nil,
        duration = clock() - started, error = err, retrying = again ~= false,
      })
    end
    -- the renewal comes after this answer's hook, so hooks see events in order
    if again == "renew" then
      local ok, rerr = auth:renew(self, headers)
      if not ok then
        again = false
        if rerr then err = rerr end
      end
    end
    if err and not again then return nil, err end
    if not again then
      return {
        status = status, headers = rheaders, body = body, method = method, url = url,
        attempts = attempt,
      }
    end
    if delay > 0 then self.sleep(delay) end
  end
end

-- ------------------------------------------------------------------------------------------
-- Requests with JSON in and out

local function http_error(self, res, value)
  local status = res.status
  local info = self.parse_error(status, value) or {}
  local retry_after = RETRY_STATUS[status]
    and M.parse_retry_after(res.headers["retry-after"], os_time()) or nil
  local kind = (status == 401) and "auth" or "http"
  return self:error({
    kind = kind, status = status, name = info.name or errors.REASONS[status],
    message = info.message or errors.REASONS[status] or ("HTTP " .. status),
    code = info.code, fields = info.fields,
    retryable = RETRY_STATUS[status] == true, retry_after = retry_after,
    method = res.method, url = res.url,
    request_id = header_value(res.headers, "x-request-id"),
  })
end

--- Turn a raw response into the call's result.
-- @tparam table res from `send`
-- @tparam[opt] table opts `expect` (`"raw"`: return the body string as is), `paged` (compute
--   `res.paging`)
-- @return the value, nil and the response; or nil and the error
function Client:result(res, opts)
  local status, body, headers = res.status, res.body, res.headers
  res.body = nil
  res.url = errors.mask_url(res.url)
  self.last = res
  local expect = opts and opts.expect
  local value
  if type(body) == "number" then -- streamed to a file
    value = body
  elseif status == 204 or body == nil or body == "" then
    value = (status < 400) or nil
  elseif expect == "raw" and status < 400 then
    value = body
  else
    local ctype = header_value(headers, "content-type")
    local jsonish = ctype and (string_find(ctype, "json", 1, true)
      or string_find(string_lower(ctype), "json", 1, true))
    if jsonish or (not ctype and looks_json(body)) or (status >= 400 and looks_json(body)) then
      local ok, decoded = pcall(json_decode, body)
      if ok then
        value = decoded
      elseif status < 400 then
        return nil, self:error({
          kind = "decode", status = status, method = res.method, url = res.url,
          message = "response body is not valid JSON",
          request_id = header_value(headers, "x-request-id"),
        })
      end
    elseif status < 400 then
      value = body
    end
  end
  if status >= 400 then
    return nil, http_error(self, res, value)
  end
  if status >= 300 then
    return nil, self:error({ kind = "http", status = status, method = res.method, url = res.url,
      message = "unexpected redirect " .. status
        .. (header_value(headers, "location") and (" to " .. header_value(headers, "location")) or "") })
  end
  if self.unwrap and value ~= nil then
    local v, fields = self.unwrap(value, res, opts)
    if fields then
      fields.kind = fields.kind or "http"
      fields.method, fields.url = res.method, res.url
      return nil, self:error(fields)
    end
    value = v
  end
  if opts and opts.paged then
    res.paging = self.paging(res, value) or {}
  end
  if type(value) == "table" and value ~= null then responses[value] = res end
  return value, nil, res
end

--- Prepare and send a request; decode the answer.
-- @tparam string method `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, ...
-- @tparam string path `/...` under `base_url` (or an absolute URL on the same origin)
-- @tparam[opt] table opts
-- @tparam[opt] table opts.query query parameters (see `encode_query`)
-- @param[opt] opts.body a table (sent as JSON) or a string (sent as is, with
--   `opts.content_type`)
-- @tparam[opt="application/octet-stream"] string opts.content_type of a string body
-- @tparam[opt] table opts.form a table sent as `application/x-www-form-urlencoded`
-- @tparam[opt] table opts.multipart parts, as for the transport
-- @tparam[opt] table opts.headers extra request headers
-- @tparam[opt] boolean opts.retry true: retry this POST/PATCH too; false: never retry
-- @tparam[opt] number opts.max_retries for this call
-- @tparam[opt] number opts.timeout for this call
-- @tparam[opt] number opts.connect_timeout for this call
-- @tparam[opt] boolean opts.auth false: send no credentials
-- @tparam[opt] string opts.expect `"raw"`: return the body string even when it is JSON
-- @tparam[opt] boolean opts.paged compute `response.paging`
-- @tparam[opt] string opts.output stream the body to this file (the value is its size)
-- @tparam[opt] function opts.on_progress `function(received, total)`, as for the transport
-- @return the value, nil and the response; or nil and the error
-- @raise when `method` or `path` is not a string, or the body cannot be encoded
function Client:request(method, path, opts)
  if type(method) ~= "string" then error("request: method must be a string", 2) end
  if type(path) ~= "string" then error("request: path must be a string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("request: opts must be a table", 2) end
  opts = opts or EMPTY
  method = string_upper(method)
  local query = opts.query
  local qs
  if query ~= nil then
    if type(query) ~= "table" then error("request: query must be a table", 2) end
    local ok, s = pcall(M.encode_query, query, self.comma)
    if not ok then error(s, 2) end
    qs = s
  end
  local headers = { accept = "application/json" }
  if opts.headers then
    for k, v in pairs(opts.headers) do headers[string_lower(k)] = v end
  end
  local body = opts.body
  if type(body) == "table" then
    local ok, s = pcall(json_encode, body)
    if not ok then error("request: body cannot be encoded as JSON: " .. tostring(s), 2) end
    body = s
    headers["content-type"] = headers["content-type"] or "application/json"
  elseif type(body) == "string" then
    headers["content-type"] = headers["content-type"] or opts.content_type
      or "application/octet-stream"
  elseif body ~= nil then
    error("request: body must be a table or a string", 2)
  elseif opts.form ~= nil then
    if type(opts.form) ~= "table" then error("request: form must be a table", 2) end
    local ok, s = pcall(M.encode_form, opts.form)
    if not ok then error(s, 2) end
    body = s
    headers["content-type"] = "application/x-www-form-urlencoded"
  end
  local res, err = self:send({
    local_path = string_byte(path, 1) == 47, -- "/...": on base_url, so on its origin
    own_headers = true,
    method = method, url = self:url(path, qs), headers = headers, body = body,
    multipart = opts.multipart, retry = opts.retry, max_retries = opts.max_retries,
    timeout = opts.timeout, connect_timeout = opts.connect_timeout, auth = opts.auth,
    output = opts.output, on_progress = opts.on_progress,
  })
  if not res then return nil, err end
  return self:result(res, opts)
end

-- ------------------------------------------------------------------------------------------
-- Paging

local function copy(t)
  local out = {}
  if t then for k, v in pairs(t) do out[k] = v end end
  return out
end

--- Iterate over the pages of a list call.
-- Follows `Link rel=next` (on the same origin), else the page counters
-- (`page < page_count`, moving `page_param`), else, with neither, asks for the next page only
-- while pages come back full (`per_page_param` given and reached); stops at an empty page, and
-- when the counters show an earlier page than the one asked for (a server ignoring the page).
-- @tparam string method
-- @tparam string path
-- @tparam[opt] table opts as for `request` (`opts.query.page` is the first page)
-- @treturn function iterator yielding `items, nil, response` per page; on a failure it
--   yields `false, err` once and ends
-- @usage for items, err, res in c:pages("GET", "/things", { query = { pageSize = 100 } }) do
--   if not items then error(tostring(err)) end
-- end
function Client:pages(method, path, opts)
  opts = copy(opts)
  opts.paged = true
  local query = copy(opts.query)
  local next_path, done = path, false
  local seen = {}
  local page_param = self.page_param
  local per_page = tonumber(query[self.per_page_param])
  return function()
    if done then return nil end
    local o = copy(opts)
    if next_path == path then o.query = query else o.query = nil end
    local items, err, res = self:request(method, next_path, o)
    if not items then
      done = true
      return false, err
    end
    local p = res.paging or {}
    if p.page and next_path == path and p.page < (tonumber(query[page_param]) or p.page) then
      -- the server ignored the page asked for and sent an earlier one again: that is the end
      -- (asking on would fetch the same page forever)
      done = true
      return nil
    end
    local n = type(items) == "table" and #items or 0
    local link = p.next
    if link and string_byte(link, 1) == 47 then link = self.origin .. link end
    if n == 0 then
      done = true
    elseif link and self:same_origin(link) and not seen[link] then
      seen[link] = true
      next_path = link
    elseif p.page and p.page_count then
      if p.page < p.page_count then
        query[page_param] = p.page + 1
        next_path = path
      else
        done = true
      end
    elseif per_page and n >= per_page and not link then
      query[page_param] = (tonumber(query[page_param]) or 1) + 1
      next_path = path
    else
      done = true
    end
    return items, nil, res
  end
end

--- Iterate over every item of a list call, fetching pages lazily.
-- @tparam string method
-- @tparam string path
-- @tparam[opt] table opts as for `pages`
-- @treturn function iterator yielding `item`; on a failure it yields `false, err` once and
--   ends
-- @usage for item, err in c:each("GET", "/things") do
--   if not item then return nil, err end
-- end
function Client:each(method, path, opts)
  local pages = self:pages(method, path, opts)
  local items, i, n = nil, 0, 0
  return function()
    while i >= n do
      local page, err = pages()
      if page == nil then return nil end
      if page == false then return false, err end
      if type(page) ~= "table" then return nil end
      items, i, n = page, 0, #page
    end
    i = i + 1
    return items[i]
  end
end

--- Read a whole local file.
-- @tparam string path
-- @treturn string|nil the contents
-- @treturn string|nil the error message
function M.read_file(path)
  local f, err = io_open(path, "rb")
  if not f then return nil, err end
  local data = f:read("*a")
  f:close()
  if not data then return nil, "cannot read " .. path end
  return data
end

--- Encode a value as JSON with this module's private cjson instance (`client.null` is JSON null).
-- @function json_encode
-- @param value a table, string, number, boolean or `client.null`
-- @treturn string the JSON text
-- @raise when the value cannot be encoded (a function, a sparse array, a cycle...)
M.json_encode = json_encode

--- Decode JSON text with this module's private cjson instance (JSON null is `client.null`).
-- @function json_decode
-- @tparam string text
-- @return the decoded value
-- @raise when the text is not JSON
M.json_decode = json_decode

M.Client = Client
return M
