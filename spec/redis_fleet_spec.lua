-- A fleet on one Redis behaves as one client: Lua processes (spec/support/fleet_worker.lua,
-- each its own OS process) and an nginx with two workers (the store over resty.redis and
-- cosockets), one credential, one sandbox. Counts are taken server-side (the sandbox's
-- request log).

local cjson = require("cjson")
local socket = require("socket")
local nginx = require("support.nginx")
local redis = require("support.redis")
local sandbox = require("support.sandbox")
local sys = require("support.sys")

local q = sys.quote

-- Starts `lua5.4 spec/support/fleet_worker.lua` in the background with this config; returns
-- the path its result will be written to.
local function spawn_worker(dir, n, cfg)
  cfg.out = dir .. "/out-" .. n .. ".json"
  local path = dir .. "/cfg-" .. n .. ".json"
  sys.write(path, cjson.encode(cfg))
  local env = "LUA_PATH=" .. q(sys.repo .. "/lua/?.lua;" .. sys.repo .. "/lua/?/init.lua;;")
    .. " LUA_CPATH=" .. q(sys.repo .. "/build/lua5.4/?.so;;")
  assert(sys.run("cd " .. q(sys.repo) .. " && " .. env .. " lua5.4 spec/support/fleet_worker.lua "
    .. q(path) .. " >" .. q(dir .. "/log-" .. n) .. " 2>&1 &"))
  return cfg.out
end

-- Whether process `pid` still runs (a zombie waiting for its reaper does not).
local function running(pid)
  local stat = sys.read("/proc/" .. pid .. "/stat")
  if not stat then return false end
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

-- Starts `lua5.4 spec/support/fleet_job.lua` in the background; its pid.
local function start_job(dir, name, cfg)
  local path = dir .. "/" .. name .. ".json"
  sys.write(path, cjson.encode(cfg))
  local env = "LUA_PATH=" .. q(sys.repo .. "/lua/?.lua;" .. sys.repo .. "/lua/?/init.lua;;")
    .. " LUA_CPATH=" .. q(sys.repo .. "/build/lua5.4/?.so;;")
  local p = assert(io.popen("cd " .. q(sys.repo) .. " && " .. env .. " lua5.4 spec/support/fleet_job.lua "
    .. q(path) .. " >>" .. q(dir .. "/" .. name .. ".log") .. " 2>&1 & echo $!"))
  local pid = tonumber(p:read("*a"):match("%d+"))
  p:close()
  return assert(pid, "no pid")
end

local function wait_results(paths, timeout)
  local deadline = socket.gettime() + timeout
  local out = {}
  for i, p in ipairs(paths) do
    while not sys.read(p) do
      assert(socket.gettime() < deadline, "a fleet process did not finish: " .. p)
      socket.sleep(0.05)
    end
    out[i] = cjson.decode(sys.read(p))
  end
  return out
end

-- nginx with two workers: GET /fleet?start_at=&calls= makes `calls` Talview calls through a
-- Redis store after waiting until start_at, and answers {ok, failed, worker}.
local function start_gateway(sb, srv)
  local auth = cjson.encode(sb:password_auth())
  return nginx.start {
    workers = 2, ports = { "P" },
    vars = { SANDBOX = sb.url, REDIS = srv:url(), AUTH = auth },
    servers = [[
  server {
    listen 127.0.0.1:@P@ reuseport;
    location = /fleet {
      content_by_lua_block {
        local cjson = require("cjson")
        local store = require("assesskit.redis").new { url = "@REDIS@" }
        local tv = require("assesskit.talview").new { base_url = "@SANDBOX@", max_retries = 0,
          auth = cjson.decode([==[@AUTH@]==]), store = store }
        local wait = tonumber(ngx.var.arg_start_at) - ngx.now()
        if wait > 0 then ngx.sleep(wait) end
        local ok, failed, errs = 0, 0, {}
        for _ = 1, tonumber(ngx.var.arg_calls) do
          local v, err = tv.user.me:get()
          if v then ok = ok + 1 else failed = failed + 1 errs[#errs + 1] = tostring(err) end
        end
        ngx.say(cjson.encode { ok = ok, failed = failed, errors = errs, worker = ngx.worker.pid(),
          down = store:is_down() })
      }
    }
  }]],
  }
end

-- Fires n requests at the gateway at once (background curl), answers in files.
local function hit_gateway(gw, dir, n, start_at, calls)
  local paths = {}
  for i = 1, n do
    paths[i] = dir .. "/gw-" .. i .. ".json"
    assert(sys.run("curl -s -o " .. q(paths[i] .. ".tmp") .. " "
      .. q(("http://127.0.0.1:%d/fleet?start_at=%.3f&calls=%d"):format(gw.ports.P, start_at, calls))
      .. " && mv " .. q(paths[i] .. ".tmp") .. " " .. q(paths[i]) .. " &"))
  end
  return paths
end

describe("a fleet on one Redis", function()
  local sb, srv, gw, dir

  setup(function()
    sb = sandbox.start()
    srv = redis.start()
    gw = start_gateway(sb, srv)
  end)
  teardown(function()
    if gw then gw:stop() end
    if srv then srv:stop() end
    if sb then sb:stop() end
  end)
  before_each(function()
    dir = sys.tmpdir("fleet")
    sb:reset { all = true }
    srv:cli("FLUSHALL")
  end)
  after_each(function() sys.rmdir(dir) end)

  it("makes exactly one token request for 4 processes and 2 nginx workers", function()
    local start_at = socket.gettime() + 1.0
    local paths = {}
    for n = 1, 4 do
      paths[n] = spawn_worker(dir, n, { base_url = sb.url, auth = sb:password_auth(),
        redis_url = srv:url(), start_at = start_at, calls = 5 })
    end
    local gw_paths = hit_gateway(gw, dir, 8, start_at, 5)
    local results = wait_results(paths, 30)
    local gw_results = wait_results(gw_paths, 30)
    local workers = {}
    for _, r in ipairs(results) do assert.same({ ok = 5, failed = 0 }, { ok = r.ok, failed = r.failed }) end
    for _, r in ipairs(gw_results) do
      assert.same({ ok = 5, failed = 0, down = false }, { ok = r.ok, failed = r.failed, down = r.down })
      workers[r.worker] = true
    end
    assert.equal(1, #sb:requests { path = "/oauth2/token" })
    local tokens, calls = {}, 0
    for _, e in ipairs(sb:requests { path = "/user/me" }) do
      calls = calls + 1
      tokens[e.auth.token] = true
    end
    assert.equal(4 * 5 + 8 * 5, calls)
    assert.equal(1, #(function() local t = {} for k in pairs(tokens) do t[#t + 1] = k end return t end)())
    -- both nginx workers took part
    local nw = 0
    for _ in pairs(workers) do nw = nw + 1 end
    assert.equal(2, nw)
    -- and the token was never in Redis in the clear
    local dump = srv:dump()
    assert.truthy(dump:find("assesskit:token:", 1, true))
    -- the sandbox's tokens are 40 hex digits; no such run is anywhere in Redis
    assert.is_nil(dump:find(string.rep("%x", 40)))
  end)

  -- Sliding windows over the arrival times (server-side) of the requests to `path`.
  local function most_in_a_second(entries)
    local t = {}
    for _, e in ipairs(entries) do t[#t + 1] = e.time end
    table.sort(t)
    local most, z = 0, 1
    for a = 1, #t do
      while z <= #t and t[z] - t[a] < 1 do z = z + 1 end
      if z - a > most then most = z - a end
    end
    return most, #t
  end

  local function fleet_of(n, cfg)
    local paths = {}
    for i = 1, n do
      local c = {}
      for k, v in pairs(cfg) do c[k] = v end
      c.base_url, c.auth, c.redis_url = sb.url, sb:password_auth(), srv:url()
      c.store = c.store or {}
      c.store.timeout = 3 -- (a busy machine can hold Redis up for a second)
      c.prefix = (cfg.prefix or "p") .. i
      paths[i] = spawn_worker(dir, i, c)
    end
    return paths
  end

  it("pauses every process during a 429's Retry-After served to one of them", function()
    local start_at = socket.gettime() + 1.0
    -- (max_rate keeps the sandbox's request log, 2000 entries, from overflowing)
    local paths = fleet_of(4, { start_at = start_at, duration = 2.5, concurrency = 4,
      client = { max_retries = 2, max_rate = 200 } })
    -- once they run, one request (whichever comes first) gets a 429 with Retry-After: 1
    socket.sleep(start_at + 0.8 - socket.gettime())
    sb:fault { kind = "rate_limit", retry_after = 1, path = "/user/me", times = 1 }
    local results = wait_results(paths, 30)
    for _, r in ipairs(results) do assert.equal(0, r.failed, table.concat(r.errors, "; ")) end
    local log = sb:requests { path = "/user/me" }
    local t429
    for _, e in ipairs(log) do if e.status == 429 then t429 = e.time end end
    assert.truthy(t429, "the fault hit a request")
    local late, before, after = {}, 0, 0
    for _, e in ipairs(log) do
      if e.time > t429 + 0.06 and e.time < t429 + 0.95 then late[#late + 1] = e.time - t429 end
      if e.time < t429 then before = before + 1 end
      if e.time >= t429 + 1 then after = after + 1 end
    end
    assert.same({}, late) -- nothing from any process from 60 ms into the pause to its end
    assert.is_true(before > 20 and after > 20, before .. " before, " .. after .. " after")
    assert.equal(1, #sb:requests { path = "/oauth2/token" })
  end)

  it("holds 4 processes with max_rate = 50 to at most 55 requests in any second", function()
    local start_at = socket.gettime() + 1.0
    local paths = fleet_of(4, { start_at = start_at, duration = 3, concurrency = 4,
      client = { max_rate = 50 } })
    local results = wait_results(paths, 30)
    for _, r in ipairs(results) do assert.equal(0, r.failed, table.concat(r.errors, "; ")) end
    local most, total = most_in_a_second(sb:requests { path = "/user/me" })
    print(("\n  fleet max_rate 50: %d requests in the busiest second, %d in all"):format(most, total))
    assert.is_true(most <= 55, "at most 55 in a second, got " .. most)
    assert.is_true(total >= 120, "about 50/s over 3 s for the fleet, got " .. total)
  end)

  it("goes on without Redis and back to one token after it returns, sending no write twice", function()
    local start_at = socket.gettime() + 1.0
    local paths = fleet_of(4, { op = "create", start_at = start_at, duration = 3.2,
      client = { max_retries = 0 }, store = { retry_interval = 0.2 } })
    socket.sleep(start_at + 0.7 - socket.gettime())
    srv:pause()
    socket.sleep(0.2)
    sb:expire_tokens() -- each process renews on its own while Redis is away
    socket.sleep(0.6)
    srv:resume()
    local results = wait_results(paths, 30)
    local created = 0
    for _, r in ipairs(results) do
      assert.equal(0, r.failed, table.concat(r.errors, "; "))
      assert.same({ "redis_down", "redis_up" }, r.events)
      created = created + r.ok
    end
    -- no write sent twice: every candidate once, as many as the processes counted
    local seen = {}
    for _, c in ipairs(sb:state("candidate")) do
      if c.email:find("@fleet.test", 1, true) then
        assert.is_nil(seen[c.email], "created twice: " .. c.email)
        seen[c.email] = true
      end
    end
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.equal(created, n)
    -- one token again: the last second of requests all carry the same one
    local log = sb:requests { path = "/models/candidate", method = "POST" }
    local last = log[#log].time
    local tokens = {}
    for _, e in ipairs(log) do
      if e.time > last - 1 and e.status < 400 then tokens[e.auth.token] = true end
    end
    local distinct = 0
    for _ in pairs(tokens) do distinct = distinct + 1 end
    assert.equal(1, distinct)
  end)

  it("does a journaled bulk create of 500 once with 3 processes, one killed and restarted", function()
    local count, prefix = 500, ("job%d"):format(os.time())
    local function cfg(name)
      return { base_url = sb.url, auth = sb:password_auth(), redis_url = srv:url(), job = prefix,
        lease = 1.5, count = count, prefix = prefix, concurrency = 4, out = dir .. "/" .. name .. ".jsonl" }
    end
    -- each create answers late enough that the job outlasts the kills (about 4 s for 12 in
    -- flight), so that they land while requests are in flight
    sb:fault { kind = "slow", delay = 0.1, times = -1, method = "POST", path = "/models/candidate" }
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000)
    -- the victim starts first, so that it holds items when it is killed; the others follow
    local kills = 0
    for round = 1, 4 do
      local pid = start_job(dir, "victim", cfg("victim"))
      if round == 1 then
        socket.sleep(0.2)
        start_job(dir, "a", cfg("a"))
        start_job(dir, "b", cfg("b"))
      end
      socket.sleep(0.1 + math.random() * 0.4)
      if running(pid) then
        sys.run("kill -9 " .. pid)
        kills = kills + 1
      end
    end
    start_job(dir, "victim", cfg("victim")) -- the last one is left to finish
    local outs = {}
    for _, name in ipairs({ "a", "b", "victim" }) do
      local path = dir .. "/" .. name .. ".jsonl"
      local deadline = socket.gettime() + 120
      while not sys.read(path) do
        assert(socket.gettime() < deadline,
          name .. " did not finish: " .. (sys.read(dir .. "/" .. name .. ".log") or ""))
        socket.sleep(0.1)
      end
      local lines = {}
      for line in sys.read(path):gmatch("[^\n]+") do lines[#lines + 1] = cjson.decode(line) end
      outs[name] = lines
    end
    assert.is_true(kills >= 2,
      "the victim was killed " .. kills .. " times: " .. (sys.read(dir .. "/victim.log") or ""))
    -- server-side: every candidate exactly once
    local by_email = {}
    for _, c in ipairs(sb:state("candidate")) do
      if c.email:find(prefix .. "-", 1, true) == 1 then
        by_email[c.email] = (by_email[c.email] or 0) + 1
      end
    end
    for n = 1, count do
      assert.equal(1, by_email[("%s-%d@fleet.test"):format(prefix, n)], "candidate " .. n)
    end
    local states = {}
    for line in srv:cli("HVALS", "assesskit:journal:" .. prefix .. ":items"):gmatch("[^\n]+") do
      local st = line:match("^(%a+)")
      states[st] = (states[st] or 0) + 1
    end
    print(("\n  fleet job: %d kills, records %s"):format(kills, cjson.encode(states)))
    -- every process that finished returns all 500 results, the same ones, in order
    for name, lines in pairs(outs) do
      assert.equal(count, #lines, name)
      for i, r in ipairs(lines) do
        assert.equal(i, r.i)
        assert.is_nil(r.err, name .. " item " .. i .. ": " .. tostring(r.err))
        assert.equal(("%s-%d@fleet.test"):format(prefix, i), r.email)
        assert.equal(outs.a[i].id, r.id)
      end
    end
  end)
end)
