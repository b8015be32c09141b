-- assesskit.client (the shared API client) against a real nginx on loopback.
--
-- The spec starts one nginx (spec/support/nginx.lua) on free ports in a temporary
-- directory: a plain HTTP server whose locations answer the way APIs do (JSON, 204, text,
-- Yii2 errors, 422 lists, HTML 502, malformed JSON, flaky endpoints that fail N times, slow
-- answers, paged lists) and two TLS servers (a certificate from a test CA, and a self-signed
-- one). nginx is stopped by its pid in teardown.

local nginx = require("support.nginx")
local sys = require("support.sys")
local recording = require("support.transport").recording
local client = require("assesskit.client")
local errors = require("assesskit.errors")
local cjson = require("cjson")

local servers = [[
  server {
    listen 127.0.0.1:@P@;
    location = /echo {
      content_by_lua_block {
        ngx.req.read_body()
        ngx.header["Content-Type"] = "application/json"
        ngx.say(require("cjson").encode({
          method = ngx.req.get_method(), uri = ngx.var.request_uri,
          args = ngx.var.args or "", headers = ngx.req.get_headers(100),
          body = ngx.req.get_body_data() or "",
        }))
      }
    }
    location = /null { default_type application/json; return 200 '{"a": null, "b": [1, null]}'; }
    location = /numbers {
      default_type application/json;
      return 200 '{"id": 10001, "neg": -7, "score": 2.5, "f": 10001.0, "e": 1e3, "s": "v2.0",
                   "list": [1, 2.0, {"n": 3}], "big": 123456789012}';
    }
    location = /numbers-nul {
      default_type application/json;
      return 200 '{"id": 10001, "f": 1.0, "z": "a\u0000b", "big": 9223372036854775808}';
    }
    location = /empty { return 204; }
    location = /text { default_type text/plain; return 200 'plain words'; }
    location = /notjson { default_type application/json; return 200 '{"id": 1, "na'; }
    location = /html502 { default_type text/html; return 502 '<html><body>upstream</body></html>'; }
    location = /yii404 {
      default_type application/json;
      return 404 '{"name":"Not Found","message":"Candidate not found.","code":7,"status":404}';
    }
    location = /unprocessable {
      default_type application/json;
      return 422 '[{"field":"email","message":"Email is not a valid email address."},
                   {"field":"name","message":"Name cannot be blank."}]';
    }
    location = /redirect { return 302 /echo; }
    location = /big { content_by_lua_block { ngx.print(string.rep("x", 100000)) } }
    location = /slow { content_by_lua_block { ngx.sleep(tonumber(ngx.var.arg_d) or 2); ngx.say("{}") } }
    location = /auth {
      content_by_lua_block {
        local n = ngx.shared.counts:incr("auth", 1, 0)
        if ngx.var.http_authorization ~= "Bearer good" then
          ngx.status = 401
          ngx.header["Content-Type"] = "application/json"
          ngx.say('{"name":"Unauthorized","message":"Your request was made with invalid credentials.",'
            .. '"code":0,"status":401}')
          return
        end
        ngx.header["Content-Type"] = "application/json"
        ngx.say('{"ok":true,"attempt":' .. n .. '}')
      }
    }
    location = /flaky {
      content_by_lua_block {
        local key = ngx.var.arg_key
        local n = ngx.shared.counts:incr(key, 1, 0)
        if n <= (tonumber(ngx.var.arg_n) or 0) then
          local status = tonumber(ngx.var.arg_status) or 503
          if status == 444 then return ngx.exit(444) end
          if ngx.var.arg_ra then ngx.header["Retry-After"] = ngx.var.arg_ra end
          ngx.status = status
          ngx.header["Content-Type"] = "text/html"
          ngx.say("<html>busy</html>")
          return
        end
        ngx.header["Content-Type"] = "application/json"
        ngx.say('{"attempt":' .. n .. '}')
      }
    }
    location = /count {
      content_by_lua_block { ngx.say(ngx.shared.counts:get(ngx.var.arg_key) or 0) }
    }
    location = /items {
      content_by_lua_block {
        local page = tonumber(ngx.var.arg_page) or 1
        local per = tonumber(ngx.var.arg_pageSize) or 2
        local total = tonumber(ngx.var.arg_total) or 5
        local mode = ngx.var.arg_mode or "counters"
        if mode == "stuck" then page = 1 end -- a server that ignores the page parameter
        ngx.shared.counts:incr("items-" .. (ngx.var.arg_key or ""), 1, 0)
        local pages = math.ceil(total / per)
        local items = {}
        for i = (page - 1) * per + 1, math.min(page * per, total) do
          items[#items + 1] = '{"id":' .. i .. '}'
        end
        if mode ~= "none" then
          ngx.header["X-Pagination-Total-Count"] = total
          ngx.header["X-Pagination-Page-Count"] = pages
          ngx.header["X-Pagination-Current-Page"] = page
          ngx.header["X-Pagination-Per-Page"] = per
        end
        if mode == "link" and page < pages then
          ngx.header["Link"] = '<http://127.0.0.1:' .. ngx.var.server_port .. '/items?mode=link&total='
            .. total .. '&pageSize=' .. per .. '&key=' .. (ngx.var.arg_key or "") .. '&page=' .. (page + 1)
            .. '>; rel=next, <http://127.0.0.1:' .. ngx.var.server_port .. '/items?page=1>; rel=first'
        end
        ngx.header["Content-Type"] = "application/json"
        ngx.say("[" .. table.concat(items, ",") .. "]")
      }
    }
  }
  server {
    listen 127.0.0.1:@P_TLS@ ssl;
    ssl_certificate @DIR@/localhost.crt;
    ssl_certificate_key @DIR@/localhost.key;
    location / {
      content_by_lua_block {
        ngx.shared.counts:incr("tls", 1, 0)
        ngx.header["Content-Type"] = "application/json"
        ngx.say('{"tls":true}')
      }
    }
  }
  server {
    listen 127.0.0.1:@P_UNTRUSTED@ ssl;
    ssl_certificate @DIR@/untrusted.crt;
    ssl_certificate_key @DIR@/untrusted.key;
    location / {
      content_by_lua_block {
        ngx.shared.counts:incr("untrusted", 1, 0)
        ngx.say('{}')
      }
    }
  }
]]

describe("assesskit.client #luajit", function()
  local srv, base, key_n

  setup(function()
    srv = nginx.start({
      ports = { "P", "P_TLS", "P_UNTRUSTED" }, certs = true,
      http = "lua_shared_dict counts 1m;", servers = servers,
    })
    base = "http://127.0.0.1:" .. srv.ports.P
    key_n = 0
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  local function new_key()
    key_n = key_n + 1
    return "k" .. key_n .. "-" .. tostring(os.time())
  end

  local function count(key)
    local _, body = srv:http("GET", "/count?key=" .. key, nil, srv.ports.P)
    return tonumber(body)
  end

  -- a client whose sleep records the delays instead of waiting them out
  local function new_client(opts)
    local slept = {}
    opts = opts or {}
    opts.base_url = opts.base_url or base
    opts.sleep = opts.sleep or function(s) slept[#slept + 1] = s end
    return client.new(opts), slept
  end

  describe("new()", function()
    it("refuses plain http:// to a non-loopback host unless allow_http is set", function()
      assert.has_error(function() client.new({ base_url = "http://api.example.com" }) end)
      assert.has_no.errors(function()
        client.new({ base_url = "http://api.example.com", allow_http = true }):close()
      end)
      assert.has_no.errors(function() client.new({ base_url = "http://localhost:1" }):close() end)
      assert.has_no.errors(function() client.new({ base_url = "http://127.0.0.2:1" }):close() end)
    end)

    it("raises on wrong options", function()
      assert.has_error(function() client.new() end)
      assert.has_error(function() client.new({ base_url = "ftp://x" }) end)
      assert.has_error(function() client.new({ base_url = base, timeout = "1" }) end)
      assert.has_error(function() client.new({ base_url = base, max_retries = -1 }) end)
      assert.has_error(function() client.new({ base_url = base, on_request = 1 }) end)
      assert.has_error(function() client.new({ base_url = base, transport = {} }) end)
    end)
  end)

  describe("results", function()
    it("decodes JSON and returns the response, reachable from the result later", function()
      local c = new_client()
      local v, _, res = c:request("GET", "/echo", { query = { a = "1" } })
      assert.is_table(v)
      assert.equal("GET", v.method)
      assert.equal(200, res.status)
      assert.equal("application/json", res.headers["content-type"])
      assert.equal(res, client.response(v))
      assert.equal(res, c:last_response())
      assert.equal(1, res.attempts)
      assert.equal(base .. "/echo?a=1", res.url)
    end)

    it("decodes JSON null as client.null", function()
      local v = new_client():request("GET", "/null")
      assert.equal(client.null, v.a)
      assert.equal(cjson.null, v.b[2])
    end)

    it("decodes a JSON number without a fraction or exponent as an integer on Lua 5.4 (doubles on LuaJIT)", function()
      local v = new_client():request("GET", "/numbers")
      assert.equal("candidate-10001", "candidate-" .. v.id)
      assert.equal(10001, v.id)
      assert.equal(-7, v.neg)
      assert.equal(2.5, v.score)
      assert.equal(1000, v.e)
      assert.equal(3, v.list[3].n)
      assert.equal(123456789012, v.big)
      assert.equal("v2.0", v.s)
      -- an escaped NUL in a string changes nothing about the numbers
      local w = new_client():request("GET", "/numbers-nul")
      assert.equal("a\0b", w.z)
      assert.equal(10001, w.id)
      assert.equal(2 ^ 63, w.big)
      if math.type then
        for _, x in ipairs({ v.id, v.neg, v.list[1], v.list[3].n, v.big, w.id }) do
          assert.equal("integer", math.type(x))
        end
        -- written with a fraction or an exponent: a float, even when its value is integral
        for _, x in ipairs({ v.f, v.e, v.list[2], v.score, w.f }) do
          assert.equal("float", math.type(x))
        end
        assert.equal("10001.0", tostring(v.f))
        assert.equal("1000.0", tostring(v.e))
        -- beyond the integers: a float
        assert.equal("float", math.type(w.big))
        assert.equal("integer", math.type(client.json_decode("42")))
        assert.equal("float", math.type(client.json_decode("42.0")))
      end
    end)

    it("returns true for a 204", function()
      local v, _, res = new_client():request("DELETE", "/empty")
      assert.is_true(v)
      assert.equal(204, res.status)
    end)

    it("returns the body string when it is not JSON", function()
      assert.equal("plain words", (new_client():request("GET", "/text")))
    end)
  end)

  describe("requests", function()
    it("writes arrays as name[0]=..., comma lists where asked, maps as name[key]", function()
      local c = new_client({ comma_params = { expand = true } })
      local v = c:request("GET", "/echo", { query = {
        ids = { 3, 4 }, expand = { "candidate", "candidate.status" }, f = { status = 10 },
        flag = true, skip = client.null, x = 2.0, s = "a b&c",
      } })
      assert.equal("expand=candidate%2Ccandidate.status&f%5Bstatus%5D=10&flag=true"
        .. "&ids%5B0%5D=3&ids%5B1%5D=4&s=a%20b%26c&x=2", v.args)
    end)

    it("sends a table body as JSON and a form as urlencoded", function()
      local c = new_client()
      local v = c:request("POST", "/echo", { body = { name = "Ada", tags = { "x" } } })
      assert.equal("application/json", v.headers["content-type"])
      assert.same({ name = "Ada", tags = { "x" } }, cjson.decode(v.body))
      v = c:request("POST", "/echo", { form = { grant_type = "x y", n = 1 } })
      assert.equal("application/x-www-form-urlencoded", v.headers["content-type"])
      assert.equal("grant_type=x%20y&n=1", v.body)
    end)

    it("raises on misuse: a body that cannot be JSON, a wrong query value", function()
      local c = new_client()
      assert.has_error(function() c:request("POST", "/echo", { body = { f = print } }) end)
      assert.has_error(function() c:request("GET", "/echo", { query = { f = print } }) end)
      assert.has_error(function() c:request(1, "/echo") end)
    end)

    it("uses the transport it is given", function()
      local rec = recording()
      local c = new_client({ transport = rec })
      assert.is_table((c:request("GET", "/echo")))
      assert.equal(1, #rec.sent)
      assert.equal(base .. "/echo", rec.sent[1].url)
      rec.close()
    end)
  end)

  describe("errors", function()
    it("maps a Yii2 error body to an http error with name, message, code", function()
      local v, err = new_client():request("GET", "/yii404")
      assert.is_nil(v)
      assert.is_true(errors.is(err))
      assert.equal("http", err.kind)
      assert.equal(404, err.status)
      assert.equal("Not Found", err.name)
      assert.equal("Candidate not found.", err.message)
      assert.equal(7, err.code)
      assert.equal("GET", err.method)
      assert.equal(base .. "/yii404", err.url)
      assert.is_false(err.retryable)
    end)

    it("gives the fields of a 422 as the API client's parse_error hook reads them", function()
      local _, err = new_client({ parse_error = require("assesskit.talview").parse_error })
        :request("POST", "/unprocessable", { body = {} })
      assert.equal(422, err.status)
      assert.equal(2, #err.fields)
      assert.same({ field = "email", message = "Email is not a valid email address." }, err.fields[1])
      assert.matches("name: Name cannot be blank", tostring(err))
    end)

    it("uses the reason phrase for an HTML error page", function()
      local _, err = new_client({ max_retries = 0 }):request("GET", "/html502")
      assert.equal("http", err.kind)
      assert.equal(502, err.status)
      assert.equal("Bad Gateway", err.message)
      assert.is_true(err.retryable)
      assert.is_nil(tostring(err):find("<html>", 1, true))
    end)

    it("reports malformed JSON as a decode error", function()
      local _, err = new_client():request("GET", "/notjson")
      assert.equal("decode", err.kind)
      assert.equal(200, err.status)
      assert.equal("response body is not valid JSON: unterminated string at the end of the text (byte 14)",
        err.message)
    end)

    it("reports a refused connection as a network error", function()
      local c = new_client({ base_url = "http://127.0.0.1:" .. sys.free_port(), max_retries = 0 })
      local _, err = c:request("GET", "/x")
      assert.equal("network", err.kind)
      assert.is_true(err.retryable)
    end)

    it("reports a slow answer as a timeout", function()
      local c = new_client({ timeout = 0.3, max_retries = 0 })
      local _, err = c:request("GET", "/slow", { query = { d = 2 } })
      assert.equal("timeout", err.kind)
    end)

    it("reports an answer over max_response_size as too_large", function()
      local c = new_client({ max_response_size = 1000 })
      local _, err = c:request("GET", "/big")
      assert.equal("too_large", err.kind)
    end)

    it("reports a redirect as an http error (redirects are not followed)", function()
      local _, err = new_client():request("GET", "/redirect")
      assert.equal("http", err.kind)
      assert.equal(302, err.status)
    end)

    it("reports an untrusted certificate as a tls error and never retries it", function()
      local c, slept = new_client({ base_url = "https://localhost:" .. srv.ports.P_UNTRUSTED,
        ca_file = srv.dir .. "/ca.crt", max_retries = 3 })
      local _, err = c:request("GET", "/")
      assert.equal("tls", err.kind)
      assert.is_false(err.retryable)
      assert.equal(0, #slept)
      assert.equal(0, count("untrusted"))
    end)

    it("talks TLS to a server whose CA is given in ca_file", function()
      local c = new_client({ base_url = "https://localhost:" .. srv.ports.P_TLS,
        ca_file = srv.dir .. "/ca.crt" })
      local v = c:request("GET", "/")
      assert.is_table(v)
      assert.is_true(v.tls)
    end)

    it("says whether the request can have reached the server (err.sent)", function()
      -- an answer: it was sent
      local _, err = new_client():request("GET", "/yii404")
      assert.is_true(err.sent)
      -- refused before sending: plain http to a non-loopback host, given as an absolute URL
      local rec = recording()
      local c = new_client({ transport = rec })
      _, err = c:request("GET", "http://192.0.2.1/x", { auth = false })
      assert.equal("insecure", err.kind)
      assert.is_false(err.sent)
      assert.equal(0, #rec.sent)
      rec.close()
      -- a transport's fourth value is the error's `sent`; an earlier attempt that got an
      -- answer makes it true (a server saw the request). The core says false for a refused
      -- connection; this transport says so for the core while it does not yet.
      local session = require("assesskit.core").session()
      local refused = "http://127.0.0.1:" .. sys.free_port() .. "/x"
      local transport = { request = function(_, req)
        local status, h, b, sent = session:request(req)
        if not status and b == "network" and sent == nil and req.url == refused then sent = false end
        return status, h, b, sent
      end }
      c = new_client({ transport = transport, max_retries = 0 })
      _, err = c:request("GET", refused)
      assert.equal("network", err.kind)
      assert.is_false(err.sent)
      local key = new_key()
      local first = true
      c = new_client({ max_retries = 1, transport = { request = function(t, req)
        if first then
          first = false
          return transport.request(t, { method = req.method, url = base .. "/flaky?n=5&key=" .. key,
            headers = req.headers })
        end
        return transport.request(t, req)
      end } })
      _, err = c:request("GET", refused)
      assert.equal("network", err.kind)
      assert.is_true(err.sent) -- the first attempt got a 503
      session:close()
    end)

    it("refuses to send credentials to another origin", function()
      local auth = { authorize = function(_, _, h) h.authorization = "Bearer good"; return true end }
      local c = new_client({ auth = auth })
      local v, err = c:request("GET", "http://127.0.0.1:" .. srv.ports.P_TLS .. "/echo")
      assert.is_nil(v)
      assert.equal("validation", err.kind)
    end)
  end)

  describe("download", function()
    it("saves a body through a unique temporary file beside the target, then renames it", function()
      local dir = sys.tmpdir("client-download")
      local rec = recording()
      local c = new_client({ transport = rec })
      local path = dir .. "/big.txt"
      local n, err, res = c:download("/big", path)
      assert.is_nil(err)
      assert.equal(100000, n)
      assert.equal(200, res.status)
      assert.equal(string.rep("x", 100000), sys.read(path))
      assert.equal(path .. ".part-", rec.sent[1].output:sub(1, #path + 6))
      assert.same({ "big.txt" }, sys.ls(dir))
      rec.close()
      sys.rmdir(dir)
    end)

    it("leaves the target as it was on an error status or a failed check, with the server's message", function()
      local dir = sys.tmpdir("client-download")
      local path = dir .. "/keep.txt"
      sys.write(path, "precious")
      local c = new_client()
      local n, err = c:download("/yii404", path)
      assert.is_nil(n)
      assert.equal(404, err.status)
      assert.equal("Candidate not found.", err.message)
      n, err = c:download("/text", path, { check = function(res, tmp)
        assert.equal(200, res.status)
        assert.equal("plain words", sys.read(tmp))
        return nil, { message = "not what we wanted" }
      end })
      assert.is_nil(n)
      assert.equal("decode", err.kind)
      assert.equal("not what we wanted", err.message)
      assert.equal("precious", sys.read(path))
      assert.same({ "keep.txt" }, sys.ls(dir))
      -- request's output goes the same way
      n = assert(c:request("GET", "/text", { output = path }))
      assert.equal(#"plain words", n)
      assert.equal("plain words", sys.read(path))
      assert.has_error(function() c:download("/text", "") end)
      sys.rmdir(dir)
    end)

    it("sends nothing when the target's directory cannot take the file, and names the target", function()
      local rec = recording()
      local c = new_client({ transport = rec })
      for _, call in ipairs({
        function(path) return c:download("/text", path) end,
        function(path) return c:request("GET", "/text", { output = path }) end,
      }) do
        local n, err = call("/nonexistent-dir-of-assesskit/out.txt")
        assert.is_nil(n)
        assert.equal("io", err.kind)
        assert.is_false(err.sent)
        assert.matches("cannot write /nonexistent%-dir%-of%-assesskit/out%.txt", err.message)
        assert.is_nil(err.message:find(".part-", 1, true), err.message)
      end
      assert.equal(0, #rec.sent)
      rec.close()
    end)
  end)

  describe("retries", function()
    it("retries a 503 for GET with exponential backoff and jitter, then succeeds", function()
      local key = new_key()
      local c, slept = new_client({ max_retries = 3, random = function() return 1 end })
      local v, _, res = c:request("GET", "/flaky", { query = { key = key, n = 2, status = 503 } })
      assert.equal(3, v.attempt)
      assert.equal(3, res.attempts)
      assert.same({ 0.5, 1 }, slept)
      assert.equal(3, count(key))
    end)

    it("jitters the backoff between half and all of it", function()
      local key = new_key()
      local c, slept = new_client({ max_retries = 1, random = function() return 0 end })
      assert.is_table((c:request("GET", "/flaky", { query = { key = key, n = 1 } })))
      assert.same({ 0.25 }, slept)
    end)

    it("retries a 429 and honours Retry-After", function()
      local key = new_key()
      local c, slept = new_client()
      local v = c:request("GET", "/flaky", { query = { key = key, n = 1, status = 429, ra = 3 } })
      assert.equal(2, v.attempt)
      assert.same({ 3 }, slept)
    end)

    it("caps Retry-After at max_retry_after", function()
      local key = new_key()
      local c, slept = new_client({ max_retry_after = 2 })
      assert.is_table((c:request("GET", "/flaky", { query = { key = key, n = 1, status = 503, ra = 120 } })))
      assert.same({ 2 }, slept)
    end)

    it("retries 502 and 504 and network failures for PUT and DELETE", function()
      for _, case in ipairs({ { "PUT", 502 }, { "DELETE", 504 }, { "PUT", 444 } }) do
        local key = new_key()
        local v = new_client():request(case[1], "/flaky", { query = { key = key, n = 1, status = case[2] } })
        assert.is_table(v)
        assert.equal(2, v.attempt)
      end
    end)

    it("does not retry a POST unless the call opts in", function()
      local key = new_key()
      local c, slept = new_client()
      local _, err = c:request("POST", "/flaky", { query = { key = key, n = 1, status = 503 } })
      assert.equal(503, err.status)
      assert.equal(1, count(key))
      assert.equal(0, #slept)
      local v = c:request("POST", "/flaky", { query = { key = key, n = 1 }, retry = true })
      assert.equal(2, v.attempt)
    end)

    it("does not retry a 500", function()
      local key = new_key()
      local _, err = new_client():request("GET", "/flaky", { query = { key = key, n = 1, status = 500 } })
      assert.equal(500, err.status)
      assert.equal(1, count(key))
    end)

    it("gives up after max_retries with a retryable error carrying retry_after", function()
      local key = new_key()
      local c, slept = new_client({ max_retries = 2 })
      local _, err = c:request("GET", "/flaky", { query = { key = key, n = 10, status = 429, ra = 1 } })
      assert.equal(429, err.status)
      assert.is_true(err.retryable)
      assert.equal(1, err.retry_after)
      assert.equal(3, count(key))
      assert.equal(2, #slept)
    end)

    it("retries a dropped connection (network) for GET", function()
      local key = new_key()
      local v = new_client():request("GET", "/flaky", { query = { key = key, n = 2, status = 444 } })
      assert.equal(3, v.attempt)
    end)
  end)

  describe("auth", function()
    local function authenticator(secret)
      local a = { token = "bad", renewals = 0 }
      function a:authorize(_, h) h.authorization = "Bearer " .. self.token; return true end
      function a:renew() self.renewals = self.renewals + 1; self.token = "good"; return true end
      a.describe = function() return "grant=test" end
      a.secrets = function() return { secret } end
      return a
    end

    it("renews once on a 401 and sends the request once more", function()
      local a = authenticator("s3cret-value")
      local c = new_client({ auth = a })
      local v, _, res = c:request("GET", "/auth")
      assert.is_true(v.ok)
      assert.equal(1, a.renewals)
      assert.equal(2, res.attempts)
    end)

    it("returns an auth error when the renewed token is refused too", function()
      local a = authenticator("s3cret-value")
      function a:renew() self.renewals = self.renewals + 1; return true end
      local c = new_client({ auth = a })
      local _, err = c:request("GET", "/auth")
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      assert.equal(1, a.renewals)
    end)

    it("shows the grant but no secret in tostring", function()
      local c = new_client({ auth = authenticator("s3cret-value") })
      assert.equal("assesskit.client(" .. base .. ", grant=test)", tostring(c))
    end)
  end)

  describe("hooks", function()
    it("give a sanitized view: masked url and Authorization, status, duration, attempt", function()
      local seen = {}
      local a = { authorize = function(_, _, h) h.authorization = "Bearer tok-SECRET-1"; return true end }
      local key = new_key()
      local c = new_client({
        auth = a,
        on_request = function(info) seen[#seen + 1] = { "req", info } end,
        on_response = function(info) seen[#seen + 1] = { "res", info } end,
      })
      assert.is_table((c:request("GET", "/flaky", { query = { key = key, n = 1, access_token = "tok-SECRET-1" } })))
      assert.equal(4, #seen)
      local r1, s1, r2, s2 = seen[1][2], seen[2][2], seen[3][2], seen[4][2]
      assert.equal("req", seen[1][1])
      assert.equal(1, r1.attempt)
      assert.equal(2, r2.attempt)
      assert.equal("***", r1.headers.authorization)
      assert.equal(503, s1.status)
      assert.is_true(s1.retrying)
      assert.equal(200, s2.status)
      assert.is_false(s2.retrying)
      assert.is_number(s2.duration)
      local dump = require("cjson").encode({ r1, s1, r2, s2 })
      assert.is_nil(dump:find("tok-SECRET-1", 1, true))
    end)

    it("report a transport failure with the error", function()
      local got
      local c = new_client({ base_url = "http://127.0.0.1:" .. sys.free_port(), max_retries = 0,
        on_response = function(info) got = info end })
      c:request("GET", "/x")
      assert.is_nil(got.status)
      assert.equal("network", got.error.kind)
    end)

    it("cannot break a request by raising", function()
      local c = new_client({ on_request = function() error("boom") end,
        on_response = function() error("boom") end })
      assert.is_table((c:request("GET", "/echo")))
    end)
  end)

  describe("paging", function()
    it("follows Link rel=next and returns the paging metadata", function()
      local key = new_key()
      local c = new_client({ paging = require("assesskit.talview").paging, per_page_param = "pageSize" })
      local items, _, res = c:request("GET", "/items", { paged = true,
        query = { mode = "link", total = 5, pageSize = 2, key = key } })
      assert.equal(2, #items)
      assert.same({ total = 5, page_count = 3, page = 1, per_page = 2,
        next = base .. "/items?mode=link&total=5&pageSize=2&key=" .. key .. "&page=2",
        first = base .. "/items?page=1" }, res.paging)
      local ids = {}
      for item, err in c:each("GET", "/items", { query = { mode = "link", total = 5, pageSize = 2, key = key } }) do
        assert.is_nil(err)
        ids[#ids + 1] = item.id
      end
      assert.same({ 1, 2, 3, 4, 5 }, ids)
    end)

    it("walks pages lazily by the counters when there is no Link", function()
      local key = new_key()
      local c = new_client({ paging = require("assesskit.talview").paging, per_page_param = "pageSize" })
      local it = c:each("GET", "/items", { query = { total = 7, pageSize = 3, key = key } })
      assert.equal(1, it().id)
      assert.equal(1, count("items-" .. key))
      local rest = {}
      for item in it do rest[#rest + 1] = item.id end
      assert.same({ 2, 3, 4, 5, 6, 7 }, rest)
      assert.equal(3, count("items-" .. key))
    end)

    it("ends when the server ignores the page asked for, instead of fetching it forever", function()
      local key = new_key()
      local c = new_client({ paging = require("assesskit.talview").paging, per_page_param = "pageSize" })
      local ids = {}
      for item in c:each("GET", "/items", { query = { mode = "stuck", total = 7, pageSize = 3, key = key } }) do
        ids[#ids + 1] = item.id
        if #ids > 30 then break end
      end
      assert.same({ 1, 2, 3 }, ids)
      assert.equal(2, count("items-" .. key))
    end)

    it("stops after a short page when the server sends no metadata", function()
      local key = new_key()
      local c = new_client({ per_page_param = "pageSize" })
      local n = 0
      for _ in c:each("GET", "/items", { query = { mode = "none", total = 5, pageSize = 2, key = key } }) do
        n = n + 1
      end
      assert.equal(5, n)
      assert.equal(3, count("items-" .. key))
    end)

    it("yields false and the error when a page fails", function()
      local c = new_client()
      local results = {}
      for item, err in c:each("GET", "/yii404") do results[#results + 1] = { item, err } end
      assert.equal(1, #results)
      assert.is_false(results[1][1])
      assert.equal(404, results[1][2].status)
    end)
  end)

  describe("helpers", function()
    it("parses Retry-After as seconds or an HTTP-date", function()
      assert.equal(3, client.parse_retry_after("3", 0))
      assert.equal(10, client.parse_retry_after("Thu, 01 Jan 1970 00:00:20 GMT", 10))
      assert.equal(0, client.parse_retry_after("Thu, 01 Jan 1970 00:00:20 GMT", 100))
      assert.equal(784111777 - 784111000,
        client.parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111000))
      assert.is_nil(client.parse_retry_after("soon", 0))
      assert.is_nil(client.parse_retry_after(nil, 0))
    end)

    it("parses Link headers", function()
      local l = client.parse_link('<https://a/x?page=2>; rel="next", <https://a/x?page=9>; rel=last')
      assert.equal("https://a/x?page=2", l.next)
      assert.equal("https://a/x?page=9", l.last)
    end)
  end)
end)
