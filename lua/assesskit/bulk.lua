--- Bulk work: `client:map` and pages fetched ahead (`:each{concurrency = N}`).
--
-- `map(items, fn, opts)` calls `fn(item, i)` for every item with up to `opts.concurrency`
-- calls in flight. `fn` is ordinary code making ordinary client calls; the concurrency comes
-- from where it runs:
--
-- * in plain Lua (5.4, or LuaJIT outside nginx), every worker is a task of an
--   `assesskit.scheduler`: a call to a client whose transport is a `core.session` starts its
--   transfer on the scheduler's `core.loop` (libcurl's multi interface) and the task suspends
--   until it has finished; waits (retry backoff, a token renewal by another task, the rate
--   budget) suspend the task too;
-- * inside nginx, every worker is a light thread (`ngx.thread.spawn`): the cosocket transport
--   and `ngx.sleep` already suspend.
--
-- The user guide is docs/bulk.md. With a journal (`assesskit.journal`) each worker runs its
-- items through the journal's `job:item` (`journal_worker` below).
-- @internal assesskit.bulk
local type, error, pcall, tostring, setmetatable, rawget, require, pairs =
  type, error, pcall, tostring, setmetatable, rawget, require, pairs
local math_floor, math_huge = math.floor, math.huge

local scheduler = require("assesskit.scheduler")
local journal = require("assesskit.journal")
local options = require("assesskit.options")

local M = {}

local DEFAULT_CONCURRENCY = 8

-- ------------------------------------------------------------------------------------------
-- Runtimes: how tasks are spawned, joined and woken where `map` runs
--
-- rt:spawn(fn, ...) -> handle; rt:join(handle) -> ok, results... (pcall-like);
-- rt:call(fn, ...) -> ok, results... (pcall-like: one item's fn); rt:cond() -> {wait = fn,
-- signal = fn}; rt:sleep(seconds) (from a task: 0 lets the other ready tasks run first);
-- rt:close()

local function inside_nginx()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.thread) == "table"
    and type(ngx.thread.spawn) == "function" and type(ngx.get_phase) == "function"
end

local NgxRuntime = {}
NgxRuntime.__index = NgxRuntime

function NgxRuntime:spawn(fn, ...)
  local t, err = self.ngx.thread.spawn(fn, ...)
  if not t then error("assesskit: cannot start a light thread: " .. tostring(err), 0) end
  return t
end

function NgxRuntime:join(t)
  return self.ngx.thread.wait(t)
end

-- Inside nginx a coroutine.yield in a light thread only lets the others run: a plain pcall.
function NgxRuntime.call(_, fn, ...)
  return pcall(fn, ...)
end

function NgxRuntime:cond()
  local ngx = self.ngx
  local ok, semaphore = pcall(require, "ngx.semaphore")
  if not ok then -- without lua-resty-core: poll (the waits are short and rare)
    return { wait = function() ngx.sleep(0.001) end, signal = function() end }
  end
  local sema = semaphore.new(0)
  local waiting = 0
  return {
    wait = function()
      waiting = waiting + 1
      sema:wait(60) -- woken by signal; the caller checks its condition again
    end,
    signal = function()
      if waiting > 0 then
        sema:post(waiting)
        waiting = 0
      end
    end,
  }
end

function NgxRuntime.close() end

function NgxRuntime:sleep(seconds)
  self.ngx.sleep(seconds)
end

local SchedRuntime = {}
SchedRuntime.__index = SchedRuntime

function SchedRuntime:spawn(fn, ...)
  return self.s:spawn(fn, ...)
end

function SchedRuntime:join(task)
  return self.s:join(task)
end

-- One item's fn in a task of its own, joined by the worker: a value fn yields itself (which
-- the scheduler cannot resume) fails that task, so the item gets the error and the worker
-- goes on with the next item.
function SchedRuntime:call(fn, ...)
  local s = self.s
  return s:join(s:spawn(fn, ...))
end

function SchedRuntime:cond()
  return self.s:cond()
end

-- A scheduler of our own is closed once what still runs on it has ended: tasks that outlived
-- their map (pages ahead of an `each` that `fn` broke out of) finish their request, so that
-- the permit, the token renewal or the lock they hold is given back; closing would drop them
-- where they are.
function SchedRuntime:close()
  if self.owned then
    self.s:drive()
    self.s:close()
  end
end

function SchedRuntime:sleep(seconds)
  self.s:sleep(seconds)
end

--- The runtime for the running code: nginx light threads, the running scheduler (a map or an
-- `each` inside a task shares its scheduler), or a new scheduler owned by the caller.
-- @treturn table the runtime
function M.runtime()
  if inside_nginx() then
    return setmetatable({ ngx = rawget(_G, "ngx") }, NgxRuntime)
  end
  local s = scheduler.current()
  if s then return setmetatable({ s = s, owned = false }, SchedRuntime) end
  return setmetatable({ s = scheduler.new(), owned = true }, SchedRuntime)
end

-- ------------------------------------------------------------------------------------------
-- Options

local MAP_OPTIONS = {
  concurrency = "number", on_result = "function", on_progress = "function",
  stop_on_error = "boolean", max_rate = "number",
  -- the journal (assesskit.journal checks how they go together)
  journal = true, key = "function", reconcile = "function", retry_failed = "boolean",
  job = "string",
}

local function check_options(opts, where)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(where .. ": opts must be a table", 4) end
  options.check(opts, MAP_OPTIONS, where, 4)
  for k, v in pairs(opts) do
    local want = MAP_OPTIONS[k]
    if want ~= true and type(v) ~= want then
      error(where .. ": option '" .. k .. "' must be a " .. want, 4)
    end
  end
  local n = opts.concurrency
  if n ~= nil and (n ~= math_floor(n) or n < 1 or n == math_huge) then
    error(where .. ": option 'concurrency' must be an integer >= 1", 4)
  end
  local r = opts.max_rate
  if r ~= nil and (r ~= r or r <= 0) then
    error(where .. ": option 'max_rate' must be a number > 0 (requests per second)", 4)
  end
  return opts
end

-- ------------------------------------------------------------------------------------------
-- The job: one map call

local Job = {}
Job.__index = Job

-- A worker with a journal (`journal.job`'s `job:item`: claim the item, give back a recorded
-- outcome or reconcile an ambiguous one, or run `fn` between its 'started' record and its
-- outcome; a journal that refuses the item or cannot be written stops the map). An item's
-- outcome is delivered once it is durable, and the
-- fdatasync that makes the worker's next claim durable covers it, so one fdatasync serves the
-- outcomes and the next claims of the items that finish together (journal's `job:item`).
local function journal_worker(job)
  local jj = job.journal
  local held -- {i, value, err}: recorded, not yet durable
  local function release()
    local h = held
    if h then
      held = nil
      job:deliver(h[1], h[2], h[3])
    end
  end
  local function flush()
    if not held then return end
    local ok, err = jj:flush()
    if not ok then
      held[2], held[3] = nil, err -- its outcome could not be made durable
      job:stop(err)
    end
    release()
  end
  while true do
    local i, item = job:next_item()
    if i == nil then break end
    local value, err, stop, pending = jj:item(item, i, job.call, release)
    if stop then job:stop(err) end
    flush() -- when the item returned before its claim's fdatasync
    if pending then
      held = { i, value, err }
      -- stop_on_error: a failure must stop the map before the next item is taken
      if err ~= nil and job.stop_on_error then flush() end
    else
      job:deliver(i, value, err)
    end
  end
  flush()
end

-- What an error raised without a value (`error()`, `error(nil)`) becomes: pcall gives nil,
-- which would read as no error at all.
local function raised_value(job, value, what)
  if value == nil then return job.where .. ": " .. what .. " raised an error without a value" end
  return value
end

-- Call fn; an error it raises becomes the item's err (the raised value, as pcall gives it).
function Job:run(item, i)
  local ok, value, err = self.rt:call(self.fn, item, i)
  if not ok then return nil, raised_value(self, value, "fn") end
  return value, err
end

-- The next item and its index, or nil when there is none (or the job stops). An iterator is
-- called by one worker at a time (it may make calls itself, and suspend).
function Job:next_item()
  if self.stopped then return nil end
  local array = self.array
  if array then
    local i = self.next_i
    if i > self.total then return nil end
    self.next_i = i + 1
    return i, array[i]
  end
  while self.pulling do self.pull_cond.wait() end
  if self.stopped or self.exhausted then return nil end
  self.pulling = true
  local ok, item, ierr = pcall(self.iter)
  self.pulling = false
  self.pull_cond.signal()
  if not ok then
    self:stop(nil, raised_value(self, item, "the item iterator"))
    return nil
  end
  if item == nil then
    self.exhausted = true
    return nil
  end
  if item == false then -- an `each`-style failure: `false, err`
    self.exhausted = true
    self:stop(ierr or "the item iterator failed", nil)
    return nil
  end
  local i = self.next_i
  self.next_i = i + 1
  return i, item
end

-- Stop taking items: `err` becomes map's second result, `raised` is raised after the workers.
function Job:stop(err, raised)
  self.stopped = true
  if err ~= nil and self.stop_err == nil then self.stop_err = err end
  if raised ~= nil and self.raised == nil then self.raised = raised end
end

function Job:deliver(i, value, err)
  self.done = self.done + 1
  if err ~= nil then
    self.failed = self.failed + 1
    if self.stop_on_error then self:stop(err) end
  end
  if self.results then
    self.results[i] = { value = value, err = err }
  end
  if self.on_result then
    local ok, raised = pcall(self.on_result, i, value, err)
    if not ok then error(raised_value(self, raised, "on_result"), 0) end
  end
  if self.on_progress then
    local ok, raised = pcall(self.on_progress, self.done, self.total)
    if not ok then error(raised_value(self, raised, "on_progress"), 0) end
  end
end

local function worker(job)
  local ok, raised = pcall(function()
    if job.journal then return journal_worker(job) end
    while true do
      local i, item = job:next_item()
      if i == nil then return end
      job:deliver(i, job:run(item, i))
    end
  end)
  if not ok then job:stop(nil, raised) end
end

--- Run `fn(item, i)` for every item, up to `opts.concurrency` at a time.
-- @tparam table budget the client's rate budget (`configure` is used for `opts.max_rate`)
-- @param items an array, or an iterator function (`nil` ends it; `false, err` is a failure:
--   map stops taking items and returns `err` second)
-- @tparam function fn `fn(item, i) -> value, err`
-- @tparam[opt] table opts see the API clients' `map`
-- @tparam string where the caller's name, for errors (`talview:map`)
-- @return results, or a summary `{done =, failed =}` when delivered through `on_result` or
--   taken from an iterator
-- @return the error that stopped the map early (stop_on_error, iterator failure), or nil
-- @raise on misuse (level: the caller of the API client's `map`), or the error an iterator,
--   `on_result` or `on_progress` raised (after the items in flight have finished)
function M.map(budget, items, fn, opts, where)
  local ti = type(items)
  if ti ~= "table" and ti ~= "function" then
    error(where .. ": items must be an array or an iterator function", 3)
  end
  if type(fn) ~= "function" then error(where .. ": fn must be a function", 3) end
  opts = check_options(opts, where)
  -- the journal's options are checked (and a journal path opened) before anything is sent
  local env = {}
  local jj, jerr = journal.job(opts, env, 3, where)
  if jerr then return nil, jerr end
  local job = setmetatable({
    fn = fn, where = where, done = 0, failed = 0, next_i = 1, stopped = false,
    on_result = opts.on_result, on_progress = opts.on_progress,
    stop_on_error = opts.stop_on_error == true, journal = jj,
  }, Job)
  if jj then job.call = function(item, i) return job:run(item, i) end end
  local concurrency = opts.concurrency or DEFAULT_CONCURRENCY
  if ti == "table" then
    job.array, job.total = items, #items
    if not job.on_result then job.results = {} end
    if concurrency > job.total then concurrency = job.total end
  else
    job.iter = items
  end
  if concurrency == 0 then
    if jj then jj:close() end
    return job.results or { done = 0, failed = 0 }
  end

  local restore
  if opts.max_rate and budget.configure then
    local state = budget.state and budget:state()
    restore = { max_rate = state and state.max_rate or false }
    budget:configure({ max_rate = opts.max_rate })
  end
  local rt = M.runtime()
  job.rt = rt
  if job.iter then job.pull_cond = rt:cond() end
  if jj then
    -- group commit: a worker about to fdatasync lets the others write their records first
    env.yield = function() rt:sleep(0) end
    env.sleep = function(seconds) rt:sleep(seconds) end
  end
  local ok, err = pcall(function()
    local workers = {}
    for w = 1, concurrency do workers[w] = rt:spawn(worker, job) end
    for w = 1, concurrency do rt:join(workers[w]) end
  end)
  rt:close()
  if restore then budget:configure(restore) end
  if jj then
    local cok, cerr = jj:close()
    if not cok then job:stop(cerr) end
  end
  if not ok then error(err, 0) end
  if job.raised ~= nil then error(job.raised, 0) end
  if job.results then return job.results, job.stop_err end
  return { done = job.done, failed = job.failed }, job.stop_err
end

-- ------------------------------------------------------------------------------------------
-- Pages ahead

local function copy(t)
  local out = {}
  if t then for k, v in pairs(t) do out[k] = v end end
  return out
end

--- Iterate over every item of a list call, fetching up to `n` pages ahead once the first
-- page's counters (`page`, `page_count`) are known; items still come in order. Without
-- counters it goes on page by page, as `c:each`. Inside nginx, or in a task of a running
-- scheduler (inside `map`), the pages ahead run on beside the loop body (a window of `n`
-- pages); elsewhere (plain Lua outside `map`) they are fetched `n` at a time, and a batch
-- has ended before its items are handed out, so nothing is left half done while the loop
-- body runs or after it breaks.
-- @tparam table c an `assesskit.client`
-- @tparam string method
-- @tparam string path
-- @tparam table opts as for `c:pages` (without `concurrency`)
-- @tparam number n pages in flight at most
-- @treturn function iterator yielding items; on a failure `false, err` once, then the end
function M.each(c, method, path, opts, n)
  local pages = c:pages(method, path, opts)
  local items, pos, count = nil, 0, 0
  local ahead -- once counters are known: {rt, tasks = {[page] = task}, next_page, last_page}
  local finished = false

  local function start(k)
    local o = copy(opts)
    o.query = copy(opts and opts.query)
    o.query[c.page_param] = k
    o.paged = true
    ahead.tasks[k] = ahead.rt:spawn(function() return c:request(method, path, o) end)
  end

  local function stop()
    finished = true
    if ahead then
      ahead.rt:close()
      ahead = nil
    end
  end

  local function next_ahead()
    local k = ahead.next_page
    if k > ahead.last_page then return nil end
    local top = k + n - 1
    if top > ahead.last_page then top = ahead.last_page end
    if ahead.batch then
      -- A scheduler of our own runs only while this iterator waits: a page still on its way
      -- when the items go to the loop body would be frozen there, holding what it holds (a
      -- permit of the budget, the token renewal, a connection) while the body's own calls
      -- wait for it, and for ever after a `break`. So: up to n pages at once, all of them
      -- finished (and their scheduler closed) before any of their items is handed out.
      if not ahead.tasks[k] then
        ahead.rt = M.runtime()
        for j = k, top do start(j) end
        for j = k, top do ahead.rt:join(ahead.tasks[j]) end
        ahead.rt:close()
      end
    else -- light threads, or tasks of a scheduler driven by others: a sliding window
      for j = k, top do
        if not ahead.tasks[j] then start(j) end
      end
    end
    local task = ahead.tasks[k]
    ahead.tasks[k] = nil
    ahead.next_page = k + 1
    local ok, page, err, res = ahead.rt:join(task)
    if not ok then error(page, 0) end
    if not page then return false, err end
    local p = res and res.paging or {}
    if type(page) ~= "table" or #page == 0 or (p.page and p.page ~= k) then
      return nil -- an empty page, or the server ignored the page asked for: the end
    end
    return page
  end

  local function next_page()
    if ahead then return next_ahead() end
    local page, err, res = pages()
    if not page then return page, err end
    local p = res and res.paging
    if p and p.page and p.page_count and p.page < p.page_count and type(page) == "table"
      and #page > 0 then
      local rt = M.runtime()
      ahead = { rt = rt, batch = rt.owned == true, tasks = {}, next_page = p.page + 1,
        last_page = p.page_count }
      pages = nil
    end
    return page
  end

  return function()
    if finished then return nil end
    while pos >= count do
      local page, err = next_page()
      if page == nil then
        stop()
        return nil
      end
      if page == false then
        stop()
        return false, err
      end
      if type(page) ~= "table" then
        stop()
        return nil
      end
      items, pos, count = page, 0, #page
    end
    pos = pos + 1
    return items[pos]
  end
end

return M
