--- One process of a fleet for the Redis store's specs (spec/redis_fleet_spec.lua): a Talview
-- client on the sandbox whose store is `assesskit.redis`, run as its own OS process.
--
--    lua5.4 spec/support/fleet_worker.lua CONFIG_JSON
--
-- CONFIG_JSON (a file) holds `base_url`, `auth` (the client's auth option), `redis_url`,
-- `start_at` (epoch seconds: wait until then, so that the fleet starts together), `op`
-- (`"me"`: `GET /user/me`, the default; `"create"`: create a candidate
-- `<prefix>-<n>@fleet.test`), `calls` (how many) or `duration` (seconds: as many as fit),
-- `concurrency` (through `tv:map`, default 1: one after the other), `out` (a file: one JSON
-- line `{"ok":, "failed":, "errors": [...], "events": [...], "messages": [...]}` written
-- when done), and
-- optional `prefix`, `client` (more client options: `max_retries`, `max_rate`), `store` (more
-- store options).
local cjson = require("cjson")
local socket = require("socket")
local talview = require("assesskit.talview")
local redis_store = require("assesskit.redis")

local f = assert(io.open(assert(arg[1], "usage: fleet_worker.lua CONFIG_JSON"), "rb"))
local cfg = cjson.decode(f:read("*a"))
f:close()

local events, messages = {}, {}
local sopts = { url = cfg.redis_url, on_event = function(e)
  events[#events + 1] = e.event
  messages[#messages + 1] = e.message
end }
for k, v in pairs(cfg.store or {}) do sopts[k] = v end
local store = redis_store.new(sopts)
local copts = { base_url = cfg.base_url, auth = cfg.auth, store = store, max_retries = 0 }
for k, v in pairs(cfg.client or {}) do copts[k] = v end
local tv = talview.new(copts)

local wait = (cfg.start_at or 0) - socket.gettime()
if wait > 0 then socket.sleep(wait) end

local prefix = cfg.prefix or "fleet"
local function call(n)
  if cfg.op == "create" then
    return tv.models.candidate:create { email = ("%s-%d@fleet.test"):format(prefix, n),
      first_name = "Fleet", last_name = tostring(n) }
  end
  return tv.user.me:get()
end

-- the items: n = 1, 2, ... until `calls` or the end of `duration`
local stop = cfg.duration and (socket.gettime() + cfg.duration)
local n = 0
local function next_item()
  if (cfg.calls and n >= cfg.calls) or (stop and socket.gettime() >= stop) then return nil end
  n = n + 1
  return n
end

local ok, failed, errs = 0, 0, {}
local function count(_, v, err)
  if v then ok = ok + 1 else
    failed = failed + 1
    errs[#errs + 1] = tostring(err)
  end
end
if (cfg.concurrency or 1) > 1 then
  assert(tv:map(next_item, function(i) return call(i) end,
    { concurrency = cfg.concurrency, on_result = count }))
else
  for i in next_item do count(i, call(i)) end
end

local out = assert(io.open(cfg.out .. ".tmp", "wb"))
out:write(cjson.encode({ ok = ok, failed = failed, errors = errs, events = events,
  messages = messages }), "\n")
out:close()
assert(os.rename(cfg.out .. ".tmp", cfg.out))
os.exit(0)
