--- The in-process store: what must be one per credential (the token, the rate budget).
--
-- A store holds, per key (a credential's identity, never a secret), the state every client of
-- that credential must share: its access token (with a renewal lock, so that one holder at a
-- time asks the token endpoint) and its **rate budget** (the `Retry-After` pause, the adaptive
-- in-flight limit, the `max_rate` token bucket). This module is the default store, living in
-- the memory of one Lua state (one process, or one nginx worker); `assesskit.ngx.token_cache`
-- shares tokens between the workers of one nginx. The interface, for anyone writing another
-- store, is in docs/DESIGN.md ("Stores").
--
-- Give several clients one store to make them one client for the API: one token request for
-- all, one budget (a 429 seen by one pauses them all).
--
-- **The budget.** `store:budget(key)` returns the budget of a credential:
--
-- * `acquire(clock [, waited_until]) -> permit | nil, wait`: a permit to send one request now,
--   or how long to wait before asking again. No permit while a pause runs, while the requests
--   in flight reach the adaptive limit, or while the token bucket (`max_rate`) is empty.
-- * `release(permit, outcome)`: the request has ended; `outcome` is `"ok"` (an answer),
--   `"pushback"` (429 or 503: the limit is cut to half the requests in flight, once per
--   round of requests) or `"failed"` (no answer: the limit is left as it is). After a cut the
--   limit grows by one for every `limit` answers (additive increase, multiplicative decrease)
--   and is lifted once it is back at the number of requests that were in flight at the cut.
-- * `pause(seconds, clock)`: no permit until then (a longer pause already running is kept).
-- * A permit whose coroutine died without giving it back (a light thread killed during its
--   request) is given back by the budget itself.
-- * `paused_until() -> epoch seconds | 0`, `state() -> {in_flight =, limit =, paused_until =,
--   max_rate =}`, `configure{max_rate =}`.
--
-- Everything here runs in one Lua state, so the budget needs no lock; the waits happen in the
-- client (its `wait`, which suspends a task of a scheduler or a light thread).
-- @module assesskit.store
-- @usage
-- local store = require("assesskit.store").new()
-- local a = talview.new{ auth = creds, store = store }
-- local b = talview.new{ auth = creds, store = store }   -- one token, one budget with `a`
local type, setmetatable, error, tostring, pairs =
  type, setmetatable, error, tostring, pairs
local math_floor, math_max, math_min = math.floor, math.max, math.min
local coroutine_running, coroutine_status = coroutine.running, coroutine.status

local scheduler = require("assesskit.scheduler")
local options = require("assesskit.options")

local M = {}

-- How long a request waits before asking again for a slot under the in-flight limit.
local SLOT_POLL = 0.005
-- Permits handed out between two looks for permits of dead coroutines (Budget:reap).
local REAP_EVERY = 256
-- Renewal-lock polling: first step, largest step (seconds).
local LOCK_STEP, LOCK_MAX_STEP = 0.002, 0.05

-- ------------------------------------------------------------------------------------------
-- The budget

local Budget = {}
Budget.__index = Budget

local function check_rate(rate, where)
  if rate ~= nil and (type(rate) ~= "number" or rate ~= rate or rate <= 0) then
    error(where .. ": max_rate must be a number > 0 (requests per second)", 3)
  end
  return rate
end

--- Create a budget on its own (a store makes one per key).
-- @tparam[opt] table opts `max_rate` (requests per second)
-- @treturn table the budget
function M.budget(opts)
  opts = opts or {}
  local b = setmetatable({
    in_flight = 0,
    limit = nil,        -- adaptive in-flight limit (nil: none)
    ceiling = 0,        -- where a cut limit is lifted again
    grown = 0,          -- answers since the limit last grew
    seq = 0,            -- permits handed out
    cut_seq = 0,        -- permits up to this one do not cut again (one cut per round)
    until_ = 0,         -- pause end (epoch seconds)
    tokens = 0, stamp = nil,
    holders = {},       -- permit -> the coroutine it was handed to (see reap)
  }, Budget)
  b:configure(opts)
  return b
end

--- Change the budget's settings.
-- @tparam table opts `max_rate` (requests per second; `false` removes the cap)
function Budget:configure(opts)
  if opts.max_rate == false then
    self.rate, self.burst = nil, nil
  elseif opts.max_rate ~= nil then
    local rate = check_rate(opts.max_rate, "assesskit.store")
    self.rate = rate
    -- a burst of a tenth of a second's worth (at least one): any one-second window sees at
    -- most max_rate + burst requests
    self.burst = math_max(1, math_floor(rate / 10))
    self.tokens = math_min(self.tokens, self.burst)
  end
end

--- A permit to send one request now, or how long to wait.
-- @tparam function clock `function() -> seconds` (called only when needed)
-- @tparam[opt] number waited_until the end of a pause the caller has already waited out
--   itself (a retry after its `Retry-After`): that pause does not hold it again
-- @treturn number|nil the permit (give it back to `release`)
-- @treturn number|nil seconds to wait before asking again
function Budget:acquire(clock, waited_until)
  local now
  if self.until_ > 0 then
    now = clock()
    if now >= self.until_ then
      self.until_ = 0
    elseif self.until_ > (waited_until or 0) then
      return nil, self.until_ - now
    end -- else: the caller waited this pause out itself; it still holds everyone else
  end
  local limit = self.limit
  if limit and self.in_flight >= limit then
    self:reap()
    if self.in_flight >= limit then return nil, SLOT_POLL end
  end
  local rate = self.rate
  if rate then
    now = now or clock()
    local stamp = self.stamp or now
    local tokens = math_min(self.burst, self.tokens + (now - stamp) * rate)
    self.stamp = now
    if tokens < 1 then
      self.tokens = tokens
      return nil, (1 - tokens) / rate
    end
    self.tokens = tokens - 1
  end
  local seq = self.seq + 1
  self.seq = seq
  self.in_flight = self.in_flight + 1
  local co = coroutine_running()
  if co then self.holders[seq] = co end
  if seq % REAP_EVERY == 0 then self:reap() end
  return seq
end

-- Give back the permits of coroutines that died holding them: a light thread killed during its
-- request (ngx.thread.kill, ngx.exit) never releases its permit, and would keep a place under
-- the in-flight limit for good. Returns whether one was given back.
function Budget:reap()
  local reaped = false
  for permit, co in pairs(self.holders) do
    if coroutine_status(co) == "dead" then
      self.holders[permit] = nil
      self.in_flight = self.in_flight - 1
      reaped = true
    end
  end
  return reaped
end

--- Give a permit back.
-- @tparam number permit from `acquire`
-- @tparam string outcome `"ok"`, `"pushback"` (429, 503) or `"failed"` (no answer)
function Budget:release(permit, outcome)
  self.holders[permit] = nil
  local in_flight = self.in_flight
  self.in_flight = in_flight - 1
  if outcome == "pushback" then
    if permit > self.cut_seq then
      -- multiplicative decrease, once for the requests that were in flight together
      local current = self.limit or in_flight
      if in_flight > current then current = in_flight end
      self.ceiling = math_max(self.ceiling, in_flight)
      self.limit = math_max(1, math_floor(current / 2))
      self.cut_seq = self.seq
      self.grown = 0
    end
  elseif outcome == "ok" then
    local limit = self.limit
    if limit then
      local grown = self.grown + 1
      if grown >= limit then -- additive increase: one more per limit's worth of answers
        grown = 0
        limit = limit + 1
        if limit >= self.ceiling then
          limit = nil
          self.ceiling = 0
        end
        self.limit = limit
      end
      self.grown = grown
    end
  end
end

--- Pause every request of the budget for `seconds` (a longer pause already running is kept).
-- @tparam number seconds
-- @tparam function clock
-- @treturn number the end of the pause (epoch seconds)
function Budget:pause(seconds, clock)
  local t = clock() + seconds
  if t > self.until_ then self.until_ = t end
  return self.until_
end

--- The end of the running pause (epoch seconds), or 0.
-- @treturn number
function Budget:paused_until()
  return self.until_
end

--- The budget's state, for hooks, progress and tests.
-- @treturn table `{in_flight =, limit =, paused_until =, max_rate =}`
function Budget:state()
  return { in_flight = self.in_flight, limit = self.limit, paused_until = self.until_,
    max_rate = self.rate }
end

function Budget:__tostring()
  return "assesskit.store.budget(in_flight=" .. self.in_flight .. ", limit="
    .. tostring(self.limit) .. ")"
end

-- ------------------------------------------------------------------------------------------
-- The store

local Store = {}
Store.__index = Store

--- Create an in-process store.
-- @tparam[opt] table opts `sleep` (`function(seconds)` a lock waiter waits with; default:
--   suspend the running scheduler task or nginx light thread, else block)
-- @treturn table the store
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("assesskit.store.new: opts must be a table", 2)
  end
  opts = opts or {}
  options.check(opts, { "sleep" }, "assesskit.store.new", 2)
  if opts.sleep ~= nil and type(opts.sleep) ~= "function" then
    error("assesskit.store.new: sleep must be a function", 2)
  end
  return setmetatable({ entries = {}, locks = {}, budgets = {}, sleep = opts.sleep }, Store)
end

local function check_key(key, level)
  if type(key) ~= "string" or key == "" then
    error("assesskit.store: key must be a non-empty string", level + 1)
  end
end

--- The budget of `key` (created at the first call).
-- @tparam string key
-- @tparam[opt] table opts `max_rate` (requests per second): applied to the budget
-- @treturn table the budget
function Store:budget(key, opts)
  check_key(key, 2)
  local b = self.budgets[key]
  if not b then
    b = M.budget(opts)
    self.budgets[key] = b
  elseif opts then
    b:configure(opts)
  end
  return b
end

--- The token entry of `key`, or nil.
-- @tparam string key
-- @treturn table|nil `{token =, expires_at =, lifetime =, refresh_token =}`
function Store:get(key)
  check_key(key, 2)
  return self.entries[key]
end

--- Store the token entry of `key`.
-- @tparam string key
-- @tparam table entry
-- @treturn true
function Store:set(key, entry)
  check_key(key, 2)
  if type(entry) ~= "table" then error("assesskit.store:set: entry must be a table", 2) end
  local copy = {}
  for k, v in pairs(entry) do copy[k] = v end
  self.entries[key] = copy
  return true
end

--- Drop the token entry of `key`.
-- @tparam string key
function Store:delete(key)
  check_key(key, 2)
  self.entries[key] = nil
end

--- Take the renewal lock of `key`, waiting (suspending a task or a light thread) for the
-- holder to give it back, at most `timeout` seconds.
-- @tparam string key
-- @tparam[opt=30] number timeout seconds
-- @treturn[1] function `release()` (idempotent)
-- @treturn[2] nil
-- @treturn[2] string `"timeout"`
function Store:lock(key, timeout)
  check_key(key, 2)
  timeout = timeout or 30
  local locks = self.locks
  local waited, step = 0, LOCK_STEP
  while locks[key] do
    local holder = locks[key].holder
    if type(holder) == "thread" and coroutine_status(holder) == "dead" then
      break -- its holder was killed where it stood (ngx.thread.kill, ngx.exit): take it over
    end
    if waited >= timeout then return nil, "timeout" end
    local d = math_min(step, timeout - waited)
    if self.sleep then self.sleep(d) else scheduler.sleep(d) end
    waited = waited + d
    step = math_min(step * 2, LOCK_MAX_STEP)
  end
  local token = { holder = coroutine_running() }
  locks[key] = token
  return function()
    if locks[key] == token then locks[key] = nil end
  end
end

function Store.__tostring()
  return "assesskit.store(in-process)"
end

return M
