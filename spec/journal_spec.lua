-- assesskit.journal: the file (records, torn tails, refusals, the lock, group commit) and
-- client:map with a journal against the sandbox (reruns, failures, lost write answers).
local journal = require("assesskit.journal")
local errors = require("assesskit.errors")
local sandbox = require("support.sandbox")
local sys = require("support.sys")

local ROOT = sys.repo

local function lines(path)
  local out = {}
  for l in (sys.read(path) or ""):gmatch("[^\n]*\n?") do
    if l ~= "" then out[#out + 1] = l end
  end
  return out
end

local function http_err(status, retryable)
  return errors.new({ kind = "http", status = status, message = "answer " .. status,
    retryable = retryable or false, method = "POST", url = "http://127.0.0.1/models/candidate" })
end

describe("assesskit.journal #luajit", function()
  local dir
  before_each(function() dir = sys.tmpdir("journal") end)
  after_each(function() sys.rmdir(dir) end)

  it("starts a new journal with a header naming its format version and job", function()
    local j = assert(journal.open(dir .. "/a.journal", { job = "invites" }))
    assert.equal("run", j:claim("ada@x.test", 1))
    assert(j:close())
    local l = lines(dir .. "/a.journal")
    assert.equal(2, #l)
    assert.matches('^{"assesskit_journal":1,"job":"invites","created":"%d+%-%d+%-%d+T[%d:]+Z"}\n$', l[1])
    assert.equal('{"i":1,"key":"ada@x.test","state":"started"}\n', l[2])
  end)

  it("has every record in the file once sync returns", function()
    local path = dir .. "/a.journal"
    local j = assert(journal.open(path))
    assert.equal("run", j:claim("1", 1))
    assert(j:finish("1", 1, { id = 7 }))
    assert(j:sync())
    -- another reader (what a restarted process would see) finds both records
    local l = lines(path)
    assert.equal(3, #l)
    assert.equal('{"i":1,"key":"1","state":"done","value":{"id":7}}\n', l[3])
    j:close()
  end)

  it("answers from the last record: done, failed, ambiguous, or run again", function()
    local path = dir .. "/a.journal"
    local j = assert(journal.open(path))
    local outcomes = {
      { "done", { id = 1, email = "a@x.test" } },
      { "failed", nil, http_err(422) },                                       -- not retryable
      { "retry", nil, http_err(503, true) },                                  -- retryable: runs again
      { "ambiguous", nil, errors.new({ kind = "network", message = "reset", retryable = true,
        method = "POST" }) },                                                 -- may have been sent
      { "retry", nil, errors.new({ kind = "network", message = "refused", retryable = true,
        method = "POST", sent = false }) },                                   -- never sent
      { "retry", nil, errors.new({ kind = "timeout", message = "slow", retryable = true,
        method = "GET" }) },                                                  -- a read
      { "ambiguous" },                                                        -- started, no outcome
      { "failed", nil, "raised: boom" },                                      -- raised in fn
    }
    for i, o in ipairs(outcomes) do
      assert.equal("run", j:claim("k" .. i, i))
      if o[1] ~= "ambiguous" or o[3] then assert(j:finish("k" .. i, i, o[2], o[3])) end
    end
    assert(j:close())
    j = assert(journal.open(path))
    for i, o in ipairs(outcomes) do
      local state, rec = j:claim("k" .. i, i)
      if o[1] == "retry" then
        assert.equal("run", state, "item " .. i)
      else
        assert.equal(o[1], state, "item " .. i)
        assert.equal("k" .. i, rec.key)
        assert.equal(i, rec.i)
      end
      if o[1] == "done" then assert.same(o[2], rec.value) end
      if o[1] == "failed" and errors.is(o[3]) then
        assert.is_true(errors.is(rec.err))
        assert.equal(422, rec.err.status)
        assert.equal(tostring(o[3]), tostring(rec.err))
      elseif o[1] == "failed" then
        assert.equal("raised: boom", rec.err)
      end
    end
    j:close()
    -- a failure that is not retryable runs again with retry_failed
    j = assert(journal.open(path))
    assert.equal("run", (j:claim("k2", 2, { retry_failed = true })))
    j:close()
  end)

  it("takes a torn last line as not recorded and cuts it off before writing", function()
    local path = dir .. "/a.journal"
    local j = assert(journal.open(path))
    assert.equal("run", j:claim("a", 1))
    assert(j:finish("a", 1, "A"))
    assert.equal("run", j:claim("b", 2))
    j:close()
    local whole = sys.read(path)
    -- killed in the middle of writing b's outcome
    sys.write(path, whole .. '{"i":2,"key":"b","state":"do')
    j = assert(journal.open(path))
    local state, rec = j:claim("a", 1)
    assert.equal("done", state)
    assert.equal("A", rec.value)
    assert.equal("ambiguous", (j:claim("b", 2)))
    assert(j:resolve("b", 2, nil))
    assert(j:finish("b", 2, "B"))
    j:close()
    local l = lines(path)
    assert.equal(whole, table.concat(l, "", 1, 4))
    assert.equal('{"i":2,"key":"b","state":"started"}\n', l[5])
    assert.equal('{"i":2,"key":"b","state":"done","value":"B"}\n', l[6])
    assert.equal(6, #l)
    -- a journal whose header itself was torn is a journal that was never written
    sys.write(dir .. "/b.journal", '{"assesskit_jou')
    j = assert(journal.open(dir .. "/b.journal"))
    assert.equal("run", (j:claim("a", 1)))
    j:close()
    assert.matches('^{"assesskit_journal":1,', sys.read(dir .. "/b.journal"))
  end)

  it("refuses a corrupted line in the middle and leaves the file as it was", function()
    local path = dir .. "/a.journal"
    local j = assert(journal.open(path))
    for i = 1, 3 do
      assert.equal("run", j:claim("k" .. i, i))
      assert(j:finish("k" .. i, i, i))
    end
    j:close()
    local l = lines(path)
    l[3] = l[3]:gsub('"state"', '"stat') -- damaged
    local damaged = table.concat(l)
    sys.write(path, damaged)
    local none, err = journal.open(path)
    assert.is_nil(none)
    assert.equal("validation", err.kind)
    assert.matches("line 3 is corrupted", err.message)
    assert.equal(damaged, sys.read(path))
  end)

  it("refuses a failure record whose error was damaged, instead of replaying it as a success",
    function()
    local path = dir .. "/a.journal"
    local j = assert(journal.open(path))
    assert.equal("run", j:claim("a", 1))
    assert(j:finish("a", 1, nil, http_err(422)))
    j:close()
    local good = sys.read(path)
    for _, edit in ipairs({ { '"kind":"http"', '"kind":"htp"' }, { '"error":{.*}}', '"error":null}' },
      { '"error":{.*}}', '"error":"422"}' } }) do
      local damaged = good:gsub(edit[1], edit[2])
      assert.are_not.equal(good, damaged)
      sys.write(path, damaged)
      local none, err = journal.open(path)
      assert.is_nil(none, damaged)
      assert.equal("validation", err.kind)
      assert.matches("line 3 is corrupted", err.message, 1, true)
      assert.equal(damaged, sys.read(path))
    end
  end)

  it("refuses another job's journal: another job name, another key for an index, a key twice",
    function()
    local path = dir .. "/a.journal"
    local j = assert(journal.open(path, { job = "invites" }))
    assert.equal("run", j:claim("ada@x.test", 1))
    assert(j:finish("ada@x.test", 1, { id = 1 }))
    j:close()
    local before = sys.read(path)
    local none, err = journal.open(path, { job = "exports" })
    assert.is_nil(none)
    assert.equal("validation", err.kind)
    assert.matches('journal of job "invites", not of job "exports"', err.message, 1, true)
    none, err = journal.open(path) -- the default job, "map"
    assert.is_nil(none)
    assert.matches('job "invites"', err.message, 1, true)

    j = assert(journal.open(path, { job = "invites" }))
    local state, cerr = j:claim("bob@x.test", 1)
    assert.is_nil(state)
    assert.equal("validation", cerr.kind)
    assert.matches('item 1 has the key "ada@x.test" in the journal, "bob@x.test" now', cerr.message, 1, true)
    state, cerr = j:claim("ada@x.test", 2)
    assert.is_nil(state)
    assert.matches('the key "ada@x.test" is item 1\'s in the journal, not item 2\'s', cerr.message, 1, true)
    j:close()
    assert.equal(before, sys.read(path))
  end)

  it("refuses a file that is not a journal, or of a newer format, without writing to it", function()
    local csv = dir .. "/rows.csv"
    sys.write(csv, "first_name,last_name,email\nAda,Lovelace,ada@x.test\n")
    local none, err = journal.open(csv)
    assert.is_nil(none)
    assert.matches("not an assesskit journal", err.message)
    assert.equal("first_name,last_name,email\nAda,Lovelace,ada@x.test\n", sys.read(csv))
    sys.write(csv, "no newline at all")
    none, err = journal.open(csv)
    assert.is_nil(none)
    assert.matches("not an assesskit journal", err.message)
    assert.equal("no newline at all", sys.read(csv))
    local newer = dir .. "/newer.journal"
    sys.write(newer, '{"assesskit_journal":2,"job":"map"}\n')
    none, err = journal.open(newer)
    assert.is_nil(none)
    assert.matches("format version 2", err.message)
    none, err = journal.open(dir .. "/no/such/dir/x.journal")
    assert.is_nil(none)
    assert.equal("io", err.kind)
  end)

  it("refuses at once a path that is not a file on disk: a FIFO, a pipe, a device", function()
    local fifo = dir .. "/fifo"
    assert(sys.run("mkfifo " .. sys.quote(fifo)))
    local lua = rawget(_G, "jit") and "luajit" or "lua5.4"
    for _, path in ipairs({ fifo, "/dev/stdout", "/dev/zero", "/dev/null" }) do
      -- in a process of its own, stdout a pipe, bounded: a journal that reads for ever hangs
      local script = ("package.path=%q package.cpath=%q local j, e = require('assesskit.journal').open(%q) "
        .. "io.stderr:write(j and 'opened' or (e.kind .. ': ' .. e.message))"):format(ROOT .. "/lua/?.lua;"
        .. ROOT .. "/lua/?/init.lua;" .. package.path, package.cpath, path)
      local _, _, err = sys.exec("{ ulimit -v 1000000; timeout 10 " .. lua .. " -e " .. sys.quote(script)
        .. " | cat; }")
      assert.matches("^validation: journal " .. path:gsub("%p", "%%%0") .. ": not a file on disk", err)
    end
  end)

  it("is held by one user at a time, in this process and in another", function()
    local path = dir .. "/a.journal"
    local j = assert(journal.open(path))
    local none, err = journal.open(path)
    assert.is_nil(none)
    assert.equal("io", err.kind)
    assert.matches("in use by another process", err.message)
    local script = ("package.path=%q package.cpath=%q local j, e = require('assesskit.journal').open(%q) "
      .. "io.write(j and 'opened' or e.message)"):format(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;"
      .. package.path, package.cpath, path)
    local lua = rawget(_G, "jit") and "luajit" or "lua5.4" -- the interpreter of this run
    local _, out = sys.exec(lua .. " -e " .. sys.quote(script))
    assert.matches("in use by another process", out)
    j:close()
    _, out = sys.exec(lua .. " -e " .. sys.quote(script))
    assert.equal("opened", out)
  end)

  it("is not held by a child process started while it was open, once it is closed", function()
    local path = dir .. "/a.journal"
    local j = assert(journal.open(path))
    -- fn (or anything in the process) starts a command that outlives the job
    local pidfile = dir .. "/child.pid"
    os.execute("sleep 30 </dev/null >/dev/null 2>&1 & echo $! > " .. sys.quote(pidfile))
    local pid = assert(tonumber(sys.read(pidfile)), "no child pid")
    j:close()
    local script = ("package.path=%q package.cpath=%q local j, e = require('assesskit.journal').open(%q) "
      .. "io.write(j and 'opened' or e.message)"):format(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;"
      .. package.path, package.cpath, path)
    local lua = rawget(_G, "jit") and "luajit" or "lua5.4"
    local _, out = sys.exec(lua .. " -e " .. sys.quote(script))
    sys.run("kill " .. pid)
    assert.equal("opened", out)
  end)

  it("records a result that JSON cannot hold as a failure, so the item is not run again", function()
    local path = dir .. "/a.journal"
    local j = assert(journal.open(path))
    assert.equal("run", j:claim("a", 1))
    local ok, err = j:finish("a", 1, { f = print })
    assert.is_nil(ok)
    assert.equal("validation", err.kind)
    assert.matches("cannot be recorded", err.message)
    j:close()
    j = assert(journal.open(path))
    local state, rec = j:claim("a", 1)
    assert.equal("failed", state)
    assert.matches("cannot be recorded", rec.err.message)
    j:close()
  end)

  it("gives recorded numbers back exactly as they were: every digit, integer or float", function()
    local path = dir .. "/a.journal"
    local value = {
      id = 123456789012345, stamp = 1733480000123456, neg = -987654321098765, small = 42,
      sum = 0.1 + 0.2, third = 1 / 3, half = 2.5, score = 80.0, tiny = 5e-324, huge = 1.5e300,
      list = { 4503599627370497, 0.1 + 0.7 }, nested = { deep = { x = 2 ^ 52 + 1 } },
    }
    local j = assert(journal.open(path))
    assert.equal("run", j:claim("a", 1))
    assert(j:finish("a", 1, value))
    assert.equal("run", j:claim("b", 2))
    assert(j:finish("b", 2, 9007199254740991))
    assert.equal("run", j:claim("c", 3))
    assert(j:resolve("c", 3, { id = 123456789012346 }))
    j:close()
    j = assert(journal.open(path))
    local _, rec = j:claim("a", 1)
    local function same(want, got, where)
      if type(want) == "table" then
        for k, v in pairs(want) do same(v, got[k], where .. "." .. tostring(k)) end
        return
      end
      assert.equal(want, got, where .. ": " .. string.format("%.17g", want) .. " came back as "
        .. tostring(got))
      if math.type then assert.equal(math.type(want), math.type(got), where) end
    end
    same(value, rec.value, "value")
    _, rec = j:claim("b", 2)
    same(9007199254740991, rec.value, "b")
    _, rec = j:claim("c", 3)
    same(123456789012346, rec.value.id, "c")
    j:close()
  end)

  it("gives a recorded JSON null (client.null) back as null, and nothing as nothing", function()
    local null = require("assesskit.client").null
    local path = dir .. "/a.journal"
    local j = assert(journal.open(path))
    assert.equal("run", j:claim("a", 1))
    assert(j:finish("a", 1, null))
    assert.equal("run", j:claim("b", 2))
    assert(j:finish("b", 2, nil))
    j:close()
    j = assert(journal.open(path))
    local state, rec = j:claim("a", 1)
    assert.equal("done", state)
    assert.equal(null, rec.value)
    state, rec = j:claim("b", 2)
    assert.equal("done", state)
    assert.is_nil(rec.value)
    j:close()
  end)

  it("makes the records of coroutines that yield together durable with one fdatasync", function()
    local j = assert(journal.open(dir .. "/a.journal"))
    local base = j:stats().syncs
    local cos = {}
    for i = 1, 5 do
      cos[i] = coroutine.create(function()
        assert.equal("run", j:claim("k" .. i, i))
        assert(j:sync(coroutine.yield))
      end)
    end
    for _ = 1, 2 do
      for i = 1, 5 do
        if coroutine.status(cos[i]) == "suspended" then assert(coroutine.resume(cos[i])) end
      end
    end
    for i = 1, 5 do assert.equal("dead", coroutine.status(cos[i])) end
    assert.equal(base + 1, j:stats().syncs)
    assert.equal(6, #lines(dir .. "/a.journal"))
    -- without yield, each sync is its own
    assert.equal("run", j:claim("k6", 6))
    assert(j:sync())
    assert.equal(base + 2, j:stats().syncs)
    j:close()
  end)

  it("raises at the caller on a misused key, index or option", function()
    local j = assert(journal.open(dir .. "/a.journal"))
    local ok, msg = pcall(j.claim, j, 42, 1)
    assert.is_false(ok)
    assert.matches("key must be a string", msg)
    assert.has_error(function() j:claim("a", 0) end, nil)
    assert.has_error(function() j:finish("a", 1.5) end, nil)
    assert.has_error(function() journal.open(dir .. "/b", { jobs = "x" }) end)
    assert.has_error(function() journal.open(nil) end)
    local _, where = pcall(function() journal.open(dir .. "/b", { job = 1 }) end)
    local line = debug.getinfo(1, "l").currentline - 1
    assert.matches("journal_spec.lua:" .. line .. ":", where, 1, true)
    j:close()
  end)
end)

describe("journal.is_ambiguous #luajit", function()
  it("holds a lost answer to a write, and nothing else", function()
    local function e(f) f.message = "m"; return errors.new(f) end
    assert.is_true(journal.is_ambiguous(e { kind = "network", method = "POST" }))
    assert.is_true(journal.is_ambiguous(e { kind = "timeout", method = "PUT", sent = true }))
    assert.is_true(journal.is_ambiguous(e { kind = "network" }))
    assert.is_false(journal.is_ambiguous(e { kind = "network", method = "POST", sent = false }))
    assert.is_false(journal.is_ambiguous(e { kind = "timeout", method = "GET" }))
    assert.is_false(journal.is_ambiguous(e { kind = "http", status = 503, method = "POST" }))
    assert.is_false(journal.is_ambiguous(e { kind = "http", status = 500, method = "POST" }))
    -- a gateway that lost the upstream's answer: the write may have been done behind it
    assert.is_true(journal.is_ambiguous(e { kind = "http", status = 504, method = "POST" }))
    assert.is_true(journal.is_ambiguous(e { kind = "http", status = 502, method = "PUT" }))
    assert.is_false(journal.is_ambiguous(e { kind = "http", status = 504, method = "GET" }))
    assert.is_false(journal.is_ambiguous(e { kind = "tls", method = "POST" }))
    -- a write answered, its answer unreadable or cut off: it may have been done
    assert.is_true(journal.is_ambiguous(e { kind = "decode", status = 201, method = "POST", sent = true }))
    assert.is_true(journal.is_ambiguous(e { kind = "too_large", method = "PATCH", sent = true }))
    assert.is_true(journal.is_ambiguous(e { kind = "aborted", method = "POST", sent = true }))
    assert.is_false(journal.is_ambiguous(e { kind = "aborted", method = "POST", sent = false }))
    assert.is_false(journal.is_ambiguous(e { kind = "decode", status = 200, method = "GET", sent = true }))
    assert.is_false(journal.is_ambiguous("network"))
    assert.is_false(journal.is_ambiguous(nil))
  end)
end)

describe("client:map with a journal", function()
  local sb = sandbox.fixture({ lazy = true, reset = true, clear = true })
  local dir
  before_each(function() dir = sys.tmpdir("journal-map") end)
  after_each(function() sys.rmdir(dir) end)

  local function rows(n, tag)
    local out = {}
    for i = 1, n do
      out[i] = { email = ("%s-%d@journal.test"):format(tag, i), first_name = "J", last_name = tostring(i) }
    end
    return out
  end

  local function by_email(tv)
    return function(row) return row.email end, function(row)
      local found, err = tv.models.candidate:list { email = row.email }
      if not found then return nil, err end
      return found[1]
    end
  end

  local function posts()
    return #sb:requests({ method = "POST", path = "/models/candidate" })
  end

  local function created(email)
    local n = 0
    for _, c in ipairs(sb:state("candidate")) do if c.email == email then n = n + 1 end end
    return n
  end

  it("runs again only what is not done: recorded results come back as if just made", function()
    local tv = sb:talview()
    local path = dir .. "/job.journal"
    local items = rows(6, "rerun")
    local calls = 0
    local function fn(row)
      calls = calls + 1
      return tv.models.candidate:create(row)
    end
    local key = by_email(tv)
    -- the first run stops after item 3 (stop_on_error): 4-6 are never claimed
    local first = tv:map(items, function(row, i)
      if i == 4 then error("stop here") end
      return fn(row)
    end, { journal = path, key = key, stop_on_error = true, concurrency = 1 })
    assert.equal(3, calls)
    assert.equal(3, posts())
    -- the rerun: 1-3 from the journal, 4 failed before (raised: reported again), 5-6 run
    local got = {}
    local results = tv:map(items, fn, { journal = path, key = key, on_result = function(i, v, e)
      got[i] = { value = v, err = e }
    end })
    assert.is_table(results)
    assert.equal(5, calls)
    assert.equal(5, posts())
    for i = 1, 3 do
      assert.equal(first[i].value.id, got[i].value.id)
      assert.equal(items[i].email, got[i].value.email)
    end
    assert.matches("stop here", tostring(got[4].err))
    for i = 5, 6 do assert.equal(items[i].email, got[i].value.email) end
    -- a third run sends nothing at all, and gives the same results in order
    results = tv:map(items, fn, { journal = path, key = key })
    assert.equal(5, calls)
    assert.equal(5, posts())
    for i = 1, 6 do
      if i ~= 4 then assert.equal(got[i].value.id, results[i].value.id) end
    end
    for _, row in ipairs(items) do
      assert.equal(row.email == items[4].email and 0 or 1, created(row.email))
    end
  end)

  it("calls fn once its 'started' record is in the file, delivers once its outcome is", function()
    local tv = sb:talview()
    local path = dir .. "/job.journal"
    local items = rows(24, "durable")
    local function on_disk(pattern) return (sys.read(path) or ""):find(pattern) ~= nil end
    local late = {}
    local results = tv:map(items, function(row, i)
      if not on_disk('"i":' .. i .. ',"key":"[^"]*","state":"started"}') then late[#late + 1] = "fn " .. i end
      return tv.models.candidate:create(row)
    end, { journal = path, key = function(row) return row.email end, concurrency = 6,
      on_result = function(i, v)
        if not on_disk('"i":' .. i .. ',"key":"[^"]*","state":"done"') then late[#late + 1] = "result " .. i end
        assert.equal(items[i].email, v.email)
      end })
    assert.same({}, late)
    assert.equal(24, results.done)
    assert.equal(24, posts())
  end)

  it("reports a failure that is not retryable again, and runs it again with retry_failed", function()
    local tv = sb:talview({ max_retries = 0 })
    local path = dir .. "/job.journal"
    local items = rows(3, "failed")
    local key = by_email(tv)
    local function fn(row) return tv.models.candidate:create(row) end
    sb:fault({ kind = "status", status = 400, times = 1, method = "POST", path = "/models/candidate" })
    local r = tv:map(items, fn, { journal = path, key = key })
    assert.equal(400, r[1].err.status)
    assert.equal(3, posts())
    r = tv:map(items, fn, { journal = path, key = key })
    assert.equal(400, r[1].err.status)
    assert.equal("http", r[1].err.kind)
    assert.equal(3, posts()) -- reported from the journal, not sent
    r = tv:map(items, fn, { journal = path, key = key, retry_failed = true })
    assert.is_nil(r[1].err)
    assert.equal(items[1].email, r[1].value.email)
    assert.equal(4, posts())
    assert.equal(1, created(items[1].email))
  end)

  it("a result that cannot be recorded is never run again, not even with retry_failed", function()
    local tv = sb:talview()
    local path = dir .. "/job.journal"
    local items = rows(2, "unrecordable")
    local key = function(row) return row.email end
    local function fn(row)
      local cand, err = tv.models.candidate:create(row)
      if not cand then return nil, err end
      return { id = cand.id, score = 0 / 0 } -- JSON has no NaN
    end
    local r = tv:map(items, fn, { journal = path, key = key })
    assert.equal("validation", r[1].err.kind)
    assert.matches("cannot be recorded", r[1].err.message, 1, true)
    assert.equal(2, posts())
    -- the write was done: running it again would create the candidate twice
    r = tv:map(items, fn, { journal = path, key = key, retry_failed = true })
    assert.equal("validation", r[1].err.kind)
    assert.matches("cannot be recorded", r[1].err.message, 1, true)
    assert.equal(2, posts())
    for i = 1, 2 do assert.equal(1, created(items[i].email)) end
  end)

  it("runs an item again that failed with a retryable error", function()
    local tv = sb:talview({ max_retries = 0 })
    local path = dir .. "/job.journal"
    local items = rows(2, "retryable")
    local function fn(row) return tv.models.candidate:create(row) end
    sb:fault({ kind = "status", status = 503, times = 1, method = "POST", path = "/models/candidate" })
    local r = tv:map(items, fn, { journal = path, key = by_email(tv) })
    assert.equal(503, r[1].err.status)
    r = tv:map(items, fn, { journal = path, key = by_email(tv) })
    assert.equal(items[1].email, r[1].value.email)
    assert.equal(3, posts())
    assert.equal(1, created(items[1].email))
  end)

  it("a POST answered 504 by a gateway is ambiguous: never re-run blind, reconciled first",
    function()
    local tv = sb:talview({ max_retries = 0 })
    local path = dir .. "/job.journal"
    local items = rows(2, "gateway")
    local function fn(row) return tv.models.candidate:create(row) end
    sb:fault({ kind = "status", status = 504, times = 1, method = "POST", path = "/models/candidate" })
    local opts = { journal = path, key = function(row) return row.email end }
    local r = tv:map(items, fn, opts)
    assert.equal("ambiguous", r[1].err.kind)
    assert.equal(504, r[1].err.cause.status)
    assert.equal(2, posts())
    -- a 504 is retryable, but the next run does not send it again blind
    r = tv:map(items, fn, opts)
    assert.equal("ambiguous", r[1].err.kind)
    assert.equal(2, posts())
    -- reconcile says it had not landed (the sandbox's 504 did nothing): it is created once
    local reconciled = 0
    local _, by_mail = by_email(tv)
    opts.reconcile = function(item, i) reconciled = reconciled + 1; return by_mail(item, i) end
    r = tv:map(items, fn, opts)
    assert.equal(1, reconciled)
    assert.is_nil(r[1].err)
    assert.equal(items[1].email, r[1].value.email)
    assert.equal(3, posts())
    assert.equal(1, created(items[1].email))
  end)

  it("a POST processed but its answer lost: reconcile finds it, and it is created once", function()
    local tv = sb:talview()
    local path = dir .. "/job.journal"
    local items = rows(3, "lost")
    local key, reconcile = by_email(tv)
    local function fn(row) return tv.models.candidate:create(row) end
    sb:fault({ kind = "drop_response", times = 1, method = "POST", path = "/models/candidate" })
    local r = tv:map(items, fn, { journal = path, key = key, reconcile = reconcile })
    for i = 1, 3 do
      assert.is_nil(r[i].err)
      assert.equal(items[i].email, r[i].value.email)
      assert.equal(1, created(items[i].email))
    end
    assert.equal(3, posts())
    local dropped = sb:requests({ method = "POST", path = "/models/candidate" })[1]
    assert.equal("drop_response", dropped.fault)
    -- recorded as found by reconcile; a rerun sends nothing
    assert.matches('"i":1,"key":"lost%-1@journal.test","state":"resolved"', sys.read(path))
    r = tv:map(items, fn, { journal = path, key = key, reconcile = reconcile })
    assert.equal(3, posts())
    assert.equal(items[1].email, r[1].value.email)
  end)

  it("a POST processed but its answer lost: without reconcile it is ambiguous, never sent again",
    function()
    local tv = sb:talview()
    local path = dir .. "/job.journal"
    local items = rows(3, "lostnr")
    local function fn(row) return tv.models.candidate:create(row) end
    sb:fault({ kind = "drop_response", times = 1, method = "POST", path = "/models/candidate" })
    local opts = { journal = path, key = function(row) return row.email end }
    local r = tv:map(items, fn, opts)
    assert.equal("ambiguous", r[1].err.kind)
    assert.equal(items[1].email, r[1].err.key)
    assert.matches(items[1].email, tostring(r[1].err), 1, true)
    assert.equal("network", r[1].err.cause.kind)
    assert.equal(items[2].email, r[2].value.email)
    assert.equal(3, posts())
    -- the next run: still ambiguous, still not sent
    r = tv:map(items, fn, opts)
    assert.equal("ambiguous", r[1].err.kind)
    assert.equal(3, posts())
    assert.equal(1, created(items[1].email))
    -- with reconcile, the rerun finds it
    local _, reconcile = by_email(tv)
    opts.reconcile = reconcile
    r = tv:map(items, fn, opts)
    assert.equal(items[1].email, r[1].value.email)
    assert.equal(3, posts())
  end)

  it("a POST done but its answer unreadable (a garbled 201) is ambiguous: never sent again",
    function()
    local tv = sb:talview()
    local path = dir .. "/job.journal"
    local items = rows(2, "garbled")
    local function fn(row) return tv.models.candidate:create(row) end
    local opts = { journal = path, key = function(row) return row.email end }
    sb:fault({ kind = "malformed_json", times = 1, method = "POST", path = "/models/candidate" })
    local r = tv:map(items, fn, opts)
    assert.equal("ambiguous", r[1].err.kind)
    assert.equal("decode", r[1].err.cause.kind)
    assert.equal(201, r[1].err.cause.status)
    assert.equal(items[2].email, r[2].value.email)
    assert.equal(2, posts())
    -- not even retry_failed sends it again: the candidate exists
    opts.retry_failed = true
    r = tv:map(items, fn, opts)
    assert.equal("ambiguous", r[1].err.kind)
    assert.equal(2, posts())
    assert.equal(1, created(items[1].email))
    -- reconcile finds it
    local _, reconcile = by_email(tv)
    opts.reconcile = reconcile
    r = tv:map(items, fn, opts)
    assert.equal(items[1].email, r[1].value.email)
    assert.equal(2, posts())
    assert.equal(1, created(items[1].email))
  end)

  it("reconcile that finds nothing lets the item run again; one that fails keeps it ambiguous",
    function()
    local tv = sb:talview()
    local path = dir .. "/job.journal"
    local items = rows(2, "recon")
    local function fn(row) return tv.models.candidate:create(row) end
    local key = function(row) return row.email end
    -- a run that died after writing item 1's 'started' record (before it was sent)
    local j = assert(journal.open(path))
    assert.equal("run", j:claim(items[1].email, 1))
    j:close()
    local r = tv:map(items, fn, { journal = path, key = key, reconcile = function()
      return nil, errors.new({ kind = "network", message = "lookup failed" })
    end })
    assert.equal("ambiguous", r[1].err.kind)
    assert.matches("reconcile could not tell", r[1].err.message, 1, true)
    assert.equal(1, posts()) -- only item 2
    local asked = 0
    r = tv:map(items, fn, { journal = path, key = key, reconcile = function(row, i)
      asked = asked + 1
      assert.equal(items[1], row)
      assert.equal(1, i)
      return nil
    end })
    assert.equal(1, asked)
    assert.equal(items[1].email, r[1].value.email)
    assert.equal(2, posts())
    assert.equal(1, created(items[1].email))
  end)

  it("a callback that raises leaves no item it never sent looking started in the next run",
    function()
    local tv = sb:talview()
    local function fn(row) return tv.models.candidate:create(row) end
    local key = function(row) return row.email end
    for _, cb in ipairs({ "on_result", "on_progress" }) do
      local items = rows(4, "raises-" .. cb)
      local path = dir .. "/" .. cb .. ".journal"
      local opts = { journal = path, key = key, concurrency = 1 }
      opts[cb] = function(i) if i == 1 then error(cb .. " raised") end end
      local ok, msg = pcall(tv.map, tv, items, fn, opts)
      assert.is_false(ok)
      assert.matches(cb .. " raised", tostring(msg), 1, true)
      -- the next run, without reconcile: the items never sent run now, none is ambiguous
      local r = tv:map(items, fn, { journal = path, key = key, concurrency = 1 })
      for i = 1, 4 do
        assert.is_nil(r[i].err, cb .. ": item " .. i .. ": " .. tostring(r[i].err))
        assert.equal(items[i].email, r[i].value.email)
        assert.equal(1, created(items[i].email))
      end
    end
    assert.equal(8, posts())
  end)

  it("reports an item whose key() gives a number no key can be made of, and goes on", function()
    local tv = sb:talview()
    local bad = { [2] = 2 ^ 63, [3] = math.huge, [4] = 1.5 }
    local r = tv:map({ "a", "b", "c", "d", "e" }, function(x) return x:upper() end,
      { journal = dir .. "/job.journal", key = function(_, i) return bad[i] or i * 10 end })
    assert.equal("A", r[1].value)
    assert.equal("E", r[5].value)
    for i = 2, 4 do
      assert.equal("validation", r[i].err.kind, "item " .. i)
      assert.matches("key(item, " .. i .. ") returned a number", r[i].err.message, 1, true)
    end
  end)

  it("refuses a journal of other items before sending anything", function()
    local tv = sb:talview()
    local path = dir .. "/job.journal"
    local function fn(row) return tv.models.candidate:create(row) end
    local key = function(row) return row.email end
    tv:map(rows(2, "jobA"), fn, { journal = path, key = key })
    local before = sys.read(path)
    local r = tv:map(rows(2, "jobB"), fn, { journal = path, key = key })
    assert.equal("validation", r[1].err.kind)
    assert.matches("another job", r[1].err.message)
    assert.equal(2, posts())
    assert.equal(before, sys.read(path))
    local none, err = tv:map(rows(2, "jobA"), fn, { journal = path, key = key, job = "other" })
    assert.is_nil(none)
    assert.matches('journal of job "map"', err.message, 1, true)
  end)

  it("raises at the caller for journal options without a journal or of the wrong type", function()
    local tv = sb:talview()
    local fn = function() return true end
    local function raises(pattern, opts)
      local ok, msg = pcall(function() tv:map({ 1 }, fn, opts) end)
      assert.is_false(ok)
      assert.matches(pattern, msg, 1, true)
      assert.matches("journal_spec.lua:", msg, 1, true)
    end
    raises("option 'reconcile' needs a journal (option 'journal')", { reconcile = fn })
    raises("option 'key' needs a journal", { key = fn })
    raises("option 'key' must be a function", { journal = dir .. "/j", key = "email" })
    raises("option 'journal' must be a path or a journal (claim, finish, resolve, sync)", { journal = 42 })
    assert.equal(0, posts())
    assert.is_nil(sys.read(dir .. "/j"))
  end)
end)
