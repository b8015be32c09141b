-- assesskit.ngx.transport inside a real nginx (nginx-light + libnginx-mod-http-lua, LuaJIT).
--
-- The spec (lua5.4) starts one nginx on free loopback ports in a temporary directory: a plain
-- HTTP server whose locations play the upstream (echo, chunked, raw HTTP written byte by byte
-- over the downstream socket, slow, ...), three TLS servers (trusted, wrong name, untrusted CA)
-- and a driver location `/run` that performs a transport request described as JSON and answers
-- with its results. nginx is stopped by its pid in teardown.

local nginx = require("support.nginx")
local hostile = require("support.hostile")
local sys = require("support.sys")
local cjson = require("cjson")

local T_REQ = "assesskit.ngx.transport"

describe("assesskit.ngx.transport #ngx", function()
  local srv, ports

  local http_conf = [[
    lua_shared_dict results 1m;
    init_by_lua_block {
      local ok, err = pcall(function()
        return require("assesskit.ngx.transport").new():request({ url = "http://127.0.0.1:1/" })
      end)
      ngx.shared.results:set("init", tostring(err))
    }
    init_worker_by_lua_block {
      local ok, err = pcall(function()
        return require("assesskit.ngx.transport").new():request({ url = "http://127.0.0.1:1/" })
      end)
      ngx.shared.results:set("init_worker", tostring(err))
      ngx.timer.at(0, function()
        local t = require("assesskit.ngx.transport").new()
        local status, _, body = t:request({ url = "http://127.0.0.1:@P_PLAIN@/length" })
        ngx.shared.results:set("timer", tostring(status) .. " " .. tostring(body))
      end)
    }
  ]]

  local servers = [[
  server {
    listen 127.0.0.1:@P_PLAIN@;
    location = /echo {
      content_by_lua_block {
        ngx.req.read_body()
        local body = ngx.req.get_body_data()
        if not body and ngx.req.get_body_file() then
          local f = io.open(ngx.req.get_body_file(), "rb"); body = f:read("*a"); f:close()
        end
        ngx.header["X-Repeated"] = { "one", "two", "three" }
        ngx.header["X-Connection"] = ngx.var.connection
        ngx.say(require("cjson").encode({
          method = ngx.req.get_method(), uri = ngx.var.request_uri,
          headers = ngx.req.get_headers(100), body = body or "",
          connection = ngx.var.connection,
        }))
      }
    }
    location = /length { return 200 "0123456789"; }
    location = /chunked {
      content_by_lua_block {
        for i = 1, 5 do ngx.print(string.rep(string.char(96 + i), 1000 * i)); ngx.flush(true) end
      }
    }
    location = /big {
      content_by_lua_block {
        local n = tonumber(ngx.var.arg_n)
        if ngx.var.arg_mode == "length" then ngx.header["Content-Length"] = n end
        local sent = 0
        while sent < n do
          local k = math.min(8192, n - sent); ngx.print(string.rep("z", k)); ngx.flush(true)
          sent = sent + k
        end
      }
    }
    location = /slow {
      content_by_lua_block { ngx.sleep(tonumber(ngx.var.arg_s) or 5); ngx.say("late") }
    }
    location = /trickle {
      content_by_lua_block {
        ngx.header["Content-Length"] = 100
        for _ = 1, 100 do ngx.print("t"); ngx.flush(true); ngx.sleep(0.05) end
      }
    }
    location = /status { return 503 "busy"; }
    location = /head { return 200 "0123456789"; }
    location /raw/ {
      content_by_lua_block {
        local raw = {
          close = "HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nbody until close",
          interim = "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
            .. "HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
          fold = "HTTP/1.1 200 OK\r\nX-Fold: first\r\n  second\r\nContent-Length: 0\r\n\r\n",
          truncated = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
          badstatus = "HTCPCP/1.0 418 I'm a teapot\r\n\r\n",
          badchunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
          trailer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n"
            .. "2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
          bigheader = "HTTP/1.1 200 OK\r\nX-Big: " .. string.rep("h", 50 * 1024)
            .. "\r\nContent-Length: 2\r\n\r\nok",
          longline = "HTTP/1.1 200 OK\r\nX-Long: " .. string.rep("l", 110 * 1024)
            .. "\r\nContent-Length: 2\r\n\r\nok",
          hugeheaders = "HTTP/1.1 200 OK\r\n"
            .. string.rep("X-Many: " .. string.rep("h", 1000) .. "\r\n", 400) .. "\r\n",
          twolengths = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
          hugelength = "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok",
          zeros = "HTTP/1.1 200 OK\r\nContent-Length: 0000000000000002\r\n\r\nok",
          zeroschunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            .. "0000000000000002\r\nok\r\n0\r\n\r\n",
          notmodified = "HTTP/1.1 304 Not Modified\r\nContent-Length: 5000\r\n\r\n",
          nocontent = "HTTP/1.1 204 No Content\r\nContent-Length: 5000\r\n\r\n",
          negativelength = "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
          -- hostile header blocks: long whitespace runs, a lone CR, many folded lines
          spaces = "HTTP/1.1 200 OK\r\nX-Spaces: a" .. string.rep(" ", 90 * 1024)
            .. "b\r\nContent-Length: 2\r\n\r\nok",
          lonecr = "HTTP/1.1 200 OK\r\nX-Cr: " .. string.rep("c", 250 * 1024) .. "\rd\r\n\r\n",
          foldspaces = "HTTP/1.1 200 OK\r\nX-Fold: a\r\n b" .. string.rep(" ", 250 * 1024)
            .. "c\r\n\r\n",
          manyfolds = "HTTP/1.1 200 OK\r\nX-Fold: a\r\n" .. string.rep(" b\r\n", 50000)
            .. "Content-Length: 2\r\n\r\nok",
          empty = "",
        }
        local case = ngx.var.uri:match("^/raw/(.*)$")
        local sock = ngx.req.socket(true)
        sock:send(raw[case])
      }
    }
    location = /run {
      content_by_lua_block {
        local cjson = require("cjson")
        ngx.req.read_body()
        local spec = cjson.decode(ngx.req.get_body_data())
        local T = require("assesskit.ngx.transport")
        local t = T.new(spec.opts)
        local out = {}
        for i, req in ipairs(spec.requests) do
          local progress = {}
          if req.progress == "record" then
            req.on_progress = function(received, total) progress[#progress + 1] = { received, total } end
          elseif req.progress == "raise" then
            req.on_progress = function(received) if received > 0 then error("stop here") end end
          elseif req.progress == "memory" then
            -- what the transport holds once the whole body arrived (before it is joined)
            collectgarbage()
            collectgarbage()
            local base = collectgarbage("count")
            req.on_progress = function(received, total)
              progress.pieces = (progress.pieces or 0) + 1
              if received == total and received > 0 then
                collectgarbage()
                collectgarbage()
                progress.held_kb = collectgarbage("count") - base
              end
            end
          end
          req.progress = nil
          if spec.close_before == i then t:close() end
          -- called from a Lua function (not a tail call), so that a misuse error carries this
          -- chunk's position
          local ok, status, headers, body, sent = pcall(function()
            local s, h, b, x = t:request(req)
            return s, h, b, x
          end)
          if not ok then
            out[i] = { raised = tostring(status) }
          elseif status then
            out[i] = { status = status, headers = headers, body = body, progress = progress }
          else
            out[i] = { err = headers, kind = body, sent = sent }
          end
        end
        -- the worker's peak resident memory (kB), for specs that bound what a response costs
        local f = io.open("/proc/self/status")
        local status_text = f:read("*a"); f:close()
        local peak_kb = tonumber(status_text:match("VmHWM:%s*(%d+)"))
        ngx.header["Content-Type"] = "application/json"
        ngx.say(cjson.encode({ results = out, peak_kb = peak_kb }))
      }
    }
    location = /phase/header_filter {
      return 200 "x";
      header_filter_by_lua_block {
        local ok, err = pcall(function()
          return require("assesskit.ngx.transport").new():request({ url = "http://127.0.0.1:1/" })
        end)
        ngx.header["X-Raised"] = (not ok) and err or "no"
      }
    }
    location = /phase/body_filter {
      return 200 "x";
      body_filter_by_lua_block {
        if ngx.arg[2] then
          local ok, err = pcall(function()
            return require("assesskit.ngx.transport").new():request({ url = "http://127.0.0.1:1/" })
          end)
          ngx.shared.results:set("body_filter", (not ok) and err or "no")
        end
      }
    }
    location = /phase/log {
      return 200 "x";
      log_by_lua_block {
        local ok, err = pcall(function()
          return require("assesskit.ngx.transport").new():request({ url = "http://127.0.0.1:1/" })
        end)
        ngx.shared.results:set("log", (not ok) and err or "no")
      }
    }
    location = /phase/rewrite {
      rewrite_by_lua_block {
        local t = require("assesskit.ngx.transport").new()
        local status, _, body = t:request({ url = "http://127.0.0.1:@P_PLAIN@/length" })
        ngx.ctx.rewrite = tostring(status) .. " " .. tostring(body)
      }
      content_by_lua_block { ngx.print(ngx.ctx.rewrite) }
    }
    location = /results {
      content_by_lua_block {
        local d = ngx.shared.results
        ngx.say(require("cjson").encode({ init = d:get("init"), body_filter = d:get("body_filter"),
          init_worker = d:get("init_worker"), timer = d:get("timer"),
          log = d:get("log") }))
      }
    }
  }
  server {
    listen 127.0.0.1:@P_TLS@ ssl;
    ssl_certificate @DIR@/localhost.crt;
    ssl_certificate_key @DIR@/localhost.key;
    location / { return 200 "secure hello"; }
  }
  server {
    listen 127.0.0.1:@P_WRONGNAME@ ssl;
    ssl_certificate @DIR@/wrongname.crt;
    ssl_certificate_key @DIR@/wrongname.key;
    location / { return 200 "wrong name"; }
  }
  server {
    listen 127.0.0.1:@P_UNTRUSTED@ ssl;
    ssl_certificate @DIR@/untrusted.crt;
    ssl_certificate_key @DIR@/untrusted.key;
    location / { return 200 "untrusted"; }
  }
  ]]

  lazy_setup(function()
    srv = nginx.start({
      ports = { "P_PLAIN", "P_TLS", "P_WRONGNAME", "P_UNTRUSTED" },
      certs = true,
      http = http_conf,
      servers = servers,
    })
    ports = srv.ports
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  local function plain(path)
    return "http://127.0.0.1:" .. ports.P_PLAIN .. path
  end

  -- Runs the requests in nginx through one transport; returns the array of outcomes and the
  -- worker's peak resident memory (kB) after them.
  local function run(requests, opts, extra)
    local spec = { requests = requests, opts = opts or {} }
    for k, v in pairs(extra or {}) do spec[k] = v end
    local status, body = srv:http("POST", "/run", cjson.encode(spec), ports.P_PLAIN)
    assert.are.equal(200, status, body)
    local r = cjson.decode(body)
    return r.results, r.peak_kb
  end

  local function run1(req, opts)
    return run({ req }, opts)[1]
  end

  describe("responses", function()
    it("returns the status, lower-cased headers and the body of a Content-Length response", function()
      local r = run1({ url = plain("/length") })
      assert.are.equal(200, r.status)
      assert.are.equal("0123456789", r.body)
      assert.are.equal("10", r.headers["content-length"])
      assert.is_string(r.headers["content-type"])
      assert.is_nil(r.headers["Content-Length"])
    end)

    it("decodes a chunked body sent in several flushes", function()
      local r = run1({ url = plain("/chunked") })
      assert.are.equal(200, r.status)
      assert.are.equal("chunked", r.headers["transfer-encoding"])
      local want = {}
      for i = 1, 5 do want[i] = string.rep(string.char(96 + i), 1000 * i) end
      assert.are.equal(table.concat(want), r.body)
    end)

    it("ignores chunk extensions and adds trailer fields to the headers", function()
      local r = run1({ url = plain("/raw/trailer") })
      assert.are.equal(200, r.status)
      assert.are.equal("abcde", r.body)
      assert.are.equal("t", r.headers["x-trailer"])
    end)

    it("reads a body delimited by the server closing the connection", function()
      local r = run1({ url = plain("/raw/close") })
      assert.are.equal(200, r.status)
      assert.are.equal("body until close", r.body)
      assert.are.equal("1", r.headers["x-a"])
    end)

    it("keeps a repeated header as an array in arrival order", function()
      local r = run1({ url = plain("/echo") })
      assert.are.same({ "one", "two", "three" }, r.headers["x-repeated"])
    end)

    it("skips 1xx interim responses and keeps only the final response's headers", function()
      local r = run1({ url = plain("/raw/interim") })
      assert.are.equal(200, r.status)
      assert.are.equal("ok", r.body)
      assert.are.equal("yes", r.headers["x-final"])
      assert.is_nil(r.headers["x-interim"])
    end)

    it("joins an obsolete folded header line to its header", function()
      local r = run1({ url = plain("/raw/fold") })
      assert.are.equal("first second", r.headers["x-fold"])
    end)

    it("returns error statuses as results, not errors", function()
      local r = run1({ url = plain("/status") })
      assert.are.equal(503, r.status)
      assert.are.equal("busy", r.body)
    end)

    it("reads no body for HEAD even when Content-Length is set", function()
      local r = run1({ method = "HEAD", url = plain("/head") })
      assert.are.equal(200, r.status)
      assert.are.equal("", r.body)
      assert.are.equal("10", r.headers["content-length"])
    end)
  end)

  describe("requests", function()
    it("sends the method, headers, body and Host", function()
      local r = run1({ method = "PUT", url = plain("/echo?a=1&b=two"),
        headers = { ["X-One"] = "1", ["X-Many"] = { "a", "b" }, ["Content-Type"] = "application/json" },
        body = '{"k":"v"}' })
      local echo = cjson.decode(r.body)
      assert.are.equal("PUT", echo.method)
      assert.are.equal("/echo?a=1&b=two", echo.uri)
      assert.are.equal('{"k":"v"}', echo.body)
      assert.are.equal("1", echo.headers["x-one"])
      assert.are.same({ "a", "b" }, echo.headers["x-many"])
      assert.are.equal("9", echo.headers["content-length"])
      assert.are.equal("application/json", echo.headers["content-type"])
      assert.are.equal("127.0.0.1:" .. ports.P_PLAIN, echo.headers["host"])
    end)

    it("sends Content-Length: 0 on a POST without a body", function()
      local echo = cjson.decode(run1({ method = "POST", url = plain("/echo") }).body)
      assert.are.equal("POST", echo.method)
      assert.are.equal("0", echo.headers["content-length"])
    end)

    it("reaches localhost without a resolver and names it in Host", function()
      local r = run1({ url = "http://localhost:" .. ports.P_PLAIN .. "/echo" })
      assert.are.equal(200, r.status)
      assert.are.equal("localhost:" .. ports.P_PLAIN, cjson.decode(r.body).headers["host"])
    end)

    it("sends multipart form data with values and a streamed file", function()
      local path = srv.dir .. "/upload.bin"
      local content = string.rep("file-bytes\0", 20000)
      local f = assert(io.open(path, "wb")); f:write(content); f:close()
      local r = run1({ method = "POST", url = plain("/echo"), multipart = {
        { name = "title", value = "CV" },
        { name = "file", file = path, filename = "cv.pdf", content_type = "application/pdf" },
      } })
      local echo = cjson.decode(r.body)
      local ctype = echo.headers["content-type"]
      local boundary = ctype:match("^multipart/form%-data; boundary=(.+)$")
      assert.is_string(boundary)
      -- split the body on "--boundary\r\n" ... "\r\n--boundary--\r\n"
      local body, delim = echo.body, "--" .. boundary
      assert.are.equal(delim .. "\r\n", body:sub(1, #delim + 2))
      local parts, pos = {}, #delim + 3
      while true do
        local s, e = body:find("\r\n" .. delim, pos, true)
        assert.is_truthy(s)
        parts[#parts + 1] = body:sub(pos, s - 1)
        if body:sub(e + 1, e + 2) == "--" then
          assert.are.equal("--\r\n", body:sub(e + 1))
          break
        end
        pos = e + 3
      end
      assert.are.equal(2, #parts)
      assert.are.equal('Content-Disposition: form-data; name="title"\r\n\r\nCV', parts[1])
      local head, data = parts[2]:match("^(.-)\r\n\r\n(.*)$")
      assert.are.equal('Content-Disposition: form-data; name="file"; filename="cv.pdf"\r\n'
        .. "Content-Type: application/pdf", head)
      assert.are.equal(#content, #data)
      assert.is_true(data == content)
      assert.are.equal(tostring(#echo.body), echo.headers["content-length"])
    end)

    it("returns io when a multipart file cannot be read", function()
      local r = run1({ method = "POST", url = plain("/echo"),
        multipart = { { name = "file", file = srv.dir .. "/does-not-exist" } } })
      assert.are.equal("io", r.kind)
    end)

    it("reuses a keep-alive connection for the next request to the same host", function()
      local rs = run({ { url = plain("/echo") }, { url = plain("/echo") } })
      local a, b = cjson.decode(rs[1].body), cjson.decode(rs[2].body)
      assert.are.equal(a.connection, b.connection)
    end)

    it("opens a new connection after a response that closes it", function()
      local rs = run({ { url = plain("/raw/close") }, { url = plain("/echo") }, { url = plain("/echo") } })
      assert.are.equal(200, rs[1].status)
      local b, c = cjson.decode(rs[2].body), cjson.decode(rs[3].body)
      assert.are.equal(b.connection, c.connection)
    end)

    it("does not send a request again when the server drops a pooled connection", function()
      -- the first request is answered on a kept-alive connection; the second, a POST, is read
      -- there and the connection closed without an answer: it must not go out again on a new
      -- connection (the client's retry policy decides), and the failure says it was sent
      local h = hostile.start{ connections = {
        { "request", { send = hostile.response{ body = "ok" } }, "request", { close = true } },
        hostile.always(hostile.response{ body = "again" }) } }
      local rs = run({ { url = h:url("/first") },
        { method = "POST", url = h:url("/write"), body = "payload" } })
      local reqs = h:wait_requests(2)
      h:stop()
      assert.are.equal("ok", rs[1].body)
      assert.are.equal("network", rs[2].kind)
      assert.is_true(rs[2].sent)
      local posts = 0
      for _, r in ipairs(reqs) do
        if r.method == "POST" then posts = posts + 1 end
      end
      assert.are.equal(1, posts, "the POST reached the server more than once")
      assert.are.equal(2, #reqs)
    end)
  end)

  describe("TLS", function()
    it("verifies the server against lua_ssl_trusted_certificate and talks to it", function()
      local r = run1({ url = "https://localhost:" .. ports.P_TLS .. "/" })
      assert.are.equal(200, r.status)
      assert.are.equal("secure hello", r.body)
    end)

    it("accepts an IP literal whose certificate names that IP, and checks it", function()
      local r = run1({ url = "https://127.0.0.1:" .. ports.P_TLS .. "/" })
      assert.are.equal(200, r.status, r.err)
      assert.are.equal("secure hello", r.body)
      local wrong = run1({ url = "https://127.0.0.1:" .. ports.P_WRONGNAME .. "/" })
      assert.are.equal("tls", wrong.kind)
      assert.matches("127.0.0.1", wrong.err, 1, true)
      local untrusted = run1({ url = "https://127.0.0.1:" .. ports.P_UNTRUSTED .. "/" })
      assert.are.equal("tls", untrusted.kind)
    end)

    it("refuses a certificate issued for another name", function()
      local r = run1({ url = "https://localhost:" .. ports.P_WRONGNAME .. "/" })
      assert.are.equal("tls", r.kind)
    end)

    it("refuses a certificate from a CA nginx does not trust", function()
      local r = run1({ url = "https://localhost:" .. ports.P_UNTRUSTED .. "/" })
      assert.are.equal("tls", r.kind)
      assert.matches("lua_ssl_trusted_certificate", r.err, 1, true)
    end)

    it("reports tls when the server does not speak TLS", function()
      local r = run1({ url = "https://localhost:" .. ports.P_PLAIN .. "/" })
      assert.are.equal("tls", r.kind)
    end)

    it("refuses plain http:// to a non-loopback host unless allow_http", function()
      local r = run1({ url = "http://api.example.com/x" })
      assert.are.equal("insecure", r.kind)
      local allowed = run1({ url = "http://api.example.com/x" }, { allow_http = true })
      assert.are_not.equal("insecure", allowed.kind)
      assert.are.equal("network", allowed.kind) -- no resolver in this nginx
      assert.matches("resolver", allowed.err, 1, true)
    end)
  end)

  describe("failures", function()
    it("reports a refused connection as network", function()
      local r = run1({ url = "http://127.0.0.1:1/" })
      assert.are.equal("network", r.kind)
    end)

    it("ends a transfer that exceeds the whole-transfer timeout", function()
      local r = run1({ url = plain("/slow?s=5"), timeout = 0.3 })
      assert.are.equal("timeout", r.kind)
    end)

    it("counts the timeout over the whole transfer, not per read", function()
      -- one byte every 50 ms: no single read waits long, the whole body takes 5 s
      local r = run1({ url = plain("/trickle"), timeout = 0.5 })
      assert.are.equal("timeout", r.kind, require("cjson").encode(r))
    end)

    it("reports a body cut short of its Content-Length as network", function()
      local r = run1({ url = plain("/raw/truncated") })
      assert.are.equal("network", r.kind)
    end)

    it("reports an empty reply as network", function()
      local r = run1({ url = plain("/raw/empty") })
      assert.are.equal("network", r.kind)
    end)

    it("reports malformed responses as network", function()
      for _, case in ipairs({ "badstatus", "badchunk", "twolengths" }) do
        local r = run1({ url = plain("/raw/" .. case) })
        assert.are.equal("network", r.kind, case)
      end
    end)

    it("refuses response headers over 300 KiB, as libcurl does, as too_large", function()
      local r = run1({ url = plain("/raw/hugeheaders") })
      assert.are.equal("too_large", r.kind)
      local ok = run1({ url = plain("/raw/bigheader") })
      assert.are.equal(50 * 1024, #ok.headers["x-big"])
    end)

    it("parses hostile header blocks without stalling the worker", function()
      -- The pattern-based parser this replaced spent seconds (a 90 KiB run of spaces) to
      -- minutes (the other three) of CPU on these, blocking the worker past any timeout;
      -- srv:http gives up after 60 s.
      local r = run1({ url = plain("/raw/spaces"), timeout = 5 })
      assert.are.equal("a" .. string.rep(" ", 90 * 1024) .. "b", r.headers["x-spaces"])
      local folds = run1({ url = plain("/raw/manyfolds"), timeout = 5 })
      assert.are.equal("a" .. string.rep(" b", 50000), folds.headers["x-fold"])
      for _, case in ipairs({ "lonecr", "foldspaces" }) do -- lines over 100 KiB, as libcurl
        assert.are.equal("too_large", run1({ url = plain("/raw/" .. case), timeout = 5 }).kind, case)
      end
    end)

    it("enforces max_response_size for Content-Length, chunked and close-delimited bodies", function()
      local opts = { max_response_size = 1000 }
      assert.are.equal("too_large", run1({ url = plain("/big?n=5000&mode=length") }, opts).kind)
      assert.are.equal("too_large", run1({ url = plain("/big?n=5000") }, opts).kind)
      assert.are.equal("too_large", run1({ url = plain("/raw/close") }, { max_response_size = 5 }).kind)
      local ok = run1({ url = plain("/big?n=1000") }, opts)
      assert.are.equal(1000, #ok.body)
    end)

    it("keeps secrets from the URL and headers out of error messages", function()
      local r = run1({ url = "http://127.0.0.1:1/x?access_token=SECRET-QUERY",
        headers = { Authorization = "Bearer SECRET-HEADER" } })
      assert.are.equal("network", r.kind)
      assert.is_nil(r.err:find("SECRET", 1, true))
      local bad = run1({ url = plain("/echo"), headers = { Authorization = "Bearer SECRET\r\nX: y" } })
      assert.is_string(bad.raised)
      assert.is_nil(bad.raised:find("SECRET", 1, true))
    end)

    it("returns closed after close()", function()
      local rs = run({ { url = plain("/length") }, { url = plain("/length") } }, nil, { close_before = 2 })
      assert.are.equal(200, rs[1].status)
      assert.are.same({ err = "session is closed", kind = "closed", sent = false }, rs[2])
    end)
  end)

  describe("hostile responses", function()
    local CHUNKED = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

    -- One request to a hostile server playing `script`; the outcome and the server.
    local function against(script, req, opts)
      local h = hostile.start(script)
      req = req or {}
      req.url = req.url or h:url("/")
      local rs, peak = run({ req }, opts)
      return rs[1], h, peak
    end

    it("ends an endless trailer stream as too_large without growing the worker", function()
      local _, before = run({ { url = plain("/length") } })
      local r, h, after = against({ "request", { send = CHUNKED .. "2\r\nok\r\n0\r\n" },
        { send = "X-Trailer: " .. string.rep("t", 100) .. "\r\n", forever = true, seconds = 30 } },
        { timeout = 20 })
      h:stop()
      assert.are.equal("too_large", r.kind, r.err)
      assert.is_true(after - before < 64 * 1024, "the worker grew by " .. (after - before) .. " kB")
    end)

    it("holds a body that arrives in tiny pieces in about its own size, not a string per piece", function()
      -- a peer sending its body a byte at a time makes each read a piece of a few bytes; kept as
      -- they came, each piece costs tens of bytes of Lua memory (string and table slot)
      local n = 512 * 1024
      local r, h = against({ "request", { send = "HTTP/1.1 200 OK\r\nContent-Length: " .. n .. "\r\n\r\n" },
        { drip = string.rep("z", n), every = 0 }, { close = true } }, { timeout = 60, progress = "memory" })
      h:stop()
      assert.are.equal(200, r.status, r.err)
      assert.are.equal(n, #r.body)
      assert.is_true(r.progress.pieces > 10000, "the body came in " .. r.progress.pieces .. " pieces only")
      assert.is_true(r.progress.held_kb < 2 * n / 1024, "a " .. n / 1024 .. " KiB body held "
        .. math.floor(r.progress.held_kb) .. " KiB in " .. r.progress.pieces .. " pieces")
    end)

    it("caps every part of a response head and of a chunked body's framing as too_large", function()
      local cases = {
        { "a 200 KiB status line", "HTTP/1.1 200 " .. string.rep("O", 200 * 1024) .. "\r\n\r\n" },
        { "a 101 KiB header line", "HTTP/1.1 200 OK\r\nX-Long: " .. string.rep("l", 101 * 1024)
          .. "\r\nContent-Length: 0\r\n\r\n" },
        { "100001 header fields in under 300 KiB", "HTTP/1.1 200 OK\n" .. string.rep("a:\n", 100001)
          .. "Content-Length: 0\n\n" },
        { "heads over 300 KiB in 1xx responses", string.rep("HTTP/1.1 100 Continue\r\n\r\n", 20000)
          .. "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" },
        { "a 5000-byte trailer line", CHUNKED .. "2\r\nok\r\n0\r\nX-T: " .. string.rep("t", 5000)
          .. "\r\n\r\n" },
        { "100001 trailer fields", CHUNKED .. "2\r\nok\r\n0\r\n" .. string.rep("a:\r\n", 100001) .. "\r\n" },
        { "trailers over 1 MiB", CHUNKED .. "2\r\nok\r\n0\r\n"
          .. string.rep("X-T: " .. string.rep("t", 4000) .. "\r\n", 300) .. "\r\n" },
        { "a 2 MiB chunk extension", CHUNKED .. "2;" .. string.rep("e", 2 * 1024 * 1024)
          .. "\r\nok\r\n0\r\n\r\n" },
      }
      for _, case in ipairs(cases) do
        local r, h = against(hostile.once(case[2]), { timeout = 20 })
        h:stop()
        assert.are.equal("too_large", r.kind, case[1] .. ": " .. tostring(r.err or r.status))
        assert.is_true(r.sent)
      end
    end)

    it("reads what stays under the caps", function()
      local cases = {
        { "70000 small headers", "HTTP/1.1 200 OK\r\n" .. string.rep("a:\r\n", 70000)
          .. "Content-Length: 2\r\n\r\nok" },
        { "10000 interim responses", string.rep("HTTP/1.1 100 Continue\r\n\r\n", 10000)
          .. "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" },
        { "50000 trailer fields", CHUNKED .. "2\r\nok\r\n0\r\n" .. string.rep("X-T: a\r\n", 50000) .. "\r\n" },
        { "a 200 KiB chunk extension", CHUNKED .. "2;" .. string.rep("e", 200 * 1024) .. "\r\nok\r\n0\r\n\r\n" },
      }
      for _, case in ipairs(cases) do
        local r, h = against(hostile.once(case[2]), { timeout = 20 })
        h:stop()
        assert.are.equal(200, r.status, case[1] .. ": " .. tostring(r.err))
        assert.are.equal("ok", r.body, case[1])
      end
    end)

    it("reads a body of 2 MiB of 1-byte chunks, chunks split across reads included", function()
      local n = 2 * 1024 * 1024
      local r, h = against({ "request", { send = CHUNKED }, { send = "1\r\nx\r\n", rep = n - 3 },
        { drip = "1\r\ny\r\n1;ext\r\nz\r\n1\r", size = 2, every = 0.01 }, { send = "\nw\r\n0\r\n\r\n" },
        { close = true } }, { timeout = 60 })
      h:stop()
      assert.are.equal(200, r.status, r.err)
      assert.are.equal(n, #r.body)
      assert.are.equal(string.rep("x", n - 3) .. "yzw", r.body)
    end)

    it("rejects a NUL or a bare CR in the response head as network", function()
      for _, raw in ipairs({ "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nX-A: ab\r\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 O\rK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nX-A: a\r\n b\rc\r\nContent-Length: 2\r\n\r\nok",
        CHUNKED .. "2\r\nok\r\n0\r\nX-T: a\rb\r\n\r\n" }) do
        local r, h = against(hostile.once(raw))
        h:stop()
        assert.are.equal("network", r.kind, string.format("%q", raw))
      end
    end)

    it("refuses an unsolicited 101 Switching Protocols", function()
      local r, h = against(hostile.once("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        .. "Connection: Upgrade\r\n\r\nxyz"))
      h:stop()
      assert.are.equal("network", r.kind)
      assert.matches("101", r.err)
    end)

    it("rejects conflicting Content-Length values and takes identical ones", function()
      for _, raw in ipairs({ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nabc", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok", "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\nok" }) do
        local r, h = against(hostile.once(raw))
        h:stop()
        assert.are.equal("network", r.kind, string.format("%q", raw))
      end
      for _, raw in ipairs({ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok" }) do
        local r, h = against(hostile.once(raw))
        h:stop()
        assert.are.equal("ok", r.body, string.format("%q", raw))
      end
    end)

    it("rejects status lines libcurl rejects and transfer codings it cannot undo", function()
      for _, raw in ipairs({ "HTTP/1.1 1000 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 099 OK\r\nContent-Length: 2\r\n\r\nok", "HTTP/3.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1\t200 OK\r\nContent-Length: 2\r\n\r\nok", "hello world\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok" }) do
        local r, h = against(hostile.once(raw))
        h:stop()
        assert.are.equal("network", r.kind, string.format("%q", raw))
      end
    end)

    it("does not reuse a connection after a 204 or 304 that announced a body", function()
      for _, status in ipairs({ "204 No Content", "304 Not Modified" }) do
        local h = hostile.start{ connections = {
          { "request", { send = "HTTP/1.1 " .. status .. "\r\nContent-Length: 5\r\n\r\n" }, { pause = 0.2 },
            { send = "hello" }, "request", { send = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" } },
          hostile.always(hostile.response{ body = "fresh" }) } }
        local rs = run({ { url = h:url("/a") }, { url = h:url("/b"), timeout = 5 } })
        h:stop()
        assert.are.equal(tonumber(status:sub(1, 3)), rs[1].status)
        assert.are.equal("fresh", rs[2].body, status)
      end
    end)

    it("says whether the request can have reached the server", function()
      local rs = run({ { url = "http://127.0.0.1:1/" }, { url = "http://api.example.com/" },
        { url = "https://127.0.0.1:" .. ports.P_UNTRUSTED .. "/" },
        { url = plain("/length"), output = srv.dir .. "/no/such/dir/x" } })
      for i, r in ipairs(rs) do
        assert.is_string(r.kind, i)
        assert.is_false(r.sent, i)
      end
      local slow = run1({ url = plain("/slow?s=5"), timeout = 0.3 })
      assert.are.same({ "timeout", true }, { slow.kind, slow.sent })
      local cut = run1({ url = plain("/raw/truncated") })
      assert.are.same({ "network", true }, { cut.kind, cut.sent })
    end)
  end)

  describe("output and progress", function()
    it("streams the body to the output file and returns the byte count", function()
      local path = srv.dir .. "/out.bin"
      local r = run1({ url = plain("/chunked"), output = path })
      assert.are.equal(200, r.status)
      assert.are.equal(15000, r.body)
      local f = assert(io.open(path, "rb")); local data = f:read("a"); f:close()
      assert.are.equal(15000, #data)
      assert.are.equal(string.rep("a", 1000), data:sub(1, 1000))
    end)

    it("does not cap a body streamed to output, as the core", function()
      local path = srv.dir .. "/big.bin"
      for _, path_query in ipairs({ "/big?n=5000&mode=length", "/big?n=5000" }) do
        local r = run1({ url = plain(path_query), output = path }, { max_response_size = 1000 })
        assert.are.equal(200, r.status, path_query)
        assert.are.equal(5000, r.body)
        assert.are.equal(string.rep("z", 5000), sys.read(path))
      end
    end)

    it("returns io when the output file cannot be written", function()
      local r = run1({ url = plain("/length"), output = srv.dir .. "/no/such/dir/out.bin" })
      assert.are.equal("io", r.kind)
    end)

    it("reports progress up to the full body with the announced total", function()
      local r = run1({ url = plain("/big?n=50000&mode=length"), progress = "record" })
      assert.are.equal(200, r.status)
      local last = r.progress[#r.progress]
      assert.are.same({ 50000, 50000 }, last)
      for i = 2, #r.progress do
        assert.is_true(r.progress[i][1] >= r.progress[i - 1][1])
      end
    end)

    it("aborts the transfer when on_progress raises", function()
      local r = run1({ url = plain("/big?n=50000&mode=length"), progress = "raise" })
      assert.are.equal("aborted", r.kind)
      assert.matches("stop here", r.err, 1, true)
    end)
  end)

  describe("phases", function()
    it("works in rewrite, content and timer contexts", function()
      local status, body = srv:http("GET", "/phase/rewrite", nil, ports.P_PLAIN)
      assert.are.equal(200, status)
      assert.are.equal("200 0123456789", body)
      local _, results = srv:http("GET", "/results", nil, ports.P_PLAIN)
      assert.are.equal("200 0123456789", cjson.decode(results).timer)
    end)

    it("raises an error naming ngx.timer.at in init and init_worker", function()
      local _, results = srv:http("GET", "/results", nil, ports.P_PLAIN)
      local r = cjson.decode(results)
      assert.matches("'init' phase", r.init, 1, true)
      assert.matches("ngx.timer.at", r.init, 1, true)
      assert.matches("'init_worker' phase", r.init_worker, 1, true)
      assert.matches("ngx.timer.at", r.init_worker, 1, true)
    end)

    it("raises an error naming ngx.timer.at in a body filter", function()
      srv:http("GET", "/phase/body_filter", nil, ports.P_PLAIN)
      local _, results = srv:http("GET", "/results", nil, ports.P_PLAIN)
      local msg = cjson.decode(results).body_filter
      assert.matches("'body_filter' phase", msg, 1, true)
      assert.matches("ngx.timer.at", msg, 1, true)
    end)

    it("raises an error naming ngx.timer.at in a header filter", function()
      local _, _, headers = srv:http("GET", "/phase/header_filter", nil, ports.P_PLAIN)
      assert.matches("header_filter", headers["x-raised"], 1, true)
      assert.matches("ngx.timer.at", headers["x-raised"], 1, true)
    end)

    it("raises an error naming ngx.timer.at in the log phase", function()
      srv:http("GET", "/phase/log", nil, ports.P_PLAIN)
      local msg
      for _ = 1, 50 do -- the log phase runs after the response went out
        local _, results = srv:http("GET", "/results", nil, ports.P_PLAIN)
        msg = cjson.decode(results).log
        if msg then break end
      end
      assert.matches("'log' phase", msg, 1, true)
      assert.matches("ngx.timer.at", msg, 1, true)
    end)
  end)

  describe("parity with the libcurl core", function()
    local core = require("assesskit.core")

    -- What a user sees from one request, comparable across transports.
    local function outcome(status, headers, body)
      if not status then
        return { kind = body }
      end
      local h = {}
      for k, v in pairs(headers) do
        if k ~= "date" and k ~= "x-connection" and k ~= "connection" and k ~= "keep-alive" then
          h[k] = v
        end
      end
      return { status = status, headers = h, body = body }
    end

    local function both(req, opts)
      local s = core.session(opts)
      local c = outcome(s:request(req))
      s:close()
      local r = run1(req, opts)
      local n = r.kind and { kind = r.kind } or outcome(r.status, r.headers, r.body)
      return c, n
    end

    local cases = {
      { "a Content-Length body", { url = "/length" } },
      { "a chunked body", { url = "/chunked" } },
      { "a close-delimited body", { url = "/raw/close" } },
      { "1xx interim responses", { url = "/raw/interim" } },
      { "trailers and chunk extensions", { url = "/raw/trailer" } },
      { "a 50 KiB header", { url = "/raw/bigheader" } },
      { "a header line over 100 KiB", { url = "/raw/longline" }, nil, core_fix = true },
      { "headers over 300 KiB", { url = "/raw/hugeheaders" }, nil, core_fix = true },
      { "an obsolete folded header", { url = "/raw/fold" } },
      { "a header folded over 50000 lines", { url = "/raw/manyfolds" } },
      { "a header with a long run of inner spaces", { url = "/raw/spaces" } },
      { "a header line over 100 KiB with a lone CR", { url = "/raw/lonecr" }, nil, core_fix = true },
      { "a folded header line over 100 KiB", { url = "/raw/foldspaces" }, nil, core_fix = true },
      { "an error status", { url = "/status" } },
      { "a HEAD request", { method = "HEAD", url = "/head" } },
      { "a truncated body", { url = "/raw/truncated" } },
      { "an empty reply", { url = "/raw/empty" } },
      { "a non-HTTP status line", { url = "/raw/badstatus" } },
      { "a bad chunk size", { url = "/raw/badchunk" } },
      { "a 20-digit Content-Length", { url = "/raw/hugelength" } },
      { "a negative Content-Length", { url = "/raw/negativelength" } },
      { "leading zeros in Content-Length", { url = "/raw/zeros" } },
      { "leading zeros in a chunk size", { url = "/raw/zeroschunk" } },
      { "a body over max_response_size (Content-Length)", { url = "/big?n=5000&mode=length" },
        { max_response_size = 1000 } },
      { "a body over max_response_size (chunked)", { url = "/big?n=5000" },
        { max_response_size = 1000 } },
      { "a 304 whose Content-Length is over max_response_size", { url = "/raw/notmodified" },
        { max_response_size = 1000 } },
      { "a 204 whose Content-Length is over max_response_size", { url = "/raw/nocontent" },
        { max_response_size = 1000 } },
      { "a body at max_response_size", { url = "/big?n=1000" }, { max_response_size = 1000 } },
      { "a whole-transfer timeout", { url = "/trickle", timeout = 0.5 } },
      { "timeouts beyond what a cosocket takes (~24 days)",
        { url = "/length", timeout = 1e12, connect_timeout = 1e12 } },
      { "a refused connection", { url = "http://127.0.0.1:1/" } },
      { "plain http to a non-loopback host", { url = "http://api.example.com/" } },
    }
    -- core_fix: the core reports these as network until issue 11.8 (a header line or block
    -- over libcurl's caps is too_large) lands in it
    for _, case in ipairs(cases) do
      it("gives the same result as the core for " .. case[1]
        .. (case.core_fix and " #needs_core_fix" or ""), function()
        local req = {}
        for k, v in pairs(case[2]) do req[k] = v end
        if req.url:sub(1, 1) == "/" then req.url = plain(req.url) end
        local c, n = both(req, case[3])
        assert.are.same(c, n)
      end)
    end

    it("gives the same TLS results as the core", function()
      for _, port in ipairs({ ports.P_TLS, ports.P_WRONGNAME, ports.P_UNTRUSTED }) do
        local req = { url = "https://localhost:" .. port .. "/" }
        local c = outcome(core.session({ ca_file = srv.dir .. "/ca.crt", http2 = false }):request(req))
        local r = run1(req)
        local n = r.kind and { kind = r.kind } or outcome(r.status, r.headers, r.body)
        assert.are.same(c, n)
      end
    end)

    it("sends the same request as the core", function()
      local req = { method = "PATCH", url = plain("/echo?x=1"), body = "payload",
        headers = { ["X-One"] = "1", ["X-Many"] = { "a", "b" }, ["Content-Type"] = "text/plain" } }
      local c = cjson.decode(select(3, core.session():request(req)))
      local n = cjson.decode(run1(req).body)
      for _, e in ipairs({ c, n }) do
        e.connection = nil
        e.headers["user-agent"] = nil
      end
      assert.are.same(c, n)
    end)

    it("writes the same output file and reports the same final progress as the core", function()
      local calls = {}
      local path = srv.dir .. "/core-out.bin"
      local status, _, written = core.session():request({ url = plain("/big?n=50000&mode=length"),
        output = path, on_progress = function(received, total) calls[#calls + 1] = { received, total } end })
      assert.are.equal(200, status)
      local r = run1({ url = plain("/big?n=50000&mode=length"), output = srv.dir .. "/ngx-out.bin",
        progress = "record" })
      assert.are.equal(written, r.body)
      assert.are.same(calls[#calls], r.progress[#r.progress])
      assert.are.equal(sys.read(path), sys.read(srv.dir .. "/ngx-out.bin"))
    end)
  end)

  describe("arguments", function()
    it("raises on a missing url and on body together with multipart", function()
      local rs = run({ { method = "GET" },
        { url = plain("/echo"), body = "x", multipart = { { name = "a", value = "b" } } } })
      assert.matches("url", rs[1].raised, 1, true)
      assert.matches("mutually exclusive", rs[2].raised, 1, true)
    end)

    it("raises misuse errors at the caller's line", function()
      local url = plain("/length")
      local rs = run({ { url = 42 }, { url = "no scheme" }, { url = url .. "\1" }, { url = url .. "\127" },
        { url = url, headers = "x" },
        { url = url, headers = { ["bad name"] = "v" } }, { url = url, headers = { X = "a\r\nb" } },
        { url = url, headers = { X = { "ok", {} } } }, { url = url, method = "GE T" },
        { url = url, timeout = -1 }, { url = url, multipart = { { value = "no name" } } },
        { url = url, multipart = { { name = "a", value = 1 } } } })
      for i, r in ipairs(rs) do
        assert.is_string(r.raised, "request " .. i .. " did not raise")
        assert.matches("^content_by_lua%(", r.raised, nil, "request " .. i .. ": " .. r.raised)
      end
    end)

    it("raises on a NUL byte in the output path instead of writing to the path cut short", function()
      local victim = srv.dir .. "/victim"
      local r = run1({ url = plain("/length"), output = victim .. "\0.part" })
      assert.matches("req.output", r.raised, 1, true)
      assert.is_nil(io.open(victim), "a file was written at the path cut short")
    end)

    it("raises on an unknown option at the caller's line, naming the nearest valid one", function()
      local T = require(T_REQ)
      local ok, msg = pcall(function() local t = T.new({ pool_sise = 4 }) return t end)
      assert.is_false(ok)
      assert.matches("^[^:]*ngx_transport_spec%.lua:%d+: assesskit%.ngx%.transport%.new: unknown option "
        .. "'pool_sise' %(did you mean 'pool_size'%?%)$", msg)
      msg = select(2, pcall(T.new, { colour = 1 }))
      assert.matches("unknown option 'colour'$", msg)
    end)

    it("refuses outside nginx", function()
      local T = require(T_REQ)
      assert.is_false((T.available()))
      assert.has_error(function() T.new():request({ url = "http://127.0.0.1/" }) end)
    end)
  end)
end)
