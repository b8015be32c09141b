--- A receiver for the callbacks of Talview actions.
--
-- An action (`tv.actions:invite{...}` and the 21 others) is queued when its POST answers
-- (status 1): Talview does the work later and, unless the request said `skipCallback`, calls
-- the `callbackUrl` the request gave. Talview documents no signature for that call, so the
-- receiver trusts a secret that only Talview and you know: you put it in the `callbackUrl`
-- (`callback.url` builds one with a fresh random secret), and the receiver refuses every
-- request whose URL does not carry it. What it accepts:
--
-- 1. a `POST` (else 405),
-- 2. whose URL carries the secret as its `secret` query parameter, compared in constant time
--    (none: 401; a wrong one: 403; two: 400),
-- 3. a body of at most `max_body` bytes (else 413), JSON if a media type is given (else 415),
--    that parses (else 400) into an action object: `id` a positive whole number, `status` one
--    of 0, 1, 2, 3, 99, counts whole numbers >= 0 or null, times and `response` strings or
--    null (else 422),
-- 4. that it has not seen before: the same action id and status a second time is a replay
--    (409), whoever sends it; while the handler of the first one still runs, it is asked to
--    come again (503, `Retry-After: 1`), since that handler may yet fail. Seen deliveries are
--    remembered in a bounded way: in memory (the last `seen_size`), or in a `lua_shared_dict`
--    (`seen = "<dict name>"`; all workers share it, entries expire after `seen_ttl` seconds or
--    when the dict is full).
--
-- Then it calls your `handler(action)` and answers 200 `{"ok":true}`. When the handler raises,
-- the receiver answers 500 and forgets the delivery, so that the sender's retry calls it again;
-- otherwise the handler runs exactly once per action id and status. Refusals are
-- `{"error": "<reason>"}` with the status above; no answer, log line or value handed to the
-- handler carries the secret (the action's `callbackUrl` has it replaced by `***`).
--
-- What the callback's body holds is an assumption (the seed names the callback, not its body):
-- docs/actions.md, "Callbacks", describes it and how the sandbox sends it.
--
-- @module assesskit.talview.callback
-- @usage -- OpenResty: nginx.conf has `lua_shared_dict talview_callbacks 1m;` and
-- --   location = /talview/callback { content_by_lua_block { require("my_site").callback() } }
-- local callback = require("assesskit.talview.callback")
-- local receiver = callback.new{
--   secret = os.getenv("TALVIEW_CALLBACK_SECRET"),
--   seen = "talview_callbacks",
--   handler = function(action)   -- callback.log: ngx.log would add the URL, secret and all
--     callback.log(ngx.NOTICE, "action ", action.id, " is ", callback.status_name(action.status))
--   end,
-- }
-- function M.callback() return receiver:serve() end
--
-- -- Any other server: hand it the request, send what it returns.
-- local status, body, headers = receiver:handle(method, url, headers, body)
--
-- -- When making the action:
-- local url, secret = callback.url("https://hooks.example.com/talview/callback", secret)
-- tv.actions:invite{ ..., callbackUrl = url }

local cjson = require("cjson")
local action_status = require("assesskit.talview.action_status")

local type, pairs, ipairs, tostring, tonumber, error, pcall, setmetatable, select =
  type, pairs, ipairs, tostring, tonumber, error, pcall, setmetatable, select
local string_byte, string_format, string_find, string_gsub, string_lower, string_match =
  string.byte, string.format, string.find, string.gsub, string.lower, string.match
local math_floor, table_concat = math.floor, table.concat

local json = cjson.new()
json.decode_max_depth(32)
local json_encode = json.encode

local M = {}

--- The query parameter that carries the secret.
M.param = "secret"

--- Default `max_body`: 1 MiB.
M.default_max_body = 1024 * 1024

--- Default `seen_size` (in-memory replay memory).
M.default_seen_size = 10000

--- Default `seen_ttl` (seconds a shared dict remembers a delivery): 30 days.
M.default_seen_ttl = 30 * 86400

--- The name of an action status (`"requested"`, `"completed"`, ...; see
-- `assesskit.talview.action_status`).
-- @function status_name
-- @param status
-- @treturn ?string
M.status_name = action_status.name

-- == Secrets and URLs ==

--- A fresh random secret: `bytes` bytes from `/dev/urandom`, as lower-case hex.
-- @tparam[opt=32] number bytes 16 to 1024
-- @treturn string
-- @raise when `/dev/urandom` cannot be read
function M.secret(bytes)
  bytes = bytes == nil and 32 or bytes
  if type(bytes) ~= "number" or bytes < 16 or bytes > 1024 or bytes ~= math_floor(bytes) then
    error("callback.secret: bytes must be a whole number from 16 to 1024", 2)
  end
  local f = io.open("/dev/urandom", "rb")
  local raw = f and f:read(bytes)
  if f then f:close() end
  if not raw or #raw ~= bytes then error("callback.secret: cannot read /dev/urandom", 2) end
  return (string_gsub(raw, ".", function(c) return string_format("%02x", string_byte(c)) end))
end

local function check_secret(s, where, level)
  if type(s) ~= "string" or #s < 16 or not string_find(s, "^[%w%-%._~]+$") then
    error(where .. ": a secret is a string of at least 16 letters, digits, '-', '.', '_' or '~'"
      .. " (callback.secret() makes one)", level + 1)
  end
end

-- Constant-time comparison: the time depends on the length of `expected` only.
local function same(expected, given)
  local n = #expected
  local diff = #given == n and 0 or 1
  for i = 1, n do
    local d = string_byte(expected, i) - (string_byte(given, i) or 0)
    diff = diff + d * d
  end
  return diff == 0
end

local function unescape(s)
  s = string_gsub(s, "+", " ")
  return (string_gsub(s, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- The values of the secret parameter in a URL's query.
local function secrets_in(url)
  local query = string_match(url, "%?([^#]*)") or ""
  local out = {}
  for pair in string.gmatch(query, "[^&]+") do
    local k, v = string_match(pair, "^([^=]*)=?(.*)$")
    if unescape(k) == M.param then out[#out + 1] = unescape(v) end
  end
  return out
end

-- `url` with the secret parameter's value replaced by `***`.
local function masked(url)
  return (string_gsub(url, "([?&]" .. M.param .. "=)[^&#]*", "%1***"))
end

--- The `callbackUrl` to give an action: `base` with the secret as its `secret` query parameter.
-- @tparam string base the receiver's http or https URL (may have a query; no fragment)
-- @tparam[opt] string secret the receiver's secret; a fresh one (`secret()`) when nil
-- @treturn string the URL
-- @treturn string the secret (give it to the receiver: `new{secret = ...}`)
-- @usage local url, secret = callback.url("https://hooks.example.com/talview")
function M.url(base, secret)
  if type(base) ~= "string" or not string_find(string_lower(base), "^https?://[^/?#]+") then
    error("callback.url: base must be an http or https URL", 2)
  end
  if string_find(base, "#", 1, true) then error("callback.url: base must not have a fragment", 2) end
  if #secrets_in(base) > 0 then
    error("callback.url: base already has a '" .. M.param .. "' parameter (the receiver would refuse the"
      .. " secret given twice): give the URL without it", 2)
  end
  if secret == nil then secret = M.secret() end
  check_secret(secret, "callback.url", 2)
  local sep = string_find(base, "?", 1, true) and (string_find(base, "[?&]$") and "" or "&") or "?"
  return base .. sep .. M.param .. "=" .. secret, secret
end

-- == Seen deliveries ==

local Memory = {}
Memory.__index = Memory

-- The last `size` keys taken, oldest forgotten first. `slot[key]` is the key's slot in `keys`; a
-- slot whose key was deleted since (or taken again, in a later slot) is stale: it ages out
-- without forgetting anything, and is not counted against `size`.
local function memory(size)
  return setmetatable({ size = size, keys = {}, slot = {}, value = {}, first = 1, last = 0, count = 0 },
    Memory)
end

-- Forget the oldest slot (nothing when it is stale).
local function drop_first(self)
  local i = self.first
  local old = self.keys[i]
  self.keys[i] = nil
  self.first = i + 1
  if old ~= nil and self.slot[old] == i then
    self.slot[old], self.value[old] = nil, nil
    self.count = self.count - 1
  end
end

-- The live keys in slots 1..count, in their order: stale slots take no memory.
local function compact(self)
  local keys, n = {}, 0
  for i = self.first, self.last do
    local k = self.keys[i]
    if k ~= nil and self.slot[k] == i then
      n = n + 1
      keys[n] = k
      self.slot[k] = n
    end
  end
  self.keys, self.first, self.last = keys, 1, n
end

function Memory:add(key, value)
  if self.slot[key] then return false, "exists" end
  self.last = self.last + 1
  self.keys[self.last] = key
  self.slot[key], self.value[key] = self.last, value
  self.count = self.count + 1
  while self.count > self.size do drop_first(self) end
  return true
end

function Memory:get(key)
  return self.value[key]
end

-- Only ever called for a key just taken (its value changes, its place does not).
function Memory:set(key, value)
  if self.slot[key] then self.value[key] = value return true end
  return self:add(key, value)
end

function Memory:delete(key)
  local slot = self.slot[key]
  if not slot then return end
  self.slot[key], self.value[key] = nil, nil
  self.count = self.count - 1
  if slot == self.last then
    -- the key just taken (a handler that failed): its slot goes too
    self.keys[slot] = nil
    self.last = slot - 1
  elseif self.last - self.first + 1 > 2 * self.size then
    compact(self)
  end
end

-- == Checks ==

local function whole(v, min)
  return type(v) == "number" and v == math_floor(v) and v >= min and v < 2 ^ 53
end

local COUNTS = { "total_count", "success_count", "error_count" }
local TEXTS = { "external_id", "response", "requested_at", "started_at", "completed_at", "created_at",
  "updated_at", "callbackUrl" }

--- Why a decoded value is not an action object, or nil when it is one.
-- @param v
-- @treturn ?string the reason (names the field, never its value)
function M.check_action(v)
  if type(v) ~= "table" or v == cjson.null or v[1] ~= nil then return "the body is not a JSON object" end
  if not whole(v.id, 1) then return "id must be a positive whole number" end
  if not whole(v.status, 0) or not action_status.name(v.status) then
    return "status must be 0, 1, 2, 3 or 99"
  end
  for _, k in ipairs(COUNTS) do
    local x = v[k]
    if x ~= nil and x ~= cjson.null and not whole(x, 0) then return k .. " must be a whole number >= 0 or null" end
  end
  for _, k in ipairs(TEXTS) do
    local x = v[k]
    if x ~= nil and x ~= cjson.null and type(x) ~= "string" then return k .. " must be a string or null" end
  end
  return nil
end

local function header(headers, name)
  if type(headers) ~= "table" then return nil end
  local v = headers[name]
  if v == nil then
    for k, x in pairs(headers) do
      if type(k) == "string" and string_lower(k) == name then v = x break end
    end
  end
  if type(v) == "table" then v = v[1] end
  return v
end

local function answer(status, reason, extra)
  local headers = { ["Content-Type"] = "application/json" }
  for k, v in pairs(extra or {}) do headers[k] = v end
  local body = reason and json_encode({ error = reason }) or '{"ok":true}'
  return status, body, headers
end

-- == The receiver ==

local Receiver = {}
Receiver.__index = Receiver

-- What the seen store holds for a delivery: taken and in the handler, or handled.
local PENDING, DONE = "pending", "done"

local OPTIONS = { secret = true, handler = true, max_body = true, seen = true, seen_size = true,
  seen_ttl = true }

--- A receiver.
-- @tparam table opts
--
-- * `secret` (required): the secret in your `callbackUrl` (at least 16 characters of
--   `A-Za-z0-9-._~`; `callback.secret()` makes one), or an array of them while you rotate;
-- * `handler` (required): `function(action)`, called once per new action id and status with
--   the decoded action object (its `callbackUrl` secret replaced by `***`); raise to have the
--   delivery refused with 500 and tried again by the sender;
-- * `max_body` (bytes, default 1 MiB);
-- * `seen`: where deliveries are remembered: the name of a `lua_shared_dict` (inside nginx),
--   or an object with `add(key, value, ttl) -> true | false, "exists"` and `delete(key)`, and
--   best `get(key)` and `set(key, value, ttl)` too (without them a delivery that comes while
--   the handler of the same one runs is refused with 409, not asked to come again; a
--   `ngx.shared.DICT` has all four); default: this receiver's memory, the last `seen_size`
--   (10000);
-- * `seen_ttl` (seconds a shared dict keeps one; default 30 days).
-- @treturn table the receiver: `handle`, `serve`
-- @raise on a missing or wrong option (before anything is received)
function M.new(opts)
  if type(opts) ~= "table" then error("callback.new: options table expected", 2) end
  for k in pairs(opts) do
    if not OPTIONS[k] then
      local names = {}
      for n in pairs(OPTIONS) do names[#names + 1] = n end
      table.sort(names)
      error("callback.new: unknown option '" .. tostring(k) .. "' (options: " .. table_concat(names, ", ") .. ")", 2)
    end
  end
  local secrets = type(opts.secret) == "table" and opts.secret or { opts.secret }
  if #secrets == 0 then error("callback.new: secret is required", 2) end
  for _, s in ipairs(secrets) do check_secret(s, "callback.new", 2) end
  if type(opts.handler) ~= "function" then error("callback.new: handler must be a function", 2) end
  local max_body = opts.max_body == nil and M.default_max_body or opts.max_body
  if not whole(max_body, 1) then error("callback.new: max_body must be a whole number of bytes >= 1", 2) end
  local seen = opts.seen
  if type(seen) == "string" then
    local shared = ngx and ngx.shared -- luacheck: read globals ngx
    if not (shared and shared[seen]) then
      error("callback.new: no lua_shared_dict named '" .. seen .. "'", 2)
    end
    seen = shared[seen]
  elseif seen == nil then
    local size = opts.seen_size == nil and M.default_seen_size or opts.seen_size
    if not whole(size, 1) then error("callback.new: seen_size must be a whole number >= 1", 2) end
    seen = memory(size)
  elseif type(seen) ~= "table" and type(seen) ~= "userdata" then
    error("callback.new: seen must be a lua_shared_dict name or an object with add and delete", 2)
  end
  if opts.seen_size ~= nil and opts.seen ~= nil then
    error("callback.new: seen_size is for the in-memory store; a shared dict is bounded by its size", 2)
  end
  local ttl = opts.seen_ttl == nil and M.default_seen_ttl or opts.seen_ttl
  if type(ttl) ~= "number" or ttl < 0 then error("callback.new: seen_ttl must be a number of seconds >= 0", 2) end
  local copy = {}
  for i, s in ipairs(secrets) do copy[i] = s end
  return setmetatable({ secrets = copy, handler = opts.handler, max_body = max_body, seen = seen,
    seen_ttl = ttl }, Receiver)
end

-- Step 1: what can be checked before the body is read. nil when it passes.
local function check_head(self, method, url, headers)
  if method ~= "POST" then return answer(405, "use POST", { Allow = "POST" }) end
  local given = secrets_in(type(url) == "string" and url or "")
  if #given == 0 then return answer(401, "no secret in the URL") end
  if #given > 1 then return answer(400, "the secret is given more than once") end
  local ok = false
  for _, s in ipairs(self.secrets) do
    if same(s, given[1]) then ok = true end
  end
  if not ok then return answer(403, "wrong secret") end
  local length = header(headers, "content-length")
  if length ~= nil and (tonumber(length) or 0) > self.max_body then
    return answer(413, "the body is larger than " .. self.max_body .. " bytes")
  end
  local ctype = header(headers, "content-type")
  if ctype ~= nil then
    local media = string_lower(string_match(tostring(ctype), "^%s*([^;%s]*)") or "")
    if media ~= "application/json" and not string_find(media, "+json", 1, true) then
      return answer(415, "the body must be application/json")
    end
  end
  return nil
end

-- Step 2: the body, the action, the replay check and the handler.
local function check_body(self, body)
  if type(body) ~= "string" or body == "" then return answer(400, "no body") end
  if #body > self.max_body then return answer(413, "the body is larger than " .. self.max_body .. " bytes") end
  local ok, action = pcall(json.decode, body)
  if not ok then return answer(400, "the body is not JSON") end
  local why = M.check_action(action)
  if why then return answer(422, "not an action: " .. why) end
  local key = string_format("talview-action:%.0f:%.0f", action.id, action.status)
  local seen = self.seen
  local added, err = seen:add(key, PENDING, self.seen_ttl)
  if not added then
    if err == "exists" then
      if seen.get and seen:get(key) == PENDING then
        -- another delivery of it is in the handler, which may yet fail: not a replay yet
        return answer(503, string_format("action %.0f with status %.0f is being handled: try again later",
          action.id, action.status), { ["Retry-After"] = "1" })
      end
      return answer(409, string_format("already received: action %.0f with status %.0f", action.id, action.status))
    end
    return answer(503, "cannot remember the delivery")
  end
  if type(action.callbackUrl) == "string" then action.callbackUrl = masked(action.callbackUrl) end
  local done, herr = pcall(self.handler, action)
  if not done then
    self.seen:delete(key)
    local msg = tostring(herr)
    for _, s in ipairs(self.secrets) do msg = string_gsub(msg, s:gsub("%p", "%%%0"), "***") end
    local status, rbody, headers = answer(500, "the handler failed")
    return status, rbody, headers, msg
  end
  if seen.set then seen:set(key, DONE, self.seen_ttl) end
  return answer(200)
end

--- Check a callback request and, when it is a new action, hand it to the handler.
-- For servers other than nginx: give it the request, send back what it returns.
-- @tparam string method e.g. "POST"
-- @tparam string url the request's URL or its path and query (`/talview/callback?secret=...`)
-- @tparam[opt] table headers name -> value (any case)
-- @tparam[opt] string body
-- @treturn number the status to answer (200, or a 4xx/5xx as in the module description)
-- @treturn string the body to answer (JSON)
-- @treturn table the headers to answer
-- @treturn ?string for a 500, the handler's error (the secret masked), to log
function Receiver:handle(method, url, headers, body)
  local status, rbody, rheaders = check_head(self, method, url, headers)
  if status then return status, rbody, rheaders end
  return check_body(self, body)
end

--- Log a line inside nginx without the request's context. Every line nginx logs while serving
-- a request ends with its request line, and a callback's request line carries the secret: log
-- from your handler with this instead of `ngx.log`. (The line is written from a zero-delay
-- timer, just after.)
-- @tparam number level e.g. `ngx.NOTICE`
-- @param ... the parts of the line (as `ngx.log` takes them)
function M.log(level, ...)
  local ngx = ngx -- luacheck: read globals ngx
  local n, parts = select("#", ...), { ... }
  for i = 1, n do parts[i] = tostring(parts[i]) end
  local line = table_concat(parts, "", 1, n)
  local ok = ngx.timer.at(0, function() ngx.log(level, line) end)
  if not ok then ngx.log(level, "talview callback: a log line was lost (no timer)") end
end

-- The request body inside nginx, at most `limit` bytes plus one (so that "too large" shows).
local function nginx_body(limit)
  local ngx = ngx -- luacheck: read globals ngx
  ngx.req.read_body()
  local data = ngx.req.get_body_data()
  if data then return data end
  local file = ngx.req.get_body_file()
  if not file then return nil end
  local f = io.open(file, "rb")
  if not f then return nil end
  data = f:read(limit + 1)
  f:close()
  return data
end

--- Serve the current request inside nginx (`content_by_lua*`): the checks, the handler, the
-- answer. The body is read only once the method, secret, length and media type passed.
-- A handler failure is logged at `error` level with `log` (the secret masked, and out of the
-- request's context, whose request line holds the secret). Your access log should not log the
-- query either (`$uri`, not `$request_uri` or `$request`), and nginx should keep the body in
-- memory (`client_body_buffer_size` as large as `client_max_body_size`): it logs a warning with
-- the request line when it buffers a body to a file.
function Receiver:serve()
  local ngx = ngx -- luacheck: read globals ngx
  local method = ngx.req.get_method()
  local headers = ngx.req.get_headers(100)
  local status, body, rheaders, err = check_head(self, method, ngx.var.request_uri, headers)
  if not status then
    status, body, rheaders, err = check_body(self, nginx_body(self.max_body))
  end
  if err then M.log(ngx.ERR, "talview callback: the handler failed: ", err) end
  ngx.status = status
  for k, v in pairs(rheaders) do ngx.header[k] = v end
  ngx.header["Content-Length"] = #body
  ngx.print(body)
  return ngx.exit(status)
end

return M
