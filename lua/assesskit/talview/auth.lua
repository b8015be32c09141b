--- Talview v4 token manager: password, refresh_token, JWT-bearer and static-token auth.
--
-- An authenticator for `assesskit.client` (interface in docs/DESIGN.md). It obtains the
-- access token from the token endpoint, caches it, renews it before it expires (a margin of
-- `min(token_margin, 10% of its lifetime)`), through the `refresh_token` grant when the server
-- issued a refresh token, and again when the API answers 401. One renewal is in flight per
-- client at a time: other coroutines sharing the client wait for it (with the client's
-- `sleep`) instead of starting their own.
--
-- Grants (the `auth` option of `assesskit.talview.new`):
--
-- * `{grant = "password", client_id =, client_secret =, username =, password =}`: a JSON
--   body `{"grant_type": "password", ...}`; without `client_secret` a call returns a
--   `validation` error and sends nothing;
-- * `{grant = "jwt", client_id =, issuer =, private_key = <PEM> | private_key_file =,
--   passphrase =, scope =, audience =, lifetime =}`: an RS256 assertion with `iss`
--   (`issuer`, default `client_id`), `scope` (a string, or an array joined with spaces), `aud`
--   (`audience`, default the token URL), `iat` and `exp` (`iat + lifetime`, default 3600 s,
--   at most 86400), sent form-encoded as `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer
--   &assertion=...` (plus `client_id` when given);
-- * `{access_token = "..."}`: used as is, never renewed.
--
-- Both grants also take `wait_timeout`: the seconds a call waits for a renewal another
-- coroutine (or, with a shared store, another process) has under way, before it fails
-- (default 60).
--
-- A field another kind takes, or that no kind takes, raises naming the nearest valid one
-- (`scopes` -> `scope`), and so does `access_token` together with `grant`.
--
-- With a `token_store` (for instance `assesskit.ngx.token_cache`, shared by nginx workers) the
-- token is read from the store and renewed under the store's lock, so one holder at a time
-- asks the token endpoint and the others use its token.
--
-- Credentials and tokens live in a private table, not in fields of the object: they never
-- show in `tostring`, in errors, in hook arguments or in a dump of the client.
-- @internal assesskit.talview.auth
local type, tostring, tonumber, setmetatable, error, pcall, ipairs =
  type, tostring, tonumber, setmetatable, error, pcall, ipairs
local string_sub, string_find = string.sub, string.find
local table_concat = table.concat
local math_floor, math_min = math.floor, math.min
local coroutine_running, coroutine_status = coroutine.running, coroutine.status

local read_file = require("assesskit.client").read_file
local options = require("assesskit.options")

local M = {}

local JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
local MAX_JWT_LIFETIME = 86400
local MAX_TOKEN_LIFETIME = 30 * 86400 -- seconds: the longest access-token lifetime trusted

-- authenticator -> its secrets and state (never reachable from the object's fields)
local private = setmetatable({}, { __mode = "k" })

local Auth = {}
Auth.__index = Auth

-- The fields of each kind of `auth` (the grant's, or a static token's).
local AUTH_FIELDS = {
  password = { "grant", "client_id", "client_secret", "username", "password", "wait_timeout" },
  jwt = { "grant", "client_id", "issuer", "private_key", "private_key_file", "passphrase",
    "scope", "audience", "lifetime", "wait_timeout" },
  access_token = { "access_token" },
}
local GRANTS = { "password", "jwt" }

-- The kind of auth a spec asks for; raises (at the caller of `new`) on a contradictory spec or
-- an unknown grant.
local function auth_kind(spec)
  if spec.access_token ~= nil then
    if spec.grant ~= nil then
      error("assesskit.talview: auth: access_token and grant exclude each other (give a"
        .. " ready token, or a grant that fetches one)", 3)
    end
    return "access_token"
  end
  local grant = spec.grant
  if grant == "password" or grant == "jwt" then return grant end
  local near = type(grant) == "string" and options.nearest(grant, GRANTS)
  error("assesskit.talview: auth.grant must be \"password\" or \"jwt\" (or give access_token)"
    .. (near and (", did you mean \"" .. near .. "\"?") or ""), 3)
end

local function need_string(spec, name)
  local v = spec[name]
  if type(v) ~= "string" or v == "" then
    error("assesskit.talview: auth." .. name .. " must be a non-empty string", 3)
  end
  return v
end

local function opt_string(spec, name)
  local v = spec[name]
  if v ~= nil and type(v) ~= "string" then
    error("assesskit.talview: auth." .. name .. " must be a string", 3)
  end
  return v
end

--- Check the options of `assesskit.talview.new` that concern the token, whether `auth` is
-- given or not: `token_margin` a number >= 0, `token_store` an object with `get`, `set` and
-- `lock` methods (the store interface, docs/DESIGN.md), `token_store_key` a string.
-- @tparam table opts `token_margin`, `token_store`, `token_store_key`
-- @tparam[opt=1] number level as for `error`, counted from the caller of `check_options`
-- @raise on a wrong one
function M.check_options(opts, level)
  level = (level or 1) + 1
  local margin = opts.token_margin
  if margin ~= nil and (type(margin) ~= "number" or margin < 0 or margin ~= margin) then
    error("assesskit.talview: token_margin must be a number >= 0", level)
  end
  local store = opts.token_store
  if store ~= nil then
    local kind = type(store)
    for _, m in ipairs({ "get", "set", "lock" }) do
      if (kind ~= "table" and kind ~= "userdata") or type(store[m]) ~= "function" then
        error("assesskit.talview: store must have get, set and lock methods (a store object:"
          .. " assesskit.store.new(), assesskit.ngx.token_cache, assesskit.redis)", level)
      end
    end
  end
  if opts.token_store_key ~= nil and type(opts.token_store_key) ~= "string" then
    error("assesskit.talview: token_store_key must be a string", level)
  end
end

--- Create an authenticator.
-- @tparam table spec the `auth` option (see the module description)
-- @tparam table opts `token_url` (required), `token_margin` (seconds, default 60),
--   `token_store` (a shared store, e.g. `assesskit.ngx.token_cache` or `assesskit.redis`:
--   `get(key, secret)`, `set(key, entry, secret)`, `lock(key, timeout) -> release`, optional
--   `epoch()`; docs/DESIGN.md), `token_store_key`
--   (default: grant, client id, username or issuer, and token URL; never a secret); checked
--   by `check_options`
-- @treturn table the authenticator
-- @raise on a malformed spec
function M.new(spec, opts)
  if type(spec) ~= "table" then
    error("assesskit.talview: auth must be a table", 2)
  end
  opts = opts or {}
  local p = { token_url = opts.token_url }
  local grant = auth_kind(spec)
  options.check(spec, AUTH_FIELDS[grant], "assesskit.talview: auth", 2)
  if grant == "access_token" then
    p.token = need_string(spec, "access_token")
    p.expires_at = math.huge
  elseif grant == "password" then
    p.client_id = need_string(spec, "client_id")
    p.client_secret = opt_string(spec, "client_secret")
    p.username = need_string(spec, "username")
    p.password = need_string(spec, "password")
  else -- jwt
    p.client_id = opt_string(spec, "client_id")
    p.issuer = opt_string(spec, "issuer") or p.client_id
    if not p.issuer then
      error("assesskit.talview: auth.issuer (or auth.client_id) is required for the jwt grant", 2)
    end
    p.private_key = opt_string(spec, "private_key")
    p.private_key_file = opt_string(spec, "private_key_file")
    if not p.private_key and not p.private_key_file then
      error("assesskit.talview: auth.private_key or auth.private_key_file is required", 2)
    end
    p.passphrase = opt_string(spec, "passphrase")
    local scope = spec.scope
    if type(scope) == "table" then
      for _, s in ipairs(scope) do
        if type(s) ~= "string" then error("assesskit.talview: auth.scope items must be strings", 2) end
      end
      scope = table_concat(scope, " ")
    elseif scope ~= nil and type(scope) ~= "string" then
      error("assesskit.talview: auth.scope must be a string or an array of strings", 2)
    end
    p.scope = scope
    p.audience = opt_string(spec, "audience") or opts.token_url
    local lifetime = spec.lifetime
    if lifetime ~= nil and (type(lifetime) ~= "number" or lifetime <= 0
      or lifetime > MAX_JWT_LIFETIME) then
      error("assesskit.talview: auth.lifetime must be a number in (0, 86400]", 2)
    end
    p.lifetime = math_floor(lifetime or 3600)
  end
  M.check_options(opts, 2)
  p.margin = opts.token_margin or 60
  local wait = spec.wait_timeout
  if wait ~= nil and (type(wait) ~= "number" or wait ~= wait or wait <= 0 or wait == math.huge) then
    error("assesskit.talview: auth.wait_timeout must be a number > 0", 2)
  end
  p.wait_timeout = wait or 60
  p.identity = table_concat({ "talview", grant, p.client_id or "", p.username or p.issuer or "",
    opts.token_url or "" }, "|")
  local store = opts.token_store
  if store ~= nil and grant ~= "access_token" then
    p.store = store
    p.store_epoch_fn = type(store.epoch) == "function"
    p.store_key = opts.token_store_key or p.identity
  end
  local self = setmetatable({ grant = grant }, Auth)
  private[self] = p
  return self
end

--- The credential's identity: the key of its token and rate budget in a store (grant, client
-- id, username or issuer, token URL; never a secret). Nil for a static access token, whose
-- only identity is the token itself.
-- @treturn string|nil
function Auth:identity()
  if self.grant == "access_token" then return nil end
  return private[self].identity
end

--- `tostring(auth)`: the grant type only.
-- @treturn string
function Auth:__tostring()
  return "assesskit.talview.auth(" .. self:describe() .. ")"
end

--- The grant, for display: `grant=password`, `grant=jwt` or `grant=access_token`.
-- @treturn string
function Auth:describe()
  return "grant=" .. self.grant
end

local SECRET_FIELDS = { "token", "refresh_token", "client_secret", "password", "passphrase",
  "assertion", "header", "private_key" }

--- Every secret value this authenticator knows, to mask wherever it could show: the bearer
-- token (and its `Authorization` value), the refresh token, the client secret, the password,
-- the key's passphrase and PEM, the JWT assertion in flight, and the secrets of its token
-- store when the store has a `secrets()` method (a Redis password, for instance).
-- @treturn table array of strings
function Auth:secrets()
  local p = private[self]
  local out = {}
  for i = 1, #SECRET_FIELDS do
    local v = p[SECRET_FIELDS[i]]
    if type(v) == "string" then out[#out + 1] = v end
  end
  local store = p.store
  if store and type(store.secrets) == "function" then
    for _, v in ipairs(store:secrets() or {}) do
      if type(v) == "string" then out[#out + 1] = v end
    end
  end
  return out
end

local function auth_error(client, fields)
  fields.kind = fields.kind or "auth"
  return client:error(fields)
end

-- An error from the token endpoint: rejections (4xx) become `auth` errors; transport
-- failures and 5xx keep their kind (they are retryable, not a credentials problem).
local function token_error(client, err, what)
  if err.kind == "http" or err.kind == "auth" or err.kind == "decode" then
    if err.status and err.status >= 500 then return err end
    return auth_error(client, {
      status = err.status, name = err.name, code = err.code, fields = err.fields,
      message = what .. " was rejected: " .. tostring(err.message),
      method = err.method, url = err.url, request_id = err.request_id, sent = err.sent,
    })
  end
  return err
end

local function jwt_assertion(client, p)
  local jwt = require("assesskit.jwt")
  if not p.key then
    local pem = p.private_key
    if not pem then
      local e
      pem, e = read_file(p.private_key_file)
      if not pem then
        return nil, auth_error(client, { kind = "io",
          message = "cannot read the private key file: " .. tostring(e) })
      end
    end
    local key, kerr = jwt.load_key(pem, p.passphrase)
    if not key then
      return nil, auth_error(client, {
        message = "cannot load the private key: " .. tostring(kerr) })
    end
    p.key = key
  end
  local iat = math_floor(client.clock())
  local claims = {
    iss = p.issuer, scope = p.scope, aud = p.audience, iat = iat, exp = iat + p.lifetime,
  }
  local assertion, err = jwt.encode(claims, p.key)
  if not assertion then
    return nil, auth_error(client, { message = "cannot sign the assertion: " .. tostring(err) })
  end
  return assertion
end

-- One token request; stores the token on success.
local function request_token(self, client, p, kind)
  local opts = { auth = false, retry = true }
  local what
  if kind == "refresh" then
    what = "the refresh_token grant"
    opts.body = {
      grant_type = "refresh_token", refresh_token = p.refresh_token,
      client_id = p.client_id, client_secret = p.client_secret,
    }
  elseif self.grant == "password" then
    what = "the password grant"
    if not p.client_secret then -- the seed's token request always carries it
      return nil, client:error({ kind = "validation", sent = false, method = "POST",
        url = p.token_url, message = "the password grant needs auth.client_secret",
        fields = { { field = "client_secret", message = "is required" } } })
    end
    opts.body = {
      grant_type = "password", client_id = p.client_id, client_secret = p.client_secret,
      username = p.username, password = p.password,
    }
  else
    what = "the jwt-bearer grant"
    local assertion, err = jwt_assertion(client, p)
    if not assertion then return nil, err end
    p.assertion = assertion
    opts.form = { grant_type = JWT_GRANT, assertion = assertion, client_id = p.client_id }
  end
  local started = client.clock()
  local value, err, res = client:request("POST", p.token_url, opts)
  p.assertion = nil
  if not value then return nil, token_error(client, err, what) end
  if type(value) ~= "table" or type(value.access_token) ~= "string" or value.access_token == "" then
    return nil, auth_error(client, { status = res.status, method = "POST", url = res.url,
      message = what .. " returned no access_token" })
  end
  if string_find(value.access_token, "%c") then -- it could not go in an Authorization header
    return nil, auth_error(client, { status = res.status, method = "POST", url = res.url,
      message = what .. " returned an access_token with control characters" })
  end
  -- A lifetime the server did not give, or one no token has (not a number, not positive,
  -- infinite), is taken as an hour, the seed's usual; a longer one is capped at 30 days, so a
  -- token is always renewed at some point (and a 401 renews it sooner).
  local expires_in = tonumber(value.expires_in)
  if not expires_in or expires_in ~= expires_in or expires_in <= 0 then
    expires_in = 3600
  elseif expires_in > MAX_TOKEN_LIFETIME then
    expires_in = MAX_TOKEN_LIFETIME
  end
  p.token = value.access_token
  p.expires_at = started + expires_in
  p.lifetime_s = expires_in
  if type(value.refresh_token) == "string" and value.refresh_token ~= "" then
    p.refresh_token = value.refresh_token
  end
  return p.token
end

local function fresh(token, expires_at, lifetime, margin, now, stale)
  if type(token) ~= "string" or token == stale or type(expires_at) ~= "number" then
    return false
  end
  return now + math_min(margin, (tonumber(lifetime) or 0) * 0.1) < expires_at
end

local function fresh_p(p, now, stale)
  return fresh(p.token, p.expires_at, p.lifetime_s, p.margin, now, stale)
end

local function renew(self, client, p)
  if p.refresh_token then
    local tok, err = request_token(self, client, p, "refresh")
    if tok then return tok end
    p.refresh_token = nil
    if err.kind ~= "auth" then return nil, err end
    -- the refresh token was refused: start over with the primary grant
  end
  return request_token(self, client, p, "primary")
end

local function adopt(p, e)
  p.token, p.expires_at, p.lifetime_s = e.token, e.expires_at, e.lifetime
  if type(e.refresh_token) == "string" then p.refresh_token = e.refresh_token end
end

-- The credential's secret material, handed to a store that seals the tokens it shares
-- (`assesskit.redis` derives its key from it); the store never keeps it. False when it
-- cannot be read (then such a store shares nothing).
local function seal_secret(p)
  if p.seal_secret == nil then
    local s
    if p.password then
      s = (p.client_secret or "") .. "\0" .. p.password
    elseif p.private_key then
      s = p.private_key
    elseif p.private_key_file then
      s = read_file(p.private_key_file)
    end
    p.seal_secret = s or false
  end
  return p.seal_secret or nil
end

local function entry_of(p)
  return { token = p.token, expires_at = p.expires_at, lifetime = p.lifetime_s,
    refresh_token = p.refresh_token }
end

-- With a shared token store: read it, and renew under its lock. A store with `epoch()`
-- (assesskit.redis) says when the shared state may have changed under this process (its
-- Redis went away or came back): then the store is read again even when our token is fresh,
-- and our token is shared when the store has none, so that the fleet goes back to one token.
local function store_token(self, client, p, stale)
  local store, key = p.store, p.store_key
  local epoch = p.store_epoch_fn and store:epoch() or nil
  if p.store_epoch == epoch and fresh_p(p, client.clock(), stale) then return p.token end
  local secret = seal_secret(p)
  local e = store:get(key, secret)
  if e and fresh(e.token, e.expires_at, e.lifetime, p.margin, client.clock(), stale) then
    adopt(p, e)
    p.store_epoch = epoch
    return p.token
  end
  local release, lerr = store:lock(key, p.wait_timeout)
  if not release then
    return nil, client:error({ kind = lerr == "timeout" and "timeout" or "auth",
      message = "cannot take the token renewal lock: " .. tostring(lerr) })
  end
  e = store:get(key, secret) -- another holder may have renewed it while we waited
  if e and fresh(e.token, e.expires_at, e.lifetime, p.margin, client.clock(), stale) then
    release()
    adopt(p, e)
    p.store_epoch = epoch
    return p.token
  end
  if fresh_p(p, client.clock(), stale) then -- the store came back empty: share ours
    store:set(key, entry_of(p), secret)
    release()
    p.store_epoch = epoch
    return p.token
  end
  if e and type(e.refresh_token) == "string" then p.refresh_token = e.refresh_token end
  local ok, tok, err = pcall(renew, self, client, p)
  if ok and tok then
    store:set(key, entry_of(p), secret)
    p.store_epoch = epoch
  end
  release()
  if not ok then error(tok, 0) end
  return tok, err
end

--- A valid access token, renewing it when it is missing, about to expire, or `stale`.
-- @tparam table client the `assesskit.client` sending the token request
-- @tparam[opt] string stale a token the server refused (it is not reused)
-- @treturn string|nil the token
-- @treturn table|nil the error
function Auth:token(client, stale)
  local p = private[self]
  if self.grant == "access_token" then return p.token end
  if p.store then return store_token(self, client, p, stale) end
  if not p.renewing and fresh_p(p, client.clock(), stale) then return p.token end
  local me = coroutine_running() or "main"
  if p.renewing then
    if p.renewing == me then
      return nil, auth_error(client, { message = "token renewal re-entered (from a hook?)" })
    end
    local waited, step, orphaned = 0, 0.005, false
    while p.renewing do
      local holder = p.renewing
      if type(holder) == "thread" and coroutine_status(holder) == "dead" then
        -- the renewer was killed where it stood (ngx.thread.kill, ngx.exit): it will never
        -- clear the mark, so this caller renews instead (at once: no other waiter runs first)
        p.renewing, orphaned = nil, true
        break
      end
      if waited >= p.wait_timeout then
        return nil, client:error({ kind = "timeout",
          message = "timed out waiting for another token renewal" })
      end
      client:wait(step) -- suspends a scheduler task or a light thread: no spinning
      waited = waited + step
    end
    if fresh_p(p, client.clock(), stale) then return p.token end
    if p.last_error and not orphaned then return nil, p.last_error end
  end
  p.renewing = me
  local ok, tok, err = pcall(renew, self, client, p)
  p.renewing = nil
  if not ok then
    p.last_error = nil
    error(tok, 0)
  end
  p.last_error = err
  return tok, err
end

--- Add the Authorization header (fetching a token if needed).
-- @tparam table client
-- @tparam table headers the request headers (modified)
-- @treturn true|nil
-- @treturn table|nil the error
function Auth:authorize(client, headers)
  local tok, err = self:token(client)
  if not tok then return nil, err end
  local p = private[self]
  if p.header_token ~= tok then p.header_token, p.header = tok, "Bearer " .. tok end
  headers.authorization = p.header
  return true
end

--- After a 401: renew the token unless another request already did.
-- @tparam table client
-- @tparam table headers the headers the rejected request was sent with
-- @treturn boolean|nil true when the request should be sent again, false when the token
--   cannot be renewed (static token)
-- @treturn table|nil the error when the renewal failed
function Auth:renew(client, headers)
  local p = private[self]
  if self.grant == "access_token" then return false end
  local sent = headers.authorization
  if type(sent) == "string" and string_find(sent, "Bearer ", 1, true) == 1 then
    sent = string_sub(sent, 8)
  end
  if p.token == sent then p.expires_at = 0 end
  -- a token other than the refused one (renewed meanwhile) is used as is
  local tok, err = self:token(client, sent)
  if not tok then return nil, err end
  return true
end

--- Drop the cached token (the next request fetches a new one).
function Auth:invalidate()
  local p = private[self]
  if self.grant ~= "access_token" then
    p.token, p.expires_at = nil, 0
  end
end

--- When the cached token expires (epoch seconds), or nil when there is none.
-- @treturn number|nil
function Auth:expires_at()
  local p = private[self]
  return p.token and p.expires_at or nil
end

return M
