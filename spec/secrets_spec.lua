-- No secret anywhere the library hands out, whatever a server echoes (issue 11.5): a server on
-- loopback echoes each secret the client sent (bearer token, refresh token, password, client
-- secret, JWT assertion, InterviewMocha key) in each place an error or a hook shows (name,
-- message, code, the field names and messages of a 422, request id, response header values),
-- and the client must mask it in every string field of the error, in tostring(err), in the
-- hooks' arguments, and in the command line's output and log lines.

local nginx = require("support.nginx")
local sys = require("support.sys")

local TOKEN = "tok-Bearer-5ecret-0001"
local REFRESH = "ref-Refresh-5ecret-0002"
local PASSWORD = "Pa55word-5ecret-0003"
local CLIENT_SECRET = "Client-5ecret-0004"
local KEY = "im-Key-5ecret-0005"

local servers = [[
  server {
    listen 127.0.0.1:@P@;
    location / {
      content_by_lua_block {
        local cjson = require("cjson")
        ngx.req.read_body()
        local body = ngx.req.get_body_data() or ""
        local args = ngx.req.get_uri_args()
        -- what the client sent that is secret
        local sent = {}
        local ok, json = pcall(cjson.decode, body)
        if ok and type(json) == "table" then for k, v in pairs(json) do sent[k] = v end end
        for k, v in pairs(ngx.decode_args(body)) do sent[k] = v end
        local authz = ngx.var.http_authorization or ""
        sent.token = authz:match("^Bearer (.*)$")
        sent.authorization = authz ~= "" and authz or nil
        sent.key = ngx.var.http_x_api_key
        sent.refresh = "@REFRESH@" -- the refresh token this server issued
        if ngx.var.uri == "/oauth2/token" and not args.echo then
          ngx.header["Content-Type"] = "application/json"
          ngx.say(cjson.encode({ access_token = "@TOKEN@", refresh_token = "@REFRESH@",
            expires_in = 3600 }))
          return
        end
        local s = tostring(sent[args.echo or "token"])
        ngx.header["X-Request-Id"] = s
        ngx.header["X-Echo"] = "value " .. s .. " again"
        ngx.header["X-Echo-Many"] = { "a " .. s, "b " .. s }
        ngx.header["Content-Type"] = "application/json"
        if args.ok then
          ngx.say(cjson.encode({ echoed = s }))
          return
        end
        if args.shape == "list" then
          ngx.status = 422
          ngx.say(cjson.encode({ { field = s, message = "is " .. s } }))
        elseif args.shape == "nested" then -- the secret inside tables of the error body
          ngx.status = 400
          ngx.say(cjson.encode({ name = "n", message = "m", code = { detail = s, list = { s } },
            fields = { { field = { s }, message = { text = "bad " .. s } } },
            errors = { { field = { name = s }, message = "no", code = { s } } } }))
        elseif args.shape == "errors" then
          ngx.status = 404
          ngx.say(cjson.encode({ errors = { { field = s, message = "no " .. s, code = s } } }))
        else
          ngx.status = 400
          ngx.say(cjson.encode({ name = s, message = "bad " .. s, code = s, error = s,
            status = 400 }))
        end
      }
    }
  }
]]

-- Everything a value holds, as one string (keys and values, nested tables too).
local function dump(v, seen)
  seen = seen or {}
  if type(v) ~= "table" then return tostring(v) end
  if seen[v] then return "" end
  seen[v] = true
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = dump(k, seen) .. "=" .. dump(x, seen) end
  return table.concat(parts, " ")
end

describe("secrets echoed by a server #luajit", function()
  local srv, base, hooks

  setup(function()
    srv = nginx.start({ ports = { "P" },
      servers = servers:gsub("@TOKEN@", TOKEN):gsub("@REFRESH@", REFRESH) })
    base = "http://127.0.0.1:" .. srv.ports.P
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  local function record(info) hooks[#hooks + 1] = info end

  local function talview(token_query, auth)
    hooks = {}
    return require("assesskit.talview").new({
      base_url = base, token_url = base .. "/oauth2/token" .. (token_query or ""), max_retries = 0,
      on_request = record, on_response = record,
      auth = auth or { grant = "password", client_id = "cid", client_secret = CLIENT_SECRET,
        username = "ada", password = PASSWORD },
    })
  end

  -- The error and the hooks' arguments show the places the secret was echoed in, masked.
  local function assert_masked(err, secret)
    assert.is_table(err)
    for _, place in ipairs({ "name", "message", "code", "request_id", "url" }) do
      if err[place] ~= nil then
        assert.is_nil(tostring(err[place]):find(secret, 1, true), place .. ": " .. tostring(err[place]))
      end
    end
    assert.is_nil(dump(err.fields):find(secret, 1, true), "fields: " .. dump(err.fields))
    assert.is_nil(tostring(err):find(secret, 1, true), tostring(err))
    assert.is_nil(dump(err):find(secret, 1, true))
    assert.is_true(#hooks > 0)
    for _, info in ipairs(hooks) do
      assert.is_nil(dump(info):find(secret, 1, true), "hook: " .. dump(info))
    end
  end

  it("masks the bearer token and the refresh token echoed in an API error and its headers", function()
    for _, echo in ipairs({ "token", "authorization", "refresh" }) do
      for _, shape in ipairs({ "object", "list" }) do
        local tv = talview()
        local v, err = tv:request("GET", "/api?echo=" .. echo .. "&shape=" .. shape)
        assert.is_nil(v)
        assert.equal(shape == "list" and 422 or 400, err.status)
        -- the server did echo it: the response shows up, masked
        assert.matches("^[Bearer ]*%*%*%*$", err.request_id)
        if shape == "list" then
          assert.matches("^[Bearer ]*%*%*%*$", err.fields[1].field)
        else
          assert.matches("^[Bearer ]*%*%*%*$", err.code)
        end
        assert_masked(err, TOKEN)
        assert_masked(err, REFRESH)
        local last = hooks[#hooks]
        assert.matches("^value [Bearer ]*%*%*%* again$", last.headers["x-echo"])
        assert.matches("^b [Bearer ]*%*%*%*$", last.headers["x-echo-many"][2])
        tv:close()
      end
    end
  end)

  it("masks a secret echoed inside the tables of an error body (code, fields)", function()
    local tv = talview()
    local v, err = tv:request("GET", "/api?echo=token&shape=nested")
    assert.is_nil(v)
    assert.equal(400, err.status)
    -- the server did echo it, and it shows up masked where it was
    assert.equal("***", err.code.detail)
    assert.equal("***", err.fields[1].field[1])
    assert.equal("bad ***", err.fields[1].message.text)
    assert_masked(err, TOKEN)
    tv:close()
    hooks = {}
    local im = require("assesskit.interviewmocha").new({ api_key = KEY, v2_url = base .. "/v2",
      v3_url = base .. "/v3", max_retries = 0, on_request = record, on_response = record })
    v, err = im:call("reports.get", { testInvitationId = 5, echo = "key", shape = "nested" },
      { raw_params = true })
    assert.is_nil(v)
    assert.equal(400, err.status)
    assert_masked(err, KEY)
    im:close()
  end)

  it("masks the password and the client secret echoed by the token endpoint", function()
    for _, echo in ipairs({ "password", "client_secret" }) do
      for _, shape in ipairs({ "object", "list" }) do
        local tv = talview("?echo=" .. echo .. "&shape=" .. shape)
        local v, err = tv.user.me:get()
        assert.is_nil(v)
        assert.equal("auth", err.kind)
        assert_masked(err, PASSWORD)
        assert_masked(err, CLIENT_SECRET)
        tv:close()
      end
    end
  end)

  it("masks the JWT assertion echoed by the token endpoint", function()
    local seen_assertion
    for _, shape in ipairs({ "object", "list" }) do
      local tv = talview("?echo=assertion&shape=" .. shape, { grant = "jwt", issuer = "svc",
        private_key_file = sys.repo .. "/lua/assesskit/sandbox/demo-service-account.key.pem" })
      local v, err = tv.user.me:get()
      assert.is_nil(v)
      assert.equal("auth", err.kind)
      -- the server echoed the assertion (a JWS: eyJ...): it shows up masked
      assert.equal("***", err.request_id)
      if shape == "list" then assert.equal("***", err.fields[1].field) else assert.equal("***", err.code) end
      for _, info in ipairs(hooks) do
        for _, h in pairs(info.headers or {}) do
          for part in dump(h):gmatch("eyJ[%w_%-]+%.[%w_%-]+%.[%w_%-]+") do seen_assertion = part end
        end
      end
      assert.is_nil(seen_assertion, "an assertion showed in a hook")
      assert.is_nil(tostring(err):find("eyJ", 1, true), tostring(err))
      assert.is_nil(dump(err):find("eyJ", 1, true))
      tv:close()
    end
  end)

  it("masks the InterviewMocha key echoed in an error and its headers", function()
    hooks = {}
    local im = require("assesskit.interviewmocha").new({ api_key = KEY, v2_url = base .. "/v2",
      v3_url = base .. "/v3", max_retries = 0, on_request = record, on_response = record })
    -- the path places the echo: /v3/reports/{id}?echo=key&shape=errors
    local v, err = im:call("reports.get", { testInvitationId = 5, echo = "key", shape = "errors" },
      { raw_params = true })
    assert.is_nil(v)
    assert.equal(404, err.status)
    assert.equal("***", err.code)
    assert.equal("***", err.fields[1].field)
    assert_masked(err, KEY)
    assert.equal("value *** again", hooks[#hooks].headers["x-echo"])
    assert.equal("a *** b ***", dump(hooks[#hooks].headers["x-echo-many"]):gsub("%d+=", ""):gsub("^%s+", ""))
    im:close()
  end)

  it("masks secrets echoed into the command line's output and log lines", function()
    local env = { PATH = os.getenv("PATH"), HOME = sys.tmpdir("secrets-cli"),
      ASSESSKIT_TALVIEW_URL = base, ASSESSKIT_CLIENT_ID = "cid",
      ASSESSKIT_CLIENT_SECRET = CLIENT_SECRET, ASSESSKIT_USERNAME = "ada",
      ASSESSKIT_PASSWORD = PASSWORD, ASSESSKIT_GRANT = "password" }
    local function cli(argv, extra)
      local e = {}
      for k, v in pairs(env) do e[k] = v end
      for k, v in pairs(extra or {}) do e[k] = v end
      return sys.exec("lua5.4 bin/assesskit " .. argv, { cwd = sys.repo, env = e })
    end
    -- the bearer token (fetched at run time) echoed in a 200 body, and in an error
    local status, out, err = cli("talview models.candidate.list --raw-param -- --echo token --ok 1")
    assert.equal(0, status, err)
    assert.matches('"echoed":', out)
    assert.is_nil(out:find(TOKEN, 1, true), out)
    status, out, err = cli("talview models.candidate.list --raw-param -- --echo token")
    assert.equal(1, status)
    assert.is_nil((out .. err):find(TOKEN, 1, true), err)
    -- the password echoed by the token endpoint, in the log line
    status, out, err = cli("talview models.candidate.list",
      { ASSESSKIT_TOKEN_URL = base .. "/oauth2/token?echo=password" })
    assert.equal(1, status)
    assert.matches("auth", err)
    assert.is_nil((out .. err):find(PASSWORD, 1, true), err)
    sys.rmdir(env.HOME)
  end)
end)
