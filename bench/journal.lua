--- Bench: the cost of the journal in `client:map`.
--
-- What it shows: items per second of `tv:map` creating candidates (`POST /models/candidate`)
-- with 16 in flight, without a journal and with one (each item: a 'started' record and an
-- outcome record, each flushed with fdatasync before map goes on), and the fdatasync calls the
-- journal made (fewer than two per item when records of items finishing together share one:
-- group commit); against a fast local endpoint (a bare nginx answering at once: the journal's
-- whole cost), and against one answering after 20 ms (an API's latency: the cost in practice).
--
-- How to run (from the repository root, after `make`):
--
--     lua5.4 bench/journal.lua [--items N] [--rounds R] [--concurrency C]
--
-- The nginx is started on a free loopback port in a temporary directory and stopped by its
-- pid; the journals go to a temporary directory on the same disk as /tmp. Prints figures;
-- exits 0 unless the server cannot be started (timings are never a test).
dofile((arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or "bench") .. "/support.lua") -- module paths

local socket = require("socket")
local talview = require("assesskit.talview")
local journal = require("assesskit.journal")
local nginx = require("support.nginx")
local sys = require("support.sys")

local opts = { items = 2000, rounds = 3, concurrency = 16 }
do
  local i = 1
  while arg and arg[i] do
    local a = arg[i]
    if a == "--items" then i = i + 1; opts.items = tonumber(arg[i])
    elseif a == "--rounds" then i = i + 1; opts.rounds = tonumber(arg[i])
    elseif a == "--concurrency" then i = i + 1; opts.concurrency = tonumber(arg[i])
    else
      io.stderr:write("usage: lua5.4 bench/journal.lua [--items N] [--rounds R] [--concurrency C]\n")
      os.exit(2)
    end
    i = i + 1
  end
end

local server = nginx.start({
  ports = { "P" },
  servers = [[
    server {
      listen 127.0.0.1:@P@;
      keepalive_requests 1000000;
      access_log off;
      location = /oauth2/token {
        default_type application/json;
        return 200 '{"access_token":"bench-token","expires_in":86400,"token_type":"Bearer"}';
      }
      location = /models/candidate {
        default_type application/json;
        return 201 '{"id":10301,"email":"bench@journal.test","first_name":"Bench","status_id":25}';
      }
      location = /slow/models/candidate {
        default_type application/json;
        content_by_lua_block {
          ngx.sleep(0.02)
          ngx.status = 201
          ngx.print('{"id":10301,"email":"bench@journal.test","first_name":"Bench","status_id":25}')
        }
      }
    }
  ]],
})

local function measure(base_path, n_items, label)
  local tv = talview.new({
    base_url = "http://127.0.0.1:" .. server.ports.P .. base_path,
    token_url = "http://127.0.0.1:" .. server.ports.P .. "/oauth2/token",
    auth = { grant = "password", client_id = "bench", client_secret = "bench-secret",
             username = "bench", password = "bench-password" },
  })
  local dir = sys.tmpdir("journal-bench")
  local items = {}
  for i = 1, n_items do items[i] = { email = ("bench-%d@journal.test"):format(i) } end
  local function fn(row) return tv.models.candidate:create(row) end
  local key = function(row) return row.email end

  local function run(with_journal, round)
    local map_opts = { concurrency = opts.concurrency }
    local path, j
    if with_journal then
      path = ("%s/round%d.journal"):format(dir, round)
      j = assert(journal.open(path))
      map_opts.journal, map_opts.key = j, key
    end
    local failed = 0
    map_opts.on_result = function(_, _, e) if e then failed = failed + 1 end end
    local t0 = socket.gettime()
    local results, merr = tv:map(items, fn, map_opts)
    local dt = socket.gettime() - t0
    if not results then error("map: " .. tostring(merr)) end
    if failed > 0 then error(failed .. " items failed") end
    local syncs = 0
    if path then
      syncs = j:stats().syncs
      assert(j:close())
      -- what the journal holds: every item started and done
      local text = sys.read(path)
      local done = select(2, text:gsub('"state":"done"', ""))
      if done ~= n_items then error("the journal holds " .. done .. " outcomes") end
      os.remove(path)
    end
    return n_items / dt, syncs
  end

  local plain, journaled, syncs = {}, {}, 0
  run(false, 0) -- warm-up: token, connections
  for r = 1, opts.rounds do
    -- alternate, so that drift in the machine's load hits both sides alike
    local s
    if r % 2 == 1 then
      plain[r] = run(false, r); journaled[r], s = run(true, r)
    else
      journaled[r], s = run(true, r); plain[r] = run(false, r)
    end
    syncs = syncs + s
  end
  table.sort(plain)
  table.sort(journaled)
  local mid = math.floor((opts.rounds + 1) / 2)
  local p, j = plain[mid], journaled[mid]
  print(string.format("journal bench: %d candidates created through tv:map, %d in flight, %s "
    .. "(%d rounds, median)", n_items, opts.concurrency, label, opts.rounds))
  print(string.format("  map without journal         %9.0f items/s  (%6.1f us/item)", p, 1e6 / p))
  print(string.format("  map with journal            %9.0f items/s  (%6.1f us/item)", j, 1e6 / j))
  print(string.format("  journal cost                %9.1f us/item  (%.2fx the rate without)",
    1e6 / j - 1e6 / p, j / p))
  print(string.format("  fdatasync calls             %9.2f per item (2 without group commit)",
    syncs / (n_items * opts.rounds)))
  sys.rmdir(dir)
  tv:close()
end

local ok, err = pcall(function()
  measure("", opts.items, "a bare local nginx")
  measure("/slow", math.max(16, math.floor(opts.items / 4)), "a local endpoint answering after 20 ms")
end)
server:stop()
if not ok then
  io.stderr:write("bench failed: ", tostring(err), "\n")
  os.exit(1)
end
