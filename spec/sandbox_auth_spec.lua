-- The sandbox's token endpoint and Bearer checks, driven over real HTTP with LuaSocket.
-- JWTs are signed here with lua-luaossl (not assesskit's core), from the demo key.
local sandbox = require("support.sandbox")
local sys = require("support.sys")
local mime = require("mime")
local cjson = require("cjson")
local pkey = require("openssl.pkey")
local digest = require("openssl.digest")

local function b64url(s)
  return (mime.b64(s):gsub("+", "-"):gsub("/", "_"):gsub("=+$", ""))
end

local function sign_jwt(claims, key_pem, header)
  header = header or { alg = "RS256", typ = "JWT" }
  local input = b64url(cjson.encode(header)) .. "." .. b64url(cjson.encode(claims))
  local key = pkey.new(key_pem)
  local sig = key:sign(digest.new("sha256"):update(input))
  return input .. "." .. b64url(sig)
end

describe("sandbox token endpoint", function()
  local sb = sandbox.fixture({ reset = true })
  local creds, key_pem

  local function claims(over)
    local now = os.time()
    local c = { iss = creds.jwt.issuer, scope = creds.jwt.scope, aud = creds.jwt.audience,
                iat = now, exp = now + 600 }
    for k, v in pairs(over or {}) do
      if v == "nil" then c[k] = nil else c[k] = v end
    end
    return c
  end

  local function jwt_grant(assertion)
    return sb:request("POST", "/oauth2/token", { form = {
      grant_type = "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion = assertion } })
  end

  local function password_grant(over)
    local body = { grant_type = "password", client_id = creds.password.client_id,
      client_secret = creds.password.client_secret, username = creds.password.username,
      password = creds.password.password }
    for k, v in pairs(over or {}) do body[k] = v end
    return sb:request("POST", "/oauth2/token", { body = body })
  end

  setup(function()
    creds = sb.credentials
    key_pem = assert(sys.read(creds.jwt.private_key_file))
  end)

  it("ships the demo key named as the sandbox's own, and the credentials file names it", function()
    assert.matches("demo%-service%-account%.key%.pem$", creds.jwt.private_key_file)
    assert.matches("SANDBOX DEMO KEY, FOR THE SANDBOX ALONE", key_pem, 1, true)
    assert.equal(sb.url .. "/oauth2/token", creds.jwt.audience)
    assert.truthy(creds.interviewmocha.api_key)
    assert.truthy(creds.viewer.username ~= creds.password.username)
  end)

  it("issues a Bearer token and a refresh token for the password grant (JSON body)", function()
    local r = password_grant()
    assert.equal(200, r.status)
    assert.matches("^%x+$", r.json.access_token)
    assert.matches("^%x+$", r.json.refresh_token)
    assert.equal("Bearer", r.json.token_type)
    assert.equal(86400, r.json.expires_in)
    assert.equal(200, sb:request("GET", "/user/me", { token = r.json.access_token }).status)
  end)

  it("accepts the password grant form-encoded and with HTTP Basic client authentication", function()
    local r = sb:request("POST", "/oauth2/token", {
      headers = { Authorization = "Basic "
        .. mime.b64(creds.password.client_id .. ":" .. creds.password.client_secret) },
      form = { grant_type = "password", username = creds.password.username, password = creds.password.password } })
    assert.equal(200, r.status)
    assert.truthy(r.json.access_token)
  end)

  it("refuses a wrong password with an OAuth2 error body", function()
    local r = password_grant({ password = "not-the-password" })
    assert.equal(401, r.status)
    assert.equal("invalid_grant", r.json.error)
    assert.equal("Invalid username and password combination", r.json.error_description)
    assert.equal(401, r.json.status)
    assert.falsy(r.body:find("not-the-password", 1, true))
  end)

  it("refuses a wrong client secret, a missing grant type and an unknown grant type", function()
    local r = password_grant({ client_secret = "wrong" })
    assert.equal(400, r.status)
    assert.equal("invalid_client", r.json.error)
    r = password_grant({ grant_type = cjson.null })
    assert.equal(400, r.status)
    assert.equal("invalid_request", r.json.error)
    r = password_grant({ grant_type = "client_credentials" })
    assert.equal(400, r.status)
    assert.equal("unsupported_grant_type", r.json.error)
  end)

  it("answers 405 to a GET and 415 to an XML body", function()
    local r = sb:request("GET", "/oauth2/token")
    assert.equal(405, r.status)
    assert.equal("POST", r.headers.allow)
    r = sb:request("POST", "/oauth2/token", { body = "<x/>", headers = { ["Content-Type"] = "application/xml" } })
    assert.equal(415, r.status)
  end)

  it("refreshes with the refresh_token grant, rotating the refresh token", function()
    local first = password_grant().json
    local r = sb:request("POST", "/oauth2/token", { body = {
      grant_type = "refresh_token", refresh_token = first.refresh_token,
      client_id = creds.password.client_id, client_secret = creds.password.client_secret } })
    assert.equal(200, r.status)
    assert.are_not.equal(first.access_token, r.json.access_token)
    assert.are_not.equal(first.refresh_token, r.json.refresh_token)
    assert.equal(200, sb:request("GET", "/user/me", { token = r.json.access_token }).status)
    -- the used refresh token is spent
    local again = sb:request("POST", "/oauth2/token", { body = {
      grant_type = "refresh_token", refresh_token = first.refresh_token,
      client_id = creds.password.client_id, client_secret = creds.password.client_secret } })
    assert.equal(400, again.status)
    assert.equal("invalid_grant", again.json.error)
  end)

  it("issues a token for a JWT assertion signed with the service account's key", function()
    local r = jwt_grant(sign_jwt(claims(), key_pem))
    assert.equal(200, r.status)
    assert.equal("bearer", r.json.token_type)
    assert.equal(3600, r.json.expires_in)
    assert.is_nil(r.json.refresh_token)
    local me = sb:request("GET", "/user/me", { token = r.json.access_token })
    assert.equal(200, me.status)
    assert.equal(creds.jwt.issuer, me.json.username)
  end)

  it("refuses expired, badly signed, malformed and over-long assertions", function()
    local now = os.time()
    local cases = {
      expired = sign_jwt(claims({ iat = now - 7200, exp = now - 3600 }), key_pem),
      lifetime = sign_jwt(claims({ iat = now, exp = now + 86400 + 60 }), key_pem),
      future = sign_jwt(claims({ iat = now + 3600, exp = now + 4000 }), key_pem),
      audience = sign_jwt(claims({ aud = "https://apiv4.talview.com/oauth2/token" }), key_pem),
      issuer = sign_jwt(claims({ iss = "someone@example.test" }), key_pem),
      no_exp = sign_jwt(claims({ exp = "nil" }), key_pem),
      no_scope = sign_jwt(claims({ scope = "nil" }), key_pem),
      alg = sign_jwt(claims(), key_pem, { alg = "HS256", typ = "JWT" }),
      malformed = "not.a-jwt",
      garbage = "!!!.???.***",
    }
    -- a valid token signed by another key
    local other = pkey.new({ type = "RSA", bits = 2048 })
    cases.other_key = sign_jwt(claims(), other:toPEM("private"))
    -- a valid one with its payload changed after signing
    local good = sign_jwt(claims(), key_pem)
    local h, _, s = good:match("^([^.]+)%.([^.]+)%.([^.]+)$")
    cases.tampered = h .. "." .. b64url(cjson.encode(claims({ scope = "admin" }))) .. "." .. s
    for name, assertion in pairs(cases) do
      local r = jwt_grant(assertion)
      assert.equal(400, r.status, name)
      assert.equal("invalid_grant", r.json.error, name)
      assert.is_string(r.json.error_description, name)
    end
    assert.equal(400, jwt_grant(nil).status)
  end)

  it("answers 401 without a token, with an unknown one and with an expired one", function()
    local r = sb:request("GET", "/models/candidate")
    assert.equal(401, r.status)
    assert.equal("Unauthorized", r.json.name)
    assert.matches("^Bearer", r.headers["www-authenticate"])
    assert.equal(401, sb:request("GET", "/models/candidate", { token = "0123456789abcdef" }).status)
    local tok = sb:token()
    assert.equal(200, sb:request("GET", "/models/candidate", { token = tok }).status)
    assert.is_true(sb:expire_tokens() >= 1)
    r = sb:request("GET", "/models/candidate", { token = tok })
    assert.equal(401, r.status)
    assert.matches("expired", r.headers["www-authenticate"])
  end)

  it("makes token lifetimes configurable so refresh paths can be tested", function()
    sb:config({ token_ttl = 1 })
    local r = password_grant()
    assert.equal(1, r.json.expires_in)
    local tok, refresh = r.json.access_token, r.json.refresh_token
    -- wait until the token has expired (the sandbox's clock decides)
    local status
    for _ = 1, 40 do
      status = sb:request("GET", "/user/me", { token = tok }).status
      if status == 401 then break end
      os.execute("sleep 0.1")
    end
    assert.equal(401, status)
    local rr = sb:request("POST", "/oauth2/token", { body = {
      grant_type = "refresh_token", refresh_token = refresh,
      client_id = creds.password.client_id, client_secret = creds.password.client_secret } })
    assert.equal(200, rr.status)
    sb:reset()
    assert.equal(86400, sb:config().token_ttl)
  end)

  it("forbids role-restricted actions to a user without the roles (403)", function()
    local viewer = sb:token("viewer")
    local body = { assessmentSectionID = 2001, endDate = "2030-01-01T00:00:00Z", candidates = { { id = 10250 } } }
    local r = sb:request("POST", "/actions/invite", { token = viewer, body = body })
    assert.equal(403, r.status)
    assert.equal("Forbidden", r.json.name)
    -- and the same action with the recruiter works
    assert.equal(200, sb:request("POST", "/actions/invite", { token = sb:token(), body = body }).status)
  end)

  it("lets the JWT service account (API user) run actions", function()
    local tok = jwt_grant(sign_jwt(claims(), key_pem)).json.access_token
    local r = sb:request("POST", "/actions/change-status", { token = tok, body = {
      statusSortKey = 70, isNotify = false, assessmentCandidates = { { id = 30001 } } } })
    assert.equal(200, r.status)
  end)
end)

describe("sandbox started with --token-ttl", function()
  it("issues tokens with that lifetime", function()
    local sb = sandbox.start({ token_ttl = 7 })
    local ok, err = pcall(function()
      local _, resp = sb:token()
      assert.equal(7, resp.expires_in)
    end)
    sb:stop()
    assert(ok, err)
  end)
end)
