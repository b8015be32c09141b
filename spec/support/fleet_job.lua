--- One process of a fleet running one bulk job through a Redis journal
-- (spec/redis_fleet_spec.lua), its own OS process so that a spec can SIGKILL it.
--
--    lua5.4 spec/support/fleet_job.lua CONFIG_JSON
--
-- CONFIG_JSON holds `base_url`, `auth`, `redis_url`, `job` (the journal's name), `lease`,
-- `count`, `prefix`, `concurrency`, `out`. Creates `count` candidates
-- (`<prefix>-<n>@fleet.test`) through `tv:map` with `journal = store:journal(job)`, keyed by
-- email and reconciled by listing candidates by email. When `map` returns, writes one JSON
-- line per item to `out` (`{"i":, "id":, "email":}` or `{"i":, "err":}`) and exits 0.
local cjson = require("cjson")
local talview = require("assesskit.talview")
local redis_store = require("assesskit.redis")

local f = assert(io.open(assert(arg[1], "usage: fleet_job.lua CONFIG_JSON"), "rb"))
local cfg = cjson.decode(f:read("*a"))
f:close()

local store = redis_store.new { url = cfg.redis_url }
local tv = talview.new { base_url = cfg.base_url, auth = cfg.auth, store = store }
local journal = assert(store:journal(cfg.job, { lease = cfg.lease }))

local rows = {}
for n = 1, cfg.count do
  rows[n] = { email = ("%s-%d@fleet.test"):format(cfg.prefix, n), first_name = "Fleet",
    last_name = tostring(n) }
end

local results, err = tv:map(rows, function(row)
  return tv.models.candidate:create(row)
end, {
  concurrency = cfg.concurrency or 4,
  journal = journal,
  key = function(row) return row.email end,
  reconcile = function(row)
    local found, lerr = tv.models.candidate:list { email = row.email }
    if not found then return nil, lerr end
    return found[1]
  end,
})
if not results then
  io.stderr:write("map: ", tostring(err), "\n")
  os.exit(1)
end

local out = assert(io.open(cfg.out .. ".tmp", "wb"))
for i = 1, cfg.count do
  local r = results[i]
  local line
  if r and r.value then
    line = { i = i, id = r.value.id, email = r.value.email }
  else
    line = { i = i, err = tostring(r and r.err) }
  end
  out:write(cjson.encode(line), "\n")
end
out:close()
assert(os.rename(cfg.out .. ".tmp", cfg.out))
os.exit(0)
