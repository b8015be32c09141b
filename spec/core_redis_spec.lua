-- Redis connections in assesskit.core (libhiredis): replies, failures, deadlines, misuse.
-- Runs under Lua 5.4 and LuaJIT against a redis-server of its own (support.redis) and raw
-- loopback sockets that misbehave.

local core = require "assesskit.core"
local socket = require "socket"
local redis = require "support.redis"
local sys = require "support.sys"

describe("assesskit.core redis connections #luajit", function()
  local srv

  setup(function() srv = redis.start() end)
  teardown(function() if srv then srv:stop() end end)

  local function connect(opts)
    opts = opts or {}
    opts.host = opts.host or "127.0.0.1"
    opts.port = opts.port or srv.port
    return assert(core.redis_connect(opts))
  end

  -- A listening socket that never answers by itself; `peer()` accepts the connection the
  -- core made (the kernel completed it from the backlog).
  local function raw_server()
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:settimeout(2)
    return { port = tonumber(port), peer = function() return assert(s:accept()) end,
      close = function() s:close() end }
  end

  it("sends commands and converts every kind of reply", function()
    local c = connect()
    assert.equal("PONG", c:command("PING"))
    assert.equal("OK", c:command("SET", "k", "v\0with nul"))
    assert.equal("v\0with nul", c:command("GET", "k"))
    assert.is_false(c:command("GET", "missing"))
    assert.equal(3, c:command("INCRBY", "n", 3))
    assert.same({ "v\0with nul", false }, c:command("MGET", "k", "missing"))
    assert.same({ 1, { "a", { 2, false } }, "s" },
      c:command("EVAL", "return {1, {'a', {2, false}}, 's'}", 0))
    assert.same({}, c:command("LRANGE", "nolist", 0, -1))
    c:close()
  end)

  it("sends whole numbers as integers and others with their digits", function()
    local c = connect()
    c:command("SET", "big", 1700000000000)
    assert.equal("1700000000000", c:command("GET", "big"))
    c:command("SET", "half", 0.5)
    assert.equal("0.5", c:command("GET", "half"))
    c:command("SET", "neg", -42)
    assert.equal("-42", c:command("GET", "neg"))
    c:close()
  end)

  it("returns an error reply as nil, message, 'redis' and keeps the connection", function()
    local c = connect()
    local ok, msg, kind = c:command("NOSUCHCOMMAND", "x")
    assert.is_nil(ok)
    assert.matches("unknown command", msg)
    assert.equal("redis", kind)
    assert.is_false(c:is_closed())
    assert.equal("PONG", c:command("PING"))
    -- inside an array (EXEC of a transaction with a failing command): {err = message}
    assert.equal("OK", c:command("MULTI"))
    assert.equal("QUEUED", c:command("SET", "s", "x"))
    assert.equal("QUEUED", c:command("INCR", "s"))
    local res = c:command("EXEC")
    assert.equal("OK", res[1])
    assert.matches("not an integer", res[2].err)
    c:close()
  end)

  it("pipelines commands in one call, replies in order, errors in place", function()
    local c = connect()
    local res = assert(c:pipeline { { "SET", "p", "1" }, { "INCR", "p" }, { "BADCMD" },
      { "GET", "p" }, { "GET", "nope" } })
    assert.equal(5, #res)
    assert.equal("OK", res[1])
    assert.equal(2, res[2])
    assert.matches("unknown command", res[3].err)
    assert.equal("2", res[4])
    assert.is_false(res[5])
    assert.equal("PONG", c:command("PING"))
    c:close()
  end)

  it("fails to connect with kind 'network' when nothing listens", function()
    local ok, msg, kind = core.redis_connect { host = "127.0.0.1", port = sys.free_port() }
    assert.is_nil(ok)
    assert.matches("cannot connect to Redis", msg)
    assert.equal("network", kind)
  end)

  it("times out a server that does not answer, closes the connection and says so later", function()
    local raw = raw_server()
    local c = connect { port = raw.port, timeout = 0.2 }
    local ok, msg, kind = c:command("PING")
    assert.is_nil(ok)
    assert.matches("timed out", msg)
    assert.equal("timeout", kind)
    assert.is_true(c:is_closed())
    assert.same({ nil, "connection is closed", "closed" }, { c:command("PING") })
    raw.close()
  end)

  it("keeps one deadline for a whole call whatever the server trickles", function()
    local raw = raw_server()
    local c = connect { port = raw.port, timeout = 0.3 }
    local peer = raw.peer()
    -- a bulk string announced but never finished: the reader keeps waiting for more
    peer:send("$100\r\nabc")
    local t0 = socket.gettime()
    local ok, _, kind = c:command("GET", "x")
    assert.is_nil(ok)
    assert.equal("timeout", kind)
    assert.is_true(socket.gettime() - t0 < 2)
    peer:close()
    raw.close()
  end)

  it("reports a closed connection as 'network' and never dies of SIGPIPE", function()
    local raw = raw_server()
    local c = connect { port = raw.port, timeout = 2 }
    raw.peer():close()
    -- several megabytes to a peer that has gone: the writes after its reset fail (EPIPE)
    local ok, msg, kind = c:pipeline { { "SET", "a", string.rep("x", 4 * 1024 * 1024) },
      { "SET", "b", string.rep("y", 4 * 1024 * 1024) } }
    assert.is_nil(ok)
    assert.equal("network", kind)
    assert.matches("Redis", msg)
    assert.is_true(c:is_closed())
    raw.close()
  end)

  it("reports what is not RESP as 'protocol'", function()
    local raw = raw_server()
    local c = connect { port = raw.port }
    local peer = raw.peer()
    peer:send("this is not redis\r\n")
    local ok, msg, kind = c:command("PING")
    assert.is_nil(ok)
    assert.matches("protocol", msg)
    assert.equal("protocol", kind)
    peer:close()
    raw.close()
  end)

  it("caps what one call may receive with max_reply_size", function()
    local c = connect { max_reply_size = 1000 }
    assert.equal("OK", c:command("SET", "large", string.rep("z", 5000)))
    local ok, _, kind = c:command("GET", "large")
    assert.is_nil(ok)
    assert.equal("too_large", kind)
    assert.is_true(c:is_closed())
  end)

  it("loses its connection when Redis stops and connects again once it is back", function()
    local own = redis.start()
    local c = assert(core.redis_connect { host = "127.0.0.1", port = own.port })
    assert.equal("PONG", c:command("PING"))
    own:pause()
    local ok, _, kind = c:command("PING")
    assert.is_nil(ok)
    assert.equal("network", kind)
    local again, _, kind2 = core.redis_connect { host = "127.0.0.1", port = own.port }
    assert.is_nil(again)
    assert.equal("network", kind2)
    own:resume()
    c = assert(core.redis_connect { host = "127.0.0.1", port = own.port })
    assert.equal("PONG", c:command("PING"))
    c:close()
    own:stop()
  end)

  it("authenticates with AUTH like any command, and the password is in no message", function()
    local own = redis.start { user = "app", password = "s3cret-pw" }
    local c = assert(core.redis_connect { host = "127.0.0.1", port = own.port })
    local ok, msg, kind = c:command("AUTH", "app", "wrong-pw")
    assert.is_nil(ok)
    assert.equal("redis", kind)
    assert.is_nil(msg:find("wrong-pw", 1, true))
    assert.equal("OK", c:command("AUTH", "app", "s3cret-pw"))
    assert.equal("PONG", c:command("PING"))
    assert.is_nil(tostring(c):find("s3cret", 1, true))
    c:close()
    own:stop()
  end)

  it("closes idempotently", function()
    local c = connect()
    c:close()
    c:close()
    assert.is_true(c:is_closed())
    assert.matches("closed", tostring(c))
    assert.same({ nil, "connection is closed", "closed" }, { c:pipeline { { "PING" } } })
  end)

  it("raises on misuse, before anything is sent, even on a closed connection", function()
    local c = connect()
    assert.has_error(function() c:command() end)
    assert.has_error(function() c:command("SET", "k", {}) end)
    assert.has_error(function() c:command("SET", "k", true) end)
    assert.has_error(function() c:pipeline {} end)
    assert.has_error(function() c:pipeline { "PING" } end)
    assert.has_error(function() c:pipeline { {} } end)
    assert.has_error(function() c:pipeline { { "SET", "k", false } } end)
    assert.has_error(function() core.redis_connect { host = "127.0.0.1", prot = 1 } end,
      "bad argument #1 (unknown option 'prot')")
    assert.has_error(function() core.redis_connect { port = 6379 } end)
    assert.has_error(function() core.redis_connect { host = "h", port = 70000 } end)
    assert.has_error(function() core.redis_connect { host = "h", timeout = 0 } end)
    c:close()
    assert.has_error(function() c:command() end)
    assert.has_error(function() c:pipeline { { "SET", "k", {} } } end)
    -- the connection was usable until closed: misuse sent nothing
    local d = connect()
    assert.equal("PONG", d:command("PING"))
    d:close()
  end)
end)
