-- examples/bulk_invite.lua --journal, run as a subprocess against a sandbox: a rerun calls
-- nothing for the rows done and does not invite twice; a row whose create was cut short is
-- reconciled by email and not created twice.
local sandbox = require("support.sandbox")
local sys = require("support.sys")
local journal = require("assesskit.journal")

local ROOT = sys.repo

describe("examples/bulk_invite.lua --journal", function()
  local sb = sandbox.fixture({ reset = true, clear = true })
  local tmp_dir

  before_each(function() tmp_dir = sys.tmpdir("journal-example") end)
  after_each(function() sys.rmdir(tmp_dir) end)

  local function run(args)
    local words = {}
    for i, a in ipairs(args) do words[i] = sys.quote(a) end
    return sys.exec("lua5.4 examples/bulk_invite.lua " .. table.concat(words, " "), { cwd = ROOT, env = {
      LUA_PATH = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
      LUA_CPATH = ROOT .. "/build/lua5.4/?.so;;",
      PATH = os.getenv("PATH") or "/usr/bin:/bin", HOME = tmp_dir, ASSESSKIT_SANDBOX_DIR = sb.dir,
    } })
  end

  local function csv(tag, n)
    local lines, emails = { "first_name,last_name,email" }, {}
    for i = 1, n do
      emails[i] = ("%s-%d@journal.test"):format(tag, i)
      lines[#lines + 1] = ("Row,%d,%s"):format(i, emails[i])
    end
    local path = tmp_dir .. "/" .. tag .. ".csv"
    sys.write(path, table.concat(lines, "\n") .. "\n")
    return path, emails
  end

  local function count(email)
    local n = 0
    for _, c in ipairs(sb:state("candidate")) do if c.email == email then n = n + 1 end end
    return n
  end

  it("calls nothing again for the rows done, and does not invite twice", function()
    local path = csv("again", 5)
    local j = tmp_dir .. "/invite.journal"
    local status, out, err = run({ "--journal", j, path })
    assert.equal(0, status, out .. err)
    assert.matches("5 candidates: 5 created, 0 already there, 0 failed", out, 1, true)
    local action = out:match("%(action #(%d+)%)")
    assert.truthy(action, out)
    assert.equal(5, #sb:requests({ method = "POST", path = "/models/candidate" }))
    assert.equal(1, #sb:requests({ path = "/actions/invite" }))
    sb:clear_requests()
    status, out, err = run({ "--journal", j, path })
    assert.equal(0, status, out .. err)
    -- the recorded results, as if just made; not one request about candidates or invites
    assert.matches("5 candidates: 5 created, 0 already there, 0 failed", out, 1, true)
    assert.matches("(action #" .. action .. ")", out, 1, true)
    assert.equal(0, #sb:requests({ path_prefix = "/models/candidate" }))
    assert.equal(0, #sb:requests({ path = "/actions/invite" }))
  end)

  it("does not pass off the recorded invite as one of candidates added to the file since", function()
    local path = csv("grow", 3)
    local j = tmp_dir .. "/invite.journal"
    local status, out, err = run({ "--journal", j, path })
    assert.equal(0, status, out .. err)
    assert.matches("invited 3 candidates", out, 1, true)
    -- two more rows in the file, the same journal
    local f = assert(io.open(path, "a"))
    f:write("Row,4,grow-4@journal.test\nRow,5,grow-5@journal.test\n")
    f:close()
    status, out, err = run({ "--journal", j, path })
    assert.matches("5 candidates: 5 created, 0 already there, 0 failed", out, 1, true)
    assert.is_nil(out:find("invited 5 candidates", 1, true), out)
    assert.are_not.equal(0, status)
    assert.matches('invite failed: validation: journal .*"section 2002: 3 candidates.*"section 2002: 5 candidates', err)
    assert.equal(1, #sb:requests({ path = "/actions/invite" }))
  end)

  it("reconciles a row whose create was cut short by email, and creates it once", function()
    local path, emails = csv("cut", 3)
    local j = tmp_dir .. "/invite.journal"
    -- an earlier run died after sending row 2's create, which landed
    local jj = assert(journal.open(j))
    assert.equal("run", jj:claim(emails[2], 2))
    assert(jj:close())
    local r = sb:request("POST", "/models/candidate", { token = sb:token(),
      body = { email = emails[2], first_name = "Row", last_name = "2" } })
    assert.equal(201, r.status)
    sb:clear_requests()
    local status, out, err = run({ "--journal", j, path })
    assert.equal(0, status, out .. err)
    assert.matches("3 candidates: 3 created, 0 already there, 0 failed", out, 1, true)
    for i = 1, 3 do assert.equal(1, count(emails[i])) end
    -- row 2 was looked up (reconcile), not created
    assert.equal(2, #sb:requests({ method = "POST", path = "/models/candidate" }))
    assert.matches('"key":"cut%-2@journal.test","state":"resolved"', sys.read(j))
  end)
end)
