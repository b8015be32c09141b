--- A journal for bulk jobs: resume after a crash without losing an item or doing one twice.
--
-- `client:map(items, fn, { journal = path, key = ..., reconcile = ... })` records in an
-- append-only file, for every item, that it was started and how it ended (its result or its
-- error), each record written and `fdatasync`ed to disk before `map` goes on: a 'started'
-- record before `fn` is called for the item, the outcome before its result is delivered. Run
-- the same job again with the same journal and
--
-- * items done before are not called again: their recorded results come back (through
--   `results` or `on_result`) as if just made;
-- * items that failed with an error that is not retryable are reported again, unless
--   `retry_failed` is set; items that failed with a retryable one (a 503, a refused
--   connection) run again;
-- * **ambiguous** items, started without a recorded outcome (the process died) or ended by a
--   network failure, timeout, cut-off or unreadable answer of a write that may have reached
--   the server (`err.sent ~= false`; `is_ambiguous`), are given to `reconcile(item, i)`,
--   which looks the outcome up and returns the value when the write landed (recorded as
--   done) or nil when it did not (then `fn` runs again). Without `reconcile` they are not
--   run again: they are reported with an error of kind `ambiguous` naming the key
--   (`err.key`), so a person can decide.
--
-- Items are named across runs by `key(item, i)` (default: the index `i`). The journal knows
-- every item by index and key: a journal written by another job (another key for the same
-- index, a wrong header, a corrupted line) is refused with a clear error and never written
-- to. A torn last line (the process killed in the middle of a write) is taken as not
-- recorded, and cut off. One process at a time holds a journal file (an exclusive `flock`).
--
-- **The file.** JSON lines, readable by people. The first line is the header
-- `{"assesskit_journal":1,"job":"<job>","created":"<UTC time>"}`; then one line per record:
--
--    {"i":3,"key":"ada@example.com","state":"started"}
--    {"i":3,"key":"ada@example.com","state":"done","value":{"id":10305,...}}
--    {"i":4,"key":"bob@example.com","state":"failed","error":{"kind":"http","status":422,...}}
--    {"i":5,"key":"eve@example.com","state":"resolved","value":{...}}   (found by reconcile)
--    {"i":6,"key":"zed@example.com","state":"failed","error":{...},"landed":true}
--                       (done, but its result could not be recorded: never run again)
--
-- The last record of an item is its state. Values are recorded with every digit of their
-- numbers (cjson alone writes 14 significant digits). Errors are recorded with their fields (they carry
-- no secret); an error that is not an `assesskit.errors` object is recorded as `"raised"`.
-- Memory: about 150 bytes per item of the journal (its key, its state, where its outcome is
-- in the file: 15 MB for 100,000 items); recorded values stay on disk until asked for.
--
-- **The interface** (shared with the fleet journal of `assesskit.redis`, which adds claims by
-- several processes: `"busy"` while another process holds an item):
--
--    local j, err = journal.open(path, { job = "invites" })
--    local state, rec = j:claim(key, i)   -- "run" | "done", rec | "failed", rec
--                                         -- | "ambiguous", rec | "busy" | nil, err
--    j:finish(key, i, value, err)         -- the outcome of a claimed item
--    j:resolve(key, i, value)             -- what reconcile found (nil: run it again)
--    j:sync()                             -- make the records durable
--    j:close()
--
-- @module assesskit.journal
-- @usage
-- local results = tv:map(rows, function(row)
--   return tv.models.candidate:create(row)
-- end, {
--   journal = "invites.journal",
--   key = function(row) return row.email end,
--   reconcile = function(row)     -- was the candidate created before the crash?
--     local found = assert(tv.models.candidate:list{ email = row.email })
--     return found[1]             -- the candidate, or nil: create it
--   end,
-- })
local type, tostring, pairs, ipairs, pcall, setmetatable, error =
  type, tostring, pairs, ipairs, pcall, setmetatable, error
local string_format, string_find, string_sub, string_byte =
  string.format, string.find, string.sub, string.byte
local math_floor = math.floor
local io_open, os_date = io.open, os.date

local core = require("assesskit.core")
local errors = require("assesskit.errors")
local client = require("assesskit.client")

local json_encode, json_decode = client.json_encode, client.json_decode
local encode_value = json_encode -- every number as it was made

local M = {}

--- The journal format version written in the header (a journal of a newer version is
-- refused).
M.VERSION = 1

local MAGIC = '{"assesskit_journal":'
local STATES = { started = true, done = true, failed = true, resolved = true }
local SAFE_METHODS = { GET = true, HEAD = true, OPTIONS = true }
-- The fields of an error object that a record keeps.
local ERROR_FIELDS = {
  "kind", "status", "name", "message", "code", "fields", "retryable", "retry_after", "method",
  "url", "request_id", "sent", "key",
}

local Journal = {}
Journal.__index = Journal

local function io_error(self, message)
  return errors.new({ kind = "io", message = "journal " .. self.path .. ": " .. message })
end

local function refuse(path, message)
  return nil, errors.new({ kind = "validation", message = "journal " .. path .. ": " .. message })
end

local function is_index(i)
  return type(i) == "number" and i >= 1 and i == math_floor(i) and i < 2^53
end

-- The kinds of error that leave a request's outcome unknown once it may have reached the
-- server: no answer (network, timeout), an answer cut off (aborted: the transfer cancelled;
-- too_large: the answer over the limit), a success answer that cannot be read (decode).
local UNKNOWN_OUTCOME = { network = true, timeout = true, aborted = true, too_large = true, decode = true }
-- The statuses a gateway answers when it lost the upstream's answer (502 Bad Gateway: the
-- upstream's answer was broken or its connection dropped; 504 Gateway Timeout: no answer in
-- time): the request may have been carried out behind it.
local GATEWAY_LOST = { [502] = true, [504] = true }

--- Whether an item's error leaves it ambiguous: a request that is not a read (GET, HEAD,
-- OPTIONS) and may have reached the server (`err.sent ~= false`), whose answer was lost
-- (kind `network`, `timeout`; or kind `http` with status 502 or 504, a gateway's word that it
-- lost the upstream's answer), cut off (`aborted`, `too_large`) or unreadable (`decode`: a
-- success status with a body that is not JSON). Such a write may or may not have been done
-- (a decode error says it was); running it again could do it twice. The one rule every
-- journal (file or fleet) uses.
-- @param err the item's error
-- @treturn boolean
function M.is_ambiguous(err)
  if type(err) ~= "table" then return false end
  if err.kind == "ambiguous" then return true end
  if not UNKNOWN_OUTCOME[err.kind] and not (err.kind == "http" and GATEWAY_LOST[err.status]) then
    return false
  end
  if err.sent == false then return false end
  return not SAFE_METHODS[err.method]
end

-- ------------------------------------------------------------------------------------------
-- Records

local function encode_error(err)
  if errors.is(err) then
    local e = {}
    for _, name in ipairs(ERROR_FIELDS) do e[name] = err[name] end
    local ok, s = pcall(json_encode, e)
    if ok then return '"error":' .. s end
    err = tostring(err)
  end
  local ok, s = pcall(json_encode, err)
  if not ok then s = json_encode(tostring(err)) end
  return '"raised":' .. s
end

-- The error a record holds, as it was handed to `finish`.
local function decode_error(rec)
  local e = rec.error
  if type(e) == "table" and errors.KINDS[e.kind] then
    for k, v in pairs(e) do if v == client.null then e[k] = nil end end
    return errors.new(e)
  end
  if rec.raised == client.null then return nil end
  return rec.raised
end

--- An item's error as a record field: `"error":{...}` (an `assesskit.errors` object's fields)
-- or `"raised":...` (anything else), a JSON fragment. Shared with the fleet journal of
-- `assesskit.redis`, so that both record errors alike.
-- @param err the error
-- @treturn string
M.encode_error = encode_error

--- The JSON text of a recorded value, every number as it was made: `client.json_encode`, the
-- one exact encoder (request bodies use it too). Shared with the fleet journal of
-- `assesskit.redis`, so that both record values alike.
-- @function encode_value
-- @param v the value
-- @treturn string
-- @raise as cjson does, for what JSON cannot hold (NaN, a function, a cycle)
M.encode_value = encode_value

--- The error a decoded record holds (`rec.error` or `rec.raised`), as it was given to `finish`.
-- @tparam table rec
-- @return the error
M.decode_error = decode_error

-- Check one decoded record line; returns the record or nil, why.
local function check_record(rec)
  if type(rec) ~= "table" then return nil, "not a JSON object" end
  if not is_index(rec.i) then return nil, "no item index" end
  if type(rec.key) ~= "string" then return nil, "no item key" end
  if not STATES[rec.state] then return nil, "unknown state " .. tostring(rec.state) end
  if rec.state == "failed" then
    local e = rec.error
    if e == nil and rec.raised == nil then return nil, "a failure without its error" end
    if e ~= nil and not (type(e) == "table" and errors.KINDS[e.kind]) then
      return nil, "a failure whose error is not an error object of a known kind"
    end
  end
  return rec
end

-- ------------------------------------------------------------------------------------------
-- Opening

local function write_header(self, job)
  local line = MAGIC .. string_format("%d", M.VERSION) .. ',"job":' .. json_encode(job)
    .. ',"created":' .. json_encode(os_date("!%Y-%m-%dT%H:%M:%SZ")) .. "}\n"
  local ok, err = self.f:write(line)
  if not ok then return nil, io_error(self, tostring(err)) end
  self.size = #line
  self.written = self.written + 1
  return true
end

-- Reads the header line; returns true, or nil, err.
local function read_header(self, line, job)
  local ok, h = pcall(json_decode, line)
  if not ok or type(h) ~= "table" or h.assesskit_journal == nil then
    return refuse(self.path, "not an assesskit journal (its first line is not a journal header)")
  end
  if h.assesskit_journal ~= M.VERSION then
    return refuse(self.path, "journal format version " .. tostring(h.assesskit_journal)
      .. ", this assesskit reads version " .. M.VERSION)
  end
  if h.job ~= job then
    return refuse(self.path, string_format("it is the journal of job %s, not of job %s",
      json_encode(h.job), json_encode(job)))
  end
  self.created = h.created
  return true
end

-- Indexes one record (line number n, at byte offset off).
local function index_record(self, rec, n, off)
  local i, key = rec.i, rec.key
  local known = self.keys[i]
  if known and known ~= key then
    return refuse(self.path, string_format("line %d gives item %d the key %s, an earlier line %s",
      n, i, json_encode(key), json_encode(known)))
  end
  local other = self.index_of[key]
  if other and other ~= i then
    return refuse(self.path, string_format("line %d gives the key %s to item %d, an earlier line to item %d",
      n, json_encode(key), i, other))
  end
  self.keys[i], self.index_of[key] = key, i
  local state = rec.state
  if state == "resolved" then state = "done" end
  self.states[i] = state
  if state ~= "started" then self.offsets[i] = off end
  return true
end

-- Reads the whole file: header, records, torn tail. Returns true or nil, err.
local function load(self, job)
  local f = self.f
  f:seek("set", 0)
  local off, n = 0, 0
  while true do
    local line = f:read("*L")
    if line == nil then break end
    if string_byte(line, #line) ~= 10 then
      -- the last line, without its newline: torn by a crash in the middle of a write
      self.torn = #line
      break
    end
    n = n + 1
    local body = string_sub(line, 1, -2)
    if n == 1 then
      local ok, err = read_header(self, body, job)
      if not ok then return nil, err end
    else
      local okj, rec = pcall(json_decode, body)
      local why
      if okj then rec, why = check_record(rec) else rec, why = nil, "not JSON" end
      if not rec then
        return refuse(self.path, string_format("line %d is corrupted (%s): not written by this job's "
          .. "journal, or damaged; refusing to use it", n, why))
      end
      local ok, err = index_record(self, rec, n, off)
      if not ok then return nil, err end
      self.records = self.records + 1
    end
    off = off + #line
  end
  self.size = off
  if n == 0 then
    -- empty, or only a torn header: a journal whose creation was cut short, unless the bytes
    -- are something else
    local torn = self.torn
    if torn and torn > 0 then
      f:seek("set", 0)
      local head = f:read(#MAGIC) or ""
      if string_sub(MAGIC, 1, #head) ~= head then
        return refuse(self.path, "not an assesskit journal (it holds other data)")
      end
    end
    self.fresh = true
  end
  return true
end

--- Open a journal file, creating it when missing.
-- @tparam string path the file (created with the process's umask; it holds the items'
--   results)
-- @tparam[opt] table opts `job` (string: the job's identity, written in the header; a journal
--   of another job is refused; default `"map"`)
-- @treturn[1] Journal the journal, holding the file's lock until `close`
-- @treturn[2] nil
-- @treturn[2] table an error: kind `io` (cannot be read, written or locked; in use by another
--   process), or `validation` (not a journal, another job's, corrupted: never written to)
-- @raise when `path` is not a string or `opts` has an unknown field
function M.open(path, opts)
  if type(path) ~= "string" or path == "" then
    error("journal.open: path must be a non-empty string", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("journal.open: opts must be a table", 2) end
  for k in pairs(opts) do
    if k ~= "job" then error("journal.open: unknown option '" .. tostring(k) .. "' (known: job)", 2) end
  end
  local job = opts.job
  if job == nil then job = "map" end
  if type(job) ~= "string" then error("journal.open: job must be a string", 2) end
  local self = setmetatable({
    path = path, job = job, keys = {}, index_of = {}, states = {}, offsets = {},
    records = 0, size = 0, written = 0, synced = 0,
  }, Journal)
  -- "a+": created when missing, never truncated by opening, every write appended
  local f, msg = io_open(path, "a+b")
  if not f then return nil, errors.new({ kind = "io", message = "journal: " .. tostring(msg) }) end
  self.f = f
  local regular, rmsg = core.file_is_regular(f)
  if not regular then
    f:close()
    if rmsg then return nil, io_error(self, rmsg) end
    return refuse(path, "not a file on disk (a FIFO, a pipe, a terminal or a device)")
  end
  local ok, lmsg, lkind = core.file_lock(f)
  if not ok then
    f:close()
    if lkind == "busy" then
      return nil, io_error(self, "in use by another process (one process at a time runs a job "
        .. "with a journal file)")
    end
    return nil, io_error(self, lmsg)
  end
  local okl, err = load(self, job)
  if okl and self.torn then
    -- cut the torn tail off before anything is appended after it
    local okt, tmsg = core.file_truncate(f, self.size)
    if not okt then okl, err = nil, io_error(self, tmsg) end
  end
  if okl and self.fresh then
    okl, err = write_header(self, job)
    if okl then okl, err = self:sync() end
    if okl then
      local dir = string_find(path, "/", 1, true) and path:match("^(.*)/[^/]*$") or "."
      local okd, dmsg = core.dir_sync(dir == "" and "/" or dir)
      if not okd then okl, err = nil, io_error(self, dmsg) end
    end
  end
  if not okl then
    f:close()
    self.f = nil
    return nil, err
  end
  f:seek("end")
  return self
end

-- ------------------------------------------------------------------------------------------
-- Records of this run

local function broken(self, err)
  self.broken = err
  return nil, err
end

local function append(self, i, key, state, tail)
  if self.broken then return nil, self.broken end
  if not self.f then return nil, io_error(self, "closed") end
  local line = '{"i":' .. string_format("%d", i) .. ',"key":' .. json_encode(key)
    .. ',"state":"' .. state .. '"' .. (tail and ("," .. tail) or "") .. "}\n"
  local ok, err = self.f:write(line)
  if not ok then return broken(self, io_error(self, tostring(err))) end
  local off = self.size
  self.size = off + #line
  self.written = self.written + 1
  self.records = self.records + 1
  self.keys[i], self.index_of[key] = key, i
  self.states[i] = (state == "resolved") and "done" or state
  if state ~= "started" then self.offsets[i] = off end
  return true
end

-- The record at byte offset `off`.
local function read_at(self, off)
  local f = self.f
  f:seek("set", off)
  local line = f:read("*l")
  f:seek("end")
  local ok, rec = pcall(json_decode, line or "")
  if not ok or type(rec) ~= "table" then
    return broken(self, io_error(self, "a record changed under the journal at byte " .. off))
  end
  return rec
end

local function check_args(where, key, i)
  if type(key) ~= "string" then
    error(string_format("journal:%s: key must be a string, got %s", where, type(key)), 3)
  end
  if not is_index(i) then
    error(string_format("journal:%s: index must be a whole number >= 1, got %s", where, tostring(i)), 3)
  end
end

--- Claim an item: say what to do with it. Writes a 'started' record when it is to run (call
-- `sync` before running it).
-- @tparam string key the item's key
-- @int i the item's index (1-based)
-- @tparam[opt] table opts `retry_failed` (true: an item that failed with an error that is not
--   retryable runs again)
-- @treturn[1] string `"run"` (not done before, or failed with a retryable error: run it),
--   `"done"` (with the record: `rec.value`), `"failed"` (with the record: `rec.err`, an error
--   that is not retryable), `"ambiguous"` (with the record: started without a recorded outcome,
--   `rec.state == "started"`, or `rec.err` a lost write), `"busy"` (never for a file journal)
-- @treturn[1] ?table the record `{key =, i =, state =, value =, err =}`
-- @treturn[2] nil
-- @treturn[2] table an error: kind `validation` when the key and index do not match the
--   journal's (another job's journal, or two items with one key), `io` when it cannot be written
-- @raise when `key` is not a string or `i` not an index
function Journal:claim(key, i, opts)
  check_args("claim", key, i)
  if self.broken then return nil, self.broken end
  local known = self.keys[i]
  if known and known ~= key then
    return refuse(self.path, string_format("item %d has the key %s in the journal, %s now: the "
      .. "journal is another job's, or the items changed", i, json_encode(known), json_encode(key)))
  end
  local other = self.index_of[key]
  if other and other ~= i then
    return refuse(self.path, string_format("the key %s is item %d's in the journal, not item %d's: "
      .. "two items have the same key, or the items changed", json_encode(key), other, i))
  end
  local state = self.states[i]
  if state == nil then
    local ok, err = append(self, i, key, "started")
    if not ok then return nil, err end
    return "run"
  end
  if state == "started" then
    return "ambiguous", { key = key, i = i, state = "started" }
  end
  local rec, rerr = read_at(self, self.offsets[i])
  if not rec then return nil, rerr end
  local out = { key = key, i = i, state = rec.state }
  if state == "done" then
    out.value = rec.value -- nil when nothing was recorded; client.null when fn gave null
    return "done", out
  end
  out.err = decode_error(rec)
  if M.is_ambiguous(out.err) then return "ambiguous", out end
  -- done, but its result could not be recorded: running it again could write twice
  if rec.landed == true then return "failed", out end
  local e = out.err
  if (type(e) == "table" and e.retryable) or (opts and opts.retry_failed) then
    local ok, err = append(self, i, key, "started")
    if not ok then return nil, err end
    return "run"
  end
  return "failed", out
end

--- Record the outcome of a claimed item (call `sync` before treating it as done).
-- @tparam string key
-- @int i
-- @param value what the item gave (recorded as JSON)
-- @param[opt] err its error (a failure is recorded when not nil)
-- @treturn[1] boolean true
-- @treturn[2] nil
-- @treturn[2] table an error: kind `io` (not written: the journal is unusable from then on),
--   or `validation` when `value` cannot be recorded as JSON (a failure is recorded instead,
--   marked `"landed"`, so the item is not run again, not even with `retry_failed`)
function Journal:finish(key, i, value, err)
  check_args("finish", key, i)
  if err ~= nil then
    return append(self, i, key, "failed", encode_error(err))
  end
  local tail
  if value ~= nil then
    local ok, s = pcall(encode_value, value)
    if not ok then
      local verr = errors.new({ kind = "validation", key = key,
        message = "the result of item " .. key .. " cannot be recorded in the journal: " .. tostring(s) })
      -- "landed": the item was done (a write may have been made); never run again
      local okw, werr = append(self, i, key, "failed", encode_error(verr) .. ',"landed":true')
      if not okw then return nil, werr end
      return nil, verr
    end
    tail = '"value":' .. s
  end
  return append(self, i, key, "done", tail)
end

--- Record what `reconcile` found for an ambiguous item.
-- @tparam string key
-- @int i
-- @param value the item's value when its write had landed (recorded as done); nil (or false)
--   when it had not: the item is claimed again (a 'started' record) and must be run
-- @treturn[1] boolean true
-- @treturn[2] nil
-- @treturn[2] table an error (as `finish`)
function Journal:resolve(key, i, value)
  check_args("resolve", key, i)
  if value == nil or value == false then
    return append(self, i, key, "started")
  end
  local ok, s = pcall(encode_value, value)
  if not ok then
    return nil, errors.new({ kind = "validation", key = key,
      message = "the value reconcile found for item " .. key .. " cannot be recorded: " .. tostring(s) })
  end
  return append(self, i, key, "resolved", '"value":' .. s)
end

--- Make every record written so far durable (flushed and `fdatasync`ed).
-- Group commit: given `yield` (a function that lets the other coroutines of the job run once,
-- such as the scheduler's), the records they write meanwhile go to disk with the same
-- `fdatasync`, and a sync already done by one of them covers this one.
-- @tparam[opt] function yield
-- @treturn[1] boolean true
-- @treturn[2] nil
-- @treturn[2] table an error of kind `io` (the journal is unusable from then on)
function Journal:sync(yield)
  if self.broken then return nil, self.broken end
  if not self.f then return nil, io_error(self, "closed") end
  local want = self.written
  if self.synced >= want then return true end
  if yield then
    yield()
    if self.broken then return nil, self.broken end
    if self.synced >= want then return true end
  end
  local upto = self.written
  local ok, msg = core.file_sync(self.f)
  if not ok then return broken(self, io_error(self, msg)) end
  if upto > self.synced then self.synced = upto end
  self.syncs = (self.syncs or 0) + 1
  return true
end

--- Counts, for reports: `records` (read and written), `syncs` (fdatasync calls of this run).
-- @treturn table
function Journal:stats()
  return { records = self.records, syncs = self.syncs or 0 }
end

--- Close the journal (syncs first) and give its lock back. Idempotent.
-- @treturn[1] boolean true
-- @treturn[2] nil
-- @treturn[2] table an error when the last records could not be made durable
function Journal:close()
  local f = self.f
  if not f then return true end
  local ok, err = true, nil
  if not self.broken then ok, err = self:sync() end
  self.f = nil
  f:close()
  return ok, err
end

function Journal:__tostring()
  return string_format("assesskit.journal(%s, job %s)", self.path, self.job)
end

-- ------------------------------------------------------------------------------------------
-- The journal side of client:map

local Job = {}
Job.__index = Job

local MAP_OPTIONS = { journal = true, key = true, reconcile = true, retry_failed = true }

--- Whether a `map` option belongs to the journal (`journal`, `key`, `reconcile`,
-- `retry_failed`).
-- @tparam string name
-- @treturn boolean
function M.is_map_option(name)
  return MAP_OPTIONS[name] == true
end

local function default_key(_, i)
  return string_format("%d", i)
end

--- Prepare the journal of one `client:map` call (used by `map`, not by users).
-- Checks how the options go together (raising at `level` for a caller's mistake; their types
-- are checked by `map` with its other options) and opens the journal when given as a path.
-- @tparam table opts map's options: `journal` (a path or a journal object with `claim`,
--   `finish`, `resolve`, `sync`), `key`, `reconcile`, `retry_failed`, `job` (string, for a
--   path: the job's identity in the header)
-- @tparam[opt] table env `yield` (lets the job's other coroutines run once: group commit),
--   `sleep(seconds)` (waits while a fleet journal says `"busy"`); read when items run, so the
--   caller may fill it after this call
-- @int[opt] level the caller's level for misuse errors (default 2: the caller of `job`)
-- @string[opt] where the name in misuse errors (default `"map"`)
-- @treturn[1] ?table the job (`job:item(item, i, call)`, `job:close()`), nil without journal
-- @treturn[2] nil
-- @treturn[2] table the error of `journal.open`
-- @raise on a bad option (`key`/`reconcile`/`retry_failed`/`job` without `journal`, a
--   `journal` that is neither a path nor a journal, `job` with a journal object)
function M.job(opts, env, level, where)
  level = (level or 2) + 1
  where = where or "map"
  local j = opts.journal
  if j == nil then
    for _, name in ipairs({ "key", "reconcile", "retry_failed", "job" }) do
      if opts[name] ~= nil then
        error(where .. ": option '" .. name .. "' needs a journal (option 'journal')", level)
      end
    end
    return nil
  end
  -- the types of `key`, `reconcile`, `retry_failed` and `job` are map's option check's
  local owned = false
  if type(j) == "string" then
    if j == "" then error(where .. ": option 'journal' must not be an empty path", level) end
    local err
    j, err = M.open(j, { job = opts.job })
    if not j then return nil, err end
    owned = true
  elseif type(j) ~= "table" or type(j.claim) ~= "function" or type(j.finish) ~= "function"
    or type(j.resolve) ~= "function" or type(j.sync) ~= "function" then
    error(where .. ": option 'journal' must be a path or a journal (claim, finish, resolve, sync)", level)
  elseif opts.job ~= nil then
    error(where .. ": option 'job' is for a journal path; a journal object has its own", level)
  end
  env = env or {}
  return setmetatable({
    journal = j, owned = owned, key = opts.key or default_key, reconcile = opts.reconcile,
    claim_opts = { retry_failed = opts.retry_failed == true },
    env = env,
    counts = { ran = 0, replayed = 0, reconciled = 0, ambiguous = 0 },
  }, Job)
end

local function ambiguous_error(key, i, rec, why)
  local cause = rec and rec.err
  local what
  if cause ~= nil then
    what = "its request may have reached the server but the answer was lost (" .. tostring(cause) .. ")"
  else
    what = "it was started in an earlier run that ended without recording its outcome"
  end
  return errors.new({
    kind = "ambiguous", key = key, index = i, cause = cause,
    message = string_format("item %s (#%d) may or may not have been done: %s; %s", key, i, what,
      why or "not run again without a reconcile function to look it up; check it by hand"),
  })
end

-- The item's key as a string; nil, err when key() gives something else or raises.
local function item_key(self, item, i)
  local ok, key = pcall(self.key, item, i)
  if ok and type(key) == "number" and key == math_floor(key) and key > -2^63 and key < 2^63 then
    key = string_format("%d", key)
  end
  if ok and type(key) == "string" and key ~= "" then return key end
  local why = ok and ("returned " .. (type(key) == "string" and "an empty string" or ("a " .. type(key))))
    or ("raised: " .. tostring(key))
  return nil, errors.new({ kind = "validation", index = i,
    message = string_format("map: key(item, %d) %s; it must give the item's name, a non-empty string", i, why) })
end

-- How many times one run calls `fn` for one item: once, and once more when `reconcile` says
-- that an ambiguous first attempt had not landed.
local MAX_RUNS = 2

-- Asks `reconcile` about an ambiguous item. Returns "landed", value | "missing" | nil, err.
local function reconcile_item(self, item, i, key, rec)
  local r = { pcall(self.reconcile, item, i) }
  local value, rerr = r[2], r[3]
  if not r[1] or ((value == nil or value == false) and rerr ~= nil) then
    return nil, ambiguous_error(key, i, rec, "reconcile could not tell ("
      .. tostring(r[1] and rerr or value) .. "); it stays ambiguous")
  end
  if value == nil or value == false then return "missing" end
  return "landed", value
end

--- Run one item under the journal (the per-item step of `map`).
--
-- Claims the item; gives back a recorded outcome, or resolves an ambiguous item with
-- `reconcile`, or runs it: 'started' durable, `call`, outcome durable. An outcome of this run
-- that is ambiguous (a lost write answer) goes to `reconcile` at once: landed, it is done;
-- not landed, `fn` runs once more. Without `reconcile` it is reported as kind `ambiguous`
-- (`err.cause` holds the failure) and not run again.
--
-- Pipelined (given `release`): the outcome of this run is written but not yet durable when
-- this returns (fourth result true): the caller holds it back, and delivers it when
-- `release()` is called by the next `item` of the same worker, after the fdatasync that made
-- that item's claim durable (which covers the held outcome too), or after `flush()`. So one
-- fdatasync serves the outcomes and the next claims of a batch of items.
-- @param item the item
-- @int i its index
-- @tparam function call `call(item, i) -> value, err`: runs `fn` (map's protected call)
-- @tparam[opt] function release called once everything written before this item is durable
-- @return the item's value (recorded or just made)
-- @return its error
-- @treturn ?boolean true when the whole job must stop: the journal refused the item (another
--   job's) or cannot be written (nothing more could be recorded)
-- @treturn ?boolean true when the outcome is not durable yet (only with `release`)
function Job:item(item, i, call, release)
  local j, counts, env = self.journal, self.counts, self.env
  local yield = env.yield
  local key, kerr = item_key(self, item, i)
  if not key then return nil, kerr end
  local state, rec
  while true do
    state, rec = j:claim(key, i, self.claim_opts)
    if state ~= "busy" or not env.sleep then break end
    env.sleep(0.2)
  end
  if state == nil then return nil, rec, true end
  if release then
    -- the claim, and the outcome the caller holds, on disk at once
    local ok, err = j:sync(yield)
    if not ok then return nil, err, true end
    local delivered, raised = pcall(release)
    if not delivered then
      -- delivering the held outcome raised (on_result, on_progress): the map ends without
      -- running this item. Its 'started' record of this claim must not make it ambiguous in
      -- the next run: it was never sent, so it is recorded as such (run again next time).
      if state == "run" and j:finish(key, i, nil, errors.new({ kind = "aborted", key = key,
        index = i, sent = false, retryable = true,
        message = "not sent: the map stopped before item " .. key .. " ran" })) then
        j:sync()
      end
      error(raised, 0)
    end
  end
  if state == "done" or state == "failed" then
    counts.replayed = counts.replayed + 1
    return rec.value, rec.err
  elseif state == "busy" then
    return nil, ambiguous_error(key, i, nil, "another process holds it")
  elseif state ~= "run" and state ~= "ambiguous" then
    return nil, errors.new({ kind = "validation", key = key, index = i,
      message = "journal claim answered " .. tostring(state) }), true
  end
  local runs = 0
  while true do
    if state == "ambiguous" then
      if not self.reconcile then
        counts.ambiguous = counts.ambiguous + 1
        return nil, ambiguous_error(key, i, rec)
      end
      local found, value = reconcile_item(self, item, i, key, rec)
      if not found then
        counts.ambiguous = counts.ambiguous + 1
        return nil, value
      end
      if found == "landed" then
        local ok, err = j:resolve(key, i, value)
        if ok then ok, err = j:sync(yield) end
        if not ok then return nil, err, err.kind == "io" end
        counts.reconciled = counts.reconciled + 1
        return value, nil
      end
      -- it had not landed: safe to run it again (but not for ever in one run)
      if runs >= MAX_RUNS then return nil, rec.err end
      local ok, err = j:resolve(key, i, nil)
      if not ok then return nil, err, err.kind == "io" end
    end
    -- the 'started' record is on disk before fn runs
    local ok, err = j:sync(yield)
    if not ok then return nil, err, true end
    runs = runs + 1
    counts.ran = counts.ran + 1
    local value, verr = call(item, i)
    ok, err = j:finish(key, i, value, verr)
    if not ok then
      if err.kind ~= "io" then return nil, err end
      return nil, errors.new({ kind = "io", key = key, index = i,
        message = "the outcome of item " .. key .. " could not be recorded (" .. err.message
          .. "); it will be ambiguous in the next run" }), true
    end
    local clear = not (verr ~= nil and M.is_ambiguous(verr))
    -- the outcome is on disk before the item counts as done (pipelined: before it is released)
    if clear and release then return value, verr, nil, true end
    ok, err = j:sync(yield)
    if not ok then return nil, err, true end
    if clear then return value, verr end
    state, rec = "ambiguous", { key = key, i = i, state = "failed", err = verr }
  end
end

--- Make every record written so far durable (the outcomes a pipelined caller holds).
-- @treturn[1] boolean true
-- @treturn[2] nil
-- @treturn[2] table an error of kind `io`
function Job:flush()
  return self.journal:sync(self.env.yield)
end

--- Counts of this run: `ran` (fn called), `replayed` (outcome read from the journal),
-- `reconciled` (found done by reconcile), `ambiguous` (reported as such).
-- @treturn table
function Job:stats()
  local out = {}
  for k, v in pairs(self.counts) do out[k] = v end
  return out
end

--- Close the journal when this job opened it (from a path). Idempotent.
-- @treturn[1] boolean true
-- @treturn[2] nil
-- @treturn[2] table an error (the last records could not be made durable)
function Job:close()
  if self.owned and not self.closed then
    self.closed = true
    return self.journal:close()
  end
  return true
end

return M
