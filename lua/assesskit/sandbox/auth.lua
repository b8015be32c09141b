--- The sandbox's OAuth2 side: `POST /oauth2/token` (password, refresh_token and JWT-bearer
-- grants) and the Bearer check every Talview path goes through.
--
-- Errors from the token endpoint carry both shapes at once: the OAuth2 fields
-- (`error`, `error_description`, RFC 6749 section 5.2) and Talview's
-- `{name, message, code, status}`. Nothing secret is ever echoed back.
-- @module assesskit.sandbox.auth

local ngx = ngx -- luacheck: read globals ngx
local json = require("assesskit.sandbox.json")
local http = require("assesskit.sandbox.http")
local jwt = require("assesskit.sandbox.jwt")
local config = require("assesskit.sandbox.config")
local credentials = require("assesskit.sandbox.credentials")

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local string_format, string_byte, string_match, string_lower, string_gsub =
  string.format, string.byte, string.match, string.lower, string.gsub
local math_random, math_floor = math.random, math.floor

local M = {}

M.grant_jwt = "urn:ietf:params:oauth:grant-type:jwt-bearer"

local access_tokens = {}   -- token -> record
local refresh_tokens = {}  -- token -> record
local token_seq = 0
local public_keys = {}     -- service account issuer -> luaossl key

local function hex(s)
  return (string_gsub(s, ".", function(c) return string_format("%02x", string_byte(c)) end))
end

local function new_token()
  token_seq = token_seq + 1
  local seed = table.concat({ ngx.now(), token_seq, math_random(), math_random(), ngx.worker.pid() }, ":")
  return hex(ngx.sha1_bin(seed)), token_seq
end

--- Forget every issued token (used by tests through `DELETE /_sandbox/tokens`).
function M.reset_tokens()
  access_tokens, refresh_tokens = {}, {}
end

--- Expire one access token now.
-- @tparam string token
-- @treturn boolean whether the token was known
function M.expire(token)
  local rec = access_tokens[token]
  if not rec then return false end
  rec.expires_at = ngx.now() - 1
  return true
end

--- Expire every access token now (refresh tokens stay valid).
-- @treturn number how many
function M.expire_all()
  local n = 0
  for _, rec in pairs(access_tokens) do
    rec.expires_at = ngx.now() - 1
    n = n + 1
  end
  return n
end

local function principal_of_user(u, kind)
  return {
    kind = kind, id = u.id, organization_id = u.organization_id,
    username = u.username or u.issuer, name = u.name, roles = u.roles,
    current_role = u.current_role,
  }
end

local function issue(principal, ttl, grant, client_id, with_refresh)
  local token, seq = new_token()
  local now = ngx.now()
  access_tokens[token] = {
    seq = seq, principal = principal, expires_at = now + ttl, grant = grant, client_id = client_id,
  }
  local out = json.object({
    access_token = token,
    expires_in = math_floor(ttl),
    token_type = with_refresh and "Bearer" or "bearer",
    scope = json.null,
  }, { "access_token", "expires_in", "token_type", "scope", "refresh_token" })
  if with_refresh then
    local rt = new_token()
    refresh_tokens[rt] = {
      principal = principal, client_id = client_id,
      expires_at = now + config.settings.refresh_ttl,
    }
    out.refresh_token = rt
  end
  return out
end

local function oauth_error(req, status, code, description, headers)
  local body = json.object({
    name = http.status_names[status] or "Error",
    message = description,
    code = 0,
    status = status,
    error = code,
    error_description = description,
  }, { "name", "message", "code", "status", "error", "error_description" })
  local h = headers or {}
  h["Cache-Control"] = "no-store"
  h["Pragma"] = "no-cache"
  return http.json(req, status, body, h)
end

local passwords = {}       -- user id -> password changed through user/me/update-password

--- The current password of a user (the demo one unless changed since the last reset).
-- @tparam number id user id
-- @treturn ?string
function M.password_of(id)
  if passwords[id] then return passwords[id] end
  for _, u in ipairs(credentials.users) do
    if u.id == id then return u.password end
  end
end

--- Change a user's password (until the next state reset).
-- @tparam number id
-- @tparam string password
function M.set_password(id, password)
  passwords[id] = password
end

--- Put every password back to the demo one.
function M.reset_passwords()
  passwords = {}
end

local function find_user(username)
  for _, u in ipairs(credentials.users) do
    if u.username == username then return u end
  end
end

local function find_service_account(issuer)
  for _, sa in ipairs(credentials.service_accounts) do
    if sa.issuer == issuer then return sa end
  end
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function public_key(sa)
  if public_keys[sa.issuer] then return public_keys[sa.issuer] end
  local dir = (config.static.lua_dir or "lua") .. "/assesskit/sandbox/"
  local pem = read_file(dir .. sa.public_key_file)
  if not pem then return nil, "service account key file is missing" end
  local key, err = jwt.load_public_key(pem)
  if not key then return nil, err end
  public_keys[sa.issuer] = key
  return key
end

local function token_params(req)
  local media = req.content_type
  if not req.body or req.body == "" then return {} end
  if media == "application/json" then
    local v = json.decode(req.body)
    if type(v) ~= "table" or json.is_array(v) then return nil, "the request body is not a JSON object" end
    return v
  end
  if media == nil or media == "application/x-www-form-urlencoded" then
    return http.parse_query(req.body)
  end
  return nil, "unsupported", media
end

-- HTTP Basic client authentication (RFC 6749 2.3.1), if used.
local function basic_client(req)
  local h = http.header(req, "authorization")
  local b64 = h and string_match(h, "^[Bb]asic%s+(%S+)")
  if not b64 then return nil end
  local raw = ngx.decode_base64(b64)
  if not raw then return {} end
  local id, secret = string_match(raw, "^([^:]*):(.*)$")
  return { client_id = id and ngx.unescape_uri(id), client_secret = secret and ngx.unescape_uri(secret) }
end

local function check_client(req, p)
  local basic = basic_client(req)
  local id = basic and basic.client_id or p.client_id
  local secret = basic and basic.client_secret or p.client_secret
  if type(id) ~= "string" or id == "" then
    return nil, oauth_error(req, 400, "invalid_client", "Client credentials were not found in the headers or body")
  end
  if id ~= credentials.client.client_id or secret ~= credentials.client.client_secret then
    local headers = basic and { ["WWW-Authenticate"] = 'Basic realm="Service"' } or nil
    return nil, oauth_error(req, basic and 401 or 400, "invalid_client",
      "The client credentials are invalid", headers)
  end
  return id
end

local function password_grant(req, p)
  local client_id, sent = check_client(req, p)
  if not client_id then return sent end
  if type(p.username) ~= "string" or p.username == "" or type(p.password) ~= "string" or p.password == "" then
    return oauth_error(req, 400, "invalid_request", 'Missing parameters: "username" and "password" required')
  end
  local u = find_user(p.username)
  if not u or M.password_of(u.id) ~= p.password then
    return oauth_error(req, 401, "invalid_grant", "Invalid username and password combination")
  end
  local body = issue(principal_of_user(u, "user"), config.settings.token_ttl, "password", client_id, true)
  return http.json(req, 200, body, { ["Cache-Control"] = "no-store", Pragma = "no-cache" })
end

local function refresh_grant(req, p)
  local client_id, sent = check_client(req, p)
  if not client_id then return sent end
  if type(p.refresh_token) ~= "string" or p.refresh_token == "" then
    return oauth_error(req, 400, "invalid_request", 'Missing parameter: "refresh_token" is required')
  end
  local rec = refresh_tokens[p.refresh_token]
  if not rec or rec.client_id ~= client_id then
    return oauth_error(req, 400, "invalid_grant", "Invalid refresh token")
  end
  if rec.expires_at <= ngx.now() then
    refresh_tokens[p.refresh_token] = nil
    return oauth_error(req, 400, "invalid_grant", "Refresh token has expired")
  end
  refresh_tokens[p.refresh_token] = nil -- rotated: a refresh token is good for one use
  local body = issue(rec.principal, config.settings.token_ttl, "refresh_token", client_id, true)
  return http.json(req, 200, body, { ["Cache-Control"] = "no-store", Pragma = "no-cache" })
end

local function accepted_audiences(req)
  local list = {}
  if config.static.base_url then list[#list + 1] = config.static.base_url .. "/oauth2/token" end
  if req.host then list[#list + 1] = (req.scheme or "http") .. "://" .. req.host .. "/oauth2/token" end
  return list
end

local function audience_ok(aud, req)
  local wanted = accepted_audiences(req)
  local given = type(aud) == "table" and aud or { aud }
  for _, a in ipairs(given) do
    for _, w in ipairs(wanted) do
      if a == w then return true end
    end
  end
  return false
end

local function jwt_grant(req, p)
  local assertion = p.assertion
  if type(assertion) ~= "string" or assertion == "" then
    return oauth_error(req, 400, "invalid_request", 'Missing parameter: "assertion" is required')
  end
  -- read the issuer before verifying, to pick the key; verification follows
  local p64 = string_match(assertion, "^[^%.]+%.([^%.]+)%.")
  local praw = p64 and jwt.b64url_decode(p64)
  local unverified = praw and json.decode(praw)
  if type(unverified) ~= "table" then
    return oauth_error(req, 400, "invalid_grant", "JWT is malformed")
  end
  local sa = type(unverified.iss) == "string" and find_service_account(unverified.iss)
  if not sa then
    return oauth_error(req, 400, "invalid_grant", "Invalid issuer (iss) provided")
  end
  if p.client_id ~= nil and p.client_id ~= sa.client_id then
    return oauth_error(req, 400, "invalid_client", "The client_id does not match the assertion's issuer")
  end
  local key, kerr = public_key(sa)
  if not key then
    ngx.log(ngx.ERR, "sandbox: ", kerr)
    return oauth_error(req, 500, "server_error", "the service account key cannot be loaded")
  end
  local claims, err = jwt.verify(assertion, key)
  if not claims then return oauth_error(req, 400, "invalid_grant", err) end
  local now = ngx.now()
  local exp, iat = tonumber(claims.exp), tonumber(claims.iat)
  if type(claims.exp) ~= "number" or not exp then
    return oauth_error(req, 400, "invalid_grant", "Expiration (exp) time must be present")
  end
  if type(claims.iat) ~= "number" or not iat then
    return oauth_error(req, 400, "invalid_grant", "Issued-at (iat) time must be present")
  end
  if type(claims.scope) ~= "string" then
    return oauth_error(req, 400, "invalid_grant", "scope must be present")
  end
  if claims.aud == nil or claims.aud == json.null then
    return oauth_error(req, 400, "invalid_grant", "Audience (aud) must be present")
  end
  if exp <= now then
    return oauth_error(req, 400, "invalid_grant", "JWT has expired")
  end
  if iat > now + config.settings.jwt_leeway then
    return oauth_error(req, 400, "invalid_grant", "JWT issued-at (iat) time is in the future")
  end
  if exp <= iat then
    return oauth_error(req, 400, "invalid_grant", "JWT expiration (exp) is not after its issued-at (iat)")
  end
  if exp - iat > config.settings.jwt_max_lifetime then
    return oauth_error(req, 400, "invalid_grant", "JWT lifetime exceeds 24 hours (exp - iat)")
  end
  if not audience_ok(claims.aud, req) then
    return oauth_error(req, 400, "invalid_grant", "Invalid audience (aud)")
  end
  local principal = principal_of_user(sa, "service")
  principal.scope = claims.scope
  local body = issue(principal, config.settings.jwt_token_ttl, "jwt-bearer", sa.client_id, false)
  return http.json(req, 200, body, { ["Cache-Control"] = "no-store", Pragma = "no-cache" })
end

--- Handle `POST /oauth2/token`.
-- @tparam table req the request
function M.token_endpoint(req)
  req.suppress_ok = false
  if req.method ~= "POST" then
    return oauth_error(req, 405, "invalid_request", "The request method must be POST when requesting an access token",
      { Allow = "POST" })
  end
  local p, err, media = token_params(req)
  if not p then
    if err == "unsupported" then
      return oauth_error(req, 415, "invalid_request",
        "Unsupported content type " .. tostring(media) .. ": use application/json or application/x-www-form-urlencoded")
    end
    return oauth_error(req, 400, "invalid_request", err)
  end
  local grant = p.grant_type
  if type(grant) ~= "string" or grant == "" then
    return oauth_error(req, 400, "invalid_request", "The grant type was not specified in the request")
  end
  if grant == "password" then return password_grant(req, p) end
  if grant == "refresh_token" then return refresh_grant(req, p) end
  if grant == M.grant_jwt then return jwt_grant(req, p) end
  return oauth_error(req, 400, "unsupported_grant_type", 'Grant type "' .. string_gsub(grant, "[^%w%-_:%.]", "?") ..
    '" not supported')
end

--- The bearer token a request carries, if any.
-- @tparam table req
-- @treturn ?string
function M.bearer(req)
  local h = http.header(req, "authorization")
  if type(h) ~= "string" then return nil end
  local scheme, token = string_match(h, "^%s*(%S+)%s+(%S+)%s*$")
  if not scheme or string_lower(scheme) ~= "bearer" then return nil end
  return token
end

--- Check a request's Bearer token. On failure the 401 is sent (and the request ends).
-- @tparam table req
-- @treturn table the principal: `kind` ("user" or "service"), `id`, `organization_id`,
--   `roles`, `username`, `name`
function M.authenticate(req)
  local token = M.bearer(req)
  local rec = token and access_tokens[token]
  local entry = req.log_entry
  if rec and rec.expires_at > ngx.now() then
    if entry then entry.auth = { token = rec.seq, subject = rec.principal.username, grant = rec.grant } end
    return rec.principal
  end
  local www
  if not token then
    www = 'Bearer realm="api"'
  elseif rec then
    www = 'Bearer realm="api", error="invalid_token", error_description="The access token provided has expired"'
    if entry then entry.auth = { token = rec.seq, subject = rec.principal.username, expired = true } end
  else
    www = 'Bearer realm="api", error="invalid_token", error_description="The access token provided is invalid"'
  end
  return nil, http.error(req, 401, "Your request was made with invalid credentials.", { ["WWW-Authenticate"] = www })
end

--- Whether a principal holds one of the roles (true when `roles` is empty or nil).
-- @tparam table principal
-- @tparam ?{string,...} roles
-- @treturn boolean
function M.has_role(principal, roles)
  if not roles or #roles == 0 then return true end
  for _, want in ipairs(roles) do
    for _, have in ipairs(principal.roles or {}) do
      if string_lower(want) == string_lower(have) then return true end
    end
  end
  return false
end

return M
