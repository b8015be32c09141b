--- A store shared by every nginx worker: the token (with a cross-worker renewal lock) and
-- the rate budget (`cache:budget(key)`: a pause, the in-flight limit and `max_rate` for all
-- workers together). The in-process store (`assesskit.store`) and the Redis store
-- (`assesskit.redis`, a fleet) implement the same interface (docs/DESIGN.md, "Stores").
--
-- The Talview token manager (`assesskit.talview.auth`) keeps its access token in a per-client
-- table by default, so N nginx workers would each ask the token endpoint for a token. Give the
-- client a token cache (`token_store` option) and the token lives in a `lua_shared_dict`
-- instead: every worker reads it there, and renewing it takes a lock in the same dict, so one
-- worker at a time calls the token endpoint while the others wait and then use its token.
--
-- The store interface, used by the token manager (docs/DESIGN.md, "Token stores"):
--
-- * `store:get(key [, secret]) -> entry | nil`: `entry` is `{token =, expires_at =, lifetime =,
--   refresh_token =}` (epoch seconds for `expires_at`, seconds for `lifetime`);
-- * `store:set(key, entry [, secret]) -> true | nil, err` (`secret`, the credential's, is
--   for stores that seal what they share outside the process; the dict is nginx's memory);
-- * `store:delete(key)`;
-- * `store:lock(key, timeout) -> release | nil, err`: waits (with `ngx.sleep`, so the worker
--   keeps serving) until no other holder has the renewal lock for `key`, up to `timeout`
--   seconds; `release()` gives it back. A holder that dies keeps it at most `lock_ttl` seconds.
--
-- Entries hold tokens: the dict is process memory of the nginx workers, never written to disk
-- or logs by this module, and `tostring(store)` names only the dict.
--
-- Needs nginx's Lua module (`ngx.shared`); `lock` needs a phase where `ngx.sleep` works
-- (rewrite, access, content, timer), as every network call does.
-- @module assesskit.ngx.token_cache
-- @usage
-- -- nginx.conf (http block):  lua_shared_dict assesskit_tokens 1m;
-- local cache = require("assesskit.ngx.token_cache").new({ dict = "assesskit_tokens" })
-- local tv = require("assesskit.talview").new({ base_url = url, auth = creds, token_store = cache })

-- luacheck: read globals ngx

local ngx = ngx
local type = type
local tostring = tostring
local error = error
local setmetatable = setmetatable
local math_min, math_max, math_floor = math.min, math.max, math.floor
local ipairs = ipairs
local str_format = string.format

local cjson = require("cjson.safe")
local options = require("assesskit.options")

local M = {}
local mt = { __index = M }

local DEFAULT_LOCK_TTL = 30
local DEFAULT_PREFIX = "assesskit:token:"
local FIRST_STEP, MAX_STEP = 0.002, 0.05

local owner_seq = 0

local function now()
  ngx.update_time()
  return ngx.now()
end

--- Creates a token cache over a `lua_shared_dict`.
-- @tparam table opts `dict` (the dict's name, or the `ngx.shared.<name>` object; required),
--   `prefix` (key prefix in the dict, default `"assesskit:token:"`), `lock_ttl` (seconds a
--   lock outlives a holder that never releases it, default 30)
-- @treturn table the store
-- @raise on an unknown option (naming the nearest valid one), outside nginx, or when the dict
--   does not exist
-- @usage local cache = token_cache.new({ dict = "assesskit_tokens" })
function M.new(opts)
  if type(opts) ~= "table" then
    error("assesskit.ngx.token_cache.new: opts must be a table", 2)
  end
  options.check(opts, { "dict", "prefix", "lock_ttl" }, "assesskit.ngx.token_cache.new", 2)
  if type(ngx) ~= "table" or type(ngx.shared) ~= "table" then
    error("assesskit.ngx.token_cache.new: needs nginx's Lua module (ngx.shared)", 2)
  end
  local dict, name = opts.dict, opts.dict
  if type(dict) == "string" then
    dict = ngx.shared[dict]
    if not dict then
      error("assesskit.ngx.token_cache.new: no lua_shared_dict named '" .. name
        .. "' (add `lua_shared_dict " .. name .. " 1m;` to the http block)", 2)
    end
  elseif type(dict) ~= "table" and type(dict) ~= "userdata" then
    error("assesskit.ngx.token_cache.new: dict must be a lua_shared_dict name or object", 2)
  else
    name = "shared dict"
  end
  local prefix = opts.prefix
  if prefix ~= nil and type(prefix) ~= "string" then
    error("assesskit.ngx.token_cache.new: prefix must be a string", 2)
  end
  local ttl = opts.lock_ttl
  if ttl ~= nil and (type(ttl) ~= "number" or ttl <= 0) then
    error("assesskit.ngx.token_cache.new: lock_ttl must be a positive number", 2)
  end
  return setmetatable({
    dict = dict,
    name = name,
    prefix = prefix or DEFAULT_PREFIX,
    lock_ttl = ttl or DEFAULT_LOCK_TTL,
    budgets = {},
  }, mt)
end

function mt.__tostring(self)
  return "assesskit.ngx.token_cache(" .. tostring(self.name) .. ")"
end

local function check_key(key)
  if type(key) ~= "string" or key == "" then
    error("assesskit.ngx.token_cache: key must be a non-empty string", 3)
  end
end

--- The cached entry for `key`, or nil.
-- @tparam string key
-- @treturn ?table `{token =, expires_at =, lifetime =, refresh_token =}`
function M:get(key)
  check_key(key)
  local raw = self.dict:get(self.prefix .. key)
  if type(raw) ~= "string" then
    return nil
  end
  local entry = cjson.decode(raw)
  if type(entry) ~= "table" or type(entry.token) ~= "string" then
    return nil
  end
  return entry
end

--- Stores the entry for `key`, visible to every worker. It is dropped from the dict when the
-- token expires, unless it carries a refresh token (that outlives the access token).
-- @tparam string key
-- @tparam table entry `token` (required), `expires_at`, `lifetime`, `refresh_token`
-- @treturn true|nil
-- @treturn ?string why not (the dict is full, ...)
function M:set(key, entry)
  check_key(key)
  if type(entry) ~= "table" or type(entry.token) ~= "string" then
    error("assesskit.ngx.token_cache:set: entry.token must be a string", 2)
  end
  local raw, jerr = cjson.encode({
    token = entry.token, expires_at = entry.expires_at, lifetime = entry.lifetime,
    refresh_token = entry.refresh_token,
  })
  if not raw then -- e.g. an infinite expires_at; dict:set(k, nil) would delete the entry
    return nil, "cannot store the token in " .. tostring(self.name) .. ": " .. tostring(jerr)
  end
  local exptime = 0
  if entry.refresh_token == nil and type(entry.expires_at) == "number" then
    exptime = entry.expires_at - now()
    if exptime < 1 then
      exptime = 1
    end
  end
  local ok, err = self.dict:set(self.prefix .. key, raw, exptime)
  if not ok then
    return nil, "cannot store the token in " .. tostring(self.name) .. ": " .. tostring(err)
  end
  return true
end

--- Drops the entry for `key`.
-- @tparam string key
function M:delete(key)
  check_key(key)
  self.dict:delete(self.prefix .. key)
end

--- Takes the renewal lock for `key`, waiting for another holder (any worker) up to `timeout`.
-- @tparam string key
-- @tparam[opt=30] number timeout seconds
-- @treturn[1] function `release()`: gives the lock back (idempotent)
-- @treturn[2] nil
-- @treturn[2] string `"timeout"`, or the dict's error
-- @usage local release, err = cache:lock("talview", 10)
-- if release then ... release() end
function M:lock(key, timeout)
  check_key(key)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("assesskit.ngx.token_cache:lock: timeout must be a number >= 0", 2)
  end
  timeout = timeout or 30
  local dict, lock_key = self.dict, self.prefix .. key .. ":lock"
  owner_seq = owner_seq + 1
  local owner = str_format("%d:%d:%.3f", ngx.worker.pid(), owner_seq, ngx.now())
  local deadline = now() + timeout
  local step = FIRST_STEP
  while true do
    local ok, err = dict:add(lock_key, owner, self.lock_ttl)
    if ok then
      local released = false
      return function()
        if not released then
          released = true
          -- only our own lock: it may have expired and been taken by another holder
          if dict:get(lock_key) == owner then
            dict:delete(lock_key)
          end
        end
      end
    end
    if err ~= "exists" then
      return nil, "cannot lock in " .. tostring(self.name) .. ": " .. tostring(err)
    end
    local left = deadline - now()
    if left <= 0 then
      return nil, "timeout"
    end
    ngx.sleep(math_min(step, left))
    step = math_min(step * 2, MAX_STEP)
  end
end

-- ------------------------------------------------------------------------------------------
-- The rate budget, shared by the workers

-- How long a request waits before asking again for a slot under the in-flight limit.
local SLOT_POLL = 0.005

local Budget = {}
Budget.__index = Budget

-- Runs fn() holding the budget's mutex in the dict (a few dict operations: microseconds, no
-- yield). A holder that died leaves it for at most 50 ms; past that wait, fn runs anyway
-- rather than stall a worker.
local function locked(self, fn)
  local dict, m = self.dict, self.k.mutex
  for _ = 1, 100000 do
    if dict:add(m, true, 0.05) then
      local ok, a, b = pcall(fn)
      dict:delete(m)
      if not ok then error(a, 0) end
      return a, b
    end
  end
  return fn()
end

--- A permit to send one request now, or how long to wait (the store budget interface,
-- docs/DESIGN.md "Stores"): no permit while a pause any worker set runs, while the requests
-- in flight in every worker reach the adaptive limit, or while the shared `max_rate` bucket is
-- empty.
-- @tparam function clock
-- @tparam[opt] number waited_until the end of a pause the caller waited out itself
-- @treturn table|nil the permit
-- @treturn number|nil seconds to wait before asking again
function Budget:acquire(clock, waited_until)
  local dict, k = self.dict, self.k
  local t = clock()
  local till = dict:get(k["until"]) or 0
  if till > t and till > (waited_until or 0) then return nil, till - t end
  local n = dict:incr(k.inflight, 1, 0)
  local limit = dict:get(k.limit)
  if limit and n > limit then
    dict:incr(k.inflight, -1, 0)
    return nil, SLOT_POLL
  end
  local rate = self.rate
  if rate then
    local ok, wait = locked(self, function()
      local stamp = dict:get(k.stamp) or t
      local tokens = math_min(self.burst, (dict:get(k.tokens) or 1) + (t - stamp) * rate)
      if tokens < 1 then
        dict:set(k.tokens, tokens, 600)
        dict:set(k.stamp, t, 600)
        return false, (1 - tokens) / rate
      end
      dict:set(k.tokens, tokens - 1, 600)
      dict:set(k.stamp, t, 600)
      return true
    end)
    if not ok then
      dict:incr(k.inflight, -1, 0)
      return nil, wait
    end
  end
  return { gen = dict:get(k.gen) or 0 }
end

--- Give a permit back: `"ok"`, `"pushback"` (429/503: the limit is cut to half the requests
-- in flight in every worker, once per round) or `"failed"`.
-- @tparam table permit
-- @tparam string outcome
function Budget:release(permit, outcome)
  local dict, k = self.dict, self.k
  local n = dict:incr(k.inflight, -1, 0)
  if n < 0 then dict:set(k.inflight, 0) n = 0 end
  if outcome == "pushback" then
    locked(self, function()
      local gen = dict:get(k.gen) or 0
      if permit.gen ~= gen then return end -- this round was cut already
      local current = dict:get(k.limit) or (n + 1)
      if n + 1 > current then current = n + 1 end
      dict:set(k.limit, math_max(1, math_floor(current / 2)))
      dict:set(k.ceiling, math_max(dict:get(k.ceiling) or 0, n + 1))
      dict:set(k.grown, 0)
      dict:set(k.gen, gen + 1)
    end)
  elseif outcome == "ok" and dict:get(k.limit) then
    locked(self, function()
      local limit = dict:get(k.limit)
      if not limit then return end
      local grown = (dict:get(k.grown) or 0) + 1
      if grown >= limit then
        grown = 0
        limit = limit + 1
        if limit >= (dict:get(k.ceiling) or 0) then
          dict:delete(k.limit)
          dict:delete(k.ceiling)
          limit = nil
        end
      end
      if limit then dict:set(k.limit, limit) end
      dict:set(k.grown, grown)
    end)
  end
end

--- Pause every worker's requests for `seconds` (a longer pause already running is kept).
-- @tparam number seconds
-- @tparam function clock
-- @treturn number the end of the pause (epoch seconds)
function Budget:pause(seconds, clock)
  local dict, k = self.dict, self.k
  local t = clock() + seconds
  return locked(self, function()
    local till = dict:get(k["until"]) or 0
    if t > till then
      dict:set(k["until"], t, seconds + 1)
      till = t
    end
    return till
  end)
end

--- The end of the pause in force (epoch seconds), or 0.
-- @treturn number
function Budget:paused_until()
  return self.dict:get(self.k["until"]) or 0
end

--- `{in_flight =, limit =, paused_until =, max_rate =}` (every worker's).
-- @treturn table
function Budget:state()
  local dict, k = self.dict, self.k
  return { in_flight = dict:get(k.inflight) or 0, limit = dict:get(k.limit),
    paused_until = self:paused_until(), max_rate = self.rate }
end

--- Change the settings: `max_rate` (requests per second for every worker together; `false`
-- removes the cap). Every worker should give the same.
-- @tparam table opts
function Budget:configure(opts)
  if opts.max_rate == false then
    self.rate, self.burst = nil, nil
  elseif opts.max_rate ~= nil then
    local rate = opts.max_rate
    if type(rate) ~= "number" or rate ~= rate or rate <= 0 then
      error("assesskit.ngx.token_cache: max_rate must be a number > 0 (requests per second)", 3)
    end
    self.rate, self.burst = rate, math_max(1, math_floor(rate / 10))
  end
end

--- The rate budget of a credential, shared by every worker of this nginx through the dict
-- (one object per key in each worker).
-- @tparam string key the credential's identity
-- @tparam[opt] table opts `max_rate`
-- @treturn table the budget (`acquire`, `release`, `pause`, `paused_until`, `state`,
--   `configure`)
function M:budget(key, opts)
  check_key(key)
  local budgets = self.budgets
  local b = budgets[key]
  if not b then
    local base = self.prefix .. "budget:" .. key .. ":"
    local k = {}
    for _, name in ipairs({ "until", "inflight", "limit", "ceiling", "grown", "gen", "tokens",
      "stamp", "mutex" }) do
      k[name] = base .. name
    end
    b = setmetatable({ dict = self.dict, k = k }, Budget)
    budgets[key] = b
  end
  if opts then b:configure(opts) end
  return b
end

return M
