--- Cooperative coroutines over one non-blocking transfer loop (plain Lua: 5.4 and LuaJIT).
--
-- A scheduler runs tasks (coroutines it creates) over one `core.loop` (libcurl's multi
-- interface). Code running in a task makes ordinary blocking-looking calls; when such a call
-- must wait, the task suspends and the others run:
--
-- * `s:transfer(session, req)`: the request is started on the loop and the task resumes when
--   it has finished, with exactly what `session:request(req)` returns;
-- * `s:sleep(seconds)`: a timer;
-- * `s:join(task)`, `cond:wait()`: another task's end, a signal.
--
-- `assesskit.client` asks `scheduler.current()` before each transfer and each wait: inside a
-- task of a scheduler that is running, a call to a client whose transport is a `core.session`
-- suspends the task; anywhere else (the main program, a coroutine the user created, even
-- inside a task) it blocks as usual. A task never yields anything through a coroutine the
-- scheduler did not create, and a value a task yields itself is an error of that task (it
-- would have nowhere to go).
--
-- Users normally meet this module through `client:map` (docs/bulk.md); the interface here is
-- for people building on it (docs/DESIGN.md, "Concurrency").
-- @internal assesskit.scheduler
-- @usage
-- local s = scheduler.new()
-- local a = s:spawn(function() return tv.models.candidate:get(1) end)
-- local b = s:spawn(function() return tv.models.candidate:get(2) end)
-- local ok, cand, err = s:join(a)   -- drives both transfers until `a` has finished
-- s:close()
local type, setmetatable, select, error, require, pcall, tostring, pairs, rawget =
  type, setmetatable, select, error, require, pcall, tostring, pairs, rawget
local coroutine_create, coroutine_resume, coroutine_yield, coroutine_running,
  coroutine_status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running, coroutine.status
local math_max = math.max
local os_clock = os.clock

local M = {}

-- coroutine -> its task, for every task of every scheduler (weak: a dropped task is freed)
local tasks_of = setmetatable({}, { __mode = "k" })
-- How many tasks are alive in all schedulers: `current()` answers nil at once when none is.
local alive = 0

-- What a task yields to the scheduler; nothing else ever sees it.
local SUSPEND = setmetatable({}, { __tostring = function() return "assesskit.scheduler.SUSPEND" end })

local FOREIGN_YIELD = "assesskit.scheduler: the task yielded outside a coroutine of its own "
  .. "(coroutine.yield inside map's fn? wrap your own coroutines with coroutine.wrap)"

local gettime, blocking_sleep
do
  local ok, socket = pcall(require, "socket")
  if ok and type(socket) == "table" and socket.gettime then
    gettime, blocking_sleep = socket.gettime, socket.sleep
  else
    gettime = os_clock
  end
end

local function pack(...)
  return { n = select("#", ...), ... }
end

local unpack = table.unpack or unpack -- luacheck: ignore 143

local Scheduler = {}
Scheduler.__index = Scheduler

--- A task: the handle `spawn` returns.
-- Fields (read them, do not write them): `done` (boolean), and once done `ok` (false when the
-- task raised) and `results` (the function's results, or `{err}`, packed with `n`).
-- @table task

-- ------------------------------------------------------------------------------------------
-- Timers: a binary min-heap of {at =, task =}

local function heap_push(h, node)
  local n = #h + 1
  h[n] = node
  while n > 1 do
    local p = (n - n % 2) / 2
    if h[p].at <= node.at then break end
    h[n], h[p] = h[p], node
    n = p
  end
end

local function heap_pop(h)
  local n = #h
  local top, last = h[1], h[n]
  h[n] = nil
  n = n - 1
  if n == 0 then return top end
  local i = 1
  while true do
    local c = 2 * i
    if c > n then break end
    if c < n and h[c + 1].at < h[c].at then c = c + 1 end
    if h[c].at >= last.at then break end
    h[i] = h[c]
    i = c
  end
  h[i] = last
  return top
end

-- ------------------------------------------------------------------------------------------
-- Construction

--- Create a scheduler.
-- @tparam[opt] table opts `clock` (`function() -> seconds`, default LuaSocket's `gettime`),
--   `loop` (a `core.loop` to drive; default: one created at the first transfer and closed by
--   `close`)
-- @treturn table the scheduler
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("assesskit.scheduler.new: opts must be a table", 2)
  end
  opts = opts or {}
  return setmetatable({
    clock = opts.clock or gettime,
    loop = opts.loop,
    own_loop = opts.loop == nil,
    ready = {},      -- tasks to resume, with their resume values
    timers = {},     -- heap of {at, task}
    waiting = {},    -- transfer -> task
    transfers = 0,   -- transfers started and not finished
    tasks = 0,       -- tasks of this scheduler alive
    closed = false,
  }, Scheduler)
end

--- The scheduler and task of the running coroutine, when it is a task of a scheduler.
-- @treturn table|nil the scheduler
-- @treturn table|nil the task
function M.current()
  if alive == 0 then return nil end
  local task = tasks_of[coroutine_running()]
  if task then return task.scheduler, task end
  return nil
end

--- Sleep: suspend the running task when it belongs to a scheduler, else `fallback(seconds)`
-- (default: `ngx.sleep` inside nginx, which suspends a light thread, else LuaSocket's blocking
-- sleep).
-- @tparam number seconds
-- @tparam[opt] function fallback
function M.sleep(seconds, fallback)
  local s = M.current()
  if s then return s:sleep(seconds) end
  if fallback then return fallback(seconds) end
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.sleep) == "function" then return ngx.sleep(seconds) end
  if blocking_sleep then return blocking_sleep(seconds) end
  local t = gettime() + seconds -- no LuaSocket: there is no way to wait but the clock
  while gettime() < t do end
end

-- ------------------------------------------------------------------------------------------
-- Running tasks

local function wake(self, task, ...)
  local ready = self.ready
  ready[#ready + 1] = { task, pack(...) }
end

local function finish(self, task, ok, ...)
  task.done = true
  task.ok = ok
  task.results = pack(...)
  tasks_of[task.co] = nil
  task.co = nil
  self.tasks = self.tasks - 1
  alive = alive - 1
  local joiners = task.joiners
  if joiners then
    task.joiners = nil
    for i = 1, #joiners do wake(self, joiners[i]) end
  end
end

local function after_resume(self, task, ok, first, ...)
  if coroutine_status(task.co) == "dead" then
    return finish(self, task, ok, first, ...)
  end
  if first ~= SUSPEND then
    -- user code yielded from a task: nothing can resume it sensibly
    return finish(self, task, false, FOREIGN_YIELD)
  end
end

local function step(self, task, args)
  if not task.co then return end -- finished meanwhile (closed)
  if args then
    return after_resume(self, task, coroutine_resume(task.co, unpack(args, 1, args.n)))
  end
  return after_resume(self, task, coroutine_resume(task.co))
end

--- Start a task: `fn(...)` in a new coroutine. It runs when the scheduler is driven (by
-- `join` or `drive`), not now.
-- @tparam function fn
-- @param ... its arguments
-- @treturn table the task
function Scheduler:spawn(fn, ...)
  if type(fn) ~= "function" then error("scheduler:spawn: fn must be a function", 2) end
  if self.closed then error("scheduler:spawn: the scheduler is closed", 2) end
  local co = coroutine_create(fn)
  local task = { co = co, scheduler = self, done = false }
  tasks_of[co] = task
  self.tasks = self.tasks + 1
  alive = alive + 1
  wake(self, task, ...)
  return task
end

local function suspend()
  return coroutine_yield(SUSPEND)
end

local function own_task(self, what)
  local task = tasks_of[coroutine_running()]
  if not task or task.scheduler ~= self then
    error("scheduler:" .. what .. ": not called from a task of this scheduler", 3)
  end
  return task
end

--- Suspend the running task for `seconds` (0: let the other ready tasks run first).
-- @tparam number seconds
function Scheduler:sleep(seconds)
  local task = own_task(self, "sleep")
  if seconds <= 0 or seconds ~= seconds then
    wake(self, task)
  else
    heap_push(self.timers, { at = self.clock() + seconds, task = task })
  end
  return suspend()
end

--- Make a request on the scheduler's loop, suspending the running task until it has finished.
-- @tparam userdata session a `core.session`
-- @tparam table req as for `session:request`
-- @return what `session:request(req)` returns: `status, headers, body`, or `nil, message,
--   kind, sent`
function Scheduler:transfer(session, req)
  local task = own_task(self, "transfer")
  local loop = self.loop
  if not loop then
    loop = require("assesskit.core").loop()
    self.loop = loop
  end
  local x, msg, kind, sent = loop:start(session, req)
  if not x then return nil, msg, kind, sent end
  self.waiting[x] = task
  self.transfers = self.transfers + 1
  return suspend()
end

-- Resume every ready task once (the ones they wake go to the next round).
local function run_ready(self)
  local ready = self.ready
  self.ready = {}
  for i = 1, #ready do
    local r = ready[i]
    step(self, r[1], r[2])
  end
end

local function fire_timers(self)
  local timers = self.timers
  if timers[1] == nil then return end
  local now = self.clock()
  while timers[1] and timers[1].at <= now do
    local t = heap_pop(timers)
    wake(self, t.task)
  end
end

-- Wait for a transfer or the next timer (at most `cap` seconds), and wake what finished.
local function wait_events(self, cap)
  local timers = self.timers
  local wait = cap
  if timers[1] then
    wait = math_max(0, timers[1].at - self.clock())
    if wait > cap then wait = cap end
  end
  if self.transfers > 0 then
    local done = self.loop:run(wait)
    for i = 1, #done do
      local x = done[i]
      local task = self.waiting[x]
      if task then
        self.waiting[x] = nil
        self.transfers = self.transfers - 1
        wake(self, task, x:result())
      end
    end
  elseif wait > 0 then
    M.sleep(wait)
  end
end

--- Drive the scheduler until `until_fn()` is true or nothing is left that could make
-- progress. Call it from outside the scheduler's tasks (the main program or a coroutine of
-- yours); from a task, use `join` or a condition instead.
-- @tparam[opt] function until_fn default: until every task has finished
-- @treturn boolean whether `until_fn()` became true (or every task finished)
function Scheduler:drive(until_fn)
  if M.current() == self then
    error("scheduler:drive: called from one of its own tasks (use join)", 2)
  end
  until_fn = until_fn or function() return self.tasks == 0 end
  while not until_fn() do
    if self.ready[1] then
      run_ready(self)
    elseif self.timers[1] or self.transfers > 0 then
      wait_events(self, 1)
      fire_timers(self)
    else
      return false -- every task waits for something nobody will do
    end
  end
  return true
end

--- Wait for a task to finish. From a task of this scheduler, the running task suspends; from
-- anywhere else, the scheduler is driven until the task has finished.
-- @tparam table task from `spawn`
-- @treturn boolean true, or false when the task raised an error
-- @return the task's results, or the error it raised
function Scheduler:join(task)
  if not task.done then
    local current = tasks_of[coroutine_running()]
    if current and current.scheduler == self then
      if current == task then error("scheduler:join: a task cannot join itself", 2) end
      local joiners = task.joiners
      if not joiners then
        joiners = {}
        task.joiners = joiners
      end
      joiners[#joiners + 1] = current
      suspend()
    else
      self:drive(function() return task.done end)
      if not task.done then
        return false, "assesskit.scheduler: the task can never finish (it waits for nothing)"
      end
    end
  end
  local r = task.results
  return task.ok, unpack(r, 1, r.n)
end

--- A condition: tasks `wait()` on it until another task (or the driver) calls `signal()`.
-- @treturn table `cond` with `wait()` (from a task of this scheduler) and `signal()` (wakes
--   every waiting task)
function Scheduler:cond()
  local waiters = {}
  local sched = self
  return {
    wait = function()
      waiters[#waiters + 1] = own_task(sched, "cond.wait")
      return suspend()
    end,
    signal = function()
      local n = #waiters
      if n == 0 then return end
      local list = waiters
      waiters = {}
      for i = 1, n do wake(sched, list[i]) end
    end,
  }
end

--- How many tasks are alive and transfers running.
-- @treturn number tasks
-- @treturn number transfers
function Scheduler:counts()
  return self.tasks, self.transfers
end

--- Close the scheduler: its loop (when it created it) is closed, which cancels the transfers
-- still running; tasks still suspended are dropped. Idempotent.
function Scheduler:close()
  if self.closed then return end
  self.closed = true
  if self.loop and self.own_loop then self.loop:close() end
  self.loop = nil
  self.waiting, self.ready, self.timers, self.transfers = {}, {}, {}, 0
  -- tasks left suspended are unreachable now: count them out so `current()` stays fast
  for co, task in pairs(tasks_of) do
    if task.scheduler == self then
      tasks_of[co] = nil
      alive = alive - 1
    end
  end
  self.tasks = 0
end

function Scheduler:__tostring()
  return "assesskit.scheduler(" .. tostring(self.tasks) .. " tasks, " .. tostring(self.transfers)
    .. " transfers)"
end

M.Scheduler = Scheduler
return M
