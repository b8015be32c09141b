--- One process of a fleet for the Redis store's specs (spec/redis_fleet_spec.lua): a Talview
-- client on the sandbox whose store is `assesskit.redis`, run as its own OS process.
--
--    lua5.4 spec/support/fleet_worker.lua CONFIG_JSON
--
-- CONFIG_JSON (a file) holds `base_url`, `auth` (the client's auth option), `redis_url`,
-- `start_at` (epoch seconds: wait until then, so that the fleet starts together), `calls`
-- (how many `GET /user/me` to make one after the other), `out` (a file: one JSON line
-- `{"ok":, "failed":, "errors": [...], "events": [...]}` written when done), and optional
-- `client` (more client options, e.g. `max_retries`), `store` (more store options).
local cjson = require("cjson")
local socket = require("socket")
local talview = require("assesskit.talview")
local redis_store = require("assesskit.redis")

local f = assert(io.open(assert(arg[1], "usage: fleet_worker.lua CONFIG_JSON"), "rb"))
local cfg = cjson.decode(f:read("*a"))
f:close()

local events = {}
local sopts = { url = cfg.redis_url, on_event = function(e) events[#events + 1] = e.event end }
for k, v in pairs(cfg.store or {}) do sopts[k] = v end
local store = redis_store.new(sopts)
local copts = { base_url = cfg.base_url, auth = cfg.auth, token_store = store, max_retries = 0 }
for k, v in pairs(cfg.client or {}) do copts[k] = v end
local tv = talview.new(copts)

local wait = (cfg.start_at or 0) - socket.gettime()
if wait > 0 then socket.sleep(wait) end

local ok, failed, errs = 0, 0, {}
for _ = 1, cfg.calls or 1 do
  local v, err = tv.user.me:get()
  if v then ok = ok + 1 else
    failed = failed + 1
    errs[#errs + 1] = tostring(err)
  end
end

local out = assert(io.open(cfg.out .. ".tmp", "wb"))
out:write(cjson.encode({ ok = ok, failed = failed, errors = errs, events = events }), "\n")
out:close()
assert(os.rename(cfg.out .. ".tmp", cfg.out))
os.exit(0)
