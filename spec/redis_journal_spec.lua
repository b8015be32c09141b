-- The fleet journal of assesskit.redis through its interface (claim, finish, resolve, sync,
-- close): journals of one job on separate stores stand for the processes of a fleet. The
-- crash specs with client:map and SIGKILL are in spec/redis_fleet_spec.lua.

local redis_store = require("assesskit.redis")
local errors = require("assesskit.errors")
local redis = require("support.redis")
local socket = require("socket")

describe("assesskit.redis journal #luajit", function()
  local srv

  setup(function() srv = redis.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:cli("FLUSHALL") end)

  local function open(name, opts, url)
    return assert(redis_store.new { url = url or srv:url() }:journal(name or "job", opts))
  end

  it("gives each item to one process; the others wait, then read its result", function()
    local a, b = open(), open()
    assert.equal("run", a:claim("ada", 1))
    assert.equal("busy", b:claim("ada", 1))
    assert.equal("run", b:claim("bob", 2))
    assert.is_true(a:finish("ada", 1, { id = 7, email = "ada@x" }))
    assert.is_true(b:finish("bob", 2, { id = 8 }))
    local state, rec = b:claim("ada", 1)
    assert.equal("done", state)
    assert.same({ id = 7, email = "ada@x" }, rec.value)
    state, rec = a:claim("bob", 2)
    assert.equal("done", state)
    assert.same({ id = 8 }, rec.value)
    assert.is_true(a:sync())
  end)

  it("refuses an index with another key, or a key with another index", function()
    local a = open()
    assert.equal("run", a:claim("ada", 1))
    local none, err = a:claim("eve", 1)
    assert.is_nil(none)
    assert.equal("validation", err.kind)
    assert.matches('item 1 has the key "ada"', err.message)
    none, err = open():claim("ada", 2)
    assert.is_nil(none)
    assert.matches("is item 1's in the journal", err.message)
  end)

  it("takes over an item whose holder died once its lease runs out, as ambiguous", function()
    local dead, b = open("job", { lease = 0.3 }), open("job", { lease = 0.3 })
    assert.equal("run", dead:claim("ada", 1)) -- and never a word more from it
    assert.equal("busy", b:claim("ada", 1))
    socket.sleep(0.4)
    local state, rec = b:claim("ada", 1)
    assert.equal("ambiguous", state)
    assert.equal("started", rec.state)
    -- reconcile found it did not land: b runs it
    assert.is_true(b:resolve("ada", 1, nil))
    assert.equal("busy", open():claim("ada", 1)) -- b still holds it
    assert.is_true(b:finish("ada", 1, { id = 1 }))
    -- the dead one's late outcome does not overwrite b's
    assert.is_true(dead:finish("ada", 1, { id = 999 }))
    assert.same({ id = 1 }, select(2, open():claim("ada", 1)).value)
  end)

  it("reports an outcome recorded too late, after another process took the item over", function()
    local slow, b = open("job", { lease = 0.2 }), open("job", { lease = 0.2 })
    assert.equal("run", slow:claim("ada", 1))
    socket.sleep(0.3)
    assert.equal("ambiguous", (b:claim("ada", 1)))
    local ok, err = slow:finish("ada", 1, { id = 5 })
    assert.is_nil(ok)
    assert.equal("ambiguous", err.kind)
    assert.matches("taken over", err.message)
  end)

  it("records what reconcile found as done", function()
    local dead, b = open("job", { lease = 0.1 }), open()
    assert.equal("run", dead:claim("ada", 1))
    socket.sleep(0.2)
    assert.equal("ambiguous", (b:claim("ada", 1)))
    assert.is_true(b:resolve("ada", 1, { id = 3 }))
    local state, rec = open():claim("ada", 1)
    assert.equal("done", state)
    assert.same({ id = 3 }, rec.value)
  end)

  it("keeps the leases of items in flight while the holder goes on using the journal", function()
    local a, b = open("job", { lease = 0.3 }), open("job", { lease = 0.3 })
    assert.equal("run", a:claim("ada", 1))
    for _ = 1, 8 do
      socket.sleep(0.1)
      assert(a:sync())
      assert.equal("busy", b:claim("ada", 1))
    end
  end)

  it("replays failures, runs retryable ones again, and treats a lost write answer as ambiguous", function()
    local a = open()
    assert.equal("run", a:claim("k1", 1))
    a:finish("k1", 1, nil, errors.new { kind = "http", status = 422, message = "bad email" })
    assert.equal("run", a:claim("k2", 2))
    a:finish("k2", 2, nil, errors.new { kind = "http", status = 503, retryable = true })
    assert.equal("run", a:claim("k3", 3))
    a:finish("k3", 3, nil, errors.new { kind = "network", method = "POST", sent = true })
    assert.equal("run", a:claim("k4", 4))
    a:finish("k4", 4, nil, "raised: boom")
    local b = open()
    local state, rec = b:claim("k1", 1)
    assert.equal("failed", state)
    assert.equal(422, rec.err.status)
    assert.is_true(errors.is(rec.err))
    assert.equal("run", b:claim("k2", 2))
    state, rec = b:claim("k3", 3)
    assert.equal("ambiguous", state)
    assert.equal("network", rec.err.kind)
    state, rec = b:claim("k4", 4)
    assert.equal("failed", state)
    assert.equal("raised: boom", rec.err)
    assert.equal("run", b:claim("k1", 1, { retry_failed = true }))
  end)

  it("never runs again a result it could not record, not even with retry_failed", function()
    local a = open()
    assert.equal("run", a:claim("ada", 1))
    local ok, err = a:finish("ada", 1, { id = 7, score = 0 / 0 }) -- JSON has no NaN
    assert.is_nil(ok)
    assert.equal("validation", err.kind)
    assert.matches("cannot be recorded", err.message)
    -- the item was done (its write made): running it again could make it twice
    for _, opts in ipairs({ {}, { retry_failed = true } }) do
      local state, rec = open():claim("ada", 1, opts)
      assert.equal("failed", state)
      assert.matches("cannot be recorded", rec.err.message)
    end
  end)

  it("gives recorded numbers back exactly as they were: every digit, integer or float", function()
    local value = {
      id = 123456789012345, stamp = 1733480000123456, neg = -987654321098765, small = 42,
      sum = 0.1 + 0.2, third = 1 / 3, score = 80.0, list = { 4503599627370497, 0.1 + 0.7 },
    }
    local a = open()
    assert.equal("run", a:claim("a", 1))
    assert(a:finish("a", 1, value))
    assert.equal("run", a:claim("c", 3))
    a:close() -- c started, its outcome unknown: the next holder reconciles it
    local b = open()
    assert.equal("ambiguous", (b:claim("c", 3)))
    assert(b:resolve("c", 3, { id = 123456789012346 }))
    local function same(want, got, where)
      if type(want) == "table" then
        for k, v in pairs(want) do same(v, got[k], where .. "." .. tostring(k)) end
        return
      end
      assert.equal(want, got, where .. ": " .. string.format("%.17g", want) .. " came back as "
        .. tostring(got))
      if math.type then assert.equal(math.type(want), math.type(got), where) end
    end
    local state, rec = open():claim("a", 1)
    assert.equal("done", state)
    same(value, rec.value, "value")
    state, rec = open():claim("c", 3)
    assert.equal("done", state)
    same(123456789012346, rec.value.id, "resolved")
  end)

  it("gives a recorded JSON null (client.null) back as null, and nothing as nothing", function()
    local null = require("assesskit.client").null
    local a = open()
    assert.equal("run", a:claim("a", 1))
    assert(a:finish("a", 1, null))
    assert.equal("run", a:claim("b", 2))
    assert(a:finish("b", 2, nil))
    local state, rec = open():claim("a", 1)
    assert.equal("done", state)
    assert.equal(null, rec.value)
    state, rec = open():claim("b", 2)
    assert.equal("done", state)
    assert.is_nil(rec.value)
  end)

  it("refuses a record damaged in Redis instead of replaying it as a success", function()
    local a = open()
    for i, key in ipairs({ "k1", "k2", "k3", "k4", "k5" }) do
      assert.equal("run", a:claim(key, i))
      assert(a:finish(key, i, { id = i }))
    end
    local items = "assesskit:journal:job:items"
    srv:cli("HSET", items, "k1", 'failed {"i":1,"error":"boom"}') -- an error that is no error
    srv:cli("HSET", items, "k2", 'failed {"i":2}') -- a failure without its error
    srv:cli("HSET", items, "k3", "done {not json") -- a value cut short
    srv:cli("HSET", items, "k4", "finished {\"i\":4}") -- an unknown state
    srv:cli("HSET", items, "k5", 'done {"i":7,"value":1}') -- another item's record
    for i, key in ipairs({ "k1", "k2", "k3", "k4", "k5" }) do
      local state, err = open():claim(key, i)
      assert.is_nil(state, key .. " was taken as " .. tostring(state))
      assert.equal("validation", err.kind)
      assert.matches("corrupted", err.message)
    end
  end)

  it("lets go of what it holds when closed", function()
    local a, b = open(), open()
    assert.equal("run", a:claim("ada", 1))
    assert.is_true(a:close())
    assert.equal("ambiguous", (b:claim("ada", 1)))
  end)

  it("refuses to start without Redis, and stops when Redis goes away or forgets the job", function()
    local own = redis.start()
    local port = own.port
    own:pause()
    local store = redis_store.new { url = "redis://127.0.0.1:" .. port }
    local none, err = store:journal("job")
    assert.is_nil(none)
    assert.equal("io", err.kind)
    assert.matches("Redis is unreachable", err.message)
    own:resume()
    local j = assert(store:journal("job"))
    assert.equal("run", j:claim("a", 1))
    own:pause()
    none, err = j:claim("b", 2)
    assert.is_nil(none)
    assert.equal("io", err.kind)
    assert.matches("stops taking items", err.message)
    own:resume() -- empty: it kept nothing
    local j2 = assert(redis_store.new { url = "redis://127.0.0.1:" .. port }:journal("job"))
    own:cli("DEL", "assesskit:journal:job:meta") -- forgotten under a running job
    none, err = j2:claim("c", 3)
    assert.is_nil(none)
    assert.matches("gone from Redis", err.message)
    own:stop()
  end)

  it("refuses to go on when Redis evicted the job's records but kept the job", function()
    -- what maxmemory with an allkeys-* policy does: whole keys go, any of them
    for _, gone in ipairs({ "items", "index" }) do
      srv:cli("FLUSHALL")
      local a = open()
      assert.equal("run", a:claim("ada", 1))
      assert(a:finish("ada", 1, { id = 1 }))
      srv:cli("DEL", "assesskit:journal:job:" .. gone)
      local state, err = open():claim("ada", 1)
      assert.is_nil(state, gone .. ": ada would be done again (" .. tostring(state) .. ")")
      assert.equal("io", err.kind)
      assert.matches("gone from Redis", err.message)
    end
  end)

  it("refuses a Redis that may evict the job's keys (maxmemory-policy allkeys-*)", function()
    srv:cli("CONFIG", "SET", "maxmemory", "100mb")
    srv:cli("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    local j, err = redis_store.new { url = srv:url() }:journal("job")
    srv:cli("CONFIG", "SET", "maxmemory-policy", "noeviction")
    srv:cli("CONFIG", "SET", "maxmemory", "0")
    assert.is_nil(j)
    assert.equal("io", err.kind)
    assert.matches("allkeys%-lru", err.message)
    assert(redis_store.new { url = srv:url() }:journal("job"))
  end)

  it("raises on misuse", function()
    local store = redis_store.new { url = srv:url() }
    assert.has_error(function() store:journal("") end)
    assert.has_error(function() store:journal("job", { leese = 3 }) end,
      "assesskit.redis:journal: unknown option 'leese' (known: lease)")
    assert.has_error(function() store:journal("job", { lease = 0 }) end)
    local j = assert(store:journal("job"))
    assert.has_error(function() j:claim(1, 1) end)
    assert.has_error(function() j:claim("a", 0) end)
  end)
end)
