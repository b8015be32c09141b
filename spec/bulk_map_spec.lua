-- client:map, the rate budget and each{concurrency}: the same cases run in plain Lua (Lua 5.4
-- and LuaJIT: tasks of assesskit.scheduler over core.loop) and inside nginx (light threads,
-- cosockets), against one nginx playing a Talview-shaped API that counts requests in flight,
-- connections, token requests and arrival times itself (spec/support/bulk_server.lua).
--
-- Inside nginx, the driver server loads this file (which then returns its cases instead of
-- describing them) and runs one case per request.

local assert = require("luassert")

local cases = {}
local function case(name, fn, opts)
  cases[#cases + 1] = { name = name, fn = fn, plain_only = opts and opts.plain_only }
end

local function range(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

local function getter(tv)
  return function(i) return tv.models.candidate:get(i) end
end

local function all_ok(results, n)
  assert.equal(n, #results)
  for i = 1, n do
    assert.is_nil(results[i].err, "item " .. i .. ": " .. tostring(results[i].err))
  end
end

local function max_in_flight(arrivals, from, to)
  local m = 0
  for k = math.max(1, from), math.min(#arrivals, to) do
    if arrivals[k].in_flight > m then m = arrivals[k].in_flight end
  end
  return m
end

case("keeps results in input order whatever order the answers come in", function(env)
  env.reset({ delay = 0.01, delays = { ["1"] = 0.15, ["2"] = 0.1, ["3"] = 0.05 } })
  local tv = env.talview()
  local results = tv:map(range(24), getter(tv), { concurrency = 6 })
  all_ok(results, 24)
  for i = 1, 24 do assert.equal(i, results[i].value.id) end
  -- the answers did come out of order: item 1 was answered after items sent later
  local arrivals = env.stats().arrivals
  assert.equal("/models/candidate/1", arrivals[1].uri)
  assert.is_true(#arrivals >= 24)
end)

case("has at most N requests in flight on the server, over about N connections", function(env)
  env.reset({ delay = 0.02 })
  local tv = env.talview()
  assert(tv:authenticate())
  local results = tv:map(range(96), getter(tv), { concurrency = 8 })
  all_ok(results, 96)
  local st = env.stats()
  assert.equal(8, st.max_in_flight)
  assert.is_true(st.connections <= 10, st.connections .. " connections for 8 in flight")
end)

case("makes one token request for a burst of calls, and one more after a 401", function(env)
  env.reset({ delay = 0.01, token_delay = 0.1 })
  local tv = env.talview()
  all_ok(tv:map(range(16), getter(tv), { concurrency = 16 }), 16)
  assert.equal(1, env.stats().tokens)
  env.expire() -- the token is refused from now on: 16 calls get a 401 together
  all_ok(tv:map(range(16), getter(tv), { concurrency = 16 }), 16)
  assert.equal(2, env.stats().tokens)
end)

case("sends nothing while a 429's Retry-After pause runs (times taken server-side)", function(env)
  env.reset({ delay = 0.02, pushback = { from = 20, to = 20, status = 429, retry_after = 1 } })
  local tv = env.talview()
  assert(tv:authenticate())
  all_ok(tv:map(range(48), getter(tv), { concurrency = 8 }), 48)
  local arrivals = env.stats().arrivals
  assert.equal(429, arrivals[20].status)
  local t429 = arrivals[20].t
  local after = 0
  for k = 21, #arrivals do
    local dt = arrivals[k].t - t429
    -- a request already on its way when the 429 was answered may arrive just after it
    assert.is_true(dt < 0.05 or dt >= 0.95, "request " .. k .. " arrived " .. dt
      .. " s into the pause")
    if dt >= 0.95 then after = after + 1 end
  end
  assert.is_true(after > 0)
end)

case("cuts the in-flight limit after 429s and grows it back while calls succeed", function(env)
  env.reset({ delay = 0.02, pushback = { from = 41, to = 48, status = 429 } })
  local tv = env.talview({ retry_base_delay = 0.01, retry_max_delay = 0.02, max_retries = 8 })
  assert(tv:authenticate())
  all_ok(tv:map(range(240), getter(tv), { concurrency = 8 }), 240)
  local arrivals = env.stats().arrivals
  assert.equal(8, max_in_flight(arrivals, 1, 40))
  -- right after the 429s (no Retry-After: a pause of one short backoff), far fewer in flight
  assert.is_true(max_in_flight(arrivals, 49, 56) <= 4,
    "in flight after the 429s: " .. max_in_flight(arrivals, 49, 56))
  -- and back to the map's concurrency, never above it
  assert.equal(8, max_in_flight(arrivals, #arrivals - 60, #arrivals))
  assert.equal(8, max_in_flight(arrivals, 1, #arrivals))
end)

case("clients sharing a store make one token request for a burst of calls from both", function(env)
  env.reset({ delay = 0.01, token_delay = 0.1 })
  local store = require("assesskit.store").new()
  local a = env.talview({ store = store })
  local b = env.talview({ store = store })
  all_ok(a:map(range(16), function(i)
    local tv = (i % 2 == 0) and a or b
    return tv.models.candidate:get(i)
  end, { concurrency = 16 }), 16)
  assert.equal(1, env.stats().tokens)
end)

case("clients sharing a store share one token and one budget: a 429 pauses both", function(env)
  env.reset({ pushback = { from = 1, to = 1, status = 429, retry_after = 1 } })
  local store = require("assesskit.store").new()
  local a = env.talview({ store = store, max_retries = 0 })
  local b = env.talview({ store = store })
  local _, err = a.models.candidate:get(1)
  assert.equal(429, err.status)
  assert(b.models.candidate:get(2))
  local st = env.stats()
  assert.equal(1, st.tokens)
  assert.is_true(st.arrivals[2].t - st.arrivals[1].t >= 0.95)
end)

case("max_rate caps the send rate (times taken server-side)", function(env)
  env.reset({})
  local tv = env.talview()
  assert(tv:authenticate())
  all_ok(tv:map(range(30), getter(tv), { concurrency = 8, max_rate = 20 }), 30)
  local arrivals = env.stats().arrivals
  -- a burst of 2, then 20 per second: at most 12 in any half second
  for k = 1, #arrivals do
    local n = 0
    for j = k, #arrivals do
      if arrivals[j].t - arrivals[k].t < 0.5 then n = n + 1 end
    end
    assert.is_true(n <= 12, n .. " requests within half a second")
  end
end)

case("an item that fails or raises does not stop the others", function(env)
  env.reset({ missing = { ["3"] = true, ["7"] = true } })
  local tv = env.talview()
  local results = tv:map(range(10), function(i)
    if i == 5 then error("item five raised") end
    if i == 6 then error({ code = 6 }) end
    return tv.models.candidate:get(i)
  end, { concurrency = 4 })
  assert.equal(10, #results)
  for _, i in ipairs({ 1, 2, 4, 8, 9, 10 }) do assert.equal(i, results[i].value.id) end
  for _, i in ipairs({ 3, 7 }) do
    assert.is_nil(results[i].value)
    assert.equal("http", results[i].err.kind)
    assert.equal(404, results[i].err.status)
  end
  assert.matches("item five raised", results[5].err)
  assert.equal(6, results[6].err.code)
end)

case("stop_on_error takes no new item after the first error", function(env)
  env.reset({ missing = { ["3"] = true } })
  local tv = env.talview()
  local results, err = tv:map(range(10), getter(tv), { concurrency = 1, stop_on_error = true })
  assert.equal(404, err.status)
  assert.equal(1, results[1].value.id)
  assert.equal(err, results[3].err)
  for i = 4, 10 do assert.is_nil(results[i]) end
  assert.equal(3, #env.stats().arrivals)
end)

case("delivers an iterator's results as they complete, through on_result", function(env)
  env.reset({ delay = 0.005 })
  local tv = env.talview()
  local n = 0
  local function items()
    n = n + 1
    if n <= 50 then return n end
  end
  local seen, progress = {}, {}
  local summary, err = tv:map(items, getter(tv), {
    concurrency = 8,
    on_result = function(i, value, e) seen[i] = value and value.id or tostring(e) end,
    on_progress = function(done, total) progress[#progress + 1] = { done, total } end,
  })
  assert.is_nil(err)
  assert.same({ done = 50, failed = 0 }, summary)
  for i = 1, 50 do assert.equal(i, seen[i]) end
  assert.equal(50, #progress)
  assert.same({ 50 }, progress[50])
end)

case("takes items from an iterator that makes calls itself (each), one pull at a time", function(env)
  env.reset({ total = 45, delay = 0.005 })
  local tv = env.talview()
  local results = {}
  local summary = tv:map(tv.models.candidate:each({ pageSize = 10 }), function(c)
    return tv.models.candidate:get(c.id)
  end, { concurrency = 6, on_result = function(i, v) results[i] = v.id end })
  assert.equal(45, summary.done)
  for i = 1, 45 do assert.equal(i, results[i]) end
end)

case("each{concurrency = N} fetches up to N pages ahead and yields items in order", function(env)
  env.reset({ total = 95, delay = 0.03 })
  local tv = env.talview()
  assert(tv:authenticate())
  local got = {}
  for c, e in tv.models.candidate:each({ pageSize = 10, concurrency = 4 }) do
    assert(c, e)
    got[#got + 1] = c.id
  end
  assert.equal(95, #got)
  for i = 1, 95 do assert.equal(i, got[i]) end
  local st = env.stats()
  assert.equal(10, #st.arrivals)
  assert.equal(4, st.max_in_flight)
  -- the same given among the per-call options
  env.reset({ total = 95, delay = 0.03 })
  local n = 0
  for c, e in tv.models.candidate:each({ pageSize = 10 }, { concurrency = 3 }) do
    assert(c, e)
    n = n + 1
    assert.equal(n, c.id)
  end
  assert.equal(95, n)
  assert.equal(3, env.stats().max_in_flight)
end)

case("a coroutine of the user's own inside fn makes ordinary calls", function(env)
  env.reset({})
  local tv = env.talview()
  local results = tv:map(range(4), function(i)
    local co = coroutine.wrap(function() coroutine.yield(tv.models.candidate:get(i)) end)
    return co()
  end, { concurrency = 2 })
  all_ok(results, 4)
  for i = 1, 4 do assert.equal(i, results[i].value.id) end
end)

case("a map inside fn runs within the outer map", function(env)
  env.reset({ delay = 0.01 })
  local tv = env.talview()
  local results = tv:map({ 1, 2 }, function(g)
    local inner = tv:map({ g * 10 + 1, g * 10 + 2, g * 10 + 3 }, getter(tv), { concurrency = 3 })
    return inner[1].value.id + inner[2].value.id + inner[3].value.id
  end, { concurrency = 2 })
  assert.equal(36, results[1].value)
  assert.equal(66, results[2].value)
  assert.equal(6, env.stats().max_in_flight)
end)

case("raises on misuse at the caller's line, naming the nearest option", function(env)
  local tv = env.talview()
  local function raised(fn)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    return err
  end
  assert.matches("bulk_map_spec.lua:%d+: talview:map: unknown option 'concurency' "
    .. "%(did you mean 'concurrency'%?%)", raised(function()
      tv:map({}, function() end, { concurency = 2 })
    end))
  assert.matches("bulk_map_spec.lua:%d+: .*concurrency",
    raised(function() tv:map({}, function() end, { concurrency = 0 }) end))
  assert.matches("bulk_map_spec.lua:%d+: .*items", raised(function() tv:map(42, function() end) end))
  assert.matches("bulk_map_spec.lua:%d+: .*concurrency",
    raised(function() tv.models.candidate:each({ concurrency = 1.5 }) end))
  assert.same({}, (tv:map({}, function() end)))
end)

if rawget(_G, "ngx") then return cases end

-- ------------------------------------------------------------------------------------------

local bulk_server = require("support.bulk_server")
local sys = require("support.sys")

local SPEC = sys.repo .. "/spec/bulk_map_spec.lua"
local WORLD = jit and "LuaJIT" or "Lua 5.4"

describe("client:map #bulk #luajit", function()
  local srv
  setup(function() srv = bulk_server.start() end)
  teardown(function() if srv then srv:stop() end end)

  describe("in " .. WORLD, function()
    for _, c in ipairs(cases) do
      it(c.name, function()
        local env = bulk_server.env(srv.api)
        local ok, err = pcall(c.fn, env)
        env.close()
        if not ok then error(err, 0) end
      end)
    end
  end)

  describe("in " .. WORLD .. ", memory", function()
    -- a subprocess each, so that its peak RSS is the map's alone
    local function peak_rss(n)
      local code, out, err = sys.exec((jit and "luajit" or "lua5.4") .. " spec/support/bulk_rss.lua "
        .. srv.api .. " " .. n, { cwd = sys.repo, env = {
          LUA_PATH = sys.repo .. "/lua/?.lua;" .. sys.repo .. "/lua/?/init.lua;;",
          LUA_CPATH = package.cpath, PATH = os.getenv("PATH") } })
      assert.equal(0, code, err)
      local done, kb = out:match("^(%d+)%s+(%d+)")
      assert.equal(n, tonumber(done), out .. err)
      bulk_server.env(srv.api).reset({}) -- the server forgets the arrivals
      return tonumber(kb)
    end

    it("keeps memory flat with an iterator: peak RSS for 100,000 items within 4 MB of 1,000's",
      function()
        local small, large = peak_rss(1000), peak_rss(100000)
        assert.is_true(large - small <= 4096, ("peak RSS %d kB for 1,000 items, %d kB for 100,000")
          :format(small, large))
      end)
  end)

  if not jit then
    describe("inside nginx", function()
      for _, c in ipairs(cases) do
        if not c.plain_only then
          it(c.name, function() assert.equal("ok", srv.driver(SPEC, c.name)) end)
        end
      end
    end)
  end
end)
