--- Where the `assesskit` command line (and the examples) find their base URLs and
-- credentials. Credentials are never taken from the command line.
--
-- Three sources, documented in docs/cli.md:
--
-- 1. **A running sandbox**: when `ASSESSKIT_SANDBOX_DIR` is set, the sandbox's
--    `credentials.json` in that run directory is the whole configuration (base URL, demo
--    credentials, InterviewMocha key); the config file and the other connection variables
--    are not read, so the sandbox's demo credentials can never be sent anywhere else.
--    `ASSESSKIT_GRANT` (`jwt`, the default, or `password`) picks the Talview grant.
-- 2. **Environment variables** (`ASSESSKIT_TALVIEW_URL`, `ASSESSKIT_CLIENT_ID`, ...,
--    `ASSESSKIT_IM_API_KEY`), each overriding the same setting of the file.
-- 3. **A config file**: `$ASSESSKIT_CONFIG`, else `$XDG_CONFIG_HOME/assesskit/config.lua` or
--    `config.json` (`~/.config/...` when `XDG_CONFIG_HOME` is unset). A Lua file runs with no
--    access to globals and returns (or assigns) `talview = {base_url =, token_url =,
--    auth = {...}}`, `interviewmocha = {api_key =, v2_url =, v3_url =}`, `ca_file = ...`; a
--    JSON file is the same object. A file that other users can read draws a warning.
--
-- @internal assesskit.cli.config
local type, pairs, ipairs, tostring, tonumber, error, pcall, next, load =
  type, pairs, ipairs, tostring, tonumber, error, pcall, next, load
local string_format, string_gsub, string_match, string_lower =
  string.format, string.gsub, string.match, string.lower
local table_concat, table_sort = table.concat, table.sort
local io_open, io_popen, os_getenv = io.open, io.popen, os.getenv

local cjson = require("cjson")
local read_file = require("assesskit.client").read_file

local M = {}

--- The environment variables read, in the order docs/cli.md lists them; `secret` ones are
-- never printed.
M.VARIABLES = {
  { name = "ASSESSKIT_SANDBOX_DIR", what = "use the sandbox running in this run directory" },
  { name = "ASSESSKIT_CONFIG", what = "config file path" },
  { name = "ASSESSKIT_TALVIEW_URL", key = "base_url", what = "Talview base URL" },
  { name = "ASSESSKIT_TOKEN_URL", key = "token_url", what = "Talview token URL" },
  { name = "ASSESSKIT_GRANT", auth = "grant", what = "password, jwt or token" },
  { name = "ASSESSKIT_CLIENT_ID", auth = "client_id", what = "OAuth2 client id" },
  { name = "ASSESSKIT_CLIENT_SECRET", auth = "client_secret", secret = true,
    what = "OAuth2 client secret (password grant)" },
  { name = "ASSESSKIT_USERNAME", auth = "username", what = "user name (password grant)" },
  { name = "ASSESSKIT_PASSWORD", auth = "password", secret = true, what = "password (password grant)" },
  { name = "ASSESSKIT_JWT_ISSUER", auth = "issuer", what = "assertion issuer (jwt grant)" },
  { name = "ASSESSKIT_JWT_KEY_FILE", auth = "private_key_file", what = "RSA private key PEM file (jwt grant)" },
  { name = "ASSESSKIT_JWT_KEY_PASSPHRASE", auth = "passphrase", secret = true,
    what = "passphrase of the key (jwt grant)" },
  { name = "ASSESSKIT_JWT_SCOPE", auth = "scope", what = "assertion scope (jwt grant)" },
  { name = "ASSESSKIT_JWT_AUDIENCE", auth = "audience", what = "assertion audience (jwt grant)" },
  { name = "ASSESSKIT_ACCESS_TOKEN", auth = "access_token", secret = true, what = "a ready access token" },
  { name = "ASSESSKIT_IM_API_KEY", im = "api_key", secret = true, what = "InterviewMocha API key" },
  { name = "ASSESSKIT_IM_V2_URL", im = "v2_url", what = "InterviewMocha v2 base URL" },
  { name = "ASSESSKIT_IM_V3_URL", im = "v3_url", what = "InterviewMocha v3 base URL" },
  { name = "ASSESSKIT_CA_FILE", conn = "ca_file", what = "CA bundle for both APIs" },
  { name = "ASSESSKIT_ALLOW_HTTP", conn = "allow_http", what = "true: plain http:// to any host" },
  { name = "ASSESSKIT_PROXY", conn = "proxy", what = "proxy URL for both APIs" },
}

--- The connection options a config file may set, at its top level (both APIs) or in the
-- `talview` / `interviewmocha` tables (that API only), with their Lua types: the options of
-- the clients' `new` that concern the connection.
M.CONNECTION = {
  ca_file = "string", ca_path = "string", proxy = "string", user_agent = "string",
  timeout = "number", connect_timeout = "number", max_retries = "number",
  max_response_size = "number", retry_base_delay = "number", retry_max_delay = "number",
  max_retry_after = "number", allow_http = "boolean",
}
local CONNECTION = M.CONNECTION

-- The other keys of each table of a config file.
local FILE_KEYS = {
  top = { talview = "table", interviewmocha = "table" },
  talview = { base_url = "string", token_url = "string", auth = "table" },
  interviewmocha = { api_key = "string", v2_url = "string", v3_url = "string" },
}

local errors = require("assesskit.errors")
local is_secret = errors.is_secret_name
local options = require("assesskit.options")
local url = require("assesskit.url")

local AUTH_KEYS = {
  password = { "client_id", "client_secret", "username", "password", "wait_timeout" },
  jwt = { "client_id", "issuer", "private_key", "private_key_file", "passphrase", "scope",
    "audience", "lifetime", "wait_timeout" },
  token = { "access_token" },
}

local function env_value(getenv, name)
  local v = getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

local function shell_quote(s)
  return "'" .. string_gsub(s, "'", "'\\''") .. "'"
end

local function command_line(cmd)
  local f = io_popen(cmd .. " 2>/dev/null")
  if not f then return nil end
  local line = f:read("l")
  f:close()
  return line
end

--- The default config file: `$ASSESSKIT_CONFIG`, else `config.lua` then `config.json` in
-- `$XDG_CONFIG_HOME/assesskit` (default `~/.config/assesskit`).
-- @tparam[opt] function getenv
-- @treturn string|nil the path (nil when no default exists)
-- @treturn boolean true when the path was named explicitly (so it must exist)
function M.config_path(getenv)
  getenv = getenv or os_getenv
  local explicit = env_value(getenv, "ASSESSKIT_CONFIG")
  if explicit then return explicit, true end
  local base = env_value(getenv, "XDG_CONFIG_HOME")
  if not base then
    local home = env_value(getenv, "HOME")
    if not home then return nil, false end
    base = home .. "/.config"
  end
  for _, name in ipairs({ "config.lua", "config.json" }) do
    local p = base .. "/assesskit/" .. name
    local f = io_open(p, "rb")
    if f then
      f:close()
      return p, false
    end
  end
  return nil, false
end

--- The permission bits of a file (a number, e.g. 420 for 0644), or nil.
-- @tparam string path
-- @treturn number|nil
function M.file_mode(path)
  local line = command_line("stat -c %a -- " .. shell_quote(path))
  if not line or not string_match(line, "^%d+$") then return nil end
  return tonumber(line, 8)
end

local function load_file(path)
  local src, err = read_file(path)
  if not src then return nil, "cannot read config file " .. path .. ": " .. tostring(err) end
  local first = string_match(src, "^%s*(.)")
  if string_match(path, "%.json$") or first == "{" then
    local ok, v = pcall(cjson.decode, src)
    if not ok or type(v) ~= "table" then
      return nil, "config file " .. path .. " is not a JSON object"
    end
    return v
  end
  local env = {}
  local chunk, lerr = load(src, "=" .. path, "t", env)
  if not chunk then return nil, "config file " .. tostring(lerr) end
  local ok, v = pcall(chunk)
  if not ok then return nil, "config file " .. path .. ": " .. tostring(v) end
  if v == nil then v = env end
  if type(v) ~= "table" then return nil, "config file " .. path .. " must return a table" end
  return v
end

-- The keys of one table of the config file, with their types: unknown keys (naming the
-- nearest valid one) and wrong types are errors. `where` is the table's dotted name.
local function check_table(t, keys, where, path)
  for k, v in pairs(t) do
    local want = keys[k]
    if want == nil then
      local near = type(k) == "string" and options.nearest(k, keys)
      return nil, string_format("config file %s: unknown key %s%s%s", path, where,
        tostring(k), near and (" (did you mean " .. where .. near .. "?)") or "")
    end
    local got = type(v)
    if want == "strings" then -- a string, or an array of strings (as the library takes)
      local fine = got == "string"
      if got == "table" then
        fine = true
        for i, x in pairs(v) do
          if type(i) ~= "number" or type(x) ~= "string" then fine = false end
        end
      end
      if not fine then
        return nil, string_format("config file %s: %s%s must be a string or an array of strings",
          path, where, tostring(k))
      end
      got = want
    end
    if want == "number" and got == "number" and (v ~= v or v < 0) then
      return nil, string_format("config file %s: %s%s must be a number >= 0", path, where, k)
    end
    if got ~= want then
      return nil, string_format("config file %s: %s%s must be a %s", path, where, tostring(k), want)
    end
  end
  return true
end

local AUTH_FILE_KEYS = { grant = "string", lifetime = "number", wait_timeout = "number",
  scope = "strings" }
for _, keys in pairs(AUTH_KEYS) do
  for _, k in ipairs(keys) do AUTH_FILE_KEYS[k] = AUTH_FILE_KEYS[k] or "string" end
end

-- Every table of a config file checked: the keys it may hold, with their types.
local function check_file(file, path)
  local function merged(own)
    local keys = {}
    for k, v in pairs(own) do keys[k] = v end
    for k, v in pairs(CONNECTION) do keys[k] = v end
    return keys
  end
  local ok, err = check_table(file, merged(FILE_KEYS.top), "", path)
  if not ok then return nil, err end
  for _, api in ipairs({ "talview", "interviewmocha" }) do
    if file[api] then
      ok, err = check_table(file[api], merged(FILE_KEYS[api]), api .. ".", path)
      if not ok then return nil, err end
    end
  end
  if file.talview and file.talview.auth then
    ok, err = check_table(file.talview.auth, AUTH_FILE_KEYS, "talview.auth.", path)
    if not ok then return nil, err end
  end
  return true
end

-- ASSESSKIT_ALLOW_HTTP's value as a boolean.
local BOOLEANS = { ["1"] = true, ["true"] = true, yes = true, on = true,
  ["0"] = false, ["false"] = false, no = false, off = false }

local function infer_grant(auth)
  if auth.grant then return auth.grant end
  if auth.access_token then return "token" end
  if auth.private_key_file or auth.private_key then return "jwt" end
  if auth.username then return "password" end
  return nil
end

-- Keep the fields of one grant; the library's shape (`{access_token =}` for a static token).
local function auth_spec(auth)
  local grant = infer_grant(auth)
  if grant == nil then return nil end
  local keys = AUTH_KEYS[grant]
  if not keys then
    return nil, "the Talview grant must be password, jwt or token (got " .. tostring(grant) .. ")"
  end
  local spec = {}
  for _, k in ipairs(keys) do spec[k] = auth[k] end
  if grant ~= "token" then spec.grant = grant end
  if grant == "password" and not (spec.client_id and spec.username and spec.password) then
    return nil, "the password grant needs ASSESSKIT_CLIENT_ID, ASSESSKIT_USERNAME and ASSESSKIT_PASSWORD"
  end
  if grant == "jwt" and not ((spec.issuer or spec.client_id) and (spec.private_key_file or spec.private_key)) then
    return nil, "the jwt grant needs ASSESSKIT_JWT_ISSUER (or ASSESSKIT_CLIENT_ID) and ASSESSKIT_JWT_KEY_FILE"
  end
  if grant == "token" and not spec.access_token then
    return nil, "the token grant needs ASSESSKIT_ACCESS_TOKEN"
  end
  return spec
end

--- Load the configuration in force.
-- @tparam[opt] table opts `getenv` (default `os.getenv`), `warn` (`function(message)`, for
--   a config file other users can read)
-- @treturn[1] table `{source =, sandbox =, talview = {base_url =, token_url =, ca_file =,
--   auth =}, interviewmocha = {api_key =, v2_url =, v3_url =, ca_file =}}` (fields absent
--   when not configured; `talview.auth` is the `auth` option of `assesskit.talview.new`)
-- @treturn[2] nil
-- @treturn[2] string what is wrong (a configuration error: the caller exits with status 2)
function M.load(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("config.load: opts must be a table", 2) end
  local getenv = opts.getenv or os_getenv
  local warn = opts.warn or function() end
  local cfg = { talview = {}, interviewmocha = {} }

  local sandbox_dir = env_value(getenv, "ASSESSKIT_SANDBOX_DIR")
  if sandbox_dir then
    -- the one public way to a sandbox's credentials (it says when the sandbox is not running)
    local sandbox = require("assesskit.local_sandbox")
    local creds, err = sandbox.credentials(sandbox_dir)
    if not creds then return nil, err end
    local topts, terr = sandbox.talview_options(creds, env_value(getenv, "ASSESSKIT_GRANT"))
    if not topts then return nil, "ASSESSKIT_GRANT: " .. terr end
    cfg.source = "sandbox " .. sandbox_dir
    cfg.sandbox = true
    cfg.talview = topts
    cfg.interviewmocha = sandbox.interviewmocha_options(creds)
    return cfg
  end

  local file = {}
  local path, explicit = M.config_path(getenv)
  local sources = {}
  if path then
    local f = io_open(path, "rb")
    if not f then
      if explicit then return nil, "config file " .. path .. " (ASSESSKIT_CONFIG) does not exist" end
    else
      f:close()
      local v, err = load_file(path)
      if not v then return nil, err end
      file = v
      sources[#sources + 1] = "file " .. path
      local mode = M.file_mode(path)
      if mode and ((mode // 8) % 8 >= 4 or mode % 8 >= 4) then -- group or others may read it
        warn(string_format("config file %s is readable by other users (chmod 600 %s)", path, path))
      end
    end
  end

  local ok, cerr = check_file(file, path)
  if not ok then return nil, cerr end
  local tv = file.talview or {}
  local im = file.interviewmocha or {}

  local auth = {}
  for k, v in pairs(tv.auth or {}) do auth[k] = v end
  local t = { base_url = tv.base_url, token_url = tv.token_url }
  local i = { api_key = im.api_key, v2_url = im.v2_url, v3_url = im.v3_url }
  for k in pairs(CONNECTION) do -- an API's own setting, else the file's top-level one
    if tv[k] ~= nil then t[k] = tv[k] else t[k] = file[k] end
    if im[k] ~= nil then i[k] = im[k] else i[k] = file[k] end
  end
  local from_env = false
  for _, var in ipairs(M.VARIABLES) do
    local v = env_value(getenv, var.name)
    if v and (var.key or var.auth or var.im or var.conn) then
      from_env = true
      if var.key then t[var.key] = v end
      if var.auth then auth[var.auth] = v end
      if var.im then i[var.im] = v end
      if var.conn == "allow_http" then
        v = BOOLEANS[string_lower(v)]
        if v == nil then
          return nil, "ASSESSKIT_ALLOW_HTTP must be true or false (1/0, yes/no)"
        end
      end
      if var.conn then t[var.conn], i[var.conn] = v, v end
    end
  end
  for _, u in ipairs({ { t, "base_url", "talview." }, { t, "token_url", "talview." },
    { i, "v2_url", "interviewmocha." }, { i, "v3_url", "interviewmocha." } }) do
    local v = u[1][u[2]]
    if v ~= nil and not url.parse(v) then
      return nil, "configuration: " .. u[3] .. u[2] .. " is not an http(s) URL: " .. v
    end
  end  if from_env then sources[#sources + 1] = "environment" end
  if next(auth) ~= nil then
    local spec, aerr = auth_spec(auth)
    if aerr then return nil, aerr end
    t.auth = spec
  end
  cfg.talview, cfg.interviewmocha = t, i
  cfg.source = #sources > 0 and table_concat(sources, " + ") or "nothing configured"
  return cfg
end

--- Every secret value of a configuration (client secret, password, passphrase, token, API
-- key, private key, and the userinfo of a URL: `http://user:password@proxy`), for redacting
-- from anything printed.
-- @tparam table cfg from `load`
-- @treturn table array of strings
function M.secrets(cfg)
  if type(cfg) ~= "table" then error("config.secrets: cfg must be a table", 2) end
  local out = {}
  local function add(t)
    for k, v in pairs(t or {}) do
      if type(v) == "table" then
        add(v)
      elseif is_secret(k) and type(v) == "string" then
        out[#out + 1] = v
      elseif type(v) == "string" then
        local userinfo = string_match(v, "^%a[%w+.-]*://([^/@?#]*)@")
        if userinfo then
          out[#out + 1] = userinfo
          local password = string_match(userinfo, ":(.+)$")
          if password then out[#out + 1] = password end
        end
      end
    end
  end
  add(cfg.talview)
  add(cfg.interviewmocha)
  return out
end

--- A printable description of a configuration: every value, secrets as `***`.
-- @tparam table cfg from `load`
-- @treturn table array of lines
function M.describe(cfg)
  if type(cfg) ~= "table" then error("config.describe: cfg must be a table", 2) end
  local lines = { "source: " .. tostring(cfg.source) }
  local function add(prefix, t)
    local keys = {}
    for k in pairs(t or {}) do keys[#keys + 1] = k end
    table_sort(keys)
    for _, k in ipairs(keys) do
      local v = t[k]
      if type(v) == "table" then
        add(prefix .. k .. ".", v)
      else
        -- a URL's userinfo and secret query values masked too (a proxy's password)
        lines[#lines + 1] = prefix .. k .. " = " .. (is_secret(k) and "***"
          or (type(v) == "string" and errors.mask_url(v)) or tostring(v))
      end
    end
  end
  add("talview.", cfg.talview)
  add("interviewmocha.", cfg.interviewmocha)
  return lines
end

return M
