-- assesskit.core sessions against a real nginx on 127.0.0.1 (spec/support/nginx.lua).
-- Runs under Lua 5.4 and LuaJIT (tag luajit): no 5.4-only syntax here.

local core = require "assesskit.core"
local nginx = require "support.nginx"
local sys = require "support.sys"
local cjson = require "cjson"
local socket = require "socket"

local PATTERN = "0123456789abcdef"

-- The body /bytes?n=N serves.
local function pattern_bytes(n)
  return string.rep(PATTERN, math.ceil(n / #PATTERN)):sub(1, n)
end

local function unhex(s)
  return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

-- Splits a multipart/form-data body into parts {headers = {lower-name = value}, content}.
local function parse_multipart(body, content_type)
  local boundary = assert(content_type:match("boundary=([^;]+)"), "no boundary")
  local delim = "--" .. boundary
  local parts = {}
  local pos = assert(body:find(delim, 1, true), "no first boundary") + #delim
  while true do
    if body:sub(pos, pos + 1) == "--" then break end
    assert(body:sub(pos, pos + 1) == "\r\n", "boundary not followed by CRLF")
    local head_end = assert(body:find("\r\n\r\n", pos, true), "part without header end")
    local headers = {}
    for line in body:sub(pos + 2, head_end - 1):gmatch("[^\r\n]+") do
      local k, v = line:match("^([^:]+):%s*(.*)$")
      headers[k:lower()] = v
    end
    local next_delim = assert(body:find("\r\n" .. delim, head_end + 4, true), "unterminated part")
    parts[#parts + 1] = { headers = headers, content = body:sub(head_end + 4, next_delim - 1) }
    pos = next_delim + 2 + #delim
  end
  return parts
end


-- The two ways to make a request: session:request, and a transfer of a core.loop driven to its
-- end. Every case below runs through both and must give the same result. `session` makes a
-- session object whose :request takes that way (the rest is the session's own).
local function loop_request(s, req)
  local loop = core.loop()
  local x, msg, kind, sent = loop:start(s, req)
  if not x then
    loop:close()
    return nil, msg, kind, sent
  end
  while not x:done() do loop:run(1) end
  loop:close()
  return x:result()
end

local DRIVERS = {
  { name = "session:request", arg = 2, session = function(opts) return core.session(opts) end },
  { name = "loop:start", arg = 3, session = function(opts)
      local s = core.session(opts)
      local proxy = {}
      function proxy.request(self, req)
        return loop_request(self == proxy and s or self, req)
      end
      return setmetatable(proxy, {
        __index = function(_, k)
          local v = s[k]
          if type(v) ~= "function" then return v end
          return function(self, ...) return v(self == proxy and s or self, ...) end
        end,
        __tostring = function() return tostring(s) end })
    end },
}

for _, d in ipairs(DRIVERS) do
  local new_session = d.session

  describe("assesskit.core session #luajit through " .. d.name, function()
    local srv, tmp

    setup(function()
      srv = nginx.start { locations = nginx.core_locations }
      tmp = sys.tmpdir("spec-http")
    end)

    teardown(function()
      if srv then srv:stop() end
      sys.rmdir(tmp)
    end)

    describe("connection reuse", function()
      it("sends many requests of a session over one connection", function()
        local s = new_session()
        for i = 1, 25 do
          local status, headers, body = s:request { url = srv:url("/json?t=reuse-one-" .. i) }
          assert.equal(200, status)
          assert.equal("application/json", headers["content-type"])
          assert.equal(42, cjson.decode(body).id)
        end
        local log = srv:wait_log(25, "t=reuse-one-")
        assert.equal(25, #log)
        for i, e in ipairs(log) do
          assert.equal(log[1].connection, e.connection)
          assert.equal(i, e.requests)
        end
        assert.same({ requests = 25, connects = 1 }, s:stats())
        s:close()
      end)

      it("gives each session its own connection", function()
        local a, b = new_session(), new_session()
        for i = 1, 3 do
          assert.equal(200, (a:request { url = srv:url("/json?t=reuse-two-a" .. i) }))
          assert.equal(200, (b:request { url = srv:url("/json?t=reuse-two-b" .. i) }))
        end
        local la, lb = srv:wait_log(3, "t=reuse-two-a"), srv:wait_log(3, "t=reuse-two-b")
        assert.equal(la[1].connection, la[3].connection)
        assert.equal(lb[1].connection, lb[3].connection)
        assert.are_not.equal(la[1].connection, lb[1].connection)
        a:close()
        b:close()
      end)

      it("resets per-request options between requests without dropping the connection", function()
        local s = new_session()
        local calls = 0
        local out = tmp .. "/reset.out"
        local status, _, body = s:request { method = "POST", url = srv:url("/echo?t=reset-1"),
          body = "first", headers = { ["X-Only-Once"] = "yes", ["Content-Type"] = "text/plain" },
          timeout = 5, on_progress = function() calls = calls + 1 end }
        assert.equal(200, status)
        local echo = cjson.decode(body)
        assert.equal("POST", echo.method)
        assert.equal("first", unhex(echo.body_hex))
        assert.equal("yes", echo.headers["x-only-once"])
        local seen = calls
        assert.is_true(seen > 0)

        echo = cjson.decode(select(3, s:request { url = srv:url("/echo?t=reset-2") }))
        assert.equal("GET", echo.method)
        assert.equal(0, echo.body_length)
        assert.is_nil(echo.headers["x-only-once"])
        assert.is_nil(echo.headers["content-type"])
        assert.equal(seen, calls) -- the previous request's callback is gone

        local st, h, n = s:request { url = srv:url("/bytes?n=1000&t=reset-3"), output = out }
        assert.equal(200, st)
        assert.equal("1000", h["content-length"])
        assert.equal(1000, n)

        st, h, body = s:request { method = "HEAD", url = srv:url("/json?t=reset-4") }
        assert.equal(200, st)
        assert.equal("", body)
        assert.is_string(h["content-length"])

        st, _, body = s:request { url = srv:url("/bytes?n=20&t=reset-5") }
        assert.equal(200, st)
        assert.equal(pattern_bytes(20), body) -- no longer written to the file
        assert.equal(pattern_bytes(1000), sys.read(out))

        echo = cjson.decode(select(3, s:request { method = "PUT", url = srv:url("/echo?t=reset-6") }))
        assert.equal("PUT", echo.method)
        assert.equal("0", echo.headers["content-length"])
        echo = cjson.decode(select(3, s:request { method = "DELETE", url = srv:url("/echo?t=reset-7") }))
        assert.equal("DELETE", echo.method)
        echo = cjson.decode(select(3, s:request { method = "PATCH", url = srv:url("/echo?t=reset-8"),
          body = "{}" }))
        assert.equal("PATCH", echo.method)
        assert.equal("{}", unhex(echo.body_hex))

        local log = srv:wait_log(8, "t=reset-")
        assert.equal(8, #log)
        for i, e in ipairs(log) do
          assert.equal(log[1].connection, e.connection)
          assert.equal(i, e.requests)
        end
        assert.same({ "POST", "GET", "GET", "HEAD", "GET", "PUT", "DELETE", "PATCH" },
          (function()
            local m = {}
            for i, e in ipairs(log) do m[i] = e.method end
            return m
          end)())
        s:close()
      end)
    end)

    describe("failures", function()
      it("gives up on a slow response after the total timeout (kind timeout)", function()
        local s = new_session()
        local ok, msg, kind = s:request { url = srv:url("/slow?s=5&t=slow"), timeout = 0.3 }
        assert.is_nil(ok)
        assert.equal("timeout", kind)
        assert.matches("timed out", msg)
        -- the session stays usable
        assert.equal(200, (s:request { url = srv:url("/json?t=after-timeout") }))
        s:close()
      end)

      it("gives up on a connect that never completes (connect_timeout, kind timeout)", function()
        -- A listener with a full accept queue drops further SYNs: the handshake never ends.
        local server = assert(socket.tcp())
        assert(server:bind("127.0.0.1", 0))
        assert(server:listen(0))
        local _, port = server:getsockname()
        local fillers = {}
        for i = 1, 4 do
          fillers[i] = socket.tcp()
          fillers[i]:settimeout(0)
          fillers[i]:connect("127.0.0.1", port)
        end
        sys.sleep(0.1)
        local s = new_session()
        local ok, msg, kind = s:request { url = "http://127.0.0.1:" .. port .. "/",
          connect_timeout = 0.3, timeout = 30 }
        for _, c in ipairs(fillers) do c:close() end
        server:close()
        assert.is_nil(ok)
        assert.equal("timeout", kind)
        assert.matches("connect", msg)
        s:close()
      end)

      it("reports a refused connection as kind network", function()
        local port = sys.free_port() -- released: nothing listens there
        local s = new_session()
        local ok, msg, kind = s:request { url = "http://127.0.0.1:" .. port .. "/", timeout = 5 }
        assert.is_nil(ok)
        assert.equal("network", kind)
        assert.matches("onnect", msg)
        s:close()
      end)

      it("reports an empty reply and a truncated body as kind network", function()
        local s = new_session()
        local ok, msg, kind = s:request { url = srv:url("/drop") }
        assert.is_nil(ok)
        assert.equal("network", kind)
        assert.matches("[Ee]mpty reply", msg)
        ok, msg, kind = s:request { url = srv:url("/truncated") }
        assert.is_nil(ok)
        assert.equal("network", kind)
        assert.matches("993 bytes remaining", msg)
        s:close()
      end)

      it("returns HTTP error statuses as ordinary responses", function()
        local s = new_session()
        local status, headers, body = s:request { url = srv:url("/status?code=503") }
        assert.equal(503, status)
        assert.equal("application/json", headers["content-type"])
        assert.equal(503, cjson.decode(body).status)
        s:close()
      end)

      it("never puts request headers (Authorization) in an error message", function()
        local s = new_session()
        local secret = "Bearer sk_live_do_not_leak_0123456789"
        local ok, msg = s:request { url = srv:url("/slow?s=5&t=secret"), timeout = 0.2,
          headers = { Authorization = secret } }
        assert.is_nil(ok)
        assert.is_nil(msg:find("sk_live", 1, true))
        ok, msg = s:request { url = "http://127.0.0.1:" .. sys.free_port() .. "/",
          headers = { Authorization = secret } }
        assert.is_nil(ok)
        assert.is_nil(msg:find("sk_live", 1, true))
        local raised = select(2, pcall(s.request, s, { url = srv:url("/json"),
          headers = { Authorization = "Bearer sk_live_x\r\nX-Evil: 1" } }))
        assert.is_nil(tostring(raised):find("sk_live", 1, true))
        assert.is_nil(tostring(s):find("sk_live", 1, true))
        s:close()
      end)
    end)

    describe("response size cap", function()
      it("accepts a body of exactly max_response_size bytes", function()
        local s = new_session { max_response_size = 1000 }
        local status, _, body = s:request { url = srv:url("/bytes?n=1000") }
        assert.equal(200, status)
        assert.equal(pattern_bytes(1000), body)
        status, _, body = s:request { url = srv:url("/bytes?n=1000&chunked=1") }
        assert.equal(200, status)
        assert.equal(pattern_bytes(1000), body)
        s:close()
      end)

      it("refuses a body whose Content-Length announces more, before reading it (too_large)", function()
        local s = new_session { max_response_size = 1000 }
        local received = 0
        local n = 1001
        local ok, msg, kind = s:request { url = srv:url("/bytes?n=" .. n .. "&t=cl-small"),
          on_progress = function(r) if r > received then received = r end end }
        assert.is_nil(ok)
        assert.equal("too_large", kind)
        assert.matches("1001 bytes announced", msg)
        assert.equal(0, received)
        n = 64 * 1024 * 1024
        ok, msg, kind = s:request { url = srv:url("/bytes?n=" .. n .. "&t=cl-big") }
        assert.is_nil(ok)
        assert.equal("too_large", kind)
        assert.matches("announced", msg)
        local log = srv:wait_log(1, "t=cl-big")
        assert.equal(1, #log)
        assert.is_true(log[1].bytes_sent < n / 2, "the server sent " .. log[1].bytes_sent)
        s:close()
      end)

      it("aborts a chunked body as soon as it passes max_response_size (too_large)", function()
        local s = new_session { max_response_size = 100000 }
        local n = 64 * 1024 * 1024
        local ok, msg, kind = s:request { url = srv:url("/bytes?chunked=1&n=" .. n .. "&t=chunked-big") }
        assert.is_nil(ok)
        assert.equal("too_large", kind)
        assert.matches("max_response_size %(100000 bytes%)", msg)
        assert.is_nil(msg:find("announced", 1, true))
        local log = srv:wait_log(1, "t=chunked-big")
        assert.equal(1, #log)
        assert.is_true(log[1].bytes_sent < n / 2, "the server sent " .. log[1].bytes_sent)
        -- the session recovers
        assert.equal(pattern_bytes(10), select(3, s:request { url = srv:url("/bytes?n=10") }))
        s:close()
      end)

      it("keeps no body buffer in the session after a transfer that failed", function()
        local status = io.open("/proc/self/status")
        if not status then return pending("no /proc/self/status") end
        status:close()
        local function rss_kib()
          local f = assert(io.open("/proc/self/status"))
          local kib = tonumber(f:read("*a"):match("VmRSS:%s*(%d+)"))
          f:close()
          return kib
        end
        local s = new_session { max_response_size = 48 * 1024 * 1024 }
        local ok, _, kind = s:request { url = srv:url("/bytes?chunked=1&n=" .. 64 * 1024 * 1024) }
        assert.is_nil(ok)
        assert.equal("too_large", kind)
        -- what closing the session gives back is what it held while idle
        local idle = rss_kib()
        s:close()
        local held = idle - rss_kib()
        assert.is_true(held < 16 * 1024, "the idle session held " .. held .. " KiB")
      end)

      it("does not cap a body streamed to output", function()
        local s = new_session { max_response_size = 1000 }
        local out = tmp .. "/uncapped.out"
        local status, _, n = s:request { url = srv:url("/bytes?n=300000"), output = out }
        assert.equal(200, status)
        assert.equal(300000, n)
        assert.equal(pattern_bytes(300000), sys.read(out))
        s:close()
      end)
    end)

    describe("multipart", function()
      it("sends fields and files as the server receives them", function()
        local bytes = {}
        for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
        local binary = string.rep(table.concat(bytes), 40) .. "\r\n--not-a-boundary\r\n"
        local bin_path, txt_path = tmp .. "/upload.bin", tmp .. "/notes.txt"
        sys.write(bin_path, binary)
        sys.write(txt_path, "plain text\n")
        local s = new_session()
        local status, _, body = s:request { url = srv:url("/echo?t=multipart"), multipart = {
          { name = "note", value = "hello\r\nworld" },
          { name = "upload", file = bin_path, filename = "report.bin", content_type = "application/x-report" },
          { name = "notes", file = txt_path },
        } }
        assert.equal(200, status)
        local echo = cjson.decode(body)
        assert.equal("POST", echo.method)
        local ctype = echo.headers["content-type"]
        assert.matches("^multipart/form%-data; boundary=", ctype)
        local parts = parse_multipart(unhex(echo.body_hex), ctype)
        assert.equal(3, #parts)
        assert.equal('form-data; name="note"', parts[1].headers["content-disposition"])
        assert.equal("hello\r\nworld", parts[1].content)
        assert.equal('form-data; name="upload"; filename="report.bin"', parts[2].headers["content-disposition"])
        assert.equal("application/x-report", parts[2].headers["content-type"])
        assert.equal(#binary, #parts[2].content)
        assert.is_true(binary == parts[2].content, "file part differs from the file")
        assert.equal('form-data; name="notes"; filename="notes.txt"', parts[3].headers["content-disposition"])
        assert.equal("plain text\n", parts[3].content)
        s:close()
      end)

      it("uses the given method for a multipart body", function()
        local s = new_session()
        local echo = cjson.decode(select(3, s:request { method = "PUT", url = srv:url("/echo"),
          multipart = { { name = "a", value = "1" } } }))
        assert.equal("PUT", echo.method)
        assert.matches("^multipart/form%-data", echo.headers["content-type"])
        s:close()
      end)

      it("fails with kind io, sending nothing, when a file part cannot be read", function()
        local s = new_session()
        local ok, msg, kind = s:request { url = srv:url("/echo?t=missing-file"),
          multipart = { { name = "f", file = tmp .. "/does-not-exist" } } }
        assert.is_nil(ok)
        assert.equal("io", kind)
        assert.matches("does%-not%-exist", msg)
        assert.equal(200, (s:request { url = srv:url("/json?t=after-missing-file") }))
        srv:wait_log(1, "t=after-missing-file")
        assert.equal(0, #srv:log("t=missing-file"))
        s:close()
      end)

      it("raises on malformed parts and on body together with multipart", function()
        local s = new_session()
        assert.has_error(function()
          s:request { url = srv:url("/echo"), body = "x", multipart = { { name = "a", value = "b" } } }
        end)
        assert.has_error(function() s:request { url = srv:url("/echo"), multipart = { { value = "b" } } } end)
        assert.has_error(function()
          s:request { url = srv:url("/echo"), multipart = { { name = "a", value = "b", file = "/x" } } }
        end)
        assert.has_error(function() s:request { url = srv:url("/echo"), multipart = { "nope" } } end)
        s:close()
      end)
    end)

    describe("output", function()
      it("streams the body to a file and returns the number of bytes written", function()
        local s = new_session()
        local out = tmp .. "/download.bin"
        local status, headers, n = s:request { url = srv:url("/bytes?n=1234567"), output = out }
        assert.equal(200, status)
        assert.equal("1234567", headers["content-length"])
        assert.equal(1234567, n)
        assert.is_true(pattern_bytes(1234567) == sys.read(out), "file content differs")
        s:close()
      end)

      it("fails with kind io when the output file cannot be opened", function()
        local s = new_session()
        local ok, msg, kind = s:request { url = srv:url("/bytes?n=10"), output = tmp .. "/no/such/dir/x" }
        assert.is_nil(ok)
        assert.equal("io", kind)
        assert.matches("cannot open output", msg)
        s:close()
      end)

      it("raises on a NUL byte in url or output instead of cutting the string short", function()
        local s = new_session()
        local victim = tmp .. "/victim"
        assert.has_error(function() s:request { url = srv:url("/json") .. "\0.example.com/" } end,
          ("bad argument #%d (field 'url' contains a NUL byte)"):format(d.arg))
        assert.has_error(function() s:request { url = srv:url("/json"), output = victim .. "\0.part" } end,
          ("bad argument #%d (field 'output' contains a NUL byte)"):format(d.arg))
        assert.is_nil(io.open(victim), "a file was written at the path cut short")
        s:close()
      end)

      it("fails with kind io when the output cannot be written", function()
        local full = io.open("/dev/full", "wb")
        if not full then return pending("no /dev/full") end
        full:close()
        local s = new_session()
        local ok, msg, kind = s:request { url = srv:url("/bytes?n=200000"), output = "/dev/full" }
        assert.is_nil(ok)
        assert.equal("io", kind)
        assert.matches("cannot write output", msg)
        s:close()
      end)
    end)

    describe("on_progress", function()
      it("reports received bytes and the announced total", function()
        local s = new_session()
        local calls, last, total, monotonic = 0, -1, nil, true
        local status, _, body = s:request { url = srv:url("/bytes?n=300000"),
          on_progress = function(received, t)
            calls = calls + 1
            if received < last then monotonic = false end
            last = received
            total = t or total
          end }
        assert.equal(200, status)
        assert.equal(300000, #body)
        assert.is_true(calls >= 2)
        assert.is_true(monotonic)
        assert.equal(300000, last)
        assert.equal(300000, total)
        s:close()
      end)

      it("reports the total as nil while the size is unknown (chunked)", function()
        local s = new_session()
        local totals, last = {}, 0
        assert.equal(200, (s:request { url = srv:url("/bytes?chunked=1&n=200000"),
          on_progress = function(received, t)
            last = received
            totals[#totals + 1] = t == nil and "nil" or t
          end }))
        assert.equal(200000, last)
        for _, t in ipairs(totals) do assert.equal("nil", t) end
        s:close()
      end)

      it("turns an error raised in the callback into nil, message, 'aborted'", function()
        local s = new_session()
        local ok, msg, kind = s:request { url = srv:url("/trickle?n=20&s=0.05"),
          on_progress = function(received)
            if received > 0 then error("stop here, got " .. received) end
          end }
        assert.is_nil(ok)
        assert.equal("aborted", kind)
        assert.matches("stop here, got 1", msg)
        -- the session stays usable
        assert.equal(200, (s:request { url = srv:url("/json") }))
        s:close()
      end)

      it("aborts on a non-string error value too", function()
        local s = new_session()
        local ok, msg, kind = s:request { url = srv:url("/json"),
          on_progress = function() error({ code = 1 }) end }
        assert.is_nil(ok)
        assert.equal("aborted", kind)
        assert.equal("on_progress raised a table value", msg)
        s:close()
      end)

      it("refuses re-entrant use of the session from its own callback", function()
        local s = new_session()
        local ok, msg, kind = s:request { url = srv:url("/json"),
          on_progress = function() s:request { url = srv:url("/json") } end }
        assert.is_nil(ok)
        assert.equal("aborted", kind)
        assert.matches("busy", msg)
        ok, msg, kind = s:request { url = srv:url("/json"), on_progress = function() s:close() end }
        assert.is_nil(ok)
        assert.equal("aborted", kind)
        assert.matches("busy", msg)
        assert.is_false(s:is_closed())
        assert.equal(200, (s:request { url = srv:url("/json") }))
        s:close()
      end)

      it("lets a callback use another session", function()
        local s, other = new_session(), new_session()
        local inner
        assert.equal(200, (s:request { url = srv:url("/json"), on_progress = function()
          if not inner then inner = other:request { url = srv:url("/json") } end
        end }))
        assert.equal(200, inner)
        s:close()
        other:close()
      end)
    end)

    describe("headers", function()
      it("lower-cases names and gives a repeated header as an array in arrival order", function()
        local s = new_session()
        local status, headers, body = s:request { url = srv:url("/headers") }
        assert.equal(200, status)
        assert.equal("ok\n", body)
        assert.same({ "one", "two", "three" }, headers["x-multi"])
        assert.same({ "a=1; Path=/", "b=2; Path=/" }, headers["set-cookie"])
        assert.equal("only", headers["x-single"])
        for name in pairs(headers) do assert.equal(name:lower(), name) end
        s:close()
      end)

      it("keeps only the final response's headers after an interim 1xx response", function()
        local s = new_session()
        local status, headers, body = s:request { url = srv:url("/early_hints") }
        assert.equal(200, status)
        assert.equal("ok", body)
        assert.equal("yes", headers["x-final"])
        assert.is_nil(headers["x-interim"])
        assert.is_nil(headers["link"])
        s:close()
      end)

      it("sends arrays as repeated request headers, and empty and numeric values", function()
        local s = new_session { user_agent = "spec-agent/1" }
        local echo = cjson.decode(select(3, s:request { url = srv:url("/echo"),
          headers = { ["X-Rep"] = { "a", "b" }, ["X-Empty"] = "", ["X-Num"] = 7 } }))
        assert.same({ "a", "b" }, echo.headers["x-rep"])
        assert.equal("", echo.headers["x-empty"])
        assert.equal("7", echo.headers["x-num"])
        assert.equal("spec-agent/1", echo.headers["user-agent"])
        s:close()
      end)

      it("raises on a header with CR or LF (no header injection)", function()
        local s = new_session()
        assert.has_error(function() s:request { url = srv:url("/echo"), headers = { ["X-A"] = "v\r\nX-B: 1" } } end)
        assert.has_error(function() s:request { url = srv:url("/echo"), headers = { ["X A"] = "v" } } end)
        assert.has_error(function() s:request { url = srv:url("/echo"), headers = { ["X-A"] = { "ok", "v\n" } } } end)
        assert.has_error(function() s:request { url = srv:url("/echo"), headers = { ["X-A"] = true } } end)
        s:close()
      end)
    end)

    describe("plain http", function()
      it("refuses plain http to a non-loopback host (kind insecure) without sending anything", function()
        -- With the test server as proxy, anything sent would show in its log.
        local s = new_session { proxy = srv:url("/") }
        for _, url in ipairs({ "http://example.com/json?t=insecure-1", "HTTP://EXAMPLE.COM/json?t=insecure-2",
          "http://192.0.2.10:81/json?t=insecure-3", "http://[2001:db8::1]/json?t=insecure-4",
          "http://127.0.0.1.example.com/json?t=insecure-5", "http://user:pw@10.0.0.1/json?t=insecure-6" }) do
          local ok, msg, kind = s:request { url = url }
          assert.is_nil(ok, url)
          assert.equal("insecure", kind, url)
          assert.matches("plain http", msg)
          assert.is_nil(msg:find("pw", 1, true))
        end
        assert.equal(0, s:stats().requests)
        assert.equal(200, (s:request { url = srv:url("/json?t=marker-insecure") }))
        srv:wait_log(1, "t=marker-insecure")
        assert.equal(0, #srv:log("t=insecure-"))
        s:close()
      end)

      it("allows plain http to loopback: 127.0.0.0/8, ::1 and localhost", function()
        local s = new_session()
        assert.equal(200, (s:request { url = srv:url("/json", "localhost") }))
        assert.equal(200, (s:request { url = srv:url("/json", "127.0.0.1") }))
        -- nothing listens there, but the request is attempted: network, not insecure
        local _, _, kind = s:request { url = srv:url("/json", "127.0.0.2"), connect_timeout = 2 }
        assert.equal("network", kind)
        _, _, kind = s:request { url = srv:url("/json", "[::1]"), connect_timeout = 2 }
        assert.equal("network", kind)
        s:close()
      end)

      it("allows plain http to any host with allow_http = true", function()
        local s = new_session { allow_http = true, proxy = srv:url("/") }
        local status, _, body = s:request { url = "http://example.com/json?t=allowed" }
        assert.equal(200, status)
        assert.equal(42, cjson.decode(body).id)
        assert.equal(1, #srv:wait_log(1, "t=allowed"))
        s:close()
      end)
    end)

    describe("lifecycle", function()
      it("returns nil, 'session is closed', 'closed' once closed; close is idempotent", function()
        local s = new_session()
        assert.is_false(s:is_closed())
        assert.matches("open", tostring(s))
        s:close()
        s:close()
        assert.is_true(s:is_closed())
        assert.matches("closed", tostring(s))
        local ok, msg, kind = s:request { url = srv:url("/json") }
        assert.is_nil(ok)
        assert.equal("session is closed", msg)
        assert.equal("closed", kind)
      end)

      it("is collected without an explicit close", function()
        local sessions = setmetatable({}, { __mode = "k" })
        local function use_one() -- returns: nothing refers to the session any more
          local s = new_session()
          assert.equal(200, (s:request { url = srv:url("/json") }))
          sessions[s] = true
        end
        for _ = 1, 20 do use_one() end
        assert.is_not_nil(next(sessions))
        collectgarbage()
        collectgarbage() -- userdata with __gc leave weak tables on the cycle after their finalizer
        assert.is_nil(next(sessions), "a session without references was not collected")
      end)

      it("raises on misuse", function()
        local s = new_session()
        assert.has_error(function() s:request() end)
        assert.has_error(function() s:request {} end)
        assert.has_error(function() s:request { url = 42 } end)
        assert.has_error(function() s:request { url = "not a url" } end)
        assert.has_error(function() s:request { url = "ftp://127.0.0.1/" } end)
        assert.has_error(function() s:request { url = srv:url("/json"), method = "GE T" } end)
        assert.has_error(function() s:request { url = srv:url("/json"), timeout = "1" } end)
        assert.has_error(function() s:request { url = srv:url("/json"), timeout = -1 } end)
        assert.has_error(function() s:request { url = srv:url("/json"), on_progress = "no" } end)
        assert.has_error(function() s:request { url = srv:url("/json"), body = {} } end)
        assert.has_error(function() s.request({}, { url = srv:url("/json") }) end)
        assert.has_error(function() new_session("x") end)
        assert.has_error(function() new_session { max_response_size = -1 } end)
        assert.has_error(function() new_session { typo_option = true } end)
        assert.has_error(function() new_session { ca_file = 1 } end)
        s:close()
      end)
    end)

  end)
end
