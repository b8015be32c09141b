--- Bench: the cost of the Talview client over the bare core session.
--
-- What it shows: requests per second of `tv.models.candidate:get(id)` (path building, auth
-- header, retries bookkeeping, JSON decoding, response object) against a bare
-- `core.session:request` of the same URL with the same headers, on the same server, and the
-- ratio between them (target: at least 0.90).
--
-- How to run (from the repository root, after `make`):
--
--     lua5.4 bench/talview.lua [--sandbox | --static] [--get | --page] [--requests N] [--rounds R]
--
-- Two workloads: `get` (one candidate, `tv.models.candidate:get(id)`) and `page` (a page of
-- candidates, `tv.models.candidate:list{pageSize = 100}` (the sandbox caps it at 50): JSON decoding dominates the
-- client's side, integers included), each against the same URL through a bare core session.
--
-- Two servers, each started on a free loopback port in a temporary directory and stopped by
-- its pid: the assesskit sandbox (the server the target is set against: it authenticates,
-- reads its store and logs, as an API server does), and a bare static nginx answering the
-- seed's sample candidate, where the exchange is so cheap that the ratio shows the client's
-- whole cost, JSON decoding included (informational). Each pair of figures also comes as the
-- client's CPU time (os.clock: requests per CPU-second of this process, not the server's),
-- steadier than wall time on a shared machine. Prints figures; exits 0 unless a server cannot
-- be started (timings are never a test).
local bench = dofile((arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or "bench") .. "/support.lua")

local socket = require("socket")
local core = require("assesskit.core")
local talview = require("assesskit.talview")

local opts = { requests = 3000, rounds = 5, server = "both", workload = "both" }
do
  local i = 1
  while arg and arg[i] do
    local a = arg[i]
    if a == "--sandbox" then opts.server = "sandbox"
    elseif a == "--static" then opts.server = "static"
    elseif a == "--get" then opts.workload = "get"
    elseif a == "--page" then opts.workload = "page"
    elseif a == "--requests" then i = i + 1; opts.requests = tonumber(arg[i])
    elseif a == "--rounds" then i = i + 1; opts.rounds = tonumber(arg[i])
    else
      io.stderr:write("usage: lua5.4 bench/talview.lua [--sandbox | --static] [--get | --page]"
        .. " [--requests N] [--rounds R]\n")
      os.exit(2)
    end
    i = i + 1
  end
end

local CANDIDATE = bench.CANDIDATE

local function start_server(kind)
  local server, base_url, auth, id
  if kind == "sandbox" then
    local sandbox = require("support.sandbox")
    server = sandbox.start({})
    base_url = server.url
    local p = server.credentials.password
    auth = { grant = "password", client_id = p.client_id, client_secret = p.client_secret,
             username = p.username, password = p.password }
    local tv = talview.new({ base_url = base_url, auth = auth })
    local list = tv.models.candidate:list({ pageSize = 1 })
    id = list and list[1] and list[1].id or 1
    tv:close()
  else
    local nginx = require("support.nginx")
    local body = CANDIDATE:gsub("'", "\\'")
    server = nginx.start({
      ports = { "P" },
      -- a page of 100 candidates, built once (too long for a `return` in the config)
      http = "init_by_lua_block { local c = [=[" .. CANDIDATE .. "]=] local t = {} "
        .. "for i = 1, 100 do t[i] = c:gsub('6506985', tostring(6506985 + i)) end "
        .. "package.loaded.bench_page = '[' .. table.concat(t, ',') .. ']' }",
      servers = [[
        server {
          listen 127.0.0.1:@P@;
          keepalive_requests 1000000;
          location = /oauth2/token {
            default_type application/json;
            return 200 '{"access_token":"bench-token","expires_in":86400,"token_type":"Bearer"}';
          }
          location /models/candidate/ {
            default_type application/json;
            if ($http_authorization != "Bearer bench-token") { return 401 '{"status":401}'; }
            return 200 ']] .. body .. [[';
          }
          location = /models/candidate {
            default_type application/json;
            add_header X-Pagination-Total-Count 100;
            add_header X-Pagination-Page-Count 1;
            add_header X-Pagination-Current-Page 1;
            add_header X-Pagination-Per-Page 100;
            content_by_lua_block { ngx.print(package.loaded.bench_page) }
          }
        }
      ]],
    })
    base_url = "http://127.0.0.1:" .. server.ports.P
    auth = { grant = "password", client_id = "bench", client_secret = "bench-secret",
             username = "bench", password = "bench-password" }
    id = 6506985
  end
  return server, base_url, auth, id
end

local function measure(kind, workload)
  local server, base_url, auth, id = start_server(kind)
  local url = base_url .. "/models/candidate/" .. string.format("%d", id)
  local n = opts.requests
  local call = function(candidate) return candidate:get(id) end
  if workload == "page" then
    url = base_url .. "/models/candidate?pageSize=100"
    n = math.max(1, math.floor(n / 10))
    call = function(candidate) return candidate:list({ pageSize = 100 }) end
  end

  local function run_core()
    local s = core.session({})
    -- the headers the client sends, token included (taken through a recording transport)
    local headers
    local rec = { request = function(_, req) headers = req.headers; return s:request(req) end }
    local t = talview.new({ base_url = base_url, auth = auth, transport = rec })
    assert(call(t.models.candidate))
    local req = { method = "GET", url = url, headers = headers, timeout = 30, connect_timeout = 10 }
    for _ = 1, 50 do assert(s:request(req) == 200) end
    local t0, c0 = socket.gettime(), os.clock()
    for _ = 1, n do
      local status = s:request(req)
      if status ~= 200 then error("core request failed: " .. tostring(status)) end
    end
    local dt, cpu = socket.gettime() - t0, os.clock() - c0
    s:close()
    return n / dt, n / cpu
  end

  local function run_talview()
    local tv = talview.new({ base_url = base_url, auth = auth })
    local candidate = tv.models.candidate
    for _ = 1, 50 do assert(call(candidate)) end
    local t0, c0 = socket.gettime(), os.clock()
    for _ = 1, n do
      local v, err = call(candidate)
      if not v then error("talview request failed: " .. tostring(err)) end
    end
    local dt, cpu = socket.gettime() - t0, os.clock() - c0
    tv:close()
    return n / dt, n / cpu
  end

  local ok, err = pcall(function()
    local core_rates, tv_rates, core_cpu, tv_cpu = {}, {}, {}, {}
    for r = 1, opts.rounds do
      -- alternate, so that drift in the machine's load hits both sides alike
      if r % 2 == 1 then
        core_rates[r], core_cpu[r] = run_core(); tv_rates[r], tv_cpu[r] = run_talview()
      else
        tv_rates[r], tv_cpu[r] = run_talview(); core_rates[r], core_cpu[r] = run_core()
      end
    end
    for _, t in ipairs({ core_rates, tv_rates, core_cpu, tv_cpu }) do table.sort(t) end
    local mid = math.floor((opts.rounds + 1) / 2)
    local c, t = core_rates[mid], tv_rates[mid]
    local ratio = t / c
    print(string.format("talview bench: %s, %s (%d requests x %d rounds, median)",
      workload == "page" and "a page of candidates (pageSize=100; the sandbox serves 50)" or "one candidate",
      kind == "sandbox" and "the sandbox" or "a bare static nginx", n, opts.rounds))
    print(string.format("  core session:request      %9.0f req/s  (%6.1f us/request)", c, 1e6 / c))
    print(string.format("  tv.models.candidate:%-4s  %9.0f req/s  (%6.1f us/request)",
      workload == "page" and "list" or "get", t, 1e6 / t))
    -- the client's own CPU time (os.clock: this process only, not the server): steadier than
    -- wall time on a shared machine
    print(string.format("  client CPU: core %.0f, tv %.0f requests per CPU-second (%.1f us of CPU"
      .. " per call over the core's)", core_cpu[mid], tv_cpu[mid], 1e6 / tv_cpu[mid] - 1e6 / core_cpu[mid]))
    if kind == "sandbox" and workload ~= "page" then
      print(string.format("  ratio                     %9.3f  (target >= 0.90: %s)", ratio,
        ratio >= 0.90 and "met" or "NOT met"))
    else
      print(string.format("  ratio                     %9.3f  (informational: the client's whole cost,"
        .. " JSON decoding included, over a ~%.0f us exchange)", ratio, 1e6 / c))
    end
  end)
  server:stop()
  if not ok then error(err, 0) end
end

local ok, err = pcall(function()
  for _, workload in ipairs({ "get", "page" }) do
    if opts.workload == workload or opts.workload == "both" then
      if opts.server == "sandbox" or opts.server == "both" then measure("sandbox", workload) end
      if opts.server == "static" or opts.server == "both" then measure("static", workload) end
    end
  end
end)
if not ok then
  io.stderr:write("bench failed: ", tostring(err), "\n")
  os.exit(1)
end
