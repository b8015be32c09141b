--- The assesskit sandbox: a local, stateful emulator of Talview v4 and InterviewMocha v2/v3,
-- running inside nginx (LuaJIT) with one worker.
--
-- One base URL serves everything: Talview at the root (`/oauth2/token`, `/models/...`, ...),
-- InterviewMocha under `/v2/...` and `/v3/...`, the sandbox's own control endpoints under
-- `/_sandbox/...`: health, demo credentials, the request log (`/_sandbox/requests`, secrets
-- masked: `assesskit.sandbox.log`), faults, run-time settings, reset, tokens and the stored
-- state (the list: `assesskit.sandbox.control`). Faults (reset connections, slow or cut
-- bodies, 429, 5xx pages, malformed JSON, expiring tokens; N failures then success) are
-- armed with `POST /_sandbox/faults` or asked per request with an `X-Sandbox-Fault` header
-- (`assesskit.sandbox.faults`). lua/assesskit/sandbox/README.md has all of it in one page.
--
-- Start it with `bin/assesskit-sandbox`; nginx.conf.in calls `init` (master, at
-- configuration load), `init_worker` and `handle`.
-- @module assesskit.sandbox

local ngx = ngx -- luacheck: read globals ngx
local config = require("assesskit.sandbox.config")
local http = require("assesskit.sandbox.http")
local log = require("assesskit.sandbox.log")
local faults = require("assesskit.sandbox.faults")
local json = require("assesskit.sandbox.json")
local credentials = require("assesskit.sandbox.credentials")

local type, pcall, tostring, require = type, pcall, tostring, require
local string_sub, string_format = string.sub, string.format

local M = {}

local function write_file(path, data, mode)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  f:write(data)
  f:close()
  if mode then os.execute(string_format("chmod %s '%s'", mode, path)) end
  return true
end

--- Configure the sandbox (nginx master, `init_by_lua`). Writes `credentials.json` and
-- `credentials.txt` into the run directory.
-- @tparam table conf `dir`, `base_url`, `port`, `tls`, `ca_file`, `lua_dir`, `token_ttl`,
--   `refresh_ttl`
function M.init(conf)
  if type(conf) ~= "table" then error("assesskit.sandbox.init: table expected", 2) end
  config.init(conf)
  -- load every module now, in the master, so that a syntax error stops nginx from starting
  require("assesskit.sandbox.auth")
  require("assesskit.sandbox.control")
  require("assesskit.sandbox.talview")
  require("assesskit.sandbox.interviewmocha")
  if conf.dir then
    local c = credentials.document(config.static)
    assert(write_file(conf.dir .. "/credentials.json", json.encode(c) .. "\n", "600"))
    assert(write_file(conf.dir .. "/credentials.txt", credentials.text(c), "600"))
  end
end

--- Seed the state (nginx worker, `init_worker_by_lua`).
function M.init_worker()
  math.randomseed(ngx.now() * 1000 + ngx.worker.pid())
  local ok, err = require("assesskit.sandbox.seed").reset_safely()
  if not ok then ngx.log(ngx.ERR, "sandbox: seeding failed: ", err) end
end

local function dispatch(req)
  local path = req.path
  if path == "/oauth2/token" then
    return require("assesskit.sandbox.auth").token_endpoint(req)
  end
  local head = string_sub(path, 1, 4)
  if head == "/v2/" or head == "/v3/" or path == "/v2" or path == "/v3" then
    return require("assesskit.sandbox.interviewmocha").handle(req)
  end
  if string_sub(path, 1, 7) == "/files/" then
    return require("assesskit.sandbox.interviewmocha").serve_file(req)
  end
  return require("assesskit.sandbox.talview").handle(req)
end

local function apply_fault(req, f)
  req.log_entry.fault = f.kind
  local kind = f.kind
  if kind == "reset" then
    return ngx.exit(444)
  elseif kind == "slow" then
    ngx.sleep(f.delay)
  elseif kind == "status" then
    local headers = { ["Content-Type"] = "text/html" }
    if f.retry_after then headers["Retry-After"] = tostring(f.retry_after) end
    return http.send(req, f.status, http.html_page(f.status), headers)
  elseif kind == "rate_limit" then
    req.suppress_ok = false
    return http.error(req, 429, "Rate limit exceeded.", {
      ["Retry-After"] = tostring(f.retry_after or 1),
      ["X-Rate-Limit-Limit"] = "60",
      ["X-Rate-Limit-Remaining"] = "0",
      ["X-Rate-Limit-Reset"] = tostring(f.retry_after or 1),
    })
  elseif kind == "expire_token" then
    local auth = require("assesskit.sandbox.auth")
    local token = auth.bearer(req)
    if token then auth.expire(token) end
  else
    req.output_fault = f -- truncate, slow_body, malformed_json, drop_response: by http.send
  end
end

local function serve(req)
  if string_sub(req.path, 1, 10) == "/_sandbox/" or req.path == "/_sandbox" then
    return require("assesskit.sandbox.control").handle(req)
  end
  req.log_entry = log.record(req)
  local f, ferr = faults.take(req)
  if ferr then
    return http.error(req, 400, "bad X-Sandbox-Fault header: " .. ferr)
  end
  if f then apply_fault(req, f) end
  return dispatch(req)
end

--- Serve one request (nginx worker, `content_by_lua`).
function M.handle()
  local req = http.read_request()
  -- all of it protected, control requests, the request log and faults too: a Lua error is
  -- logged and answered with the API's 500, never nginx's bare one and a trace
  local ok, err = pcall(serve, req)
  if not ok then
    ngx.log(ngx.ERR, "sandbox: ", tostring(err))
    req.output_fault = nil
    return http.error(req, 500, "An internal server error occurred.")
  end
end

return M
