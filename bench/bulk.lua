--- Bench: bulk work through `tv:map` (issue 12).
--
-- What it shows (prints figures, asserts nothing):
--
-- 1. wave: 100 GETs of an endpoint that answers after 20 ms, 16 in flight, through `tv:map`
--    against a local nginx, beside the same 100 transfers driven straight on `core.loop`
--    from Lua (the scheduler's floor) and in C on libcurl's multi interface
--    (build/bench/curl_multi from bench/curl_multi.c, built by bench/run.sh). Ideal: 7 waves x
--    20 ms = 140 ms; target: at most 150 ms.
-- 2. sandbox: candidates created through `tv:map` against the sandbox with 150 ms of injected
--    latency (its `slow` fault), with `concurrency = 16` (10,000 candidates) and sequentially
--    (`concurrency = 1`: 200 candidates, the 10,000 extrapolated; `--full` runs them all,
--    about 25 minutes), wall time.
-- 3. gateway (needs `wrk`; bench/run.sh installs it when missing and root): requests per
--    second of an nginx location serving `tv.models.candidate:get` through the cosocket
--    transport, beside a `proxy_pass` location to the same upstream (the limit).
--
-- How to run (from the repository root, after `make`):
--
--     lua5.4 bench/bulk.lua [--only wave|sandbox|gateway] [--candidates N] [--sequential N]
--       [--full] [--rounds R]
--
-- Every server is started on free loopback ports in a temporary directory and stopped by its
-- pid.
local bench = dofile((arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or "bench") .. "/support.lua")

local socket = require("socket")
local core = require("assesskit.core")
local talview = require("assesskit.talview")
local nginx = require("support.nginx")
local sys = require("support.sys")

local opts = { candidates = 10000, sequential = 200, rounds = 7 }
do
  local i = 1
  while arg and arg[i] do
    local a = arg[i]
    if a == "--only" then i = i + 1; opts.only = arg[i]
    elseif a == "--candidates" then i = i + 1; opts.candidates = assert(tonumber(arg[i]))
    elseif a == "--sequential" then i = i + 1; opts.sequential = assert(tonumber(arg[i]))
    elseif a == "--rounds" then i = i + 1; opts.rounds = assert(tonumber(arg[i]))
    elseif a == "--full" then opts.full = true
    else
      io.stderr:write("usage: bench/bulk.lua [--only wave|sandbox|gateway] [--candidates N]"
        .. " [--sequential N] [--full] [--rounds R]\n")
      os.exit(2)
    end
    i = i + 1
  end
end

local function wanted(name) return opts.only == nil or opts.only == name end

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

local function best(t)
  table.sort(t)
  return t[1]
end

local CANDIDATE = '{"id":6506985,"email":"ada@example.com","first_name":"Ada","last_name":"Lovelace",'
  .. '"status_id":25,"organization_id":488,"created_at":"2019-03-12 05:31:21+00"}'

-- ------------------------------------------------------------------------------------------
-- 1. 100 GETs answered after 20 ms, 16 in flight

local function wave()
  local srv = nginx.start({
    ports = { "P" },
    servers = [[
      server {
        listen 127.0.0.1:@P@ backlog=512;
        keepalive_requests 1000000;
        access_log off;
        location /models/candidate/ {
          default_type application/json;
          content_by_lua_block { ngx.sleep(0.02) ngx.print(']] .. CANDIDATE .. [[') }
        }
      }
    ]],
  })
  local base = "http://127.0.0.1:" .. srv.ports.P
  local ok, err = pcall(function()
    local tv = talview.new({ base_url = base, auth = { access_token = "bench-token" } })
    local ids = {}
    for i = 1, 100 do ids[i] = i end
    local function map_once()
      local t0 = socket.gettime()
      local results = tv:map(ids, function(id) return tv.models.candidate:get(id) end,
        { concurrency = 16 })
      local dt = socket.gettime() - t0
      for i = 1, 100 do assert(results[i].value, tostring(results[i].err)) end
      return dt
    end
    local session = core.session()
    local function loop_once()
      local loop = core.loop()
      local t0 = socket.gettime()
      local next_i, running, done = 1, 0, 0
      while done < 100 do
        while running < 16 and next_i <= 100 do
          assert(loop:start(session, { url = base .. "/models/candidate/" .. next_i,
            headers = { authorization = "Bearer bench-token" } }))
          next_i, running = next_i + 1, running + 1
        end
        for _, x in ipairs(loop:run(1)) do
          assert(x:result() == 200)
          running, done = running - 1, done + 1
        end
      end
      local dt = socket.gettime() - t0
      loop:close()
      return dt
    end
    local multi = bench.root .. "/build/bench/curl_multi"
    local have_multi = sys.run("test -x " .. sys.quote(multi))
    local function multi_once()
      local ms = tonumber(bench.capture(sys.quote(multi) .. " " .. sys.quote(base
        .. "/models/candidate/1") .. " 100 16"))
      return ms and ms / 1000
    end
    map_once() -- warm: 16 connections opened
    loop_once()
    local maps, loops, multis = {}, {}, {}
    for r = 1, opts.rounds do
      if r % 2 == 1 then
        maps[#maps + 1] = map_once(); loops[#loops + 1] = loop_once()
      else
        loops[#loops + 1] = loop_once(); maps[#maps + 1] = map_once()
      end
      if have_multi then multis[#multis + 1] = multi_once() end
    end
    local conns = session:stats().connects
    session:close()
    tv:close()
    print(("wave: 100 GETs answered after 20 ms, 16 in flight (%s, %d rounds; ideal 140 ms,"
      .. " target <= 150 ms)"):format(bench.lua, opts.rounds))
    print(("  tv:map                        best %6.1f ms   median %6.1f ms"):format(
      best(maps) * 1000, median(maps) * 1000))
    print(("  core.loop from Lua (floor)    best %6.1f ms   median %6.1f ms   (%d connections)")
      :format(best(loops) * 1000, median(loops) * 1000, conns))
    if #multis > 0 then
      print(("  libcurl multi in C            best %6.1f ms   median %6.1f ms   (bench/curl_multi.c)")
        :format(best(multis) * 1000, median(multis) * 1000))
    else
      print("  libcurl multi in C: build/bench/curl_multi missing (bench/run.sh builds it)")
    end
  end)
  srv:stop()
  if not ok then error(err, 0) end
end

-- ------------------------------------------------------------------------------------------
-- 2. candidates created against the sandbox with 150 ms of latency

local function sandbox_run()
  local sandbox = require("support.sandbox")
  local sb = sandbox.start({})
  local ok, err = pcall(function()
    sb:fault({ kind = "slow", delay = 0.15, times = -1, path = "/models/candidate" })
    local tv = sb:talview({ auth = sb:password_auth(), timeout = 60 })
    assert(tv:authenticate())
    local stamp = os.time()
    local function run(n, concurrency, tag)
      local rows = {}
      for i = 1, n do
        rows[i] = { email = ("bulk-%s-%d-%d@example.com"):format(tag, stamp, i),
          first_name = "Bulk", last_name = tostring(i) }
      end
      local t0 = socket.gettime()
      local results = tv:map(rows, function(row) return tv.models.candidate:create(row) end,
        { concurrency = concurrency })
      local dt = socket.gettime() - t0
      local failed = 0
      for i = 1, n do if results[i].err then failed = failed + 1 end end
      return dt, failed
    end
    local n = opts.candidates
    local seq_n = opts.full and n or math.min(opts.sequential, n)
    local par, par_failed = run(n, 16, "c16")
    local seq, seq_failed = run(seq_n, 1, "c1")
    tv:close()
    print(("sandbox: %d candidates created through tv:map, 150 ms of latency each (%s)")
      :format(n, bench.lua))
    print(("  concurrency = 16              %8.1f s   (%.0f candidates/s, %d failed)")
      :format(par, n / par, par_failed))
    if seq_n == n then
      print(("  sequential (concurrency = 1)  %8.1f s   (%d failed)"):format(seq, seq_failed))
    else
      print(("  sequential (concurrency = 1)  %8.1f s   estimated from %d candidates in %.1f s"
        .. " (%d failed; --full runs them all)"):format(seq * n / seq_n, seq_n, seq, seq_failed))
    end
  end)
  sb:stop()
  if not ok then error(err, 0) end
end

-- ------------------------------------------------------------------------------------------
-- 3. an OpenResty gateway: tv.models.candidate:get through cosockets vs proxy_pass

local function wrk_rate(url)
  local out = bench.capture("wrk -t2 -c32 -d5s --latency " .. sys.quote(url) .. " 2>&1")
  local rate = tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
  local non2xx = tonumber(out:match("Non%-2xx or 3xx responses:%s*(%d+)")) or 0
  return rate, non2xx, out
end

local function gateway()
  if not sys.run("command -v wrk >/dev/null") then
    print("gateway: skipped (wrk is not installed: apt-get install wrk)")
    return
  end
  local upstream = nginx.start({
    ports = { "U" },
    servers = [[
      server {
        listen 127.0.0.1:@U@ backlog=1024;
        keepalive_requests 1000000;
        access_log off;
        location /models/candidate/ {
          default_type application/json;
          return 200 ']] .. CANDIDATE .. [[';
        }
      }
    ]],
  })
  local ok, err = pcall(function()
    local up = "http://127.0.0.1:" .. upstream.ports.U
    local gw = nginx.start({
      ports = { "G" },
      vars = { UP = up },
      http = [[
        upstream api { server 127.0.0.1:]] .. upstream.ports.U .. [[; keepalive 64; }
      ]],
      servers = [[
        server {
          listen 127.0.0.1:@G@ backlog=1024;
          keepalive_requests 1000000;
          access_log off;
          location = /candidate {
            content_by_lua_block {
              local tv = package.loaded.bench_tv
              if not tv then
                tv = require("assesskit.talview").new({ base_url = "@UP@",
                  auth = { access_token = "bench-token" } })
                package.loaded.bench_tv = tv
              end
              local c, err = tv.models.candidate:get(6506985)
              if not c then ngx.status = 502 ngx.say(tostring(err)) return end
              ngx.header["Content-Type"] = "application/json"
              ngx.print(require("cjson").encode(c))
            }
          }
          location = /proxy {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://api/models/candidate/6506985;
          }
        }
      ]],
    })
    local ok2, err2 = pcall(function()
      local g = "http://127.0.0.1:" .. gw.ports.G
      wrk_rate(g .. "/candidate") -- warm
      local lua_rate, lua_bad = wrk_rate(g .. "/candidate")
      local proxy_rate, proxy_bad = wrk_rate(g .. "/proxy")
      print("gateway: one nginx worker, wrk -t2 -c32 -d5s (the upstream is another nginx)")
      bench.line("tv.models.candidate:get (cosockets)", lua_rate or 0, "req/s",
        proxy_rate and { label = "proxy_pass", value = proxy_rate })
      bench.line("proxy_pass to the same upstream", proxy_rate or 0, "req/s")
      if lua_bad + proxy_bad > 0 then
        print(("  (non-2xx answers: %d through the client, %d through proxy_pass)")
          :format(lua_bad, proxy_bad))
      end
    end)
    gw:stop()
    if not ok2 then error(err2, 0) end
  end)
  upstream:stop()
  if not ok then error(err, 0) end
end

local ok, err = pcall(function()
  if wanted("wave") then wave() end
  if wanted("sandbox") then sandbox_run() end
  if wanted("gateway") then gateway() end
end)
if not ok then
  io.stderr:write("bench failed: ", tostring(err), "\n")
  os.exit(1)
end
