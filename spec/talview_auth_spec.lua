-- Talview v4 auth against the real sandbox: the password, JWT-bearer and static-token grants,
-- token caching, renewal before expiry (refresh_token grant), renewal on 401, one renewal in
-- flight per client, and no secret anywhere a user could see it.

local sandbox = require("support.sandbox")
local recording = require("support.transport").recording
local core = require("assesskit.core")
local cjson = require("cjson")
local socket = require("socket")

local function token_requests(sb)
  return sb:requests({ path = "/oauth2/token" })
end

local function grant_of(entry)
  if entry.content_type and entry.content_type:find("json", 1, true) then
    return cjson.decode(entry.body).grant_type
  end
  return entry.body:match("grant_type=([^&]*)")
end

describe("talview auth against a token endpoint that answers oddly #luajit", function()
  local nginx = require("support.nginx")
  local talview = require("assesskit.talview")
  local srv

  setup(function()
    srv = nginx.start({ locations = [[
      location = /none { default_type application/json; return 200 '{"token_type":"Bearer"}'; }
      location = /html { default_type text/html; return 200 '<html>sign in</html>'; }
      location = /crlf {
        default_type application/json;
        return 200 '{"access_token":"tok-abc\\r\\nX-Injected: 1","expires_in":3600}';
      }
      location = /crlf-raw {
        default_type application/json;
        return 200 '{"access_token":"tok-abc\r\nX-Injected: 1","expires_in":3600}';
      }
      location = /forever {
        default_type application/json;
        return 200 '{"access_token":"tok-forever","expires_in":1e999}';
      }
      location = /negative {
        default_type application/json;
        return 200 '{"access_token":"tok-negative","expires_in":-5}';
      }
      location /models/ { default_type application/json; return 200 '{"id":1}'; }
      location / { return 500; }
    ]] })
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  it("returns an auth error, never raises, and sends no API request", function()
    for _, case in ipairs({ { "/none", "returned no access_token" }, { "/html", "returned no access_token" },
      { "/crlf", "returned an access_token with control characters" },
      -- unescaped control characters in a JSON string: not JSON (RFC 8259)
      { "/crlf-raw", "response body is not valid JSON: unescaped control character in a string" } }) do
      local tv = talview.new({ base_url = srv:url(""), token_url = srv:url(case[1]), max_retries = 0,
        auth = { grant = "password", client_id = "c", client_secret = "s3cret-1", username = "u",
          password = "passw0rd-1" } })
      local v, err = tv.models.candidate:get(1)
      assert.is_nil(v)
      assert.equal("auth", err.kind)
      assert.matches(case[2], err.message, 1, true)
      assert.is_nil(tostring(err):find("passw0rd-1", 1, true))
      tv:close()
    end
    for _, e in ipairs(srv:log()) do assert.is_nil(e.uri:find("/models/", 1, true), e.uri) end
  end)

  it("bounds the token lifetime the server states: infinite is capped, negative is an hour", function()
    local function token_calls(path)
      local n = 0
      for _, e in ipairs(srv:log()) do if e.uri == path then n = n + 1 end end
      return n
    end
    for _, case in ipairs({ { "/forever", 31 * 86400, 2 }, { "/negative", 60, 1 } }) do
      local path, later, want = case[1], case[2], case[3]
      local now = 1700000000
      local before = token_calls(path)
      local tv = talview.new({ base_url = srv:url(""), token_url = srv:url(path), max_retries = 0,
        clock = function() return now end,
        auth = { grant = "password", client_id = "c", client_secret = "s", username = "u", password = "p" } })
      assert.is_table((tv.models.candidate:get(1)))
      assert.is_table((tv.models.candidate:get(1)))
      now = now + later
      assert.is_table((tv.models.candidate:get(1)))
      assert.equal(want, token_calls(path) - before, path)
      tv:close()
    end
  end)
end)

describe("talview auth #luajit", function()
  local sb = sandbox.fixture({ tls = true, reset = true, clear = true })
  local creds

  setup(function()
    creds = sb.credentials
  end)

  describe("password grant", function()
    it("posts a JSON body to /oauth2/token and sends the token as a Bearer header", function()
      local tv = sb:talview({ auth = sb:password_auth() })
      local me, err = tv.user.me:get()
      assert.is_nil(err)
      assert.is_table(me)
      local log = sb:requests()
      assert.equal("POST", log[1].method)
      assert.equal("/oauth2/token", log[1].path)
      assert.matches("application/json", log[1].content_type)
      local body = cjson.decode(log[1].body)
      assert.equal("password", body.grant_type)
      assert.equal(creds.password.client_id, body.client_id)
      assert.equal(creds.password.username, body.username)
      assert.equal("/user/me", log[2].path)
      assert.equal("Bearer ***", log[2].headers.authorization)
      assert.equal(200, log[2].status)
    end)

    it("caches the token across calls", function()
      local tv = sb:talview({ auth = sb:password_auth() })
      for _ = 1, 3 do assert.is_table((tv.user.me:get())) end
      assert.equal(1, #token_requests(sb))
    end)

    it("returns an auth error for wrong credentials, without the password", function()
      local tv = sb:talview({ auth = sb:password_auth({ password = "wrong-password-xyz" }) })
      local v, err = tv.user.me:get()
      assert.is_nil(v)
      assert.equal("auth", err.kind)
      assert.is_number(err.status)
      assert.is_nil(tostring(err):find("wrong-password-xyz", 1, true))
      assert.is_nil(tostring(err):find(creds.password.client_secret, 1, true))
      -- nothing but the token request went out
      assert.equal(1, #sb:requests())
    end)

    it("authenticate() fetches a token up front", function()
      local tv = sb:talview({ auth = sb:password_auth() })
      assert.is_true(tv:authenticate())
      assert.equal(1, #token_requests(sb))
      local bad = sb:talview({ auth = sb:password_auth({ client_secret = "nope-nope" }) })
      local ok, err = bad:authenticate()
      assert.is_nil(ok)
      assert.equal("auth", err.kind)
    end)
  end)

  describe("JWT-bearer grant", function()
    it("signs an RS256 assertion with iss, scope, aud, iat, exp and posts it form-encoded", function()
      local t = recording({ ca_file = sb.ca_file })
      local tv = sb:talview({ auth = sb:jwt_auth({ lifetime = 600 }), transport = t })
      local me, err = tv.user.me:get()
      assert.is_nil(err)
      assert.is_table(me)
      local req = t.sent[1]
      assert.equal("POST", req.method)
      assert.equal(sb.url .. "/oauth2/token", req.url)
      assert.equal("application/x-www-form-urlencoded", req.headers["content-type"])
      assert.equal("urn:ietf:params:oauth:grant-type:jwt-bearer",
        core.url_decode(req.body:match("grant_type=([^&]*)")))
      local assertion = core.url_decode(req.body:match("assertion=([^&]*)"))
      local h64, p64, s64 = assertion:match("^([^.]+)%.([^.]+)%.([^.]+)$")
      assert.is_string(s64)
      local header = cjson.decode(core.b64url_decode(h64))
      local claims = cjson.decode(core.b64url_decode(p64))
      assert.equal("RS256", header.alg)
      assert.equal(creds.jwt.issuer, claims.iss)
      assert.equal(creds.jwt.scope, claims.scope)
      assert.equal(creds.jwt.audience, claims.aud)
      assert.equal(600, claims.exp - claims.iat)
      assert.is_true(math.abs(claims.iat - os.time()) < 120)
      -- the sandbox verified the signature and accepted it
      assert.equal(200, token_requests(sb)[1].status)
      t.close()
    end)

    it("takes the key as a PEM string and the scope as an array", function()
      local f = assert(io.open(creds.jwt.private_key_file, "rb"))
      local pem = f:read("*a")
      f:close()
      local scope = {}
      for s in creds.jwt.scope:gmatch("%S+") do scope[#scope + 1] = s end
      local tv = sb:talview({ auth = sb:jwt_auth({ private_key_file = false, private_key = pem, scope = scope }) })
      assert.is_table((tv.user.me:get()))
    end)

    it("refuses a lifetime over 24 hours (misuse)", function()
      assert.has_error(function() sb:talview({ auth = sb:jwt_auth({ lifetime = 86401 }) }) end)
    end)

    it("returns an auth error for an unreadable or bad key, sending nothing", function()
      local tv = sb:talview({ auth = sb:jwt_auth({ private_key_file = "/nonexistent/key.pem" }) })
      local _, err = tv.user.me:get()
      assert.is_truthy(err)
      assert.equal("io", err.kind)
      tv = sb:talview({ auth = sb:jwt_auth({ private_key_file = false, private_key = "not a pem" }) })
      _, err = tv.user.me:get()
      assert.equal("auth", err.kind)
      assert.equal(0, #sb:requests())
    end)

    it("returns an auth error when the sandbox rejects the issuer", function()
      local tv = sb:talview({ auth = sb:jwt_auth({ issuer = "someone-else@example.test" }) })
      local _, err = tv.user.me:get()
      assert.equal("auth", err.kind)
      assert.is_number(err.status)
    end)
  end)

  describe("static access token", function()
    it("sends the given token and never asks for another", function()
      -- fetch a real token through a recording transport
      local t = recording({ ca_file = sb.ca_file })
      local tv1 = sb:talview({ auth = sb:password_auth(), transport = t })
      assert.is_true(tv1:authenticate())
      local token = cjson.decode(t.received[1].body).access_token
      sb:clear_requests()
      local tv = sb:talview({ auth = { access_token = token } })
      assert.is_table((tv.user.me:get()))
      assert.equal(0, #token_requests(sb))
      t.close()
    end)

    it("returns an auth error on 401 without trying to renew", function()
      local tv = sb:talview({ auth = { access_token = "not-a-valid-token-0000" } })
      local _, err = tv.user.me:get()
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      assert.equal(0, #token_requests(sb))
      assert.equal(1, #sb:requests())
      assert.is_nil(tostring(err):find("not-a-valid-token-0000", 1, true))
    end)
  end)

  describe("renewal", function()
    it("renews a token about to expire through the refresh_token grant, before any 401", function()
      sb:config({ token_ttl = 1 })
      local tv = sb:talview({ auth = sb:password_auth() })
      assert.is_table((tv.user.me:get()))
      socket.sleep(1.2) -- the real token expires in the sandbox
      local me, err = tv.user.me:get()
      assert.is_nil(err)
      assert.is_table(me)
      local grants = {}
      for _, e in ipairs(token_requests(sb)) do grants[#grants + 1] = grant_of(e) end
      assert.same({ "password", "refresh_token" }, grants)
      for _, e in ipairs(sb:requests({ path = "/user/me" })) do assert.equal(200, e.status) end
    end)

    it("renews ahead of expiry by the margin, on the client's clock", function()
      local now = socket.gettime()
      local tv = sb:talview({ auth = sb:password_auth(), clock = function() return now end })
      assert.is_table((tv.user.me:get()))
      now = now + 86400 - 30 -- within the 60 s margin of a 24 h token
      assert.is_table((tv.user.me:get()))
      local grants = {}
      for _, e in ipairs(token_requests(sb)) do grants[#grants + 1] = grant_of(e) end
      assert.same({ "password", "refresh_token" }, grants)
    end)

    it("renews on a 401 (token expired in the sandbox) and sends the request once more", function()
      local tv = sb:talview({ auth = sb:password_auth() })
      assert.is_table((tv.user.me:get()))
      sb:expire_tokens()
      sb:clear_requests()
      local me, err = tv.user.me:get()
      assert.is_nil(err)
      assert.is_table(me)
      local log = sb:requests()
      assert.equal(3, #log)
      assert.equal(401, log[1].status)
      assert.equal("refresh_token", grant_of(log[2]))
      assert.equal(200, log[3].status)
      assert.are_not.equal(log[1].auth.token, log[3].auth.token)
    end)

    it("shows hooks the 401, then the token request, then the retried request, in order", function()
      local events = {}
      local function on_request(i) events[#events + 1] = "req " .. i.url:match("//[^/]+(/[^?]*)") end
      local function on_response(i)
        events[#events + 1] = "res " .. i.url:match("//[^/]+(/[^?]*)") .. " " .. tostring(i.status)
      end
      local tv = sb:talview({ auth = sb:password_auth(), on_request = on_request, on_response = on_response })
      assert.is_table((tv.user.me:get()))
      sb:expire_tokens()
      events = {}
      assert.is_table((tv.user.me:get()))
      assert.same({ "req /user/me", "res /user/me 401", "req /oauth2/token", "res /oauth2/token 200",
        "req /user/me", "res /user/me 200" }, events)
    end)

    it("renews on a 401 from the expire_token fault", function()
      local tv = sb:talview({ auth = sb:password_auth() })
      assert.is_table((tv.user.me:get()))
      sb:fault({ kind = "expire_token", path = "/user/me" })
      sb:clear_requests()
      assert.is_table((tv.user.me:get()))
      assert.equal(1, #token_requests(sb))
      local log = sb:requests({ path = "/user/me" })
      assert.equal(401, log[1].status)
      assert.equal(200, log[2].status)
    end)

    it("falls back to the password grant when the refresh token is refused", function()
      sb:config({ refresh_ttl = 1 })
      local tv = sb:talview({ auth = sb:password_auth() })
      assert.is_table((tv.user.me:get()))
      socket.sleep(1.2)
      sb:expire_tokens()
      assert.is_table((tv.user.me:get()))
      local grants = {}
      for _, e in ipairs(token_requests(sb)) do grants[#grants + 1] = grant_of(e) end
      assert.same({ "password", "refresh_token", "password" }, grants)
    end)

    it("renews a JWT token by signing a new assertion", function()
      local tv = sb:talview({ auth = sb:jwt_auth() })
      assert.is_table((tv.user.me:get()))
      sb:expire_tokens()
      assert.is_table((tv.user.me:get()))
      local log = token_requests(sb)
      assert.equal(2, #log)
      assert.equal(200, log[2].status)
    end)

    it("keeps one renewal in flight per client: other coroutines wait for it", function()
      local inner = core.session({ ca_file = sb.ca_file })
      local transport = {
        request = function(_, req)
          if req.url:find("/oauth2/token", 1, true) then coroutine.yield("token") end
          return inner:request(req)
        end,
      }
      local tv = sb:talview({ auth = sb:password_auth(), transport = transport,
        sleep = function() coroutine.yield("waiting") end })
      local co1 = coroutine.create(function() return tv.user.me:get() end)
      local co2 = coroutine.create(function() return tv.user.me:get() end)
      assert.same({ true, "token" }, { coroutine.resume(co1) })
      assert.same({ true, "waiting" }, { coroutine.resume(co2) })
      assert.same({ true, "waiting" }, { coroutine.resume(co2) })
      local ok1, me1 = coroutine.resume(co1)
      assert.is_true(ok1)
      assert.is_table(me1)
      local ok2, me2 = coroutine.resume(co2)
      assert.is_true(ok2)
      assert.is_table(me2)
      assert.equal(1, #token_requests(sb))
      inner:close()
    end)
  end)

  describe("token store", function()
    -- an in-process store with the token-store interface (docs/DESIGN.md)
    local function memory_store()
      local st = { entries = {}, locked = {}, sets = 0 }
      function st.get(self, key) return self.entries[key] end
      function st.set(self, key, e) self.sets = self.sets + 1; self.entries[key] = e; return true end
      function st.delete(self, key) self.entries[key] = nil end
      function st.lock(self, key)
        if self.locked[key] then return nil, "timeout" end
        self.locked[key] = true
        return function() self.locked[key] = nil end
      end
      return st
    end

    it("lets clients share one token: one token request for two clients", function()
      local store = memory_store()
      local a = sb:talview({ auth = sb:password_auth(), token_store = store })
      local b = sb:talview({ auth = sb:password_auth(), token_store = store })
      assert.is_table((a.user.me:get()))
      assert.is_table((b.user.me:get()))
      assert.equal(1, #token_requests(sb))
      assert.equal(1, store.sets)
      local log = sb:requests({ path = "/user/me" })
      assert.equal(log[1].auth.token, log[2].auth.token)
    end)

    it("renews a refused token once and shares the new one", function()
      local store = memory_store()
      local a = sb:talview({ auth = sb:password_auth(), token_store = store })
      local b = sb:talview({ auth = sb:password_auth(), token_store = store })
      assert.is_table((a.user.me:get()))
      assert.is_table((b.user.me:get()))
      sb:expire_tokens()
      assert.is_table((a.user.me:get()))
      assert.is_table((b.user.me:get()))
      local grants = {}
      for _, e in ipairs(token_requests(sb)) do grants[#grants + 1] = grant_of(e) end
      assert.same({ "password", "refresh_token" }, grants)
    end)

    it("reports a lock it cannot take as a timeout error", function()
      local store = memory_store()
      local tv = sb:talview({ auth = sb:password_auth(), token_store = store, token_store_key = "k" })
      store.locked.k = true
      local _, err = tv.user.me:get()
      assert.equal("timeout", err.kind)
      assert.equal(0, #sb:requests())
    end)

    it("raises on a store without the interface", function()
      assert.has_error(function() sb:talview({ auth = sb:password_auth(), token_store = {} }) end)
    end)

    it("checks store, token_store_key and token_margin also without auth", function()
      local talview = require("assesskit.talview")
      for _, c in ipairs({
        { { store = {} }, "store must have get, set and lock methods" },
        { { store = { get = print, set = print } }, "store must have get, set and lock methods" },
        { { token_store = "redis://x" }, "store must have get, set and lock methods" },
        { { token_store_key = 5 }, "token_store_key must be a string" },
        { { token_margin = "soon" }, "token_margin must be a number >= 0" },
        { { token_margin = -1 }, "token_margin must be a number >= 0" },
      }) do
        local opts = c[1]
        opts.base_url = sb.url
        local ok, msg = pcall(function() local tv = talview.new(opts) return tv end)
        assert.is_false(ok)
        assert.matches("^[^:]*talview_auth_spec%.lua:%d+: assesskit%.talview: " .. c[2]:gsub("[%-%.%+]", "%%%0"), msg)
      end
      local tv = talview.new({ base_url = sb.url, store = require("assesskit.store").new(), token_margin = 5,
        token_store_key = "k" })
      tv:close()
    end)

    it("waits auth.wait_timeout seconds for a renewal another holder has under way", function()
      local store = memory_store()
      local asked
      local lock = store.lock
      function store.lock(self, key, timeout)
        asked = timeout
        return lock(self, key)
      end
      local tv = sb:talview({ auth = sb:password_auth({ wait_timeout = 7 }), token_store = store })
      assert.is_table((tv.user.me:get()))
      assert.equal(7, asked)
      local st = memory_store()
      lock = st.lock
      function st.lock(self, key, timeout) asked = timeout return lock(self, key) end
      tv = sb:talview({ auth = sb:password_auth(), token_store = st })
      assert.is_table((tv.user.me:get()))
      assert.equal(60, asked)
      assert.has_error(function() sb:talview({ auth = sb:password_auth({ wait_timeout = "long" }) }) end,
        "assesskit.talview: auth.wait_timeout must be a number > 0")
      assert.has_error(function() sb:talview({ auth = { access_token = "tok-abcdef", wait_timeout = 5 } }) end)
    end)
  end)

  describe("secrets", function()
    it("never show in tostring, errors, hook arguments or the client's fields", function()
      local seen = {}
      local function hook(info) seen[#seen + 1] = info end
      local t = recording({ ca_file = sb.ca_file })
      local auth = sb:password_auth()
      local tv = sb:talview({ auth = auth, transport = t, on_request = hook, on_response = hook })
      assert.is_table((tv.user.me:get()))
      sb:expire_tokens()
      assert.is_table((tv.user.me:get()))
      local _, err = tv.models.candidate:get(987654321)
      local token = cjson.decode(t.received[1].body).access_token
      local refresh = cjson.decode(t.received[1].body).refresh_token
      assert.is_string(token)
      local texts = { tostring(tv), tostring(err), cjson.encode(seen) }
      -- walk the client's reachable fields (but not our own recording transport)
      local visited = { [t] = true }
      local function walk(v)
        if type(v) == "string" then texts[#texts + 1] = v
        elseif type(v) == "table" and not visited[v] then
          visited[v] = true
          for k, x in pairs(v) do walk(k); walk(x) end
        end
      end
      walk(tv)
      local all = table.concat(texts, "\n")
      for _, secret in ipairs({ token, refresh, auth.client_secret, auth.password }) do
        assert.is_nil(all:find(secret, 1, true), "leaked a secret")
      end
      assert.matches("grant=password", tostring(tv))
      t.close()
    end)
  end)

  describe("options", function()
    it("raise on a malformed auth table", function()
      assert.has_error(function() sb:talview({ auth = { grant = "password" } }) end)
      assert.has_error(function() sb:talview({ auth = { grant = "magic" } }) end)
      assert.has_error(function() sb:talview({ auth = { grant = "jwt", issuer = "x" } }) end)
      assert.has_error(function() sb:talview({ auth = "token" }) end)
      assert.has_error(function() sb:talview({ auth = { access_token = 5 } }) end)
    end)

    it("raise on an unknown auth field, naming the nearest valid one, and on a contradictory auth", function()
      local function msg(auth)
        local ok, m = pcall(function() sb:talview({ auth = auth }) end)
        assert.is_false(ok)
        return m
      end
      assert.matches("auth: unknown option 'scopes' %(did you mean 'scope'%?%)",
        msg(sb:jwt_auth({ scopes = "read" })))
      assert.matches("auth: unknown option 'usrname' %(did you mean 'username'%?%)",
        msg(sb:password_auth({ usrname = "x" })))
      -- a field of another grant is as unknown as a typo
      assert.matches("auth: unknown option 'private_key_file'",
        msg(sb:password_auth({ private_key_file = "/k.pem" })))
      assert.matches("access_token and grant exclude each other",
        msg({ access_token = "tok-abcdef", grant = "password" }))
      assert.matches('did you mean "password"', msg(sb:password_auth({ grant = "pasword" })))
      assert.equal(0, #sb:requests())
    end)

    it("refuse the password grant without client_secret as a validation error, sending nothing", function()
      local tv = sb:talview({ auth = sb:password_auth({ client_secret = false }) })
      local v, err = tv.user.me:get()
      assert.is_nil(v)
      assert.equal("validation", err.kind)
      assert.is_false(err.sent)
      assert.equal("client_secret", err.fields[1].field)
      assert.equal(0, #sb:requests())
    end)
  end)
end)
