-- The sandbox's request log: what each client request carried, with secrets masked.
local sandbox = require("support.sandbox")
local mime = require("mime")
local sys = require("support.sys")
local cjson = require("cjson")

describe("sandbox request log", function()
  local sb = sandbox.fixture({ clear = true })

  -- the raw JSON of the log, to look for leaked secrets anywhere in it
  local function raw_log()
    return sb:request("GET", "/_sandbox/requests").body
  end

  it("records method, path, query, parsed arguments, headers, body and status", function()
    local tok = sb:token()
    sb:request("GET", "/models/candidate?ids%5B0%5D=10001&ids%5B1%5D=10002&expand=assessmentCandidates",
      { token = tok, headers = { ["X-Trace"] = "spec-1" } })
    sb:request("POST", "/models/candidate", { token = tok, body = { email = "log@example.test" } })
    local log = sb:requests()
    assert.equal(3, #log) -- the token request, the list, the create
    local list, create = log[2], log[3]
    assert.equal("GET", list.method)
    assert.equal("/models/candidate", list.path)
    assert.equal("ids%5B0%5D=10001&ids%5B1%5D=10002&expand=assessmentCandidates", list.query)
    assert.same({ "10001", "10002" }, list.args.ids)
    assert.equal("assessmentCandidates", list.args.expand)
    assert.equal("spec-1", list.headers["x-trace"])
    assert.equal(200, list.status)
    assert.equal("POST", create.method)
    assert.equal("application/json", create.content_type)
    assert.equal('{"email":"log@example.test"}', create.body)
    assert.equal(201, create.status)
    assert.is_true(log[1].seq < log[2].seq and log[2].seq < log[3].seq)
  end)

  it("masks the bearer token, and tells tokens apart by number", function()
    local tok1 = sb:token()
    local tok2 = sb:token()
    sb:request("GET", "/user/me", { token = tok1 })
    sb:request("GET", "/user/me", { token = tok2 })
    local me = sb:requests({ path = "/user/me" })
    assert.equal(2, #me)
    assert.equal("Bearer ***", me[1].headers.authorization)
    assert.are_not.equal(me[1].auth.token, me[2].auth.token)
    assert.equal(sb.credentials.password.username, me[1].auth.subject)
    local raw = raw_log()
    assert.falsy(raw:find(tok1, 1, true))
    assert.falsy(raw:find(tok2, 1, true))
  end)

  it("masks passwords, client secrets, refresh tokens and assertions in bodies", function()
    local c = sb.credentials.password
    local _, resp = sb:token()
    sb:request("POST", "/oauth2/token", { form = { grant_type = "refresh_token",
      refresh_token = resp.refresh_token, client_id = c.client_id, client_secret = c.client_secret } })
    sb:request("POST", "/oauth2/token", { form = { grant_type = "urn:ietf:params:oauth:grant-type:jwt-bearer",
      assertion = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl" } })
    sb:request("POST", "/oauth2/token", { headers = {
      Authorization = "Basic " .. mime.b64(c.client_id .. ":" .. c.client_secret) },
      form = { grant_type = "password", username = c.username, password = c.password } })
    local log = sb:requests({ path = "/oauth2/token" })
    assert.equal(4, #log)
    assert.matches('"password":"%*%*%*"', log[1].body)
    assert.matches('"client_secret":"%*%*%*"', log[1].body)
    assert.matches(c.username, log[1].body, 1, true)
    assert.matches("refresh_token=%*%*%*", log[2].body)
    assert.matches("client_secret=%*%*%*", log[2].body)
    assert.matches("assertion=%*%*%*", log[3].body)
    assert.equal("Basic ***", log[4].headers.authorization)
    local raw = raw_log()
    for _, secret in ipairs({ c.password, c.client_secret, resp.refresh_token, resp.access_token,
                              "c2lnbmF0dXJl" }) do
      assert.falsy(raw:find(secret, 1, true), secret)
    end
  end)

  it("masks the InterviewMocha key and secrets in the query string", function()
    local key = sb.credentials.interviewmocha.api_key
    sb:request("GET", "/v3/reports/225634", { headers = { ["x-api-key"] = key } })
    sb:request("GET", "/models/candidate?access-token=topsecretvalue&page=2")
    local log = sb:requests()
    assert.equal("***", log[1].headers["x-api-key"])
    assert.equal("access-token=***&page=2", log[2].query)
    assert.equal("***", log[2].args["access-token"])
    local raw = raw_log()
    assert.falsy(raw:find(key, 1, true))
    assert.falsy(raw:find("topsecretvalue", 1, true))
  end)

  it("masks secrets however they are spelled, and only them", function()
    local tok = sb:token()
    local json = { ["Content-Type"] = "application/json" }
    -- a repeat of the new password, in JSON written with escapes
    sb:request("POST", "/user/me/update-password", { token = tok, headers = json,
      body = '{"current_password":"old\\/one","new_password":"n3w-Secret!","new_password_repeat":"n3w-Secret!"}' })
    -- the query: a lower-case escape, a nested name, a short secret beside other values
    sb:request("GET", "/models/candidate?user%5Bpassword%5D=a%2bb&otp=1&page=12&pageSize=1", { token = tok })
    -- bodies that cannot be read field by field
    sb:request("POST", "/models/candidate", { token = tok, headers = json, body = '{"password": "half-sent' })
    sb:request("POST", "/models/candidate", { token = tok, body = "password: plain-text-secret",
      headers = { ["Content-Type"] = "text/plain" } })
    -- a multipart field
    sb:request("POST", "/spreadsheet/upload", { token = tok,
      headers = { ["Content-Type"] = "multipart/form-data; boundary=b0" },
      body = '--b0\r\nContent-Disposition: form-data; name="client_secret"\r\n\r\nmultipart-secret\r\n--b0--\r\n' })
    local log = sb:requests()
    assert.equal(6, #log)
    assert.equal('{"current_password":"***","new_password":"***","new_password_repeat":"***"}', log[2].body)
    assert.equal("user%5Bpassword%5D=***&otp=***&page=12&pageSize=1", log[3].query)
    assert.equal("12", log[3].args.page)
    assert.equal("***", log[4].body)
    assert.equal("***", log[5].body)
    assert.matches('name="client_secret"\r\n\r\n***\r\n', log[6].body, 1, true)
    local raw = raw_log()
    for _, secret in ipairs({ "old\\\\/one", "old/one", "n3w-Secret!", "a%2bb", "a+b", "half-sent",
                              "plain-text-secret", "multipart-secret" }) do
      assert.falsy(raw:find(secret, 1, true), secret)
    end
  end)

  it("keeps a masked JSON body's nulls, and masks the secret in a URL's query", function()
    sb:request("POST", "/oauth2/token", { body = { grant_type = "password", password = "hunter2-hunter2",
      scope = cjson.null } })
    sb:request("POST", "/models/candidate", { body = { email = "u@example.test",
      website = "https://example.test/cb?a=1&secret=hunter3-hunter3&b=2" } })
    local log = sb:requests()
    assert.same({ grant_type = "password", password = "***", scope = cjson.null }, cjson.decode(log[1].body))
    assert.equal("https://example.test/cb?a=1&secret=***&b=2", cjson.decode(log[2].body).website)
    assert.is_nil(raw_log():find("hunter3", 1, true))
  end)

  it("keeps query strings, and so their secrets, out of nginx's access log", function()
    sb:request("GET", "/models/candidate?access-token=accesslogsecret&page=2")
    local access = sys.read(sb.dir .. "/logs/access.log") or ""
    assert.matches('"GET /models/candidate HTTP/1.1" 401', access, 1, true)
    assert.falsy(access:find("accesslogsecret", 1, true))
  end)

  it("stays valid JSON when a request carries bytes that are not UTF-8", function()
    sb:request("GET", "/models/candidate?name=%FF%FEx")
    sb:request("POST", "/models/candidate",
      { body = "\255\254 not utf-8", headers = { ["Content-Type"] = "text/plain" } })
    local log = sb:requests()
    assert.equal(2, #log)
    assert.equal("\239\191\189\239\191\189x", log[1].args.name)
    assert.equal(415, log[2].status)
  end)

  it("does not log control requests, clears, and reads from a sequence number on", function()
    sb:request("GET", "/helpers/settings")
    sb:requests()
    sb:config()
    local log = sb:requests()
    assert.equal(1, #log)
    local since = log[1].seq
    sb:request("GET", "/helpers/settings/1")
    local newer = sb:requests({ since = since })
    assert.equal(1, #newer)
    assert.equal("/helpers/settings/1", newer[1].path)
    sb:clear_requests()
    assert.same({}, sb:requests())
  end)
end)
