-- client:map, the rate budget and each{concurrency}: the same cases run in plain Lua (Lua 5.4
-- and LuaJIT: tasks of assesskit.scheduler over core.loop) and inside nginx (light threads,
-- cosockets), against one nginx playing a Talview-shaped API that counts requests in flight,
-- connections, token requests and arrival times itself (spec/support/bulk_server.lua).
--
-- Inside nginx, the driver server loads this file (which then returns its cases instead of
-- describing them) and runs one case per request.

-- luacheck: globals ngx
local assert = require("luassert")

local cases = {}
local function case(name, fn, opts)
  cases[#cases + 1] = { name = name, fn = fn, plain_only = opts and opts.plain_only,
    ngx_only = opts and opts.ngx_only }
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

case("a shorter Retry-After seen meanwhile neither shortens nor lifts a 429's pause", function(env)
  -- two calls in flight get 429 together: the first with Retry-After 2, the second with 1
  env.reset({ delay = 0.02, pushback = { from = 1, to = 2, status = 429, retry_after = { 2, 1 } } })
  local tv = env.talview()
  assert(tv:authenticate())
  all_ok(tv:map(range(6), getter(tv), { concurrency = 2 }), 6)
  local arrivals = env.stats().arrivals
  assert.equal(429, arrivals[1].status)
  assert.equal(429, arrivals[2].status)
  for k = 3, #arrivals do
    local dt = arrivals[k].t - arrivals[1].t
    assert.is_true(dt >= 1.95, "request " .. k .. " arrived " .. dt .. " s into a pause of 2 s")
  end
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

case("an error raised without a value (error()) is still an error, never a success", function(env)
  env.reset({})
  local tv = env.talview()
  local results = tv:map(range(4), function(i)
    if i == 2 then error() end
    return tv.models.candidate:get(i)
  end, { concurrency = 2 })
  assert.equal(4, #results)
  assert.is_nil(results[2].value)
  assert.matches("talview:map: fn raised an error without a value", tostring(results[2].err))
  for _, i in ipairs({ 1, 3, 4 }) do assert.equal(i, results[i].value.id) end
  -- counted as a failure, and it stops the map under stop_on_error
  local summary = tv:map(range(4), function(i) if i == 2 then error() end return i end,
    { on_result = function() end })
  assert.same({ done = 4, failed = 1 }, summary)
  local stopped, err = tv:map(range(4), function(i) if i == 2 then error() end return i end,
    { concurrency = 1, stop_on_error = true })
  assert.is_nil(stopped[3])
  assert.matches("without a value", tostring(err))
  -- an iterator, on_result or on_progress raising error() stops the map with an error
  local n = 0
  local ok, raised = pcall(tv.map, tv, function()
    n = n + 1
    if n == 3 then error() end
    return n
  end, function(i) return i end)
  assert.is_false(ok)
  assert.matches("talview:map: the item iterator raised an error without a value", raised)
  ok, raised = pcall(tv.map, tv, range(3), function(i) return i end,
    { on_result = function() error() end })
  assert.is_false(ok)
  assert.matches("talview:map: on_result raised an error without a value", raised)
  ok, raised = pcall(tv.map, tv, range(3), function(i) return i end,
    { on_progress = function() error() end })
  assert.is_false(ok)
  assert.matches("talview:map: on_progress raised an error without a value", raised)
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

case("a call in the body of each{concurrency} is not held by a page ahead renewing the token",
  function(env)
    -- page 2 is read while page 3 is still on its way; the token is refused from then on, so
    -- page 6 (started while the loop waits for page 3) gets a 401 and its renewal is slow
    env.reset({ total = 100, delay = 0.01, token_delay = 1, page_delays = { ["3"] = 0.5 } })
    local tv = env.talview()
    assert(tv:authenticate())
    local n = 0
    for c, err in tv.models.candidate:each({ pageSize = 10, concurrency = 4 }) do
      assert(c, err)
      n = n + 1
      if c.id == 11 then env.expire() end
      if c.id == 21 then assert(tv.models.candidate:get(c.id)) end
    end
    assert.equal(100, n)
  end)

case("a call in the body of each{concurrency} after a 429 is not held by the pages ahead",
  function(env)
    -- pages 3 to 5 take long; the body's call gets a 429 meanwhile (the in-flight limit is cut)
    env.reset({ total = 100, delay = 0.01, page_delays = { ["3"] = 1, ["4"] = 1, ["5"] = 1 },
      pushback = { from = 6, to = 6, status = 429 } })
    local tv = env.talview({ retry_base_delay = 0.05 })
    assert(tv:authenticate())
    local n = 0
    for c, err in tv.models.candidate:each({ pageSize = 10, concurrency = 4 }) do
      assert(c, err)
      n = n + 1
      if c.id == 11 then assert(tv.models.candidate:get(c.id)) end
    end
    assert.equal(100, n)
    assert.equal(429, env.stats().arrivals[6].status)
  end)

case("breaking out of each{concurrency} leaves no transfer or connection behind", function(env)
  env.reset({ total = 500, delay = 0.2 })
  local tv = env.talview()
  assert(tv:authenticate())
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  local function descriptors() -- of this process (its sockets among them)
    local n = 0
    local ls = io.popen("ls /proc/" .. pid .. "/fd")
    for _ in ls:lines() do n = n + 1 end
    ls:close()
    return n
  end
  local after = {}
  for round = 1, 4 do
    for c, err in tv.models.candidate:each({ pageSize = 10, concurrency = 8 }) do
      assert(c, err)
      if c.id == 12 then break end
    end
    after[round] = descriptors()
  end
  -- the first round's connections stay in the session's pool and serve the next rounds (one
  -- may go when the server closes it): none is added after the first round
  for round = 2, 4 do
    assert.is_true(after[round] <= after[1], "descriptors after each round: " .. table.concat(after, ", "))
  end
  -- and no page is left on its way: the client's next call is answered at once
  assert(tv.models.candidate:get(1))
end, { plain_only = true })

case("pages still on their way when fn breaks out of each{concurrency} give their permits back",
  function(env)
    env.reset({ total = 200, delay = 0.01, page_delays = { ["3"] = 0.5, ["4"] = 0.5, ["5"] = 0.5 } })
    local tv = env.talview({ retry_base_delay = 0.05 })
    assert(tv:authenticate())
    local results = tv:map({ 1 }, function()
      for c, err in tv.models.candidate:each({ pageSize = 10, concurrency = 4 }) do
        assert(c, err)
        if c.id == 11 then break end -- pages 3 to 5 are still on their way
      end
      return true
    end)
    assert.is_true(results[1].value)
    assert.equal(0, tv._client.budget:state().in_flight)
    -- a 429 cuts the in-flight limit: permits held by lost pages would leave no room at all
    env.reset({ pushback = { from = 1, to = 1, status = 429 } })
    assert(tv.models.candidate:get(1))
  end, { plain_only = true })

case("a light thread killed while it renews the token does not hold the client's other calls",
  function(env)
    env.reset({ delay = 0.01, token_delay = 1 })
    local tv = env.talview()
    local renewing = ngx.thread.spawn(function() return tv.models.candidate:get(1) end)
    ngx.sleep(0.2) -- it is waiting for the token endpoint
    ngx.thread.kill(renewing)
    ngx.update_time()
    local t0 = ngx.now()
    assert(tv.models.candidate:get(2))
    ngx.update_time()
    assert.is_true(ngx.now() - t0 < 5, "waited " .. (ngx.now() - t0) .. " s for a dead renewal")
    assert.equal(2, env.stats().tokens)
    -- the same with clients sharing a store (the store's renewal lock)
    env.reset({ delay = 0.01, token_delay = 1 })
    local store = require("assesskit.store").new()
    local a, b = env.talview({ store = store }), env.talview({ store = store })
    renewing = ngx.thread.spawn(function() return a.models.candidate:get(1) end)
    ngx.sleep(0.2)
    ngx.thread.kill(renewing)
    ngx.update_time()
    t0 = ngx.now()
    assert(b.models.candidate:get(2))
    ngx.update_time()
    assert.is_true(ngx.now() - t0 < 5, "waited " .. (ngx.now() - t0) .. " s for a dead lock holder")
  end, { ngx_only = true })

case("a light thread killed during its request gives its place in the rate budget back",
  function(env)
    env.reset({ delay = 1 })
    local tv = env.talview({ retry_base_delay = 0.05 })
    assert(tv:authenticate())
    local lost = ngx.thread.spawn(function() return tv.models.candidate:get(1) end)
    ngx.sleep(0.2) -- its request is on its way
    ngx.thread.kill(lost)
    -- a 429 cuts the in-flight limit to one: a place held by the killed thread leaves none
    env.reset({ pushback = { from = 1, to = 1, status = 429 } })
    local done
    local call = ngx.thread.spawn(function() done = { tv.models.candidate:get(2) } end)
    for _ = 1, 100 do
      if done then break end
      ngx.sleep(0.05)
    end
    if not done then ngx.thread.kill(call) end
    assert.is_truthy(done, "the call still waits for a place after 5 s")
    assert.equal(2, done[1].id)
  end, { ngx_only = true })

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

case("a value fn yields itself fails that item alone; every other item still runs", function(env)
  env.reset({})
  local tv = env.talview()
  local results = tv:map(range(6), function(i)
    if i == 2 then coroutine.yield("stray") end
    return tv.models.candidate:get(i)
  end, { concurrency = 2 })
  assert.equal(6, #results)
  assert.is_nil(results[2].value)
  assert.matches("yielded", tostring(results[2].err))
  for _, i in ipairs({ 1, 3, 4, 5, 6 }) do assert.equal(i, results[i].value.id) end
  -- every item yields: each gets its error (none is lost), and they are counted
  local failed = 0
  local summary = tv:map(range(5), function() coroutine.yield() end, { concurrency = 2,
    on_result = function(_, _, err) if err then failed = failed + 1 end end })
  assert.same({ done = 5, failed = 5 }, summary)
  assert.equal(5, failed)
end, { plain_only = true }) -- inside nginx, coroutine.yield in a light thread lets the others run

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
      if not c.ngx_only then
        it(c.name, function()
          local env = bulk_server.env(srv.api)
          local ok, err = pcall(c.fn, env)
          env.close()
          if not ok then error(err, 0) end
        end)
      end
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
