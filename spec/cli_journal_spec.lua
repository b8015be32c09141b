-- `assesskit talview NAME --each FILE --journal FILE --key FIELD [--retry-failed]`, run as a
-- subprocess against a real sandbox: a rerun prints the recorded answers without calls, a
-- lost answer is `ambiguous` and never sent again, --retry-failed, refusals.

local sandbox = require("support.sandbox")
local sys = require("support.sys")
local cjson = require("cjson")

local tmp_dir

local function run(argv, env)
  local words = {}
  for i, a in ipairs(argv) do words[i] = sys.quote(a) end
  local vars = { PATH = os.getenv("PATH") or "/usr/bin:/bin", HOME = tmp_dir }
  for k, v in pairs(env or {}) do vars[k] = v end
  return sys.exec("lua5.4 bin/assesskit " .. table.concat(words, " "), { cwd = sys.repo, env = vars })
end

local function json_lines(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = cjson.decode(l) end
  return out
end

describe("assesskit talview --each --journal", function()
  local sb = sandbox.fixture({ reset = true, clear = true })
  local env

  setup(function()
    tmp_dir = sys.tmpdir("cli-journal-spec")
    env = { ASSESSKIT_SANDBOX_DIR = sb.dir }
  end)
  teardown(function()
    if tmp_dir then sys.rmdir(tmp_dir) end
  end)

  local function posts()
    return #sb:requests({ method = "POST", path = "/models/candidate" })
  end

  local function count(email)
    local n = 0
    for _, c in ipairs(sb:state("candidate")) do if c.email == email then n = n + 1 end end
    return n
  end

  it("prints recorded answers without calls, keeps a lost answer ambiguous, retries failures on demand",
    function()
      local stamp = tostring(os.time())
      local emails, input = {}, {}
      for i = 1, 4 do
        emails[i] = ("cli-journal-%s-%d@example.test"):format(stamp, i)
        input[i] = cjson.encode({ email = emails[i], first_name = "J" })
      end
      local file, journal = tmp_dir .. "/people.jsonl", tmp_dir .. "/people.journal"
      sys.write(file, table.concat(input, "\n") .. "\n")
      local argv = { "talview", "models.candidate.create", "--each", file, "--parallel", "1",
        "--journal", journal, "--key", "email" }
      -- line 1 is refused (400: not retryable); the others are created
      sb:fault({ kind = "status", status = 400, times = 1, method = "POST", path = "/models/candidate" })
      local status, out, err = run({ "talview", "models.candidate.create", "--each", file,
        "--parallel", "1", "--journal", journal, "--key", "email", "--last_name", "One" }, env)
      assert.equal(1, status, err)
      local first = json_lines(out)
      assert.equal(4, #first)
      assert.equal(400, first[1].error.status)
      for i = 2, 4 do assert.equal(emails[i], first[i].value.email) end
      assert.equal(4, posts())
      assert.matches('"key":"' .. emails[1]:gsub("%-", "%%-") .. '"', sys.read(journal))
      assert.matches('^{"assesskit_journal":1,"job":"talview models.candidate.create"', sys.read(journal))

      -- the next POST is processed and its answer lost
      sb:fault({ kind = "drop_response", times = 1, method = "POST", path = "/models/candidate" })
      -- the rerun: nothing sent; the same lines, line 1's failure again
      status, out = run(argv, env)
      assert.equal(1, status)
      local again = json_lines(out)
      assert.equal(4, posts())
      assert.equal(400, again[1].error.status)
      for i = 2, 4 do assert.equal(first[i].value.id, again[i].value.id) end

      -- --retry-failed: line 1 is sent again, and its answer is lost: ambiguous, not sent twice
      status, out = run({ "talview", "models.candidate.create", "--each", file, "--parallel", "1",
        "--journal", journal, "--key", "email", "--retry-failed" }, env)
      assert.equal(1, status)
      local third = json_lines(out)
      assert.equal(5, posts())
      assert.equal("ambiguous", third[1].error.kind)
      assert.equal(emails[1], third[1].error.key)
      assert.equal(1, count(emails[1]))
      -- and it stays so, without a call
      status, out = run(argv, env)
      assert.equal(1, status)
      assert.equal("ambiguous", json_lines(out)[1].error.kind)
      assert.equal(5, posts())
      for i = 1, 4 do assert.equal(1, count(emails[i])) end
    end)

  it("names a line without the key field in its own error line", function()
    local file, journal = tmp_dir .. "/nokey.jsonl", tmp_dir .. "/nokey.journal"
    local email = ("cli-journal-%s-nokey@example.test"):format(os.time())
    sys.write(file, cjson.encode({ first_name = "No key" }) .. "\n"
      .. cjson.encode({ first_name = "Key", email = email }) .. "\n")
    local status, out = run({ "talview", "models.candidate.create", "--each", file,
      "--journal", journal, "--key", "email" }, env)
    assert.equal(1, status)
    local rows = json_lines(out)
    assert.equal("validation", rows[1].error.kind)
    assert.matches("line 1 has no field email", rows[1].error.message, 1, true)
    assert.equal(email, rows[2].value.email)
    assert.equal(1, posts())
  end)

  it("refuses another command's journal, and what cannot go together, before anything is sent",
    function()
      local file, journal = tmp_dir .. "/ids.jsonl", tmp_dir .. "/ids.journal"
      sys.write(file, '{"id": 10001}\n')
      local status, _, err = run({ "talview", "models.candidate.get", "--each", file, "--journal", journal }, env)
      assert.equal(0, status, err)
      status, _, err = run({ "talview", "models.candidate.delete", "--each", file, "--journal", journal }, env)
      assert.equal(2, status)
      assert.matches('journal of job "talview models.candidate.get", not of job "talview models.candidate.delete"',
        err, 1, true)
      for _, argv in ipairs({
        { "talview", "models.candidate.get", "--id", "1", "--journal", journal },
        { "talview", "models.candidate.get", "--each", file, "--key", "id" },
        { "talview", "models.candidate.get", "--each", file, "--retry-failed" },
        { "--dry-run", "talview", "models.candidate.get", "--each", file, "--journal", journal },
      }) do
        status, _, err = run(argv, env)
        assert.equal(2, status, table.concat(argv, " "))
        assert.is_truthy(err:find("goes with --", 1, true) or err:find("exclude each other", 1, true), err)
      end
      assert.equal(0, #sb:requests({ method = "DELETE" }))
    end)
end)
