-- assesskit.core's non-blocking driver (core.loop) against a real nginx on 127.0.0.1: what is
-- particular to running many transfers at once. The results and failure kinds of single
-- requests run through the loop in spec/core_http_spec.lua and spec/core_responses_spec.lua.
-- Runs under Lua 5.4 and LuaJIT (tag luajit).

local core = require "assesskit.core"
local nginx = require "support.nginx"
local pki_lib = require "support.pki"
local cjson = require "cjson"

-- Runs `total` requests made by make(i) on `loop`, `width` at a time, as a scheduler would;
-- returns the results by i.
local function run_all(loop, s, total, width, make)
  local results, started, running = {}, 0, {}
  local function fill()
    while started < total and loop:count() < width do
      started = started + 1
      local x = assert(loop:start(s, make(started)))
      running[x] = started
    end
  end
  fill()
  while loop:count() > 0 do
    for _, x in ipairs(loop:run(5)) do
      results[running[x]] = { x:result() }
      running[x] = nil
    end
    fill()
  end
  return results
end

local function distinct(entries, field)
  local seen, n = {}, 0
  for _, e in ipairs(entries) do
    if not seen[e[field]] then
      seen[e[field]] = true
      n = n + 1
    end
  end
  return n, seen
end

describe("assesskit.core loop #luajit", function()
  local srv, pki

  setup(function()
    pki = pki_lib.new()
    srv = nginx.start { locations = nginx.core_locations,
      tls = { { cert = pki.server_cert, key = pki.server_key } } }
  end)

  teardown(function()
    if srv then srv:stop() end
    if pki then pki:cleanup() end
  end)

  describe("connections", function()
    it("keeps N transfers in flight over N connections for the whole run", function()
      local s, loop = core.session(), core.loop()
      local results = run_all(loop, s, 100, 16, function(i)
        return { url = srv:url("/slow?s=0.02&t=flight-" .. i) }
      end)
      for i = 1, 100 do assert.equal(200, results[i][1], results[i][2]) end
      local log = srv:wait_log(100, "t=flight-")
      assert.equal(100, #log)
      assert.equal(16, (distinct(log, "connection")))
      assert.same({ requests = 100, connects = 16 }, s:stats())
      loop:close()
      s:close()
    end)

    it("shares a session's connections between blocking requests and loop transfers", function()
      local s, loop = core.session(), core.loop()
      run_all(loop, s, 8, 4, function(i) return { url = srv:url("/slow?s=0.02&t=mixed-a" .. i) } end)
      assert.equal(4, s:stats().connects)
      for i = 1, 5 do
        assert.equal(200, (s:request { url = srv:url("/json?t=mixed-b" .. i) }))
      end
      -- another loop, the same session: still the same connections
      local other = core.loop()
      run_all(other, s, 8, 4, function(i) return { url = srv:url("/json?t=mixed-c" .. i) } end)
      assert.same({ requests = 21, connects = 4 }, s:stats())
      local log = srv:wait_log(21, "t=mixed-")
      assert.equal(21, #log)
      assert.equal(4, (distinct(log, "connection")))
      loop:close()
      other:close()
      s:close()
    end)

    it("multiplexes HTTP/2 transfers over the connections it opened, not one per request",
      function()
        local s, loop = core.session { ca_file = pki.ca }, core.loop()
        local results = run_all(loop, s, 60, 16, function(i)
          return { url = srv:tls_url(1, "/slow?s=0.02&t=h2-" .. i) }
        end)
        for i = 1, 60 do assert.equal(200, results[i][1], results[i][2]) end
        local log = srv:wait_log(60, "t=h2-")
        assert.equal(60, #log)
        for _, e in ipairs(log) do assert.equal("HTTP/2.0", e.protocol) end
        local conns = distinct(log, "connection")
        assert.is_true(conns <= 16, conns .. " connections")
        assert.equal(conns, s:stats().connects)
        -- and blocking requests of the session reuse them
        assert.equal(200, (s:request { url = srv:tls_url(1, "/json?t=h2-block") }))
        assert.equal(conns, s:stats().connects)
        loop:close()
        s:close()
      end)

    it("keeps N connections over TLS with HTTP/1.1 (http2 = false)", function()
      local s, loop = core.session { ca_file = pki.ca, http2 = false }, core.loop()
      run_all(loop, s, 40, 8, function(i) return { url = srv:tls_url(1, "/slow?s=0.02&t=h1tls-" .. i) } end)
      local log = srv:wait_log(40, "t=h1tls-")
      assert.equal(40, #log)
      assert.equal("HTTP/1.1", log[1].protocol)
      assert.equal(8, (distinct(log, "connection")))
      assert.same({ requests = 40, connects = 8 }, s:stats())
      loop:close()
      s:close()
    end)
  end)

  it("runs transfers of several sessions on one loop, each with its own options", function()
    local small = core.session { max_response_size = 2000, user_agent = "small/1" }
    local big = core.session { user_agent = "big/1" }
    local loop = core.loop()
    local a = assert(loop:start(small, { url = srv:url("/bytes?n=5000") }))
    local b = assert(loop:start(big, { url = srv:url("/bytes?n=5000") }))
    local c = assert(loop:start(small, { url = srv:url("/echo") }))
    local d = assert(loop:start(big, { url = srv:url("/echo") }))
    assert.equal(4, loop:count())
    while loop:count() > 0 do loop:run(1) end
    local _, _, kind = a:result()
    assert.equal("too_large", kind)
    assert.equal(5000, #select(3, b:result()))
    assert.equal("small/1", cjson.decode(select(3, c:result())).headers["user-agent"])
    assert.equal("big/1", cjson.decode(select(3, d:result())).headers["user-agent"])
    assert.equal(2, big:stats().requests)
    assert.equal(2, small:stats().requests)
    loop:close()
    small:close()
    big:close()
  end)

  describe("run", function()
    it("returns what finished during the call, possibly nothing", function()
      local s, loop = core.session(), core.loop()
      local slow = assert(loop:start(s, { url = srv:url("/slow?s=1") }))
      assert.same({}, loop:run(0))
      assert.is_false(slow:done())
      assert.same({ nil, "transfer is still running", "busy" }, { slow:result() })
      local fast = assert(loop:start(s, { url = srv:url("/json") }))
      local done = {}
      while #done == 0 do done = loop:run(5) end
      assert.same({ fast }, done)
      assert.is_true(fast:done())
      assert.equal(200, (fast:result()))
      assert.equal(1, loop:count())
      done = {}
      while #done == 0 do done = loop:run(5) end
      assert.same({ slow }, done)
      assert.equal("late\n", select(3, slow:result()))
      assert.equal(0, loop:count())
      assert.same({}, loop:run(0.01))  -- nothing running: it only waits
      loop:close()
      s:close()
    end)

    it("keeps a transfer's result until asked, however often", function()
      local s, loop = core.session(), core.loop()
      local x = assert(loop:start(s, { url = srv:url("/json"), method = "POST", body = "b" }))
      while not x:done() do loop:run(1) end
      local st, h, body = x:result()
      assert.equal(200, st)
      assert.same({ st, h, body }, { x:result() })
      loop:close()
      assert.same({ st, h, body }, { x:result() })
      s:close()
    end)

    it("runs on_progress inside run, and an error in it aborts only that transfer", function()
      local s, loop = core.session(), core.loop()
      local inside, calls = false, 0
      local ok = assert(loop:start(s, { url = srv:url("/bytes?n=200000"),
        on_progress = function() calls = calls + 1 assert(inside) end }))
      local bad = assert(loop:start(s, { url = srv:url("/bytes?n=200000"),
        on_progress = function(r) if r > 0 then error("enough") end end }))
      inside = true
      while loop:count() > 0 do loop:run(1) end
      inside = false
      assert.equal(200, (ok:result()))
      assert.is_true(calls > 0)
      local _, msg, kind, sent = bad:result()
      assert.matches("enough", msg)
      assert.equal("aborted", kind)
      assert.is_true(sent)
      loop:close()
      s:close()
    end)

    it("refuses to be re-entered from an on_progress (the transfer ends aborted)", function()
      local s, loop = core.session(), core.loop()
      local calls = {
        function() loop:run(0) end,
        function() loop:start(s, { url = srv:url("/json") }) end,
        function() loop:close() end,
        function() s:close() end,
        function() s:request { url = srv:url("/json") } end,
      }
      local xs = {}
      for i, f in ipairs(calls) do
        xs[i] = assert(loop:start(s, { url = srv:url("/json"), on_progress = f }))
      end
      while loop:count() > 0 do loop:run(1) end
      for i, x in ipairs(xs) do
        local _, msg, kind = x:result()
        assert.equal("aborted", kind, "call " .. i)
        assert.matches("busy", msg)
      end
      assert.is_false(s:is_closed())
      assert.equal(200, (s:request { url = srv:url("/json") }))
      loop:close()
      s:close()
    end)

    it("lets an on_progress drive another loop, for another session", function()
      local s, s2, loop, other = core.session(), core.session(), core.loop(), core.loop()
      local inner
      local x = assert(loop:start(s, { url = srv:url("/json"), on_progress = function()
        if inner then return end
        inner = assert(other:start(s2, { url = srv:url("/json") }))
        while not inner:done() do other:run(1) end
      end }))
      while not x:done() do loop:run(1) end
      assert.equal(200, (x:result()))
      assert.equal(200, (inner:result()))
      loop:close()
      other:close()
      s:close()
      s2:close()
    end)
  end)

  describe("cancel", function()
    it("stops a running transfer: nil, 'cancelled', 'aborted', sent", function()
      local s, loop = core.session(), core.loop()
      local x = assert(loop:start(s, { url = srv:url("/slow?s=5") }))
      local never = assert(loop:start(s, { url = srv:url("/slow?s=5") }))
      assert.is_true(never:cancel())  -- before any run: nothing was sent
      assert.same({ nil, "cancelled", "aborted", false }, { never:result() })
      for _ = 1, 20 do loop:run(0.01) end
      assert.is_true(x:cancel())
      assert.is_false(x:cancel())
      assert.same({ nil, "cancelled", "aborted", true }, { x:result() })
      assert.equal(0, loop:count())
      assert.equal(2, s:stats().requests)
      -- the session goes on
      assert.equal(200, (s:request { url = srv:url("/json") }))
      loop:close()
      s:close()
    end)

    it("from an on_progress, ends the transfer when libcurl returns, among run's results",
      function()
        local s, loop = core.session(), core.loop()
        local x
        x = assert(loop:start(s, { url = srv:url("/trickle?n=50&s=0.05"),
          on_progress = function(r) if r > 0 then x:cancel() end end }))
        local done = {}
        while #done == 0 do done = loop:run(5) end
        assert.same({ x }, done)
        assert.same({ nil, "cancelled", "aborted", true }, { x:result() })
        loop:close()
        s:close()
      end)

    it("leaves a finished transfer as it is", function()
      local s, loop = core.session(), core.loop()
      local x = assert(loop:start(s, { url = srv:url("/json") }))
      while not x:done() do loop:run(1) end
      assert.is_false(x:cancel())
      assert.equal(200, (x:result()))
      loop:close()
      s:close()
    end)
  end)

  describe("lifecycle", function()
    it("ends a closed session's transfers with kind closed", function()
      local s, loop = core.session(), core.loop()
      local x = assert(loop:start(s, { url = srv:url("/slow?s=5") }))
      local y = assert(loop:start(s, { url = srv:url("/json") }))
      loop:run(0.05)
      s:close()
      assert.equal(0, loop:count())
      local _, msg, kind, sent = x:result()
      assert.same({ "session is closed", "closed", true }, { msg, kind, sent })
      assert.is_true(x:done() and y:done())
      assert.same({ nil, "session is closed", "closed", false },
        { loop:start(s, { url = srv:url("/json") }) })
      assert.same({}, loop:run(0))
      loop:close()
    end)

    it("cancels what runs when closed; close is idempotent; a closed loop raises", function()
      local s, loop = core.session(), core.loop()
      local x = assert(loop:start(s, { url = srv:url("/slow?s=5") }))
      assert.matches("open, 1 running", tostring(loop))
      loop:close()
      loop:close()
      assert.matches("closed", tostring(loop))
      assert.same({ nil, "cancelled", "aborted", false }, { x:result() })
      assert.equal(0, loop:count())
      assert.has_error(function() loop:run(0) end, "loop is closed (run)")
      assert.has_error(function() loop:start(s, { url = srv:url("/json") }) end,
        "loop is closed (start)")
      assert.equal(200, (s:request { url = srv:url("/json") }))
      s:close()
    end)

    it("frees everything whatever is collected first, at any moment", function()
      local weak = setmetatable({}, { __mode = "k" })
      do -- a loop dropped while its transfers run: they end cancelled
        local kept
        do
          local s, loop = core.session(), core.loop()
          kept = assert(loop:start(s, { url = srv:url("/slow?s=5") }))
          loop:run(0.02)
          weak[s], weak[loop] = true, true
        end
        collectgarbage()
        collectgarbage()
        assert.same({ nil, "cancelled", "aborted", true }, { kept:result() })
        weak[kept] = true
      end
      do -- transfers and their session dropped while running: the loop still returns them
        local loop = core.loop()
        do
          local s = core.session()
          for i = 1, 5 do weak[assert(loop:start(s, { url = srv:url("/json?gc=" .. i) }))] = true end
          weak[s] = true
        end
        collectgarbage()
        collectgarbage()
        local n = 0
        while loop:count() > 0 do
          for _, x in ipairs(loop:run(1)) do
            assert.equal(200, (x:result()))
            n = n + 1
          end
        end
        assert.equal(5, n)
        weak[loop] = true
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(weak), "something was not collected")
    end)

    it("raises on misuse", function()
      local s, loop = core.session(), core.loop()
      assert.has_error(function() loop:start() end)
      assert.has_error(function() loop:start({}, { url = srv:url("/json") }) end)
      assert.has_error(function() loop:start(s) end)
      assert.has_error(function() loop:start(s, { url = "not a url" }) end)
      assert.has_error(function() loop:start(s, { url = srv:url("/json"), timeout = -1 }) end)
      assert.has_error(function() loop:run(-1) end)
      assert.has_error(function() loop:run("soon") end)
      assert.has_error(function() loop.run({}) end)
      assert.equal(0, loop:count())
      loop:close()
      s:close()
    end)
  end)
end)
