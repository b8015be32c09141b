--- Bench: the C core against its floors.
--
-- What it shows: requests per second of sequential GETs of a small JSON resource through one
-- `core.session` (connection reused), beside the same loop written in C straight on libcurl
-- (bench/curl_floor.c); the time 100 GETs of an endpoint that answers after 20 ms take with
-- 16 in flight through `core.loop` (ideal: 7 waves x 20 ms = 140 ms), beside the same on
-- libcurl's multi interface in C (bench/curl_multi.c); RS256 signatures per second through
-- `key:sign` and `jwt.encode`, beside `openssl speed -seconds 3 rsa2048`.
--
-- How to run: `make bench` (all benches), or from the repository root after `make`:
--
--     lua5.4 bench/core.lua [--requests N] [--floor PATH] [--multi PATH] [--no-openssl]
--
-- Prints figures; asserts nothing.
local bench = dofile((arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or "bench") .. "/support.lua")

local core = require "assesskit.core"
local jwt = require "assesskit.jwt"
local sys = require "support.sys"
local socket = require "socket"
local pki_lib = require "support.pki"

local opts = { requests = 5000, floor = bench.root .. "/build/bench/curl_floor",
  multi = bench.root .. "/build/bench/curl_multi", openssl = true }
do
  local i = 1
  while arg and arg[i] do
    local a = arg[i]
    if a == "--requests" then i = i + 1; opts.requests = assert(tonumber(arg[i]))
    elseif a == "--floor" then i = i + 1; opts.floor = arg[i]
    elseif a == "--multi" then i = i + 1; opts.multi = arg[i]
    elseif a == "--no-openssl" then opts.openssl = false
    else
      io.stderr:write("usage: bench/core.lua [--requests N] [--floor PATH] [--multi PATH] [--no-openssl]\n")
      os.exit(2)
    end
    i = i + 1
  end
end

local v = core.versions()
print(("core (%s; libcurl %s; %s)"):format(v.lua, v.curl, v.openssl))

-- HTTP: core.session vs libcurl in C
local srv = bench.start_server()
local url = srv:url("/json")
local s = core.session()
local function get()
  local status = s:request { url = url }
  if status ~= 200 then error("bench request failed") end
end
-- Rounds alternate between the core and the floor so that both see the same machine load;
-- the best round of each is kept.
local have_floor = sys.run("test -x " .. sys.quote(opts.floor))
local http_rate, floor_rate = 0, have_floor and 0 or nil
for _ = 1, 5 do
  http_rate = math.max(http_rate, bench.rate(get, opts.requests, 1))
  if have_floor then
    local r = tonumber(bench.capture(sys.quote(opts.floor) .. " " .. sys.quote(url) .. " " .. opts.requests))
    floor_rate = math.max(floor_rate, r or 0)
  end
end
local conns, total = s:stats().connects, s:stats().requests
s:close()
bench.line("core.session GET /json (keep-alive)", http_rate, "req/s",
  floor_rate and { label = "libcurl in C", value = floor_rate })
if floor_rate then bench.line("libcurl in C, same loop (bench/curl_floor.c)", floor_rate, "req/s") end
print(("  (core: %d connection(s) for %d requests)"):format(conns, total))

-- Concurrency: 100 GETs of an endpoint answering after 20 ms, 16 in flight, through core.loop
-- (a new transfer starts as soon as one ends, as client:map's scheduler does), beside the same
-- on libcurl's multi interface in C. Rounds alternate; the best of each is kept.
local COUNT, WIDTH = 100, 16
local slow = srv:url("/slow?s=0.02")
local function loop_run()
  local ls, loop = core.session(), core.loop()
  local started, ended = 0, 0
  local t0 = socket.gettime()
  while ended < COUNT do
    while started < COUNT and loop:count() < WIDTH do
      assert(loop:start(ls, { url = slow }))
      started = started + 1
    end
    for _, x in ipairs(loop:run(1)) do
      if x:result() ~= 200 then error("bench transfer failed: " .. tostring(select(2, x:result()))) end
      ended = ended + 1
    end
  end
  local ms = (socket.gettime() - t0) * 1000
  local c = ls:stats().connects
  loop:close()
  ls:close()
  return ms, c
end
local have_multi = sys.run("test -x " .. sys.quote(opts.multi))
local loop_ms, multi_ms, loop_conns = math.huge, have_multi and math.huge or nil, 0
for _ = 1, 5 do
  local ms, c = loop_run()
  if ms < loop_ms then loop_ms, loop_conns = ms, c end
  if have_multi then
    local m = tonumber(bench.capture(sys.quote(opts.multi) .. " " .. sys.quote(slow) .. " "
      .. COUNT .. " " .. WIDTH))
    multi_ms = math.min(multi_ms, m or math.huge)
  end
end
srv:stop()
print(("  %-44s %10.1f ms   (ideal 140 ms; %d connections)"):format(
  "core.loop 100 GETs of 20 ms, 16 in flight", loop_ms, loop_conns))
if multi_ms then
  print(("  %-44s %10.1f ms"):format("libcurl multi in C, same (bench/curl_multi.c)", multi_ms))
end

-- RS256: key:sign and jwt.encode vs openssl speed
local pki = pki_lib.new()
local pem = assert(sys.read(pki:rsa_key(2048).private))
pki:cleanup()
local key = assert(core.load_key(pem))
local input = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJiZW5jaCIsImV4cCI6MTkwMDAwMDAwMH0"
local sign_rate = bench.rate(function() assert(key:sign(input)) end, 500)
local claims = { iss = "bench", sub = "42", exp = 1900000000 }
local jwt_rate = bench.rate(function() assert(jwt.encode(claims, key)) end, 500)
local openssl_rate
if opts.openssl then
  local out = bench.capture("openssl speed -seconds 3 rsa2048 2>/dev/null")
  openssl_rate = tonumber(out:match("rsa%s+2048 bits%s+%S+%s+%S+%s+(%S+)"))
end
local ref = openssl_rate and { label = "openssl speed", value = openssl_rate }
bench.line("key:sign RS256 (2048-bit)", sign_rate, "sign/s", ref)
bench.line("jwt.encode RS256 (2048-bit)", jwt_rate, "token/s", ref)
if openssl_rate then bench.line("openssl speed -seconds 3 rsa2048", openssl_rate, "sign/s") end
key:close()
