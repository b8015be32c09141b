--- Bench: `tv:map` with each store (issue 17).
--
-- What it shows (prints figures, asserts nothing): requests per second of `tv:map` at 16 in
-- flight against a fast local endpoint (an nginx location answering a candidate at once),
-- with one credential (a password grant on a local token endpoint), through
--
-- * plain Lua (lua5.4): the in-process store (`assesskit.store`, the default), the Redis store
--   (`assesskit.redis`, a redis-server of its own), and the Redis store with a fleet-wide
--   `max_rate` too high to hold anything back (what taking permits in batches costs);
-- * inside nginx (one worker, cosockets, light threads): the in-process store, the
--   `lua_shared_dict` store (`assesskit.ngx.token_cache`) and the Redis store (resty.redis).
--
-- Target: Redis within 15% of in-process. Rounds are interleaved; the best of each is shown
-- with the median.
--
--     lua5.4 bench/stores.lua [--items N] [--rounds R]
local bench = dofile((arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or "bench") .. "/support.lua")

local socket = require("socket")
local talview = require("assesskit.talview")
local store_mod = require("assesskit.store")
local redis_store = require("assesskit.redis")
local nginx = require("support.nginx")
local redis = require("support.redis")
local http = require("support.http")

local opts = { items = 3000, rounds = 5 }
do
  local i = 1
  while arg and arg[i] do
    if arg[i] == "--items" then i = i + 1; opts.items = assert(tonumber(arg[i]))
    elseif arg[i] == "--rounds" then i = i + 1; opts.rounds = assert(tonumber(arg[i]))
    else
      io.stderr:write("usage: bench/stores.lua [--items N] [--rounds R]\n")
      os.exit(2)
    end
    i = i + 1
  end
end

local CANDIDATE = '{"id":6506985,"email":"ada@example.com","first_name":"Ada","last_name":"Lovelace"}'

local function stats(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  return s[#s], s[math.floor((#s + 1) / 2)]
end

local rsrv = redis.start()
local srv = nginx.start {
  ports = { "API", "GW" },
  http = "lua_shared_dict bench_store 1m;",
  vars = { REDIS = rsrv:url(), ITEMS = opts.items },
  servers = [[
  server {
    listen 127.0.0.1:@API@ backlog=512;
    keepalive_requests 10000000;
    access_log off;
    location = /oauth2/token {
      default_type application/json;
      return 200 '{"access_token":"bench-token","expires_in":3600}';
    }
    location /models/candidate/ {
      default_type application/json;
      return 200 ']] .. CANDIDATE .. [[';
    }
  }
  server {
    listen 127.0.0.1:@GW@;
    access_log off;
    location = /map {
      content_by_lua_block {
        local kind = ngx.var.arg_store
        local store
        if kind == "dict" then
          store = require("assesskit.ngx.token_cache").new { dict = "bench_store" }
        elseif kind == "redis" then
          store = require("assesskit.redis").new { url = "@REDIS@" }
        else
          store = require("assesskit.store").new()
        end
        local base = "http://127.0.0.1:@API@"
        local tv = require("assesskit.talview").new { base_url = base, token_url = base .. "/oauth2/token",
          auth = { grant = "password", client_id = "c", client_secret = "s", username = "u", password = "p" },
          store = store }
        local ids = {}
        for i = 1, @ITEMS@ do ids[i] = i end
        assert(tv.models.candidate:get(1))
        ngx.update_time()
        local t0 = ngx.now()
        local results = tv:map(ids, function(id) return tv.models.candidate:get(id) end, { concurrency = 16 })
        ngx.update_time()
        local dt = ngx.now() - t0
        for i = 1, #ids do assert(results[i].value, tostring(results[i].err)) end
        ngx.say(#ids / dt)
      }
    }
  }]],
}

local ok, err = pcall(function()
  local base = "http://127.0.0.1:" .. srv.ports.API
  local ids = {}
  for i = 1, opts.items do ids[i] = i end
  local function client(store)
    return talview.new { base_url = base, token_url = base .. "/oauth2/token", store = store,
      auth = { grant = "password", client_id = "c", client_secret = "s", username = "u", password = "p" } }
  end
  local cases = {
    { "in-process store", client(store_mod.new()) },
    { "Redis store", client(redis_store.new { url = rsrv:url() }) },
    { "Redis store, max_rate 1e6", client(redis_store.new { url = rsrv:url(), prefix = "rate:" }),
      { max_rate = 1e6 } },
  }
  local function run(tv, extra)
    local mopts = { concurrency = 16 }
    for k, v in pairs(extra or {}) do mopts[k] = v end
    local t0 = socket.gettime()
    local results = tv:map(ids, function(id) return tv.models.candidate:get(id) end, mopts)
    local dt = socket.gettime() - t0
    for i = 1, #ids do assert(results[i].value, tostring(results[i].err)) end
    return #ids / dt
  end
  local rates = {}
  for _, c in ipairs(cases) do run(c[2], c[3]) rates[c[1]] = {} end -- warm: token, connections
  for r = 1, opts.rounds do
    for k = 1, #cases do
      local c = cases[(k + r) % #cases + 1]
      table.insert(rates[c[1]], run(c[2], c[3]))
    end
  end
  print(("stores: tv:map, %d GETs of a fast local endpoint, 16 in flight (%s, %d rounds)")
    :format(opts.items, bench.lua, opts.rounds))
  local ref = stats(rates[cases[1][1]])
  for _, c in ipairs(cases) do
    local b, m = stats(rates[c[1]])
    print(("  %-28s best %7.0f req/s   median %7.0f req/s   %5.2fx in-process"):format(c[1], b, m, b / ref))
  end

  -- inside nginx
  local gw = {}
  local kinds = { { "process", "in-process store" }, { "dict", "lua_shared_dict store" },
    { "redis", "Redis store (resty.redis)" } }
  for _, k in ipairs(kinds) do gw[k[1]] = {} end
  for r = 1, opts.rounds + 1 do
    for j = 1, #kinds do
      local k = kinds[(j + r) % #kinds + 1][1]
      local status, _, body = http.request("GET", ("http://127.0.0.1:%d/map?store=%s"):format(srv.ports.GW, k),
        { timeout = 120 })
      assert(status == 200, tostring(body) .. srv:error_log())
      if r > 1 then table.insert(gw[k], tonumber(body)) end -- round 1 warms
    end
  end
  print(("stores inside nginx: the same map in a content handler (one worker, light threads)"))
  local gref = stats(gw.process)
  for _, k in ipairs(kinds) do
    local b, m = stats(gw[k[1]])
    print(("  %-28s best %7.0f req/s   median %7.0f req/s   %5.2fx in-process"):format(k[2], b, m, b / gref))
  end
end)
srv:stop()
rsrv:stop()
if not ok then error(err, 0) end
