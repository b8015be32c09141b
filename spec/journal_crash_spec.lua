-- Issue 13's "Measured": a journaled bulk create of a few hundred candidates against the
-- sandbox, killed with SIGKILL at random moments several times and restarted with the same
-- journal each time; then, server-side, every candidate exists exactly once, and the final
-- results are complete and in input order.
local sandbox = require("support.sandbox")
local sys = require("support.sys")
local cjson = require("cjson")

local ROOT = sys.repo
local COUNT = 300

-- Whether process `pid` still runs (a zombie waiting for its reaper does not).
local function running(pid)
  local stat = sys.read("/proc/" .. pid .. "/stat")
  if not stat then return false end
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

local function runner_cmd(args)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = sys.quote(a) end
  return "cd " .. sys.quote(ROOT) .. " && LUA_PATH=" .. sys.quote(ROOT .. "/lua/?.lua;" .. ROOT
    .. "/lua/?/init.lua;;") .. " LUA_CPATH=" .. sys.quote(ROOT .. "/build/lua5.4/?.so;;")
    .. " lua5.4 spec/support/journal_runner.lua " .. table.concat(quoted, " ")
end

-- Starts the runner in the background; its pid.
local function start(args, log)
  local p = assert(io.popen(runner_cmd(args) .. " >>" .. sys.quote(log) .. " 2>&1 & echo $!"))
  local pid = tonumber(p:read("*a"):match("%d+"))
  p:close()
  return assert(pid, "no pid")
end

-- Records of the journal that end an item (done or resolved).
local function finished_records(path)
  local text = sys.read(path) or ""
  local n = 0
  for _ in text:gmatch('"state":"done"') do n = n + 1 end
  for _ in text:gmatch('"state":"resolved"') do n = n + 1 end
  return n
end

describe("a journaled bulk create killed with SIGKILL at random moments", function()
  local sb = sandbox.fixture({ lazy = true })

  it("ends with every candidate created exactly once and every result, in order", function()
    local dir = sys.tmpdir("journal-crash")
    local creds = dir .. "/credentials.json"
    sys.write(creds, cjson.encode(sb.credentials))
    local journal, out, log = dir .. "/job.journal", dir .. "/results.jsonl", dir .. "/runner.log"
    local prefix = ("crash%d"):format(os.time())
    local args = { creds, journal, out, tostring(COUNT), prefix, "8" }
    -- each create answers a little late, so that kills land while requests are in flight
    -- (the sandbox still creates the candidate of a request whose client died)
    sb:fault({ kind = "slow", delay = 0.01, times = -1, method = "POST", path = "/models/candidate" })
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000)
    local kills = 0
    for _ = 1, 6 do
      local before = finished_records(journal)
      local target = before + math.random(10, 45)
      local pid = start(args, log)
      local deadline = sys.now() + 60
      while running(pid) and finished_records(journal) < target and sys.now() < deadline do
        sys.sleep(0.002)
      end
      sys.sleep(math.random() * 0.03) -- anywhere: in a request, a write, an fdatasync
      if running(pid) then
        sys.run("kill -KILL " .. pid)
        kills = kills + 1
        local gone = sys.now() + 10
        while running(pid) and sys.now() < gone do sys.sleep(0.01) end
        assert.is_false(running(pid))
      end
      if sys.read(out) then break end -- it finished before the kill
    end
    assert.is_true(kills >= 3, "the runner was killed only " .. kills .. " times:\n" .. (sys.read(log) or ""))
    assert.is_nil(sys.read(out))
    -- the last run, to the end
    local status, stdout, stderr = sys.exec(runner_cmd(args))
    assert.equal(0, status, stdout .. stderr .. (sys.read(log) or ""))
    sb:clear_faults()

    -- server side: each candidate of the job exactly once
    local seen, ids = {}, {}
    for _, cand in ipairs(sb:state("candidate")) do
      local email = cand.email
      if type(email) == "string" and email:find(prefix .. "-", 1, true) == 1 then
        seen[email] = (seen[email] or 0) + 1
        ids[email] = cand.id
      end
    end
    for n = 1, COUNT do
      local email = ("%s-%d@journal.test"):format(prefix, n)
      assert.equal(1, seen[email], email .. " exists " .. tostring(seen[email] or 0) .. " times")
    end
    local total = 0
    for _ in pairs(seen) do total = total + 1 end
    assert.equal(COUNT, total)

    -- the results: complete, in input order, the server's records
    local n = 0
    for line in (sys.read(out) or ""):gmatch("[^\n]+") do
      n = n + 1
      local r = cjson.decode(line)
      local email = ("%s-%d@journal.test"):format(prefix, n)
      assert.equal(n, r.i)
      assert.equal(email, r.email, line)
      assert.equal(ids[email], r.id, line)
    end
    assert.equal(COUNT, n)
    local text = sys.read(journal)
    local resolved = select(2, text:gsub('"state":"resolved"', ""))
    print(("\n    %d kills; %d items found done by reconcile"):format(kills, resolved))
    sys.rmdir(dir)
  end)
end)
