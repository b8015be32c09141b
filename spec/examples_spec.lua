-- Every example under examples/ (but examples/openresty/, which has its own spec) runs as a
-- subprocess against one sandbox: exit status, key lines of its output, and what it did to
-- the sandbox's state. Also `make demo`'s script, twice in a row.

local sandbox = require("support.sandbox")
local sys = require("support.sys")

local ROOT = sys.repo
local shell_quote, read_file = sys.quote, sys.read

local tmp_dir -- made in the outer setup, removed in its teardown

-- Run a command from the repository root with the module paths the example headers give, in
-- a clean environment (`env` is added to it). Returns status, stdout, stderr.
local function run(cmd, env)
  local vars = {
    LUA_PATH = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
    LUA_CPATH = ROOT .. "/build/lua5.4/?.so;;",
    PATH = os.getenv("PATH") or "/usr/bin:/bin",
    HOME = tmp_dir,
  }
  for k, v in pairs(env or {}) do vars[k] = v end
  return sys.exec(cmd, { cwd = ROOT, env = vars })
end

local function has_line(text, pattern)
  for l in text:gmatch("[^\n]+") do
    if l:find(pattern) then return l end
  end
  return nil
end

-- examples/*.lua, sorted
local function example_files()
  local out = {}
  local p = assert(io.popen("cd " .. shell_quote(ROOT) .. " && ls examples/*.lua 2>/dev/null"))
  for f in p:read("a"):gmatch("[^\n]+") do out[#out + 1] = f end
  p:close()
  table.sort(out)
  return out
end

describe("runnable examples", function()
  setup(function()
    tmp_dir = sys.tmpdir("examples-spec")
  end)

  teardown(function()
    if tmp_dir then sys.rmdir(tmp_dir) end
  end)

  describe("examples", function()
    local sb = sandbox.fixture()
    local env

    setup(function()
      env = { ASSESSKIT_SANDBOX_DIR = sb.dir }
    end)

    -- What each example must print (patterns, one per line looked for in stdout), and checks of
    -- the sandbox's state afterwards.
    local expected = {
      ["examples/quickstart.lua"] = {
        lines = { "^candidates: %d+ in all, page 1 of %d+$", "^  #10001 Asha Ahmed <candidate001@example%.test>$",
          "^created candidate #%d+ <ada%.%d+@example%.test>$",
          "^invite queued: action #%d+, status 1 %(requested%)$", "^invited to assessment #%d+, section #%d+$",
          "^status: invited %(status_id 10%)$", "^test 114110 has 3 links: Default$",
          "^report 225634: dave@yopmail%.com, Complete, 1 of 89 points$" },
        check = function(out)
          local id = tonumber(out:match("created candidate #(%d+)"))
          local cand = sb:state("candidate", id)
          assert.equal("Lovelace", cand.last_name)
          local acs = sb:state("assessment_candidate")
          local found
          for _, ac in ipairs(acs) do if ac.candidate_id == id then found = ac end end
          assert.truthy(found, "the candidate was not invited")
          -- signed in with the JWT-bearer grant
          local tok = sb:requests({ path = "/oauth2/token" })
          assert.truthy(tok[#tok].body:find("jwt-bearer", 1, true))
        end,
      },
      ["examples/bulk_invite.lua"] = {
        lines = { "^8 candidates: 7 created, 1 already there, 0 failed$",
          "^invited 8 candidates to section 2002 %(action #%d+%)$" },
        check = function(_, err)
          assert.equal("", err) -- no progress bar: standard error is not a terminal
          sb:run_actions() -- the invite is an action: queued until the sandbox processes it
          local emails = {}
          for _, c in ipairs(sb:state("candidate")) do emails[c.email] = c.id end
          local ada = assert(emails["ada.lovelace@example.test"])
          local invited = false
          for _, asc in ipairs(sb:state("assessment_section_candidate")) do
            if asc.assessment_section_id == 2002 then
              local ac = sb:state("assessment_candidate", asc.assessment_candidate_id)
              if ac.candidate_id == ada then invited = true end
            end
          end
          assert.is_true(invited)
          -- a second run reuses every candidate
          local status, out = run("lua5.4 examples/bulk_invite.lua", env)
          assert.equal(0, status)
          assert.truthy(has_line(out, "^8 candidates: 0 created, 8 already there, 0 failed$"), out)
        end,
      },
      ["examples/invite_and_wait.lua"] = {
        lines = { "^created 3 candidates: #%d+, #%d+, #%d+$", "^invite queued: action #%d+, status 1 %(requested%)$",
          "^3 of 3 invited to assessment #1001 after %d+ looks$",
          "^  #%d+ %-> assessment candidate #%d+ %(status_id 10%)$" },
        check = function(out, err)
          assert.equal("", err) -- no progress line: standard error is not a terminal
          local n = 0
          for cid, acid in out:gmatch("\n  #(%d+) %-> assessment candidate #(%d+)") do
            local ac = sb:state("assessment_candidate", tonumber(acid))
            assert.equal(tonumber(cid), ac.candidate_id)
            assert.equal(1001, ac.assessment_id)
            n = n + 1
          end
          assert.equal(3, n)
        end,
      },
      ["examples/export_reports.lua"] = {
        lines = { "^invitation_id,candidate_email,status,attempted_on,points,total_points,percentage,sections$",
          "^2807321,candidate001@example%.test,Complete,2024%-02%-01T10:03:00Z,12,30,40,Lua basics 7/20; C API 5/10$",
          "^2807332,candidate012@example%.test,Pending," },
        stderr = { "^skipped 225634: a report of test 11223$", "^skipped 2807399: http 404",
          "^12 reports of test 11224 exported, 2 skipped$" },
        check = function(out)
          local rows = 0
          for _ in out:gmatch("\n28073%d%d,") do rows = rows + 1 end
          assert.equal(12, rows)
        end,
      },
      ["examples/password_refresh.lua"] = {
        lines = { "^   signed in as recruiter@sandbox%.assesskit%.test", "^   %-> GET /user/me %(attempt 2%)$",
          "^   still signed in as recruiter@sandbox%.assesskit%.test$",
          "^   POST /oauth2/token grant_type=password %-> 200$",
          "^   POST /oauth2/token grant_type=refresh_token %-> 200$" },
      },
      ["examples/error_handling.lua"] = {
        lines = { "^1%. refused before sending %(field email%): validation: ",
          "^2%. rejected: email: ", "^3%. not found: ", "^4%. retried: got candidate #10001 after 3 attempts$",
          "^5%. gave up: status 503, retryable=true %-> http 503" },
        check = function()
          -- the validation failure sent nothing: no candidate without an email was posted
          for _, r in ipairs(sb:requests({ method = "POST", path = "/models/candidate" })) do
            assert.truthy(r.body:find('"email"', 1, true))
          end
        end,
      },
    }

    for _, file in ipairs(example_files()) do
      it("runs " .. file .. " against the sandbox", function()
        local want = expected[file]
        assert.truthy(want, file .. " has no expectations in spec/examples_spec.lua")
        local src = assert(read_file(ROOT .. "/" .. file))
        local name = file:match("([^/]+)$")
        assert.truthy(src:find("^%-%- " .. name:gsub("%p", "%%%0") .. ": "), "header: what it shows")
        assert.truthy(src:find("\n%-%- Run it"), "header: how to run it")
        local status, out, err = run("lua5.4 " .. file, env)
        assert.equal(0, status, "stdout:\n" .. out .. "\nstderr:\n" .. err)
        for _, pattern in ipairs(want.lines) do
          assert.truthy(has_line(out, pattern), "no line " .. pattern .. " in:\n" .. out)
        end
        for _, pattern in ipairs(want.stderr or {}) do
          assert.truthy(has_line(err, pattern), "no line " .. pattern .. " on stderr:\n" .. err)
        end
        if want.check then want.check(out, err) end
        for _, s in ipairs(sb:secrets()) do
          assert.is_nil((out .. err):find(s, 1, true), "a secret in the output of " .. file)
        end
      end)
    end

    it("bulk_invite reports a failing row and exits 1", function()
      local csv = tmp_dir .. "/bad.csv"
      sys.write(csv, "first_name,last_name,email\nGood,Row,good.row@example.test\nBad,Row,not-an-email\n")
      local status, out = run("lua5.4 examples/bulk_invite.lua " .. shell_quote(csv), env)
      assert.equal(1, status)
      assert.truthy(has_line(out, "^2 candidates: 1 created, 0 already there, 1 failed$"), out)
      assert.truthy(has_line(out, "^  failed not%-an%-email: http 422 "), out)
      assert.truthy(has_line(out, "^invited 1 candidates to section 2002"), out)
    end)

    it("invite_and_wait gives up after its timeout while the action is queued, and exits 1", function()
      local delay = sb:config().action_delay
      sb:config({ action_delay = 600 })
      local status, out = run("lua5.4 examples/invite_and_wait.lua 2001 2 1", env)
      sb:config({ action_delay = delay })
      assert.equal(1, status)
      assert.truthy(has_line(out, "^gave up after 1 s: 0 of 2 invited$"), out)
    end)

    it("invite_and_wait draws its progress line on a terminal", function()
      local delay = sb:config().action_delay
      sb:config({ action_delay = 1 })
      local vars = { LUA_PATH = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
        LUA_CPATH = ROOT .. "/build/lua5.4/?.so;;", PATH = os.getenv("PATH") or "/usr/bin:/bin",
        HOME = tmp_dir, ASSESSKIT_SANDBOX_DIR = sb.dir }
      local status, term = sys.exec("lua5.4 examples/invite_and_wait.lua 2001 1 >/dev/null",
        { cwd = ROOT, env = vars, tty = true })
      sb:config({ action_delay = delay })
      assert.equal(0, status, term)
      assert.truthy(term:find("\rwaiting for action #%d+: 0 of 1 invited, next look in 0%.2 s"), term)
    end)

    it("bulk_invite draws its progress bar on a terminal", function()
      local vars = { LUA_PATH = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
        LUA_CPATH = ROOT .. "/build/lua5.4/?.so;;", PATH = os.getenv("PATH") or "/usr/bin:/bin",
        HOME = tmp_dir, ASSESSKIT_SANDBOX_DIR = sb.dir }
      local status, term = sys.exec("lua5.4 examples/bulk_invite.lua >/dev/null",
        { cwd = ROOT, env = vars, tty = true })
      assert.equal(0, status, term)
      assert.truthy(term:find("\r%[##############################%] 100%% 8/8 candidates"), term)
    end)

    it("export_reports writes the CSV to a file when given one", function()
      local path = tmp_dir .. "/reports.csv"
      local status = run("lua5.4 examples/export_reports.lua 11224 examples/data/invitations.txt "
        .. shell_quote(path), env)
      assert.equal(0, status)
      local csv = assert(read_file(path))
      local n = 0
      for _ in csv:gmatch("\n") do n = n + 1 end
      assert.equal(13, n)
    end)

    it("an example without a sandbox says how to start one and exits non-zero", function()
      local status, out, err = run("lua5.4 examples/quickstart.lua", { ASSESSKIT_SANDBOX_DIR = tmp_dir .. "/nothing" })
      assert.are_not.equal(0, status)
      assert.equal("", out)
      assert.truthy(err:find("assesskit-sandbox start --port 0 --dir " .. tmp_dir .. "/nothing", 1, true), err)
    end)
  end)

  describe("make demo (.ci/demo.sh)", function()
    it("starts a sandbox, runs the quickstart, stops the sandbox; twice in a row", function()
      for _ = 1, 2 do
        local status, out, err = run(".ci/demo.sh")
        assert.equal(0, status, out .. err)
        assert.truthy(has_line(out, "^status: invited %(status_id 10%)$"), out)
        assert.truthy(has_line(out, "^demo: ok$"), out)
        local dir = out:match("run directory (/tmp/assesskit%-demo%-[%w]+)")
        assert.truthy(dir, out)
        -- stopped and cleaned up: the run directory is gone
        local _, _, gone = sys.run("test -d " .. shell_quote(dir))
        assert.equal(1, gone, "the run directory " .. dir .. " is still there")
        local port = out:match("running at http://127%.0%.0%.1:(%d+)")
        local socket = require("socket")
        local c = socket.tcp()
        c:settimeout(1)
        assert.is_nil(c:connect("127.0.0.1", tonumber(port)), "the demo sandbox still listens")
        c:close()
      end
    end)

    it("propagates the quickstart's failure and still stops the sandbox", function()
      -- a quickstart that cannot reach its sandbox: point LUA_PATH at a stub assesskit.local_sandbox
      local stub = tmp_dir .. "/stub/assesskit"
      sys.must("mkdir -p " .. shell_quote(stub))
      sys.write(stub .. "/local_sandbox.lua",
        "return { credentials = function() return nil, 'stubbed: no sandbox' end }\n")
      local status, out, err = run(".ci/demo.sh", {
        LUA_PATH = tmp_dir .. "/stub/?.lua;" .. ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
      })
      assert.are_not.equal(0, status)
      assert.truthy(err:find("the quickstart failed", 1, true), err)
      local dir = out:match("run directory (/tmp/assesskit%-demo%-[%w]+)")
      assert.truthy(dir, out)
      assert.is_nil(read_file(dir .. "/nginx.pid"))
    end)
  end)
end)
