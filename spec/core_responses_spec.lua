-- Broken and hostile responses through the C core, raw bytes from the test nginx's /raw
-- (spec/support/nginx.lua), each case through session:request and through a core.loop
-- transfer: the same table, the same expected outcome. Also `sent`, the 4th value of every
-- failure. Runs under Lua 5.4 and LuaJIT (tag luajit).

local core = require "assesskit.core"
local nginx = require "support.nginx"
local pki_lib = require "support.pki"
local sys = require "support.sys"

local OK = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

-- How a request is made: blocking, or started on a loop and driven to its end.
local drivers = {
  { name = "session:request", call = function(s, req) return s:request(req) end },
  { name = "loop:start", call = function(s, req)
      local loop = core.loop()
      local x, msg, kind, sent = loop:start(s, req)
      if not x then
        loop:close()
        return nil, msg, kind, sent
      end
      while not x:done() do loop:run(1) end
      loop:close()
      return x:result()
    end },
}

-- Lua source of a /raw script answering `answer` to every request.
local function always(answer)
  return ("return { %q }"):format(answer)
end

local function pack(...) return { n = select("#", ...), ... } end

describe("assesskit.core responses #luajit", function()
  local srv, pki, tmp

  setup(function()
    pki = pki_lib.new()
    srv = nginx.start { locations = nginx.core_locations,
      tls = { { cert = pki.untrusted_cert, key = pki.untrusted_key } } }
    tmp = sys.tmpdir("spec-responses")
  end)

  teardown(function()
    if srv then srv:stop() end
    if pki then pki:cleanup() end
    sys.rmdir(tmp)
  end)

  -- Each case: a /raw script, and what every driver must return.
  local cases = {
    { "two different Content-Length values are a network error (RFC 9110 8.6)",
      always "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nhello",
      kind = "network", message = "conflicting Content%-Length" },
    { "a Content-Length list of different values is a network error",
      always "HTTP/1.1 200 OK\r\nContent-Length: 5, 2\r\n\r\nhello",
      kind = "network", message = "conflicting Content%-Length" },
    { "identical duplicate Content-Length values are one value",
      always "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok",
      status = 200, body = "ok" },
    { "a Content-Length list of identical values is one value",
      always "HTTP/1.1 200 OK\r\nContent-Length: 2 , 2\r\n\r\nok",
      status = 200, body = "ok" },
    { "a bare CR in a header value is a network error",
      always "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
      kind = "network", message = "bare CR" },
    { "a NUL in a header value is a network error",
      always "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok",
      kind = "network" },
    { "a header line over 100 KiB is too_large",
      [[return { "HTTP/1.1 200 OK\r\nX-Long: " .. string.rep("a", 200000)
                  .. "\r\nContent-Length: 2\r\n\r\nok" }]],
      kind = "too_large", message = "header line" },
    { "headers over 300 KiB in all are too_large",
      [[local h = {}
        for i = 1, 8000 do h[i] = "X-H" .. i .. ": " .. string.rep("b", 40) end
        return { "HTTP/1.1 200 OK\r\n" .. table.concat(h, "\r\n") .. "\r\nContent-Length: 2\r\n\r\nok" }]],
      kind = "too_large", message = "headers" },
    { "a folded line right after the status line is a network error",
      always "HTTP/1.1 200 OK\r\n x: y\r\nContent-Length: 2\r\n\r\nok",
      kind = "network", message = "folded" },
    { "a folded line after a header continues it",
      always "HTTP/1.1 200 OK\r\nX-F: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
      status = 200, body = "ok", header = { "x-f", "a b" } },
    { "a body over Content-Length's announcement on a closed connection is cut at it",
      always "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nokEXTRA",
      status = 200, body = "ok" },
    { "a status line without a version ('HTTP/200 OK') is a network error",
      always "HTTP/200 OK\r\nContent-Length: 2\r\n\r\nok",
      kind = "network", message = "status line" },
    { "a Content-Length with a sign is a network error (RFC 9110: 1*DIGIT)",
      always "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
      kind = "network", message = "malformed Content%-Length" },
    { "an unsolicited 101 Switching Protocols is a network error",
      always "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nxyz",
      kind = "network", message = "101" },
    { "a response cut short in its headers is a network error, sent",
      "return { { 'HTTP/1.1 200 OK\\r\\nX-A: b' } }",
      kind = "network", sent = true },
  }

  for _, d in ipairs(drivers) do
    describe("through " .. d.name, function()
      for _, case in ipairs(cases) do
        it(case[1], function()
          local s = core.session()
          local r = pack(d.call(s, { url = srv:raw_url(case[2]), timeout = 10 }))
          if case.kind then
            assert.is_nil(r[1], tostring(r[2]))
            assert.equal(case.kind, r[3], r[2])
            if case.message then assert.matches(case.message, r[2]) end
            assert.equal(4, r.n)
            assert.equal("boolean", type(r[4]))
            if case.sent ~= nil then assert.equal(case.sent, r[4]) end
          else
            assert.equal(case.status, r[1], r[2])
            assert.equal(case.body, r[3])
            if case.header then assert.equal(case.header[2], r[2][case.header[1]]) end
          end
          -- the session still works afterwards
          assert.equal(200, (s:request { url = srv:url("/json") }))
          s:close()
        end)
      end

      it("sends a POST that a kept-alive connection drops unanswered once, and says it was sent",
        function()
          local s = core.session()
          local tag = "post-once-" .. d.name:gsub("%p", "")
          -- on each connection: the 1st request gets an answer, the 2nd none (closed)
          local url = srv:raw_url(("return { %q, false }"):format(OK), tag)
          assert.equal(200, (d.call(s, { url = url })))
          local r = pack(d.call(s, { url = url, method = "POST", body = "once",
            headers = { ["Content-Type"] = "text/plain" } }))
          assert.is_nil(r[1])
          assert.equal("network", r[3])
          assert.equal("connection closed before any response; not sent again", r[2])
          assert.is_true(r[4])
          sys.sleep(0.1)
          local seen = srv:raw_requests(tag)
          assert.equal(2, #seen)  -- the GET and the POST, on one connection; nothing more
          assert.equal(seen[1].connection, seen[2].connection)
          assert.equal(2, seen[2].n)
          s:close()
        end)

      it("does not resend a GET either: the caller's policy decides", function()
        local s = core.session()
        local tag = "get-once-" .. d.name:gsub("%p", "")
        local url = srv:raw_url(("return { %q, false }"):format(OK), tag)
        assert.equal(200, (d.call(s, { url = url })))
        local r = pack(d.call(s, { url = url }))
        assert.same({ "network", true }, { r[3], r[4] })
        sys.sleep(0.1)
        assert.equal(2, #srv:raw_requests(tag))
        s:close()
      end)

      describe("sent", function()
        local function failure(s, req)
          local r = pack(d.call(s, req))
          assert.is_nil(r[1], "expected a failure")
          assert.equal(4, r.n)
          return r[3], r[4]
        end

        it("is false when the connection is refused", function()
          local s = core.session()
          local kind, sent = failure(s, { url = "http://127.0.0.1:" .. sys.free_port() .. "/",
            method = "POST", body = "x" })
          assert.same({ "network", false }, { kind, sent })
          s:close()
        end)

        it("is false when the host does not resolve", function()
          local s = core.session()
          local kind, sent = failure(s, { url = "https://nonexistent.invalid/", timeout = 5 })
          assert.is_false(sent)
          assert.is_truthy(kind == "network" or kind == "timeout", kind)
          s:close()
        end)

        it("is false when the TLS handshake fails (untrusted certificate)", function()
          local s = core.session { ca_file = pki.ca }
          local kind, sent = failure(s, { url = srv:tls_url(1, "/json"), method = "POST",
            body = "x" })
          assert.same({ "tls", false }, { kind, sent })
          s:close()
        end)

        it("is false for insecure, io and closed failures", function()
          local s = core.session()
          assert.same({ "insecure", false }, { failure(s, { url = "http://example.com/" }) })
          assert.same({ "io", false }, { failure(s, { url = srv:url("/json"),
            output = tmp .. "/no/such/dir/file" }) })
          assert.same({ "io", false }, { failure(s, { url = srv:url("/echo"),
            multipart = { { name = "f", file = tmp .. "/missing" } } }) })
          s:close()
          assert.same({ "closed", false }, { failure(s, { url = srv:url("/json") }) })
        end)

        it("is true once the request went out: timeout, dropped, truncated, too large, aborted",
          function()
            local s = core.session { max_response_size = 1000 }
            assert.same({ "timeout", true },
              { failure(s, { url = srv:url("/slow?s=2"), timeout = 0.2 }) })
            assert.same({ "network", true }, { failure(s, { url = srv:url("/drop"),
              method = "POST", body = "x" }) })
            assert.same({ "network", true }, { failure(s, { url = srv:url("/truncated") }) })
            assert.same({ "too_large", true },
              { failure(s, { url = srv:url("/bytes?n=5000") }) })
            assert.same({ "aborted", true }, { failure(s, { url = srv:url("/bytes?n=500"),
              on_progress = function(received) if received > 0 then error("stop") end end }) })
            s:close()
          end)
      end)
    end)
  end

  it("survives a folded first header line on a reused connection (libcurl 7.88.1 "
    .. "use-after-free), in a process of its own", function()
    -- On each connection: a normal answer, then one whose first header line is folded. The
    -- second request of each connection is the one that used to write into freed memory
    -- (12 blocking requests, then 12 loop transfers).
    local url = srv:raw_url(("return { %q, %q }"):format(
      "HTTP/1.1 200 OK\r\nX: y\r\nContent-Length: 2\r\n\r\nok",
      "HTTP/1.1 200 OK\r\n x: y\r\nContent-Length: 2\r\n\r\nok"), "fold-reuse")
    -- make sanitize runs it with its own interpreter and core
    local lua = os.getenv("ASSESSKIT_SPEC_LUA") or (jit and "luajit" or "lua5.4")
    local cpath = os.getenv("ASSESSKIT_SPEC_CPATH")
      or sys.repo .. "/build/" .. (jit and "luajit" or "lua5.4") .. "/?.so;;"
    local script = ([[
      local core = require "assesskit.core"
      local s = core.session()
      local out = {}
      for i = 1, 24 do
        local st, _, kind
        if i <= 12 then st, _, kind = s:request { url = %q }
        else
          local loop = core.loop()
          local x = loop:start(s, { url = %q })
          while not x:done() do loop:run(1) end
          st, _, kind = x:result()
          loop:close()
        end
        out[#out + 1] = tostring(st or kind)
      end
      collectgarbage()
      io.write(table.concat(out, " "))
    ]]):format(url, url)
    local code, out, err = sys.exec(sys.quote(lua) .. " -", { stdin = script,
      env = { LUA_PATH = sys.repo .. "/lua/?.lua;" .. sys.repo .. "/lua/?/init.lua;;", LUA_CPATH = cpath,
              PATH = os.getenv("PATH") } })
    assert.equal(0, code, err)
    local words = {}
    for w in out:gmatch("%S+") do words[#words + 1] = w end
    assert.equal(24, #words, out)
    for i, w in ipairs(words) do
      assert.equal(i % 2 == 1 and "200" or "network", w, out)
    end
    -- every answer came from the raw server: 12 connections, two requests each
    sys.sleep(0.1)
    local per = {}
    for _, r in ipairs(srv:raw_requests("fold-reuse")) do
      per[r.connection] = (per[r.connection] or 0) + 1
    end
    local conns = 0
    for _, n in pairs(per) do
      conns = conns + 1
      assert.equal(2, n)
    end
    assert.equal(12, conns)
  end)
end)
