--- The sandbox's action queue: a queued Talview action waits `action_delay` seconds (a
-- run-time setting) in status 1, then an nginx timer processes it: status 2, each item in turn
-- (`success_count` / `error_count` growing), then status 3 and its callback
-- (`assesskit.sandbox.callbacks`). `POST /_sandbox/actions/run` (`run`) processes every pending
-- action at once, so that tests need not wait.
--
-- The sandbox runs one nginx worker and its state lives in that worker's Lua VM: timers
-- (`ngx.timer.at`) run in the same worker, so they see and change the same store as requests.
-- A reset (`clear`) starts a new epoch: timers of the old one do nothing.
--
-- Faults that go with an action (`assesskit.sandbox.faults`): `slow_action` (each item takes
-- `delay` seconds), `partial_failure` (the first `items` items fail), `callback_down` (for the
-- callbacks module).
-- @module assesskit.sandbox.queue

local ngx = ngx -- luacheck: read globals ngx
local json = require("assesskit.sandbox.json")
local config = require("assesskit.sandbox.config")
local resources = require("assesskit.sandbox.resources")
local callbacks = require("assesskit.sandbox.callbacks")
local action_status = require("assesskit.talview.action_status")

local type, pairs, ipairs, pcall, tostring, table_sort = type, pairs, ipairs, pcall, tostring, table.sort

local M = {}

--- The most seconds `run` waits for an action another timer is processing.
M.run_wait = 60

local entries = {}  -- action id -> entry
local epoch = 0

--- Forget every pending action and callback (a reset); timers already set do nothing.
function M.clear()
  epoch = epoch + 1
  entries = {}
  callbacks.clear()
end

local function log_error(...)
  if ngx then ngx.log(ngx.ERR, "sandbox actions: ", ...) end
end

-- What names an item in `response`.
local function label(job, it, i)
  if job.label then return job.label(it, i) end
  if type(it) ~= "table" then return it end
  return i
end

-- One item, its failure caught: true, or nil and the message.
local function do_item(entry, it, i)
  local fail = entry.faults.partial_failure
  if fail and i <= fail.items then
    return nil, "Sandbox fault: this item failed on purpose (partial_failure)."
  end
  local ok, done, why = pcall(entry.job.item, it, i)
  if not ok then
    log_error("action ", entry.id, " item ", i, ": ", tostring(done))
    return nil, "Unable to process your request"
  end
  return done, why
end

local function finish(entry, status, response)
  local rec = entry.rec
  local now = resources.now()
  rec.status = status
  rec.response = response or json.null
  rec.updated_at = now
  if status == action_status.COMPLETED then
    rec.completed_at = now
    if entry.job.links then
      local ok, links = pcall(entry.job.links)
      if ok and links then rec._links = links end
    end
  end
  if entry.shape then entry.shape(rec) end
  entry.state = "done"
  entries[entry.id] = nil
  callbacks.start(rec, entry.callback, not entry.immediate)
end

--- Process an action now (if nobody has yet): status 2, its items, status 3 (or 99 when it
-- fails as a whole), then its callback. Sleeps only for a `slow_action` fault, and not when
-- `run` hurries it.
-- @tparam table entry from `add`
function M.process(entry)
  if entry.state ~= "queued" then return end
  entry.state = "processing"
  local rec, job = entry.rec, entry.job
  local now = resources.now()
  rec.status = action_status.PROCESSING
  rec.started_at, rec.last_attempt_at, rec.updated_at = now, now, now
  if job.start then
    local ok, started, why = pcall(job.start)
    if not ok or not started then
      if not ok then log_error("action ", entry.id, ": ", tostring(started)) end
      rec.total_count, rec.success_count, rec.error_count = 0, 0, 0
      rec.requested_at = rec.requested_at ~= json.null and rec.requested_at or now
      return finish(entry, action_status.FAILED, json.encode(ok and why or "Unable to process your request"))
    end
  end
  local items = job.items or {}
  rec.total_count, rec.success_count, rec.error_count = #items, 0, 0
  local errors = json.array()
  local slow = entry.faults.slow_action
  for i, it in ipairs(items) do
    if slow and not entry.hurry and slow.delay > 0 then
      -- in slices, so that `run` can hurry it
      local wake = ngx.now() + slow.delay
      while not entry.hurry and ngx.now() < wake do ngx.sleep(math.min(0.02, wake - ngx.now())) end
      if entry.epoch ~= epoch then return end -- reset meanwhile: the store is a new one
    end
    local done, why = do_item(entry, it, i)
    if done then
      rec.success_count = rec.success_count + 1
    else
      rec.error_count = rec.error_count + 1
      errors[#errors + 1] = json.object({ id = label(job, it, i), message = tostring(why) }, { "id", "message" })
    end
    rec.updated_at = resources.now()
  end
  return finish(entry, action_status.COMPLETED, #errors > 0 and json.encode(errors) or nil)
end

local function on_timer(premature, at_epoch, id)
  if premature or at_epoch ~= epoch then return end
  local entry = entries[id]
  if entry then M.process(entry) end
  -- an action whose timer could not be set waits for the next timer (or `run`)
  local late = {}
  for _, e in pairs(entries) do
    if e.state == "queued" and e.untimed then late[#late + 1] = e end
  end
  for _, e in ipairs(late) do
    if e.epoch == epoch then M.process(e) end
  end
end

--- Keep a new action: queued (status 1) until its time comes, unless `opts.immediate` (then
-- the caller processes it before answering).
-- @tparam table rec the action object (kept in the `action` store)
-- @tparam table job what the action does (`assesskit.sandbox.actions`): `items`, `item`, and
--   optionally `start`, `links`, `label`
-- @tparam table opts `faults` (kind -> fault), `callback_url`, `skip_callback`, `immediate`,
--   `shape` (a function given the action object once it is final, before its callback: what
--   an action done at once leaves out of its answer)
-- @treturn table the entry
function M.add(rec, job, opts)
  local entry = {
    id = rec.id, rec = rec, job = job, faults = opts.faults or {}, state = "queued", epoch = epoch,
    immediate = opts.immediate, shape = opts.shape,
    callback = { url = opts.callback_url, skip = opts.skip_callback,
                 down = opts.faults and opts.faults.callback_down or nil },
  }
  entries[rec.id] = entry
  if not opts.immediate then
    local ok, err = ngx.timer.at(config.settings.action_delay, on_timer, epoch, rec.id)
    if not ok then
      entry.untimed = true
      log_error("cannot set a timer for action ", rec.id, ": ", tostring(err))
    end
  end
  return entry
end

--- Process every pending action now, and make every callback attempt that is waiting for its
-- retry: what `POST /_sandbox/actions/run` does. Callbacks waiting when `run` starts get one
-- attempt each; those of the actions it processes get their first; the attempts go side by
-- side (one receiver's wait does not add to another's) and are over when it returns. An action
-- another timer is processing (slowed by a fault) is hurried and waited for.
-- @treturn table `{processed = <actions processed>, callbacks = <callback attempts made
--   meanwhile>}`
function M.run()
  local before = callbacks.attempts()
  local ids, processed = {}, 0
  -- the callback attempts made meanwhile go side by side, and are over when it returns
  callbacks.batch(function()
    callbacks.run()
    for id in pairs(entries) do ids[#ids + 1] = id end
    table_sort(ids)
    for _, id in ipairs(ids) do
      local entry = entries[id]
      if entry and entry.state == "queued" then
        entry.hurry = true
        M.process(entry)
        processed = processed + 1
      elseif entry and entry.state == "processing" then
        entry.hurry = true
      end
    end
  end)
  local deadline = ngx.now() + M.run_wait
  for _, id in ipairs(ids) do
    local entry = entries[id]
    while entry and entry.state == "processing" and ngx.now() < deadline do ngx.sleep(0.01) end
  end
  callbacks.wait_sending(deadline)
  return { processed = processed, callbacks = callbacks.attempts() - before }
end

return M
