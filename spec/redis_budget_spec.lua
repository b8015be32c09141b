-- The rate budget of assesskit.redis, through its interface (acquire, release, pause,
-- configure): several budgets of one credential on separate stores stand for the processes
-- of a fleet. The fleet specs (spec/redis_fleet_spec.lua) check the same with real requests.

local redis_store = require("assesskit.redis")
local redis = require("support.redis")
local socket = require("socket")

local clock = socket.gettime

-- Takes a permit, waiting as the budget says (at most `limit` seconds).
local function take(b, limit)
  local deadline = clock() + (limit or 2)
  while true do
    local p, wait = b:acquire(clock)
    if p then return p end
    if clock() + wait > deadline then return nil end
    socket.sleep(wait)
  end
end

describe("assesskit.redis budget #luajit", function()
  local srv

  setup(function() srv = redis.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:cli("FLUSHALL") end)

  local function fleet(n, opts)
    local out = {}
    for i = 1, n do out[i] = redis_store.new { url = srv:url() }:budget("cred", opts) end
    return out
  end

  it("holds every process during a pause one of them set", function()
    local b = fleet(3)
    local p = assert(take(b[1]))
    b[1]:release(p, "pushback")
    local till = b[1]:pause(0.6, clock)
    socket.sleep(0.03) -- the others look at the shared budget at most every 20 ms
    for i = 2, 3 do
      local none, wait = b[i]:acquire(clock)
      assert.is_nil(none)
      assert.is_true(wait > 0.4 and wait <= 0.6, tostring(wait))
    end
    -- the one that waited the pause out itself goes on; the others once it has passed
    local q = assert(b[1]:acquire(clock, till))
    b[1]:release(q, "ok")
    socket.sleep(till - clock() + 0.03)
    assert.truthy(b[2]:acquire(clock))
  end)

  it("keeps a longer pause already running", function()
    local b = fleet(2)
    b[1]:pause(1, clock)
    b[2]:pause(0.2, clock)
    assert.is_true(b[2]:paused_until() - clock() > 0.8)
  end)

  it("makes max_rate a fleet-wide bucket: no one-second window over max_rate * 1.1", function()
    local b = fleet(4, { max_rate = 50 })
    local times, next_try = {}, { 0, 0, 0, 0 }
    local t0 = clock()
    while clock() - t0 < 2.5 do
      for i = 1, 4 do
        if clock() >= next_try[i] then
          local p, wait = b[i]:acquire(clock)
          if p then
            times[#times + 1] = clock()
            b[i]:release(p, "ok")
          else
            next_try[i] = clock() + wait
          end
        end
      end
      socket.sleep(0.001)
    end
    local most = 0
    for a = 1, #times do
      local n = 0
      for z = a, #times do if times[z] - times[a] < 1 then n = n + 1 end end
      if n > most then most = n end
    end
    assert.is_true(most <= 55, "at most 55 in a second, got " .. most)
    assert.is_true(#times >= 100, "about 50/s for 2.5 s, got " .. #times) -- and the rate is used
  end)

  it("cuts the fleet's in-flight limit on a pushback, once per round, and lifts it back", function()
    local b = fleet(2)
    local held = {}
    for _ = 1, 4 do held[#held + 1] = assert(take(b[1])) end
    for _ = 1, 4 do held[#held + 1] = assert(take(b[2])) end
    b[2]:refresh(clock) -- both have published their counts (8 in flight)
    b[1]:refresh(clock)
    b[1]:release(table.remove(held, 1), "pushback")
    b[2]:release(table.remove(held), "pushback") -- same round: no second cut
    assert.equal(4, b[2]:state().limit)
    b[1]:refresh(clock)
    assert.equal(4, b[1]:state().limit)
    -- 6 still in flight, limit 4: no slot for anyone
    assert.is_nil((b[1]:acquire(clock)))
    assert.is_nil((b[2]:acquire(clock)))
    -- answers: slots free up, and the limit grows back to where it was cut (8) and is lifted
    for _ = 1, 3 do b[1]:release(table.remove(held, 1), "ok") end
    for _ = 1, 3 do b[2]:release(table.remove(held), "ok") end
    local n = 0
    while b[1]:state().limit and n < 200 do
      local p = assert(take(b[1]))
      b[1]:release(p, "ok")
      n = n + 1
    end
    assert.is_nil(b[1]:state().limit)
    b[2]:refresh(clock)
    assert.is_nil(b[2]:state().limit)
  end)

  it("works on a local budget while Redis is away", function()
    local own = redis.start()
    local events = {}
    local b = redis_store.new { url = own:url(), on_event = function(e) events[#events + 1] = e.event end }
      :budget("cred", { max_rate = 20 })
    assert.truthy(take(b))
    own:pause()
    local t0, got = clock(), 0
    while clock() - t0 < 0.5 do
      local p = take(b, 0.5)
      if p then got = got + 1 b:release(p, "ok") end
    end
    assert.is_true(got >= 5 and got <= 14, tostring(got)) -- about 20/s, locally
    assert.same({ "redis_down" }, events)
    b:pause(0.3, clock)
    assert.is_nil((b:acquire(clock)))
    own:stop()
  end)
end)
