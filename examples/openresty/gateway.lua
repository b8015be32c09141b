--- examples/openresty/gateway.lua: an OpenResty gateway in front of Talview v4.
--
-- What it shows: `GET /candidates/{id}` served by calling Talview through assesskit from inside
-- nginx. The SDK uses nginx's non-blocking cosockets there (`assesskit.ngx.transport`, chosen
-- automatically inside nginx), so a slow Talview answer never holds up the worker's other
-- clients, and the access token lives in a `lua_shared_dict` (`assesskit.ngx.token_cache`), so
-- all workers together make one token request, not one each.
--
-- How to run: see examples/openresty/README.md (nginx.conf in this directory loads it).
--
-- Configuration (environment, passed to the workers by nginx.conf's `env` lines):
--
-- * `TALVIEW_BASE_URL` (default `https://apiv4.talview.com`);
-- * password grant: `TALVIEW_CLIENT_ID`, `TALVIEW_CLIENT_SECRET`, `TALVIEW_USERNAME`,
--   `TALVIEW_PASSWORD`;
-- * or JWT-bearer grant (`TALVIEW_GRANT=jwt`): `TALVIEW_CLIENT_ID`, `TALVIEW_ISSUER`,
--   `TALVIEW_PRIVATE_KEY_FILE`, `TALVIEW_SCOPE`, `TALVIEW_AUDIENCE` (optional);
-- * `TALVIEW_TIMEOUT` (seconds per Talview call, default 10).

-- luacheck: globals ngx

local cjson = require("cjson.safe")
local talview = require("assesskit.talview")
local token_cache = require("assesskit.ngx.token_cache")

local os_getenv = os.getenv
local tonumber = tonumber
local tostring = tostring
local type = type

local M = {}

local tv -- one Talview client per worker, made on first use

-- HTTP status the gateway answers for an SDK error.
local STATUS_FOR_KIND = {
  timeout = 504, network = 502, tls = 502, auth = 502, decode = 502, too_large = 502,
}

local function env(name, default)
  local v = os_getenv(name)
  if v == nil or v == "" then
    return default
  end
  return v
end

local function auth_from_env()
  if env("TALVIEW_GRANT") == "jwt" then
    return {
      grant = "jwt", client_id = env("TALVIEW_CLIENT_ID"), issuer = env("TALVIEW_ISSUER"),
      private_key_file = env("TALVIEW_PRIVATE_KEY_FILE"), scope = env("TALVIEW_SCOPE"),
      audience = env("TALVIEW_AUDIENCE"),
    }
  end
  return {
    grant = "password", client_id = env("TALVIEW_CLIENT_ID"),
    client_secret = env("TALVIEW_CLIENT_SECRET"), username = env("TALVIEW_USERNAME"),
    password = env("TALVIEW_PASSWORD"),
  }
end

--- The worker's Talview client (made on the first call).
-- @treturn table the `assesskit.talview` client
function M.client()
  if not tv then
    tv = talview.new({
      base_url = env("TALVIEW_BASE_URL", "https://apiv4.talview.com"),
      auth = auth_from_env(),
      -- shared by every worker: one token request at a time, for all of them
      token_store = token_cache.new({ dict = "assesskit_tokens" }),
      timeout = tonumber(env("TALVIEW_TIMEOUT", "10")),
    })
  end
  return tv
end

local function reply(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
  return ngx.exit(ngx.HTTP_OK) -- the response is complete; ngx.status holds its status
end

--- Content handler for `GET /candidates/{id}`.
-- @tparam string id the candidate id from the URL
function M.candidate(id)
  local n = tonumber(id)
  if not n then
    return reply(400, { error = "bad_request", message = "candidate id must be a number" })
  end
  local candidate, err = M.client().models.candidate:get(n)
  if not candidate then
    -- err never carries a token or credential (assesskit.errors redacts them)
    local status = STATUS_FOR_KIND[err.kind] or 502
    if err.kind == "http" and err.status == 404 then
      status = 404
    end
    ngx.log(ngx.WARN, "talview: ", tostring(err))
    return reply(status, { error = err.kind, status = err.status, message = err.message })
  end
  if type(candidate) ~= "table" then
    candidate = { value = candidate }
  end
  return reply(200, candidate)
end

return M
