--- Start the assesskit sandbox from a spec and talk to its control endpoints.
--
-- The sandbox (bin/assesskit-sandbox) is a local, stateful emulator of Talview v4 and
-- InterviewMocha v2/v3 on nginx. Every `start` runs a fresh one on a free port of 127.0.0.1 in
-- a fresh temporary directory; `stop` stops it by its pid and removes the directory. Runs
-- under Lua 5.4 and LuaJIT; uses LuaSocket for plain HTTP and the `curl` command for HTTPS.
--
-- @usage
-- local sandbox = require("support.sandbox")
-- describe("my client", function()
--   -- started in setup, stopped in teardown, reset and its log cleared before each test
--   local sb = sandbox.fixture({ token_ttl = 5, reset = true, clear = true })
--   it("sends the token", function()
--     local tv = sb:talview()   -- assesskit.talview against sb.url, the demo recruiter's grant
--     assert(tv.user.me:get())
--     local log = sb:requests()
--     assert.equal("Bearer ***", log[#log].headers.authorization)
--   end)
-- end)
-- -- or by hand: local sb = sandbox.start(); ...; sb:stop()
--
-- **Faults** (`sb:fault(spec)`): `spec` is a table, or an array of them:
--
-- * `kind` (required): `"reset"` (connection closed with no response), `"slow"` (answer held
--   `delay` seconds), `"slow_body"` (half the body, `delay` seconds, the rest), `"truncate"`
--   (Content-Length promises more than is sent, then close), `"status"` (HTML error page with
--   `status` 500/502/503, default 503, plus `Retry-After` when `retry_after` is set),
--   `"rate_limit"` (429 with `Retry-After: retry_after`, default 1), `"malformed_json"` (the
--   real answer cut in half, as application/json), `"expire_token"` (the request's bearer
--   token expires now: 401, and so for every later use of it), `"drop_response"` (the request
--   is processed, then the connection closes with no answer: a lost write answer).
-- * `times`: how many matching requests it hits (default 1; -1 for ever). `times = N` is "N
--   failures, then success".
-- * `method` (e.g. `"GET"`), `path` (a prefix of the request path, e.g. `"/models/candidate"`),
--   `path_pattern` (a Lua pattern): which requests match; control requests never do.
-- * `delay` (seconds, for slow kinds), `status`, `retry_after` (seconds).
-- * Kinds that go with a Talview action (`POST /actions/...`) and act when it is processed:
--   `"slow_action"` (each item takes `delay` seconds), `"partial_failure"` (the first `items`
--   items fail, default 1), `"callback_down"` (the callback's first `attempts` deliveries find
--   no receiver; default all).
--
-- The same faults can be asked per request with the header
-- `X-Sandbox-Fault: <kind>; name=value; ...` (for example `status; status=502; times=2; id=x`:
-- the first two requests carrying it fail, later ones pass).
--
-- **Request log** (`sb:requests()`): one table per client request, oldest first: `seq`,
-- `time`, `method`, `path`, `query` (raw, secrets masked), `args` (parsed query), `headers`
-- (lower-case names; `authorization` is `"Bearer ***"`, `x-api-key` is `"***"`),
-- `content_type`, `body` (raw, with secret fields such as password, client_secret,
-- refresh_token and assertion replaced by `***`), `body_size`, `status` (what the sandbox
-- answered), `fault` (the fault kind applied, if any), `auth` (`{token = <n>, subject = ...}`:
-- the sandbox's number for the bearer token used, so specs can tell tokens apart without
-- seeing them).
-- @module support.sandbox

local cjson = require("cjson")
local sys = require("support.sys")
local http = require("support.http")

local type, pairs, ipairs, tostring, tonumber, error, setmetatable, require =
  type, pairs, ipairs, tostring, tonumber, error, setmetatable, require
local string_format, string_gsub, table_concat = string.format, string.gsub, table.concat

local M = {}
local Sandbox = {}
Sandbox.__index = Sandbox

--- The repository root (where bin/assesskit-sandbox is).
M.root = sys.repo

--- The sandbox script.
M.script = M.root .. "/bin/assesskit-sandbox"

local shell_quote, read_file = sys.quote, sys.read

-- Runs a shell command: whether it exited with status 0.
local function run(cmd)
  return (sys.run(cmd))
end

local function url_encode(s)
  return (string_gsub(tostring(s), "[^%w%-%._~]", function(c)
    return string_format("%%%02X", c:byte())
  end))
end

--- Encode a query table: arrays become `name[0]=a&name[1]=b` (Talview's array syntax).
-- @tparam table q name -> string, number or array
-- @treturn string without the leading `?`
function M.query_string(q)
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = q[k]
    if type(v) == "table" then
      for i, x in ipairs(v) do
        parts[#parts + 1] = url_encode(k .. "[" .. (i - 1) .. "]") .. "=" .. url_encode(x)
      end
    else
      parts[#parts + 1] = url_encode(k) .. "=" .. url_encode(v)
    end
  end
  return table_concat(parts, "&")
end

-- One HTTP exchange with this sandbox (its CA for https): status, headers, body or nil, message.
local function http_exchange(self, method, url, headers, body, timeout)
  return http.request(method, url, { headers = headers, body = body, timeout = timeout,
    ca_file = self.ca_file })
end

-- lua-cjson 2.1.0 decodes every number as a float; on Lua 5.4 give whole numbers back as
-- integers, so that ids print as 10001 and not 10001.0.
local tointeger = math["tointeger"] -- Lua 5.3+; nil on LuaJIT
local function integers(v, depth)
  if type(v) == "number" then
    if tointeger and v == math.floor(v) and v > -2^53 and v < 2^53 then return tointeger(v) end
    return v
  end
  if type(v) == "table" and depth < 64 then
    for k, x in pairs(v) do v[k] = integers(x, depth + 1) end
  end
  return v
end

local function decode(body)
  if not body or body == "" then return nil end
  local ok, v = pcall(cjson.decode, body)
  if ok then return integers(v, 0) end
  return nil
end

local function control(self, method, path, value)
  local body = value ~= nil and cjson.encode(value) or nil
  local headers = body and { ["content-type"] = "application/json" } or {}
  local status, hdrs, rbody = http_exchange(self, method, self.url .. path, headers, body)
  if not status then error("sandbox control " .. method .. " " .. path .. ": " .. tostring(hdrs), 3) end
  if status >= 400 then
    local v = decode(rbody)
    error(string_format("sandbox control %s %s: %d %s", method, path, status,
      v and v.error or rbody), 3)
  end
  return decode(rbody), status
end

-- Starts a sandbox into `self` (see `M.start`); errors at `level`.
local function launch(self, opts, level)
  local dir = sys.tmpdir("sandbox-spec")
  local args = { shell_quote(M.script), "start --port 0 --dir", shell_quote(dir) }
  if opts.tls then args[#args + 1] = "--tls" end
  if opts.token_ttl then args[#args + 1] = "--token-ttl " .. string_format("%d", opts.token_ttl) end
  if opts.refresh_ttl then args[#args + 1] = "--refresh-ttl " .. string_format("%d", opts.refresh_ttl) end
  if opts.log_level then args[#args + 1] = "--log-level " .. shell_quote(opts.log_level) end
  local out = dir .. ".start.out"
  local ok = run(table_concat(args, " ") .. " >" .. shell_quote(out) .. " 2>&1")
  local text = read_file(out) or ""
  os.remove(out)
  if not ok then
    local errlog = read_file(dir .. "/logs/error.log") or ""
    sys.rmdir(dir)
    error("sandbox did not start:\n" .. text .. "\n" .. errlog:sub(-2000), level + 1)
  end
  local raw = read_file(dir .. "/credentials.json")
  local okc, creds = pcall(cjson.decode, raw or "")
  if not okc or type(creds) ~= "table" then
    run(shell_quote(M.script) .. " stop --dir " .. shell_quote(dir) .. " >/dev/null 2>&1")
    sys.rmdir(dir)
    error("sandbox started but its credentials.json is unreadable", level + 1)
  end
  self.dir = dir
  self.url = creds.base_url
  self.ca_file = creds.ca_file
  self.credentials = creds
  self.pid = tonumber((read_file(dir .. "/nginx.pid") or ""):match("%d+"))
  self.output = text
  return self
end

--- Start a sandbox on a free port in a fresh temporary directory.
-- @tparam[opt] table opts `tls` (boolean: HTTPS with a generated CA, see `sb.ca_file`),
--   `token_ttl` (seconds: lifetime of access tokens), `refresh_ttl` (seconds),
--   `log_level` (nginx error log level, default "warn")
-- @treturn table `sb`: `url`, `ca_file` (with tls), `dir`, `pid`, `credentials` (the decoded
--   credentials.json: `base_url`, `ca_file`, `password` {client_id, client_secret, username,
--   password}, `viewer` (a user without privileged roles, same fields), `jwt` {client_id,
--   issuer, audience, scope, private_key_file}, `interviewmocha` {api_key})
-- @raise when the sandbox cannot start (the message has the tail of its error log)
function M.start(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("sandbox.start: options table expected", 2) end
  return launch(setmetatable({}, Sandbox), opts, 2)
end

--- One sandbox for the enclosing `describe` block, through busted's hooks: `setup` starts it,
-- `teardown` stops it, and `before_each` puts it back to the seed and clears its request log
-- when asked. Call it in the block's body; hooks the block adds after it run after its own.
-- @tparam[opt] table opts those of `start`, and `token` (true: `sb.tok` holds an access token
--   of the demo recruiter once started), `reset` (true: `sb:reset()` before each test), `clear`
--   (true: `sb:clear_requests()` before each test), `lazy` (true: `lazy_setup` and
--   `lazy_teardown`, so nothing starts when every test of the block is filtered out)
-- @treturn table the sandbox: an empty handle until `setup` has run, then as `start` makes it
-- @usage local sb = sandbox.fixture({ tls = true, reset = true, clear = true })
function M.fixture(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("sandbox.fixture: options table expected", 2) end
  local busted = require("busted")
  local self = setmetatable({}, Sandbox)
  busted[opts.lazy and "lazy_setup" or "setup"](function()
    launch(self, opts, 1)
    if opts.token then self.tok = self:token() end
  end)
  busted[opts.lazy and "lazy_teardown" or "teardown"](function()
    if self.dir then self:stop() end
  end)
  if opts.reset or opts.clear then
    busted.before_each(function()
      if opts.reset then self:reset() end
      if opts.clear then self:clear_requests() end
    end)
  end
  return self
end

--- Stop the sandbox (by its pid, waiting until it is gone) and remove its directory.
-- Idempotent.
-- @raise when the sandbox does not stop
function Sandbox:stop()
  if self.stopped then return end
  local ok = run(shell_quote(M.script) .. " stop --dir " .. shell_quote(self.dir) .. " >/dev/null 2>&1")
  if not ok then error("sandbox did not stop (" .. self.dir .. ")", 2) end
  self.stopped = true
  sys.rmdir(self.dir)
end

--- Whether the sandbox's nginx master is still running.
-- @treturn boolean
function Sandbox:running()
  return run(shell_quote(M.script) .. " status --dir " .. shell_quote(self.dir) .. " >/dev/null 2>&1")
end

--- The request log, oldest first.
-- @tparam[opt] table filter `method`, `path` (exact), `path_prefix`, `since` (a seq number)
-- @treturn table array of entries (see the module description)
function Sandbox:requests(filter)
  local path = "/_sandbox/requests"
  if filter and filter.since then path = path .. "?since=" .. tostring(filter.since) end
  local all = control(self, "GET", path) or {}
  if not filter then return all end
  local out = {}
  for _, e in ipairs(all) do
    if (not filter.method or e.method == filter.method)
      and (not filter.path or e.path == filter.path)
      and (not filter.path_prefix or e.path:sub(1, #filter.path_prefix) == filter.path_prefix) then
      out[#out + 1] = e
    end
  end
  return out
end

--- The last logged request (or nil).
-- @treturn ?table
function Sandbox:last_request()
  local all = self:requests()
  return all[#all]
end

--- Clear the request log.
function Sandbox:clear_requests()
  control(self, "DELETE", "/_sandbox/requests")
end

--- Arm a fault (or an array of faults) through the control endpoint.
-- @tparam table spec see the module description
-- @treturn table the armed faults (each with its `id`)
-- @raise on a bad spec
function Sandbox:fault(spec)
  if type(spec) ~= "table" then error("sb:fault: table expected", 2) end
  return control(self, "POST", "/_sandbox/faults", spec)
end

--- The faults still armed.
-- @treturn table
function Sandbox:faults()
  return control(self, "GET", "/_sandbox/faults")
end

--- Disarm every fault.
function Sandbox:clear_faults()
  control(self, "DELETE", "/_sandbox/faults")
end

--- Put the state back to the seed; faults are disarmed and settings restored.
-- @tparam[opt] table opts `all = true` also forgets issued tokens and clears the request log
function Sandbox:reset(opts)
  control(self, "POST", "/_sandbox/reset" .. ((opts and opts.all) and "?all=1" or ""))
end

--- Read or change run-time settings (`token_ttl`, `jwt_token_ttl`, `refresh_ttl`,
-- `default_page_size`, `max_page_size`, `jwt_max_lifetime`, `jwt_leeway`, `action_delay`,
-- `callback_attempts`, `callback_backoff`, `callback_timeout`).
-- @tparam[opt] table changes name -> number; nil to read
-- @treturn table the settings in force
function Sandbox:config(changes)
  if changes == nil then return control(self, "GET", "/_sandbox/config") end
  return control(self, "PUT", "/_sandbox/config", changes)
end

--- Process every pending Talview action now, and make one attempt of every callback waiting
-- for its retry (`POST /_sandbox/actions/run`), so that a spec need not wait `action_delay`.
-- @treturn table `{processed = <actions>, callbacks = <attempts made meanwhile>}`
function Sandbox:run_actions()
  return control(self, "POST", "/_sandbox/actions/run")
end

--- Expire every access token issued so far (refresh tokens stay valid).
-- @treturn number how many expired
function Sandbox:expire_tokens()
  return control(self, "POST", "/_sandbox/tokens/expire").expired
end

--- Read the stored state directly: every record of a resource, or one.
-- @tparam string resource e.g. "candidate", "assessment_candidate"
-- @param[opt] id
-- @treturn table records (array) or one record
function Sandbox:state(resource, id)
  return control(self, "GET", "/_sandbox/state/" .. resource .. (id and ("/" .. tostring(id)) or ""))
end

--- Make a raw HTTP request to the sandbox (for specs that must not use assesskit's client).
-- @tparam string method
-- @tparam string path e.g. "/models/candidate"; may carry a query string
-- @tparam[opt] table opts `query` (table, see `query_string`), `headers`, `body` (string, or a
--   table sent as JSON), `form` (table sent form-encoded), `token` (adds
--   `Authorization: Bearer <token>`), `timeout` (seconds)
-- @treturn table `status`, `headers` (lower-case names), `body`, `json` (decoded body or nil)
function Sandbox:request(method, path, opts)
  opts = opts or {}
  local url = self.url .. path
  if opts.query then url = url .. (path:find("?", 1, true) and "&" or "?") .. M.query_string(opts.query) end
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k:lower()] = v end
  local body = opts.body
  if type(body) == "table" then
    body = cjson.encode(body)
    headers["content-type"] = headers["content-type"] or "application/json"
  elseif opts.form then
    local parts = {}
    for k, v in pairs(opts.form) do parts[#parts + 1] = url_encode(k) .. "=" .. url_encode(v) end
    table.sort(parts)
    body = table_concat(parts, "&")
    headers["content-type"] = headers["content-type"] or "application/x-www-form-urlencoded"
  end
  if opts.token then headers["authorization"] = "Bearer " .. opts.token end
  local status, hdrs, rbody = http_exchange(self, method, url, headers, body, opts.timeout)
  if not status then return { error = hdrs } end
  return { status = status, headers = hdrs, body = rbody, json = decode(rbody) }
end

-- `defaults` with `opts` over them; `false` in `opts` leaves out a default named in `optional`
-- (every one when `optional` is true).
local function with_defaults(defaults, opts, optional)
  for k, v in pairs(opts or {}) do
    if v == false and (optional == true or optional[k]) then defaults[k] = nil else defaults[k] = v end
  end
  return defaults
end

local CLIENT_DEFAULTS = { base_url = true, ca_file = true, auth = true, api_key = true,
  v2_url = true, v3_url = true }

--- The demo recruiter's password grant, as the `auth` option of assesskit.talview.
-- @tparam[opt] table overrides fields to change (`false` removes one)
-- @treturn table `{grant = "password", client_id, client_secret, username, password}`
function Sandbox:password_auth(overrides)
  local c = self.credentials.password
  return with_defaults({ grant = "password", client_id = c.client_id,
    client_secret = c.client_secret, username = c.username, password = c.password }, overrides, true)
end

--- The demo service account's JWT-bearer grant, as the `auth` option of assesskit.talview.
-- @tparam[opt] table overrides fields to change (`false` removes one)
-- @treturn table `{grant = "jwt", client_id, issuer, audience, scope, private_key_file}`
function Sandbox:jwt_auth(overrides)
  local j = self.credentials.jwt
  return with_defaults({ grant = "jwt", client_id = j.client_id, issuer = j.issuer,
    audience = j.audience, scope = j.scope, private_key_file = j.private_key_file }, overrides, true)
end

--- A Talview client for this sandbox (assesskit.talview.new).
-- @tparam[opt] table opts client options over the defaults: `base_url` (the sandbox),
--   `ca_file` (its CA, with TLS), `auth` (`password_auth()`); `false` leaves a default out
-- @treturn table the client
function Sandbox:talview(opts)
  return require("assesskit.talview").new(with_defaults({ base_url = self.url,
    ca_file = self.ca_file, auth = self:password_auth() }, opts, CLIENT_DEFAULTS))
end

--- An InterviewMocha client for this sandbox (assesskit.interviewmocha.new).
-- @tparam[opt] table opts client options over the defaults: `api_key` (the demo key),
--   `v2_url`, `v3_url` (the sandbox), `ca_file` (its CA, with TLS), `max_retries` (0: a
--   fault fails the call unless the spec asks for retries); `false` leaves a default out
-- @treturn table the client
function Sandbox:interviewmocha(opts)
  return require("assesskit.interviewmocha").new(with_defaults({
    api_key = self.credentials.interviewmocha.api_key, v2_url = self.url .. "/v2",
    v3_url = self.url .. "/v3", ca_file = self.ca_file, max_retries = 0 }, opts, CLIENT_DEFAULTS))
end

--- Every secret of the demo credentials (passwords, client secret, API key), to look for in
-- output that must not show them.
-- @treturn table array of strings
function Sandbox:secrets()
  local c = self.credentials
  return { c.password.password, c.password.client_secret, c.interviewmocha.api_key,
    c.viewer.password }
end

--- Get an access token with the demo credentials (password grant).
-- @tparam[opt] string who `"password"` (the demo recruiter, default) or `"viewer"` (no
--   privileged roles)
-- @treturn string access token
-- @treturn table the whole token response
function Sandbox:token(who)
  local c = self.credentials[who or "password"]
  if not c then error("sb:token: unknown user " .. tostring(who), 2) end
  local r = self:request("POST", "/oauth2/token", { body = {
    grant_type = "password", client_id = c.client_id, client_secret = c.client_secret,
    username = c.username, password = c.password } })
  if r.status ~= 200 or not r.json then
    error("sb:token: token endpoint answered " .. tostring(r.status) .. " " .. tostring(r.body), 2)
  end
  return r.json.access_token, r.json
end

return M
