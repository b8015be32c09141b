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
          auth = cjson.decode([==[@AUTH@]==]), token_store = store }
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
end)
