--- The shared API client: transport, hooks, retries, JSON, error mapping, paging.
--
-- The Talview and InterviewMocha clients are thin layers over this module: they supply a
-- base URL, an authenticator, and a few API-specific functions (envelope unwrapping, paging
-- headers, error bodies); everything else happens here. Users normally meet it only through
-- those clients; its interface (for people building an API client) is in docs/DESIGN.md.
-- URLs (parsing, the plain-HTTP rule, query strings) are `assesskit.url`'s.
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
-- **Retries.** Network failures, timeouts and the statuses of `RETRY_STATUS` (429, 502, 503,
-- 504) are retried up to `max_retries` times for GET, HEAD, OPTIONS, PUT and DELETE; POST and
-- PATCH only when the call passes `retry = true`. The wait is exponential
-- (`retry_base_delay * 2^(n-1)`, capped by `retry_max_delay`) with jitter (50% to 100% of
-- it), or the server's `Retry-After` (seconds or HTTP-date) capped by `max_retry_after`. TLS
-- failures are never retried.
--
-- @internal assesskit.client
local type, tostring, tonumber, pairs, ipairs, setmetatable, getmetatable, error, pcall, require,
  rawget =
  type, tostring, tonumber, pairs, ipairs, setmetatable, getmetatable, error, pcall, require,
  rawget
local string_find, string_lower, string_match, string_gmatch, string_upper, string_byte,
  string_format, string_gsub, string_sub =
  string.find, string.lower, string.match, string.gmatch, string.upper, string.byte,
  string.format, string.gsub, string.sub
local table_concat = table.concat
local math_floor, math_min, math_max, math_random, math_huge =
  math.floor, math.min, math.max, math.random, math.huge
local os_time, os_remove, os_rename = os.time, os.remove, os.rename
local io_open = io.open

local cjson = require("cjson")
local errors = require("assesskit.errors")
local options = require("assesskit.options")
local url_mod = require("assesskit.url")
local scheduler = require("assesskit.scheduler")
local scheduler_current = scheduler.current

local cjson_encode = cjson.new().encode
local math_type = math.type -- nil on LuaJIT: all doubles
local next = next

-- ------------------------------------------------------------------------------------------
-- JSON text, exactly: cjson writes numbers with 14 significant digits (123456789012345 becomes
-- 1.2345678901234e+14) and an integral float as an integer (80.0 becomes 80); a request body
-- and a journal's record must say every number as it was made.

-- Whether the running json_encode finds cjson writing a decimal comma: cjson formats numbers
-- with the C library and knows only the decimal point LC_NUMERIC had when it was loaded, so a
-- program that sets a decimal-comma locale afterwards would have it write [0.5] as [0,5] (valid
-- JSON: two numbers). Then every number cjson would write with a decimal point is written here.
local cjson_comma = false

-- The JSON text of a number that cjson's would not give back as it is; nil when cjson's does.
local function exact_number(x)
  local integer = math_type and math_type(x) == "integer"
  if x < 1e14 and x > -1e14 and (integer or (not math_type and x == math_floor(x))) then
    return nil -- the common case: a whole number of at most 14 digits
  end
  if integer then return string_format("%d", x) end
  if x ~= x or x == math_huge or x == -math_huge then return nil end -- cjson refuses these
  if not math_type and x == math_floor(x) and x < 2 ^ 63 and x >= -2 ^ 63 then
    -- LuaJIT: a whole double a Lua 5.4 integer could hold, written as that integer (cjson
    -- writes 2e+14 and 1.2345678901234e+14, that a server reading an integer may refuse)
    return string_format("%.0f", x)
  end
  local s
  if math_type and x == math_floor(x) then
    s = string_format("%.17g", x) -- an integral float: written with a fraction, stays a float
    if not string_find(s, "[^%d%-]") then s = s .. ".0" end
  else
    s = string_format("%.14g", x)
    if tonumber(s) ~= x then
      s = string_format("%.17g", x)
    elseif not cjson_comma then
      return nil
    end
  end
  return (string_gsub(s, "[^%w%+%-]", ".")) -- the decimal point, whatever the C locale
end

local MAX_DEPTH = 1000 -- cjson's nesting limit
local EXACT = "\0assesskit-exact:" -- in a copy for cjson: the number marks[n] ("\u0000..." in JSON)

-- Whether `v` holds a number needing exact_number; nil when it cannot be encoded the exact way
-- (a cycle, or deeper than cjson goes: cjson's own error then).
local function inexact(v, depth, path, seen)
  local t = type(v)
  if t == "number" then return exact_number(v) ~= nil end
  if t ~= "table" or seen[v] then return false end
  if path[v] or depth > MAX_DEPTH then return nil end
  path[v] = true
  local found = false
  for _, x in next, v do -- raw, as cjson reads tables
    local tx = type(x)
    if tx == "table" then
      local r = inexact(x, depth + 1, path, seen)
      if r == nil then return nil end
      found = found or r
    elseif tx == "number" and not found and exact_number(x) then
      found = true
    end
  end
  path[v], seen[v] = nil, true
  return found
end

-- A copy of `v` for cjson, each number needing exact_number as the string EXACT .. n.
local function marked(v, marks)
  local t = type(v)
  if t == "number" then
    local s = exact_number(v)
    if not s then return v end
    marks[#marks + 1] = s
    return EXACT .. #marks
  elseif t == "string" then
    if string_find(v, EXACT, 1, true) then error("a string holds the JSON encoder's number mark", 0) end
    return v
  elseif t ~= "table" then
    return v
  end
  local c = {}
  for k, x in next, v do
    if type(k) == "string" and string_find(k, EXACT, 1, true) then
      error("a key holds the JSON encoder's number mark", 0)
    end
    c[k] = marked(x, marks)
  end
  return c
end

-- cjson's text of a value; raises cjson's message (without a position).
local function cjson_text(v)
  local ok, s = pcall(cjson_encode, v)
  if not ok then error(s, 0) end
  return s
end

-- The JSON text of a value, every number as it is. Raises as cjson does.
local function json_encode(v)
  cjson_comma = cjson_encode(0.5) ~= "0.5"
  if not inexact(v, 0, {}, {}) then return cjson_text(v) end
  local marks = {}
  local s = cjson_text(marked(v, marks))
  return (string_gsub(s, '"\\u0000assesskit%-exact:(%d+)"', function(n) return marks[tonumber(n)] end))
end


local M = {}
--- The version of assesskit (`require("assesskit")._VERSION`, the one constant).
M._VERSION = require("assesskit")._VERSION

--- The JSON `null` sentinel (`cjson.null`): decoded JSON nulls are this value, and a body
-- field set to it is sent as `null`.
M.null = cjson.null
local null = M.null

local Client = {}
Client.__index = Client

-- Results (tables) -> their response, without touching the result's fields or metatable.
local responses = setmetatable({}, { __mode = "k" })

local IDEMPOTENT = { GET = true, HEAD = true, OPTIONS = true, PUT = true, DELETE = true }

--- The HTTP statuses worth sending the same request again for (429, 502, 503, 504): the
-- one table the retry policy, the errors' `retryable` and the API clients read.
-- @table RETRY_STATUS
M.RETRY_STATUS = { [429] = true, [502] = true, [503] = true, [504] = true }
local RETRY_STATUS = M.RETRY_STATUS
local RETRY_KIND = { network = true, timeout = true }
local KIND_MAP = {
  timeout = "timeout", network = "network", tls = "tls", too_large = "too_large",
  insecure = "insecure", io = "io", aborted = "aborted", closed = "network",
}
local MIN_WAIT = 0.001 -- seconds: the shortest budget wait
local MAX_ERROR_BODY = 65536 -- bytes of a failed download read back for its error
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

-- Whether a transport is a `core.session` (its metatable's __name): its transfers can run on
-- a scheduler's loop.
local function is_core_session(t)
  if type(t) ~= "userdata" then return false end
  local mt = getmetatable(t)
  return type(mt) == "table" and rawget(mt, "__name") == "assesskit.session"
end

local function no_sleep()
  error("assesskit.client: nothing to wait with between retries (LuaSocket is not installed"
    .. " and this is not nginx): install lua-socket or pass the sleep option", 2)
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

--- Paging metadata from the `Link` header only: `{next =, prev =, first =, last =}` (the
-- default `paging` hook).
-- @tparam table res the response
-- @treturn table paging
function M.link_paging(res)
  local links = M.parse_link(res.headers.link)
  return { next = links.next, prev = links.prev, first = links.first, last = links.last }
end

local function str(v)
  return type(v) == "string" and v ~= "" and v or nil
end

--- The default reading of an error body (the `parse_error` hook): a JSON object's `name`,
-- `message` and `code`. The API clients read their own shapes (docs/DESIGN.md).
-- @tparam number status
-- @param body the decoded body (a table), or nil when it was not JSON
-- @treturn table `{name =, message =, code =, fields =}` (any may be nil)
function M.parse_error(_, body)
  local out = {}
  if type(body) ~= "table" then return out end
  out.name, out.message = str(body.name), str(body.message)
  if body.code ~= nil and body.code ~= null then out.code = body.code end
  return out
end

local function header_value(h, name)
  local v = h and h[name]
  if type(v) == "table" then v = v[#v] end
  return v
end

-- ------------------------------------------------------------------------------------------
-- JSON decoding

-- assesskit.core's decoder (RFC 8259, strictly): a number written without a fraction or an
-- exponent is a Lua integer on Lua 5.4 ("candidate-" .. c.id is candidate-10001), any other a
-- float (10001.0 stays 10001.0); on LuaJIT every number is a double. Loaded on first use, so
-- that this module loads where the core is not built yet (tools/annotations.lua).
local core_json_decode

-- The value of a JSON text (JSON null as `null`), or nil and why it is not JSON (a message
-- with the byte where it went wrong; never a piece of the text).
local function json_value(s)
  if not core_json_decode then core_json_decode = require("assesskit.core").json_decode end
  return core_json_decode(s, null)
end

-- M.json_decode: json_value that raises (documented below).
local function json_decode(s)
  if type(s) ~= "string" then
    error("json_decode: expected a string, got " .. type(s), 2)
  end
  local v, why = json_value(s)
  if v == nil then error(why, 2) end
  return v
end

local function looks_json(body)
  local c = string_match(body, "^%s*(.)")
  return c == "{" or c == "["
end

-- ------------------------------------------------------------------------------------------
-- Construction

--- The options of `new`.
-- @table OPTIONS
M.OPTIONS = { "base_url", "transport", "ca_file", "ca_path", "proxy", "user_agent",
  "max_response_size", "allow_http", "timeout", "connect_timeout", "max_retries",
  "retry_base_delay", "retry_max_delay", "max_retry_after", "on_request", "on_response", "auth",
  "headers", "unwrap", "paging", "parse_error", "comma_params", "page_param", "per_page_param",
  "name", "sleep", "clock", "random", "budget", "max_rate" }

--- The options of `request` (and of `pages`, `each`; `download` adds `method` and `check`).
-- @table REQUEST_OPTIONS
M.REQUEST_OPTIONS = { "query", "body", "content_type", "form", "multipart", "headers", "retry",
  "max_retries", "timeout", "connect_timeout", "auth", "expect", "paged", "output",
  "on_progress" }

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
-- @tparam[opt] table opts.budget the rate budget every request takes a permit from
--   (`assesskit.store`: `acquire`, `release`, `pause`; docs/DESIGN.md); default: the client's
--   own
-- @tparam[opt] number opts.max_rate requests per second at most (the budget's token bucket)
-- @treturn table the client
-- @raise on a wrong or unknown option (naming the nearest valid one), a base URL with a
--   query or a fragment, or a plain `http://` base URL to a non-loopback host without
--   `allow_http`
-- @usage
-- local c = client.new{ base_url = "https://api.example.com", max_retries = 3 }
-- local v, err, res = c:request("GET", "/things/1")
function M.new(opts)
  if type(opts) ~= "table" then error("assesskit.client.new: opts must be a table", 2) end
  options.check(opts, M.OPTIONS, "assesskit.client.new", 2)
  local base_url = opts.base_url
  if type(base_url) ~= "string" then
    error("assesskit.client.new: base_url must be a string", 2)
  end
  local base = url_mod.parse(base_url)
  if not base then error("assesskit.client.new: base_url must be an http(s) URL", 2) end
  if base.query or base.fragment then -- every path would be appended after it
    error("assesskit.client.new: base_url must not have a query or a fragment", 2)
  end
  for _, name in ipairs({ "ca_file", "ca_path", "proxy", "user_agent", "name", "page_param",
    "per_page_param" }) do
    check(opts, name, "string")
  end
  for _, name in ipairs({ "on_request", "on_response", "unwrap", "paging", "parse_error",
    "sleep", "clock", "random" }) do
    check(opts, name, "function")
  end
  for _, name in ipairs({ "auth", "headers", "comma_params", "budget" }) do
    check(opts, name, "table")
  end
  if opts.budget then
    for _, m in ipairs({ "acquire", "release", "pause" }) do
      if type(opts.budget[m]) ~= "function" then
        error("assesskit.client.new: budget must have acquire, release and pause methods", 2)
      end
    end
  end
  local max_rate = check(opts, "max_rate", "number")
  if max_rate ~= nil and (max_rate ~= max_rate or max_rate <= 0) then
    error("assesskit.client.new: option 'max_rate' must be a number > 0 (requests per second)", 2)
  end
  check(opts, "allow_http", "boolean")
  for _, name in ipairs({ "timeout", "connect_timeout", "max_retries", "retry_base_delay",
    "retry_max_delay", "max_retry_after", "max_response_size" }) do
    check_nonneg(opts, name)
  end
  local allowed, why = url_mod.allowed(base, opts.allow_http)
  if not allowed then error("assesskit.client.new: " .. why, 2) end
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
  local self = {
    base_url = string_gsub(base_url, "/+$", ""),
    origin = base.origin,
    allow_http = opts.allow_http == true,
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
    -- a core session can run its transfers on a scheduler's loop (assesskit.scheduler)
    loopable = is_core_session(transport),
    own_sleep = opts.sleep ~= nil,
  }
  local budget = opts.budget or require("assesskit.store").budget()
  if max_rate then budget:configure({ max_rate = max_rate }) end
  self.budget = budget
  self.clock = opts.clock or runtime_function("now", "gettime") or os_time
  if opts.sleep then
    self.sleep = opts.sleep
  elseif type(transport.sleep) == "function" then
    self.sleep = function(s) return transport:sleep(s) end
  else
    self.sleep = runtime_function("sleep", "sleep") or no_sleep
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

--- Every secret value this client knows, to mask wherever it could show (errors, hook
-- arguments, `redact`): the one rule, from the authenticator's `secrets()` (its credentials,
-- its tokens, and what its token store holds secret).
-- @treturn table array of strings (may be empty)
function Client:secrets()
  local a = self.auth
  if a and a.secrets then return a:secrets() end
  return {}
end

--- Mask every secret this client knows (`secrets`) in a text: for anything that shows a
-- server's words (logs, command-line output).
-- @tparam string s
-- @treturn string
function Client:redact(s)
  return errors.redact(s, self:secrets())
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

--- Whether a URL is on this client's origin (credentials are only sent there): the same
-- scheme, host and port, as `assesskit.url` reads them.
-- @tparam string url
-- @treturn boolean
function Client:same_origin(url)
  local u = url_mod.parse(url)
  return u ~= nil and u.origin == self.origin
end

-- ------------------------------------------------------------------------------------------
-- Sending

--- The backoff before retry `n` (1-based), with jitter.
-- @tparam number n
-- @treturn number seconds
function Client:backoff(n)
  local d = math_min(self.retry_max_delay, self.retry_base_delay * 2 ^ (n - 1))
  return d * (0.5 + 0.5 * self.random())
end

-- Whether the request of a call can have reached the server, from what its attempts so far
-- tell: true when one got an answer or the transport says it sent something, false when every
-- failed attempt is known to have sent nothing, nil when a transport did not say.
local function sent_so_far(call)
  if call.reached then return true end
  if call.unknown then return nil end
  return false
end

-- Step: the request's method, URL, credentials and retry policy, once per call.
local function begin(self, req)
  local method = req.method or "GET"
  local url = req.url
  local auth = self.auth
  if not req.local_path then
    local ok, why = url_mod.allowed(url, self.allow_http)
    if not ok then
      return nil, self:error({ kind = url_mod.parse(url) and "insecure" or "validation",
        method = method, url = url, message = why, sent = false })
    end
  end
  if req.auth == false then
    auth = nil
  elseif auth and not req.local_path and not self:same_origin(url) then
    return nil, self:error({ kind = "validation", method = method, url = url, sent = false,
      message = "refusing to send credentials to another origin" })
  end
  local can_retry = req.retry
  if can_retry == nil then can_retry = IDEMPOTENT[method] == true end
  return {
    method = method, url = url, auth = auth, can_retry = can_retry,
    max_retries = req.max_retries or self.max_retries,
    attempt = 0, retries = 0, renewed = false, reached = false, unknown = false,
    hooked = (self.on_request or self.on_response) ~= nil,
    treq = {
      method = method, url = url, body = req.body, multipart = req.multipart,
      timeout = req.timeout or self.timeout,
      connect_timeout = req.connect_timeout or self.connect_timeout,
      output = req.output, on_progress = req.on_progress,
    },
  }
end

-- Step: the headers of one attempt (the client's, the request's, the credentials).
local function attempt_headers(self, call, req)
  local base_headers = self.headers
  local headers
  if req.own_headers and not base_headers and call.attempt == 1 then
    headers = req.headers -- built by `request` for this call alone
  else
    headers = {}
    if base_headers then for k, v in pairs(base_headers) do headers[k] = v end end
    if req.headers then for k, v in pairs(req.headers) do headers[k] = v end end
  end
  if call.auth then
    local ok, err = call.auth:authorize(self, headers)
    if not ok then return nil, err end
  end
  return headers
end

-- A permit from the client's budget, waiting (suspending a task or a light thread) while the
-- budget says so: a Retry-After pause, the adaptive in-flight limit, the max_rate bucket.
local function take_permit(self, waited_until)
  local budget, clock = self.budget, self.clock
  while true do
    local permit, wait = budget:acquire(clock, waited_until)
    if permit then return permit end -- at once, unless the budget says wait
    -- at least a millisecond: nginx's clock (ngx.now) moves only when its event loop runs
    self:wait(wait > MIN_WAIT and wait or MIN_WAIT)
  end
end

-- Give the permit back with the attempt's outcome; a 429, or a 503 with Retry-After, pauses
-- the whole budget (every call of the credential). Returns the pause `{seconds =, until_ =}`
-- (Retry-After capped by max_retry_after; a 429 without it: the next backoff), or nil.
local function settle(self, permit, status, rheaders, retries)
  local budget = self.budget
  if not status then
    budget:release(permit, "failed")
    return nil
  end
  if status ~= 429 and status ~= 503 then
    budget:release(permit, "ok")
    return nil
  end
  budget:release(permit, "pushback")
  local seconds = M.parse_retry_after(rheaders["retry-after"], os_time())
  if seconds then
    seconds = math_min(seconds, self.max_retry_after)
  elseif status == 429 then
    seconds = self:backoff(retries + 1)
  else
    return nil
  end
  -- the retry waits for the whole pause: a longer one already running (another call's
  -- Retry-After) holds it too
  local until_ = budget:pause(seconds, self.clock)
  return { seconds = math_max(seconds, until_ - self.clock()), until_ = until_ }
end

--- Hand one request to the transport: on a scheduler's loop when the running coroutine is a
-- task of a scheduler and the transport a `core.session` (the task suspends until the
-- transfer has finished), else `transport:request(req)`.
-- @tparam table req as for the transport
-- @return what the transport returns
function Client:transfer(req)
  if self.loopable then
    local s = scheduler_current()
    if s then return s:transfer(self.transport, req) end
  end
  return self.transport:request(req)
end

--- Wait `seconds`: suspends the running task of a scheduler (inside nginx, `ngx.sleep`
-- suspends the light thread), else sleeps. A `sleep` function given to `new` is always used
-- as it is. Authenticators wait with it too.
-- @tparam number seconds
function Client:wait(seconds)
  if not self.own_sleep then
    local s = scheduler_current()
    if s then return s:sleep(seconds) end
  end
  return self.sleep(seconds)
end

-- Step: one transfer, under the attempt's permit (given back here). Returns status, headers,
-- body, or nil, nil, nil and the error. `call.pause` is the budget pause it caused, if any.
local function transfer(self, call, permit)
  local treq = call.treq
  local done, status, rheaders, body, sent
  if self.loopable then
    done, status, rheaders, body, sent = pcall(self.transfer, self, treq)
  else
    local transport = self.transport
    done, status, rheaders, body, sent = pcall(transport.request, transport, treq)
  end
  if not done then -- a misuse the transport raised: the permit goes back, the error on
    self.budget:release(permit, "failed")
    error(status, 0)
  end
  if status and status ~= 429 and status ~= 503 then -- the common case, without a call
    self.budget:release(permit, "ok")
    call.pause = nil
  else
    call.pause = settle(self, permit, status, rheaders, call.retries)
  end
  if status then
    call.reached = true
    return status, rheaders, body
  end
  -- a failure: rheaders is the message, body the kind
  if sent then
    call.reached = true
  elseif sent == nil then
    call.unknown = true
  end
  local kind = KIND_MAP[body] or "network"
  return nil, nil, nil, self:error({
    kind = kind, message = rheaders or kind, retryable = RETRY_KIND[kind] == true,
    method = treq.method, url = treq.url, sent = sent_so_far(call),
  })
end

--- What to do after an attempt: the retry policy, in one place.
-- @tparam table call the call's state: `can_retry`, `retries`, `max_retries`, `auth`,
--   `renewed`
-- @tparam[opt] number status the answer's status (nil on a transport failure)
-- @tparam[opt] table headers the answer's headers
-- @tparam[opt] table err the transport failure
-- @treturn string `"return"` (the answer or the failure is the call's result), `"retry"`
--   (send again after the delay; counted in `call.retries`) or `"renew"` (renew the
--   credentials, then send again; once per call)
-- @treturn number the delay before a retry, seconds
function Client:decide(call, status, headers, err)
  local retry_ok = call.can_retry and call.retries < call.max_retries
  if err then
    if err.retryable and retry_ok then return "retry", self:backoff(call.retries + 1) end
    return "return", 0
  end
  if status == 401 and call.auth and not call.renewed and call.auth.renew then
    return "renew", 0
  end
  if RETRY_STATUS[status] and retry_ok then
    -- a 429 or 503 paused the budget: the retry waits for that pause
    if call.pause then return "retry", call.pause.seconds end
    local retry_after = M.parse_retry_after(headers["retry-after"], os_time())
    if retry_after then return "retry", math_min(retry_after, self.max_retry_after) end
    return "retry", self:backoff(call.retries + 1)
  end
  return "return", 0
end

--- Send one prepared request with hooks, authentication, 401 renewal and retries.
-- This is the layer under `request`: it returns the raw response, whatever its status.
-- Each attempt is a sequence of named steps: headers (with credentials), the `on_request`
-- hook, the transfer, the decision (`decide`), the `on_response` hook, and then a renewal
-- or a wait when the decision says so.
-- @tparam table req `method`, `url` (absolute), `headers` (map), `body` (string) or
--   `multipart`, `timeout`, `connect_timeout`, `output`, `on_progress` (passed to the
--   transport), and `retry` (true: retry even a POST/PATCH; false: never), `max_retries`,
--   `auth` (false: send no credentials)
-- @treturn table the response `{status =, headers =, body =, method =, url =, attempts =}`
-- @return or nil and an error object (transport failures only; HTTP statuses are returned);
--   a plain `http://` URL to a non-loopback host without `allow_http` is an `insecure` error
--   and credentials for another origin a `validation` error, both before anything is sent
function Client:send(req)
  local call, cerr = begin(self, req)
  if not call then return nil, cerr end
  local on_request, on_response, clock = self.on_request, self.on_response, self.clock
  while true do
    call.attempt = call.attempt + 1
    local headers, herr = attempt_headers(self, call, req)
    if not headers then return nil, herr end
    call.treq.headers = headers
    local permit = take_permit(self, call.waited_until) -- may wait: before the hooks see it
    local started, secrets, url
    if call.hooked then -- hooks see nothing secret: names, then values (docs/DESIGN.md)
      started, secrets = clock(), self:secrets()
      url = errors.redact(errors.mask_url(call.url), secrets)
      if on_request then
        pcall(on_request, { method = call.method, url = url,
          headers = errors.mask_headers(headers, secrets), attempt = call.attempt })
      end
    end
    local status, rheaders, body, err = transfer(self, call, permit)
    local action, delay = self:decide(call, status, rheaders, err)
    if on_response then
      pcall(on_response, { method = call.method, url = url, status = status,
        attempt = call.attempt, headers = status and errors.mask_headers(rheaders, secrets) or nil,
        duration = clock() - started, error = err, retrying = action ~= "return" })
    end
    -- the renewal comes after this answer's hook, so hooks see events in order
    if action == "renew" then
      call.renewed = true
      local ok, rerr = call.auth:renew(self, headers)
      if not ok then
        action = "return"
        if rerr then err = rerr end
      end
    elseif action == "retry" then
      call.retries = call.retries + 1
    end
    if action == "return" then
      if err then return nil, err end
      return {
        status = status, headers = rheaders, body = body, method = call.method, url = call.url,
        attempts = call.attempt,
      }
    end
    if delay > 0 then
      self:wait(delay)
      -- a pause this call has waited out itself does not hold its next attempt again
      if call.pause then call.waited_until = call.pause.until_ end
    end
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
    method = res.method, url = res.url, sent = true,
    request_id = header_value(res.headers, "x-request-id"),
  })
end

-- Step of `result`: the body as a value (decoded JSON, the string, true for an empty
-- success, the size of a body streamed to a file), or nil and a decode error.
local function decode(self, res, body, expect)
  local status, headers = res.status, res.headers
  if type(body) == "number" then return body end -- streamed to a file
  if status == 204 or body == nil or body == "" then return (status < 400) or nil end
  if expect == "raw" and status < 400 then return body end
  local ctype = header_value(headers, "content-type")
  local jsonish = ctype and (string_find(ctype, "json", 1, true)
    or string_find(string_lower(ctype), "json", 1, true))
  if jsonish or (not ctype and looks_json(body)) or (status >= 400 and looks_json(body)) then
    local decoded, why = json_value(body)
    if decoded ~= nil then return decoded end
    if status < 400 then
      return nil, self:error({
        kind = "decode", status = status, method = res.method, url = res.url, sent = true,
        -- "response body is not valid JSON: expected ',' or '}' in an object at byte 17"
        message = "response body is " .. string_gsub(why, "^invalid JSON", "not valid JSON"),
        request_id = header_value(headers, "x-request-id"),
      })
    end
    return nil
  end
  if status < 400 then return body end
  return nil
end

--- Turn a raw response into the call's result.
-- Steps: decode the body; an error status (>= 400) or a redirect is an error; the API's
-- `unwrap` hook; paging metadata.
-- @tparam table res from `send`
-- @tparam[opt] table opts `expect` (`"raw"`: return the body string as is), `paged` (compute
--   `res.paging`)
-- @return the value, nil and the response; or nil and the error
function Client:result(res, opts)
  local status, body, headers = res.status, res.body, res.headers
  res.body = nil
  res.url = errors.mask_url(res.url)
  self.last = res
  local value, derr = decode(self, res, body, opts and opts.expect)
  if derr then return nil, derr end
  if status >= 400 then
    return nil, http_error(self, res, value)
  end
  if status >= 300 then
    local location = header_value(headers, "location")
    return nil, self:error({ kind = "http", status = status, method = res.method, url = res.url,
      sent = true,
      message = "unexpected redirect " .. status .. (location and (" to " .. location) or "") })
  end
  if self.unwrap and value ~= nil then
    local v, fields = self.unwrap(value, res, opts)
    if fields then
      fields.kind = fields.kind or "http"
      fields.method, fields.url, fields.sent = res.method, res.url, true
      if fields.retryable == nil then fields.retryable = RETRY_STATUS[fields.status] == true end
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

-- Step of `request` and `download`: the request `send` takes, from a call's method, path and
-- options. Raises (at `level` above its caller) on a misuse.
local function prepare(self, method, path, opts, level)
  level = level + 1
  local query = opts.query
  local qs
  if query ~= nil then
    if type(query) ~= "table" then error("request: query must be a table", level) end
    local ok, s = pcall(url_mod.encode_query, query, self.comma)
    if not ok then error(s, level) end
    qs = s
  end
  local headers = { accept = "application/json" }
  if opts.headers then
    for k, v in pairs(opts.headers) do headers[string_lower(k)] = v end
  end
  local body = opts.body
  if type(body) == "table" then
    local ok, s = pcall(json_encode, body)
    if not ok then error("request: body cannot be encoded as JSON: " .. tostring(s), level) end
    body = s
    headers["content-type"] = headers["content-type"] or "application/json"
  elseif type(body) == "string" then
    headers["content-type"] = headers["content-type"] or opts.content_type
      or "application/octet-stream"
  elseif body ~= nil then
    error("request: body must be a table or a string", level)
  elseif opts.form ~= nil then
    if type(opts.form) ~= "table" then error("request: form must be a table", level) end
    local ok, s = pcall(url_mod.encode_query, opts.form)
    if not ok then error(s, level) end
    body = s
    headers["content-type"] = "application/x-www-form-urlencoded"
  end
  return {
    local_path = string_byte(path, 1) == 47, -- "/...": on base_url, so on its origin
    own_headers = true,
    method = string_upper(method), url = self:url(path, qs), headers = headers, body = body,
    multipart = opts.multipart, retry = opts.retry, max_retries = opts.max_retries,
    timeout = opts.timeout, connect_timeout = opts.connect_timeout, auth = opts.auth,
    on_progress = opts.on_progress,
  }
end

-- ------------------------------------------------------------------------------------------
-- Downloads: a body streamed to a temporary file beside the target, checked, then renamed

local temp_counter = 0

local function file_exists(path)
  local f = io_open(path, "rb")
  if f then f:close() return true end
  return false
end

-- A fresh name beside `path` (same directory, so the final rename is atomic): the counter
-- and a table's address keep names apart within a process, time and randomness across them.
local function temp_name(path)
  for _ = 1, 100 do
    temp_counter = temp_counter + 1
    local addr = string_match(tostring({}), "(%x+)$") or "0"
    local t = string_format("%s.part-%s-%d-%d-%06x", path, addr, temp_counter,
      os_time() % 100000, math_random(0, 0xffffff))
    if not file_exists(t) then return t end
  end
  return nil
end

-- A new, unique temporary file beside `file` (its directory must take it), or nil and why:
-- `cannot write <file>: <reason>`.
local function make_temp(file)
  local tmp = temp_name(file)
  if not tmp then return nil, "cannot choose a temporary file beside " .. file end
  local probe, perr = io_open(tmp, "wb")
  if not probe then
    perr = tostring(perr)
    if string_sub(perr, 1, #tmp + 2) == tmp .. ": " then perr = string_sub(perr, #tmp + 3) end
    return nil, "cannot write " .. file .. ": " .. perr
  end
  probe:close()
  return tmp
end

--- Whether a download could write `file`, checked as `download` does before it sends anything
-- (a temporary file made beside it, then removed): for callers that have other requests to
-- make first (a PDF report's URL, fetched with the report) or nothing to send (a dry run).
-- @tparam string file the target
-- @treturn[1] boolean true
-- @treturn[2] nil
-- @treturn[2] string why not: `cannot write <file>: <reason>`
function M.check_target(file)
  local tmp, why = make_temp(file)
  if not tmp then return nil, why end
  os_remove(tmp)
  return true
end

-- The one download routine (`download`, and `request` with `output`).
local function fetch_to_file(self, method, path, file, opts, level)
  if type(file) ~= "string" or file == "" or string_find(file, "%z") then
    error("download: the file must be a non-empty path", level + 1)
  end
  if opts.check ~= nil and type(opts.check) ~= "function" then
    error("download: check must be a function", level + 1)
  end
  local req = prepare(self, method, path, opts, level + 1)
  -- the temporary file is made now: a target whose directory cannot take it is an `io` error
  -- naming the target, before anything is sent
  local tmp, why = make_temp(file)
  if not tmp then
    return nil, self:error({ kind = "io", method = req.method, url = req.url, sent = false,
      message = why })
  end
  req.output = tmp
  local ok, res, err = pcall(self.send, self, req)
  if not ok then
    os_remove(tmp)
    error(res, 0)
  end
  if not res then
    os_remove(tmp)
    return nil, err
  end
  if res.status >= 300 then -- read back a bounded part of the error body for its message
    res.body = M.read_file(tmp, MAX_ERROR_BODY) or ""
    os_remove(tmp)
    return self:result(res, opts)
  end
  if opts.check then
    local good, fields = opts.check(res, tmp)
    if not good then
      os_remove(tmp)
      fields = fields or {}
      fields.kind = fields.kind or "decode"
      fields.status, fields.method, fields.url, fields.sent = res.status, res.method, res.url, true
      self.last = res
      return nil, self:error(fields)
    end
  end
  local renamed, rerr = os_rename(tmp, file)
  if not renamed then
    os_remove(tmp)
    return nil, self:error({ kind = "io", method = res.method, url = res.url, sent = true,
      message = "cannot move the download to " .. file .. ": " .. tostring(rerr) })
  end
  return self:result(res, opts)
end

--- Prepare and send a request; decode the answer.
-- @tparam string method `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, ...
-- @tparam string path `/...` under `base_url` (or an absolute URL on the same origin)
-- @tparam[opt] table opts
-- @tparam[opt] table opts.query query parameters (see `assesskit.url.encode_query`)
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
-- @tparam[opt] string opts.output save the body to this file, as `download` does (the value
--   is its size)
-- @tparam[opt] function opts.on_progress `function(received, total)`, as for the transport
-- @return the value, nil and the response; or nil and the error
-- @raise when `method` or `path` is not a string, or the body cannot be encoded
function Client:request(method, path, opts)
  if type(method) ~= "string" then error("request: method must be a string", 2) end
  if type(path) ~= "string" then error("request: path must be a string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("request: opts must be a table", 2) end
  opts = opts or EMPTY
  if opts.output ~= nil then return fetch_to_file(self, method, path, opts.output, opts, 2) end
  local res, err = self:send(prepare(self, method, path, opts, 2))
  if not res then return nil, err end
  return self:result(res, opts)
end

--- Save a response body to a file: streamed to a temporary file beside `file` (a unique
-- name, `<file>.part-...`), checked, then renamed to `file`. On any failure the temporary
-- file is removed and `file` is left as it was; an error status reads back a bounded part
-- of the body for the error's message.
-- @tparam string url `/...` under `base_url`, or an absolute URL (credentials are only sent
--   to `base_url`'s origin: pass `auth = false` for another one)
-- @tparam string file the file to write
-- @tparam[opt] table opts as for `request` (`query`, `headers`, `auth`, `timeout`,
--   `max_retries`, `on_progress`, ...), plus `method` (default `GET`) and `check`
--   (`function(response, temp_path) -> true | nil, error_fields`: a last look at the body
--   before it replaces `file`; the fields' `kind` defaults to `decode`)
-- @treturn number the number of bytes written
-- @treturn nil
-- @treturn table the response
-- @return or nil and the error
-- @raise when `file` is not a non-empty string, or on a misuse as for `request`
function Client:download(url, file, opts)
  if type(url) ~= "string" then error("download: url must be a string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("download: opts must be a table", 2) end
  opts = opts or EMPTY
  local method = opts.method or "GET"
  if type(method) ~= "string" then error("download: method must be a string", 2) end
  return fetch_to_file(self, method, url, file, opts, 2)
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
-- @tparam[opt] table opts as for `pages`, and `concurrency`: fetch up to that many pages at
--   once, ahead of the items being read, once the first page's counters (`page`,
--   `page_count`) are known (items still come in order; see `assesskit.bulk`)
-- @treturn function iterator yielding `item`; on a failure it yields `false, err` once and
--   ends
-- @raise when `concurrency` is not an integer >= 1
-- @usage for item, err in c:each("GET", "/things") do
--   if not item then return nil, err end
-- end
function Client:each(method, path, opts)
  local ahead = opts and opts.concurrency
  if ahead ~= nil then
    if type(ahead) ~= "number" or ahead ~= math_floor(ahead) or ahead < 1 or ahead == math_huge then
      error("each: concurrency must be an integer >= 1", 2)
    end
    opts = copy(opts)
    opts.concurrency = nil
    if ahead > 1 then return require("assesskit.bulk").each(self, method, path, opts, ahead) end
  end
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

--- Call `fn(item, i)` for every item, with up to `opts.concurrency` calls in flight (see
-- `assesskit.bulk` and docs/bulk.md; the API clients' `map` is this one).
-- @param items an array or an iterator function
-- @tparam function fn `fn(item, i) -> value, err`
-- @tparam[opt] table opts `concurrency` (8), `on_result`, `on_progress`, `stop_on_error`,
--   `max_rate`
-- @return results in input order (or a summary with `on_result` or an iterator)
-- @return the error that stopped the map early, or nil
function Client:map(items, fn, opts)
  local results, err = require("assesskit.bulk").map(self.budget, items, fn, opts, "map")
  return results, err
end

--- Read a local file, whole or its first bytes.
-- @tparam string path
-- @tparam[opt] number max read at most this many bytes
-- @treturn string|nil the contents
-- @treturn string|nil the error message
function M.read_file(path, max)
  local f, err = io_open(path, "rb")
  if not f then return nil, err end
  local data = f:read(max or "*a")
  f:close()
  if not data then
    if max then return "" end
    return nil, "cannot read " .. path
  end
  return data
end

--- Encode a value as JSON (`client.null` is JSON null), every number as it was made: cjson
-- alone writes 14 significant digits (an id 123456789012345 would go out as
-- 1.2345678901234e+14) and an integral float as an integer; here an integer is written in
-- full, a float with the digits that read back as the same float (an integral one with
-- `.0`, so it stays a float on Lua 5.4; on LuaJIT a whole double within the range of a Lua 5.4
-- integer is written as that integer), with `.` as the decimal point whatever `LC_NUMERIC`
-- says. Request bodies and journal records use it.
-- @function json_encode
-- @param value a table, string, number, boolean or `client.null`
-- @treturn string the JSON text
-- @raise when the value cannot be encoded (a function, a sparse array, a cycle...)
M.json_encode = json_encode

--- Decode JSON text with assesskit.core's decoder (RFC 8259, strictly; JSON null is
-- `client.null`). A number written without a fraction or an exponent is a Lua integer on
-- Lua 5.4 (`42`; `-0` is 0), any other a float (`42.0`, `4e1`, `2.5`); on LuaJIT every number
-- is a double. A lone UTF-16 surrogate escape (`"\ud800"`) is an error; bytes from 0x80 up are
-- kept as they are (what `json_encode` writes reads back).
-- @function json_decode
-- @tparam string text
-- @return the decoded value
-- @raise when the text is not JSON (the message names the byte where it went wrong), or is
--   not a string
M.json_decode = json_decode

M.Client = Client
return M
