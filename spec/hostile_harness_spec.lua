-- The hostile-server harness itself (spec/support/hostile.lua), checked with plain LuaSocket so
-- that what the other hostile specs build on does what it says. Runs under Lua 5.4 and LuaJIT.

local socket = require("socket")
local hostile = require("support.hostile")

-- Connects, sends `request` (when given), reads until the server closes or resets; returns
-- what came, and the socket's error ("closed", or the reset's message).
local function exchange(port, request, timeout)
  local c = assert(socket.tcp())
  c:settimeout(timeout or 5)
  assert(c:connect("127.0.0.1", port))
  if request then assert(c:send(request)) end
  local data, err, partial = c:receive("*a")
  c:close()
  return data or partial, err
end

local GET = "GET /x?y=1 HTTP/1.1\r\nHost: h\r\n\r\n"

describe("the hostile server harness #luajit", function()
  local h
  after_each(function()
    if h then h:stop() end
    h = nil
  end)

  it("sends exact bytes after reading the request, then closes", function()
    h = hostile.start(hostile.once("HTTP/1.1 200 OK\r\nX-Raw:\0\r\n\r\nbody"))
    assert.are.equal("HTTP/1.1 200 OK\r\nX-Raw:\0\r\n\r\nbody", exchange(h.port, GET))
    local reqs = h:requests()
    assert.are.equal(1, #reqs)
    assert.are.equal("GET", reqs[1].method)
    assert.are.equal("/x?y=1", reqs[1].target)
    assert.are.equal("/x", reqs[1].path)
    assert.are.equal("h", reqs[1].headers.host)
    assert.are.equal(GET, reqs[1].raw)
  end)

  it("records request bodies by Content-Length and chunked, per connection", function()
    h = hostile.start(hostile.always(hostile.response{ body = "ok" }))
    local c = assert(socket.tcp())
    c:settimeout(5)
    assert(c:connect("127.0.0.1", h.port))
    c:send("POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    assert.are.equal("HTTP/1.1 200 OK", c:receive("*l"))
    c:send("PUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    local reqs = h:wait_requests(2)
    c:close()
    assert.are.equal(2, #reqs)
    assert.are.same({ 1, 1, "hello" }, { reqs[1].conn, reqs[1].n, reqs[1].body })
    assert.are.same({ 1, 2, "abcde" }, { reqs[2].conn, reqs[2].n, reqs[2].body })
    local conns = h:wait_ended(1)
    assert.are.equal("peer-closed", conns[1].how)
    assert.are.equal(2, conns[1].requests)
  end)

  it("answers after the head of a request, leaving its body unread", function()
    h = hostile.start{ { expect = "head" }, { send = "HTTP/1.1 413 Too Big\r\n\r\n" }, { close = true } }
    local head = "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n"
    local data = exchange(h.port, head .. "0123")
    assert.are.equal("HTTP/1.1 413 Too Big\r\n\r\n", data)
    local reqs = h:wait_requests(1)
    assert.are.equal(1, #reqs)
    assert.are.equal("/up", reqs[1].path)
    assert.are.equal(head, reqs[1].raw)
    assert.are.equal("", reqs[1].body)
  end)

  it("plays a keep-alive sequence and gives each connection its own script", function()
    h = hostile.start{ connections = {
      { "request", { send = hostile.response{ body = "one" } }, "request", { close = true } },
      hostile.always(hostile.response{ body = "two" }) } }
    local c = assert(socket.tcp())
    c:settimeout(5)
    assert(c:connect("127.0.0.1", h.port))
    c:send(GET)
    local first = c:receive(#hostile.response{ body = "one" })
    assert.matches("one$", first)
    c:send(GET)
    local _, err, rest = c:receive("*a")
    assert.are.equal("", rest)
    assert.are.equal("closed", err)
    c:close()
    assert.matches("two$", exchange(h.port, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"))
    local reqs = h:wait_requests(3)
    assert.are.same({ 1, 1, 2 }, { reqs[1].conn, reqs[2].conn, reqs[3].conn })
  end)

  it("serves a second connection while the first one is held", function()
    h = hostile.start{ connections = { { "request", { pause = 3 } }, hostile.once("HTTP/1.1 204 No\r\n\r\n") } }
    local held = assert(socket.tcp())
    held:settimeout(5)
    assert(held:connect("127.0.0.1", h.port))
    held:send(GET)
    h:wait_requests(1)
    local t0 = socket.gettime()
    assert.are.equal("HTTP/1.1 204 No\r\n\r\n", exchange(h.port, GET))
    assert.is_true(socket.gettime() - t0 < 2.5, "the second connection waited for the first")
    held:close()
  end)

  it("resets a connection (RST), which the peer sees as an error, not an end of stream", function()
    -- LuaSocket reports a reset as "closed": ask libcurl, which tells them apart
    local core = require("assesskit.core")
    local partial = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    h = hostile.start{ "request", { send = partial }, { pause = 0.2 }, { reset = true } }
    local s = core.session()
    local status, msg = s:request({ url = h:url("/") })
    assert.is_nil(status)
    assert.matches("reset", msg)
    assert.are.equal("reset", h:wait_ended(1)[1].how)
    h:stop()
    h = hostile.start{ "request", { send = partial }, { pause = 0.2 }, { close = true } }
    status, msg = s:request({ url = h:url("/") })
    s:close()
    assert.is_nil(status)
    assert.not_matches("reset", msg)
    assert.are.equal("closed", h:wait_ended(1)[1].how)
  end)

  it("drips bytes slowly", function()
    h = hostile.start{ "request", { drip = "abcdef", size = 2, every = 0.1 } }
    local c = assert(socket.tcp())
    c:settimeout(5)
    assert(c:connect("127.0.0.1", h.port))
    c:send(GET)
    local t0 = socket.gettime()
    assert.are.equal("ab", c:receive(2))
    assert.are.equal("abcdef", "ab" .. c:receive("*a"))
    assert.is_true(socket.gettime() - t0 >= 0.15)
    c:close()
  end)

  it("sends an endless stream up to its cap, and stops when the peer goes away", function()
    h = hostile.start{ "request", { prefix = "HTTP/1.1 200 OK\r\n", send = "X-A: b\r\n", forever = true,
      cap = 100000, seconds = 20 } }
    local data = exchange(h.port, GET)
    assert.are.equal("HTTP/1.1 200 OK\r\n", data:sub(1, 17))
    assert.is_true(#data >= 100000 and #data < 100000 + 70000, #data)
    h:stop()
    h = hostile.start{ "request", { send = "x", forever = true, seconds = 20 } }
    local c = assert(socket.tcp())
    c:settimeout(5)
    assert(c:connect("127.0.0.1", h.port))
    c:send(GET)
    assert(c:receive(1000))
    c:close()
    local conn = h:wait_ended(1, 10)[1]
    assert.matches("^send%-failed", conn.how)
  end)

  it("routes a request to the steps of the longest matching prefix", function()
    h = hostile.start{ loop = true, { route = {
      ["/auth"] = { { send = hostile.response{ body = "token" } } },
      ["POST /auth/x"] = { { send = hostile.response{ body = "post x" } } },
      ["*"] = { { send = hostile.response{ status = 404, body = "none" } } } } } }
    assert.matches("token$", exchange(h.port, "GET /auth/y HTTP/1.1\r\nConnection: close\r\n\r\n"))
    local c = assert(socket.tcp())
    c:settimeout(5)
    assert(c:connect("127.0.0.1", h.port))
    c:send("POST /auth/x HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert.matches("post x", c:receive(#hostile.response{ body = "post x" }))
    c:send("GET /other HTTP/1.1\r\n\r\n")
    assert.matches("^HTTP/1.1 404", c:receive("*l"))
    c:close()
  end)

  it("records when the peer closes while the server waits, and an incomplete request", function()
    h = hostile.start{ { wait_close = 5 } }
    local c = assert(socket.tcp())
    c:settimeout(5)
    assert(c:connect("127.0.0.1", h.port))
    c:send("GET / HTTP/1.1\r\n")
    socket.sleep(0.1)
    c:close()
    assert.are.equal("peer-closed", h:wait_ended(1)[1].how)
    h:stop()
    h = hostile.start{ "request", { close = true } }
    c = assert(socket.tcp())
    c:settimeout(5)
    assert(c:connect("127.0.0.1", h.port))
    c:send("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    socket.sleep(0.1)
    c:close()
    local conn = h:wait_ended(1)[1]
    assert.are.equal("peer-closed", conn.how)
    assert.are.equal(0, conn.requests)
    assert.are.equal("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", conn.partial)
  end)

  it("builds responses with a Content-Length unless the headers frame them", function()
    assert.are.equal("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", hostile.response{ body = "ok" })
    assert.are.equal("HTTP/1.1 429 Status\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
      hostile.response{ status = 429, headers = { "Retry-After: 1" } })
    assert.are.equal("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      hostile.response{ headers = { "Transfer-Encoding: chunked" }, body = "0\r\n\r\n" })
  end)
end)
