-- assesskit.scheduler: tasks over one core.loop, against a real nginx on loopback (the core's
-- test locations: /json, /slow?s=). Orders of events, never timings.

local scheduler = require("assesskit.scheduler")
local core = require("assesskit.core")
local nginx = require("support.nginx")

describe("assesskit.scheduler #luajit", function()
  local srv, session

  setup(function()
    srv = nginx.start({ locations = nginx.core_locations })
    session = core.session()
  end)
  teardown(function()
    if session then session:close() end
    if srv then srv:stop() end
  end)

  it("runs a task's transfer on the loop: a slow answer does not hold the others", function()
    local s = scheduler.new()
    local order = {}
    local slow = s:spawn(function()
      local status, _, body = s:transfer(session, { url = srv:url("/slow?s=0.3") })
      order[#order + 1] = "slow"
      return status, body
    end)
    local fast = s:spawn(function()
      local status = s:transfer(session, { url = srv:url("/json") })
      order[#order + 1] = "fast"
      return status
    end)
    assert.same({ true, 200, "late\n" }, { s:join(slow) })
    assert.same({ true, 200 }, { s:join(fast) })
    assert.same({ "fast", "slow" }, order)
    s:close()
  end)

  it("wakes sleeping tasks in the order of their deadlines", function()
    local s = scheduler.new()
    local order = {}
    for _, d in ipairs({ 0.06, 0.02, 0.04, 0 }) do
      s:spawn(function()
        s:sleep(d)
        order[#order + 1] = d
      end)
    end
    assert.is_true(s:drive())
    assert.same({ 0, 0.02, 0.04, 0.06 }, order)
    s:close()
  end)

  it("tells its tasks apart from other coroutines: current() is nil outside them", function()
    local s = scheduler.new()
    assert.is_nil(scheduler.current())
    local inside, in_own
    local t = s:spawn(function()
      inside = scheduler.current()
      local co = coroutine.create(function() in_own = scheduler.current() or false end)
      coroutine.resume(co)
    end)
    s:join(t)
    assert.equal(s, inside)
    assert.is_false(in_own)
    assert.is_nil(scheduler.current())
    s:close()
  end)

  it("joins from a task by suspending it, and passes results and raised errors", function()
    local s = scheduler.new()
    local child = s:spawn(function(a, b)
      s:sleep(0.01)
      return a + b, "sum"
    end, 1, 2)
    local failing = s:spawn(function() error("no luck", 0) end)
    local parent = s:spawn(function()
      local ok, v, what = s:join(child)
      local ok2, err = s:join(failing)
      return ok, v, what, ok2, err
    end)
    assert.same({ true, true, 3, "sum", false, "no luck" }, { s:join(parent) })
    s:close()
  end)

  it("fails a task that yields a value of its own instead of passing it anywhere", function()
    local s = scheduler.new()
    local t = s:spawn(function() coroutine.yield("mine") end)
    local ok, err = s:join(t)
    assert.is_false(ok)
    assert.matches("yielded outside a coroutine of its own", err)
    s:close()
  end)

  it("wakes every task waiting on a condition when it is signalled", function()
    local s = scheduler.new()
    local cond = s:cond()
    local ready, woken = false, 0
    for _ = 1, 3 do
      s:spawn(function()
        while not ready do cond.wait() end
        woken = woken + 1
      end)
    end
    s:spawn(function()
      s:sleep(0.01)
      ready = true
      cond.signal()
    end)
    assert.is_true(s:drive())
    assert.equal(3, woken)
    s:close()
  end)

  it("drive returns false when every task waits for something that never comes", function()
    local s = scheduler.new()
    local cond = s:cond()
    s:spawn(function() cond.wait() end)
    assert.is_false(s:drive())
    s:close()
  end)

  it("close cancels the transfers still running and drops their tasks", function()
    local s = scheduler.new()
    local after = false
    s:spawn(function()
      s:transfer(session, { url = srv:url("/slow?s=5") })
      after = true
    end)
    s:drive(function() return select(2, s:counts()) == 1 end)
    assert.equal(1, s.loop:count())
    local loop = s.loop
    s:close()
    assert.equal(0, loop:count() or 0)
    assert.is_false(after)
    assert.is_nil(scheduler.current())
    assert.has_error(function() s:spawn(function() end) end)
    -- the session goes on serving
    assert.equal(200, (session:request({ url = srv:url("/json") })))
  end)

  it("sleep outside a task blocks with the fallback given", function()
    local slept
    scheduler.sleep(0.25, function(d) slept = d end)
    assert.equal(0.25, slept)
  end)
end)
