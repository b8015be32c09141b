--- The credentials of a running local sandbox, for scripts, examples and the command line.
--
-- `assesskit-sandbox start --dir DIR` writes the sandbox's base URL and demo credentials to
-- `DIR/credentials.json`; this module reads them (the run directory is `$ASSESSKIT_SANDBOX_DIR`
-- by default) and turns them into the options of `assesskit.talview.new` and
-- `assesskit.interviewmocha.new`. A sandbox that is not running is an error that says so and
-- how to start it, rather than a bare connection failure on the first call. The credentials
-- work against that sandbox alone.
-- @module assesskit.local_sandbox
-- @usage
-- local sandbox = require("assesskit.local_sandbox")
-- local sb = assert(sandbox.credentials())          -- $ASSESSKIT_SANDBOX_DIR
-- local tv = require("assesskit.talview").new(assert(sandbox.talview_options(sb)))
-- local im = require("assesskit.interviewmocha").new(sandbox.interviewmocha_options(sb))
local type, error, pcall, tostring, tonumber = type, error, pcall, tostring, tonumber
local io_open, io_popen, os_getenv = io.open, io.popen, os.getenv

local M = {}

local function read_file(path)
  local f = io_open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

local function env_value(getenv, name)
  local v = getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

-- whether the nginx master named by DIR/nginx.pid runs (`stop` removes the file; a sandbox
-- killed without `stop` leaves it, naming a process that is gone)
local function running(dir)
  local pid = tonumber((read_file(dir .. "/nginx.pid") or ""):match("^%s*(%d+)"))
  if not pid then return false end
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then return false end
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

local function start_hint(dir)
  return "start it with: assesskit-sandbox start --port 0 --dir " .. dir
    .. " (bin/assesskit-sandbox in a checkout), and set ASSESSKIT_SANDBOX_DIR=" .. dir
end

--- The sandbox run directory: `$ASSESSKIT_SANDBOX_DIR`, else the directory
-- `assesskit-sandbox start` uses by default (`/tmp/assesskit-sandbox-<uid>`).
-- @tparam[opt] function getenv default `os.getenv`
-- @treturn string
function M.dir(getenv)
  getenv = getenv or os_getenv
  local dir = env_value(getenv, "ASSESSKIT_SANDBOX_DIR")
  if dir then return dir end
  local p = io_popen("id -u 2>/dev/null")
  local uid = p and p:read("l")
  if p then p:close() end
  return "/tmp/assesskit-sandbox-" .. (uid or "0")
end

--- Read a running sandbox's `credentials.json`.
-- @tparam[opt] string dir the run directory (default `dir()`)
-- @treturn[1] table `base_url`, `ca_file` (with `--tls`), `password` and `viewer` (password
--   grant: `client_id`, `client_secret`, `username`, `password`), `jwt` (`client_id`, `issuer`,
--   `audience`, `scope`, `private_key_file`), `interviewmocha` (`api_key`, `v2_url`, `v3_url`:
--   the sandbox serves InterviewMocha v2 and v3 under `<base_url>/v2` and `<base_url>/v3`),
--   `dir`
-- @treturn[2] nil
-- @treturn[2] string why: no sandbox in that directory, or it is not running (with how to
--   start it), or an unreadable file
-- @raise when `dir` is not a string or nil
function M.credentials(dir)
  if dir ~= nil and type(dir) ~= "string" then
    error("assesskit.local_sandbox.credentials: dir must be a string", 2)
  end
  dir = dir or M.dir()
  local path = dir .. "/credentials.json"
  local raw = read_file(path)
  if not raw then
    return nil, "no sandbox in " .. dir .. " (no credentials.json); " .. start_hint(dir)
  end
  if not running(dir) then
    return nil, "the sandbox in " .. dir .. " is not running; " .. start_hint(dir)
  end
  local cjson = require("cjson")
  local ok, creds = pcall(cjson.decode, raw)
  if not ok or type(creds) ~= "table" or type(creds.base_url) ~= "string" then
    return nil, path .. " is not a sandbox credentials file"
  end
  if creds.ca_file == cjson.null then creds.ca_file = nil end
  creds.dir = dir
  local im = type(creds.interviewmocha) == "table" and creds.interviewmocha or {}
  creds.interviewmocha = im
  -- written by the sandbox since 0.2.0; derived for a sandbox started by an older one
  im.v2_url = im.v2_url or (creds.base_url .. "/v2")
  im.v3_url = im.v3_url or (creds.base_url .. "/v3")
  return creds
end

--- The options of `assesskit.talview.new` for a sandbox: `base_url`, `ca_file`, `auth`.
-- @tparam table creds from `credentials`
-- @tparam[opt="jwt"] string grant `"jwt"` (the service account and the sandbox demo key) or
--   `"password"` (the demo recruiter)
-- @treturn[1] table
-- @treturn[2] nil
-- @treturn[2] string why (an unknown grant, or credentials without it)
-- @raise when `creds` is not a table
function M.talview_options(creds, grant)
  if type(creds) ~= "table" then error("assesskit.local_sandbox.talview_options: creds must be a table", 2) end
  grant = grant or "jwt"
  local auth
  if grant == "jwt" then
    local j = creds.jwt
    if type(j) ~= "table" then return nil, "the sandbox credentials have no jwt service account" end
    auth = { grant = "jwt", client_id = j.client_id, issuer = j.issuer, audience = j.audience,
      scope = j.scope, private_key_file = j.private_key_file }
  elseif grant == "password" then
    local p = creds.password
    if type(p) ~= "table" then return nil, "the sandbox credentials have no password user" end
    auth = { grant = "password", client_id = p.client_id, client_secret = p.client_secret,
      username = p.username, password = p.password }
  else
    return nil, "the sandbox's grants are jwt and password (got " .. tostring(grant) .. ")"
  end
  return { base_url = creds.base_url, ca_file = creds.ca_file, auth = auth }
end

--- The options of `assesskit.interviewmocha.new` for a sandbox: `api_key`, `v2_url`,
-- `v3_url`, `ca_file`.
-- @tparam table creds from `credentials`
-- @treturn table
-- @raise when `creds` is not a table
function M.interviewmocha_options(creds)
  if type(creds) ~= "table" then
    error("assesskit.local_sandbox.interviewmocha_options: creds must be a table", 2)
  end
  local im = creds.interviewmocha or {}
  return { api_key = im.api_key, v2_url = im.v2_url, v3_url = im.v3_url, ca_file = creds.ca_file }
end

return M
