-- `assesskit talview NAME --each FILE|- --parallel N`, run as a subprocess against a real
-- sandbox: one call per input line, N in flight (arrival times taken by the sandbox), one
-- JSON line per input line in input order, errors per line, exit statuses, the progress bar
-- only on a terminal.

local sandbox = require("support.sandbox")
local sys = require("support.sys")
local cjson = require("cjson")

local tmp_dir

local function run(argv, opts)
  opts = opts or {}
  local env = { PATH = os.getenv("PATH") or "/usr/bin:/bin", HOME = tmp_dir }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local words = {}
  for i, a in ipairs(argv) do words[i] = sys.quote(a) end
  return sys.exec("lua5.4 bin/assesskit " .. table.concat(words, " ") .. (opts.redirect or ""),
    { cwd = sys.repo, env = env, stdin = opts.stdin, tty = opts.tty })
end

local function json_lines(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = cjson.decode(l) end
  return out
end

describe("assesskit talview --each", function()
  local sb = sandbox.fixture()
  local env

  setup(function()
    tmp_dir = sys.tmpdir("cli-each-spec")
    env = { ASSESSKIT_SANDBOX_DIR = sb.dir }
  end)
  teardown(function()
    if tmp_dir then sys.rmdir(tmp_dir) end
  end)

  it("makes one call per line, N in flight, and writes one JSON line per input line in order",
    function()
      sb:clear_requests()
      sb:fault({ kind = "slow", delay = 0.3, times = -1, method = "POST", path = "/models/candidate" })
      local stamp = tostring(os.time())
      local input = {}
      for i = 1, 12 do
        input[i] = cjson.encode({ email = ("each-%s-%d@example.test"):format(stamp, i),
          first_name = "Each", last_name = tostring(i) })
      end
      table.insert(input, 4, "not json")
      table.insert(input, 8, "")
      table.insert(input, 9, '{"email": "not-an-email"}')
      local file = tmp_dir .. "/people.jsonl"
      sys.write(file, table.concat(input, "\n") .. "\n")
      local status, out, err = run({ "talview", "models.candidate.create", "--each", file,
        "--parallel", "4", "--last_name", "Default" }, { env = env })
      sb:clear_faults()
      assert.equal(1, status, err) -- a line failed
      assert.equal("", err) -- no progress bar: standard error is not a terminal
      local rows = json_lines(out)
      assert.equal(14, #rows) -- every non-blank line, in order
      local want_line = { 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15 }
      for k, row in ipairs(rows) do assert.equal(want_line[k], row.line) end
      assert.equal("usage", rows[4].error.kind)
      assert.equal(422, rows[8].error.status)
      local n = 0
      for k, row in ipairs(rows) do
        if row.value then
          n = n + 1
          assert.equal(("each-%s-%d@example.test"):format(stamp, n), row.value.email)
          assert.equal(tostring(n), row.value.last_name) -- the line's value over the default
        else
          assert.truthy(k == 4 or k == 8)
        end
      end
      assert.equal(12, n)
      -- server-side: 13 creates (the line that is not JSON sent nothing), 4 at a time
      local posts = sb:requests({ method = "POST", path = "/models/candidate" })
      assert.equal(13, #posts)
      local t = {}
      for i, r in ipairs(posts) do t[i] = r.time end
      table.sort(t)
      assert.is_true(t[4] - t[1] < 0.2, "the first four calls went together")
      for i = 1, #t - 4 do
        assert.is_true(t[i + 4] - t[i] >= 0.2, "more than four calls in flight at " .. i)
      end
    end)

  it("reads the lines from standard input with --each -", function()
    local status, out = run({ "talview", "models.candidate.get", "--each", "-" },
      { env = env, stdin = '{"id": 10001}\n{"id": 99999999}\n{"id": 10002}\n' })
    assert.equal(1, status)
    local rows = json_lines(out)
    assert.equal(3, #rows)
    assert.equal(10001, rows[1].value.id)
    assert.equal(404, rows[2].error.status)
    assert.equal("http", rows[2].error.kind)
    assert.equal(10002, rows[3].value.id)
  end)

  it("exits 0 when every line succeeded, and draws its progress bar only on a terminal",
    function()
      local file = tmp_dir .. "/ids.jsonl"
      sys.write(file, '{"id": 10001}\n{"id": 10002}\n{"id": 10003}\n')
      local status, out = run({ "talview", "models.candidate.get", "--each", file }, { env = env })
      assert.equal(0, status)
      assert.equal(3, #json_lines(out))
      local tstatus, term = run({ "talview", "models.candidate.get", "--each", file },
        { env = env, tty = true, redirect = " >/dev/null" })
      assert.equal(0, tstatus, term)
      assert.truthy(term:find("%] 100%% 3/3 calls"), term)
    end)

  it("refuses what cannot go together, before anything is sent", function()
    local cases = {
      { { "talview", "models.candidate.list", "--each", "-", "--all" }, "exclude each other" },
      { { "talview", "models.candidate.get", "--each", "-", "--parallel", "0" }, "--parallel" },
      { { "talview", "models.candidate.get", "--parallel", "4", "--id", "1" }, "goes with --each" },
      { { "talview", "models.candidate.get", "--each", tmp_dir .. "/missing.jsonl" }, "cannot read" },
    }
    for _, c in ipairs(cases) do
      local status, out, err = run(c[1], { env = env, stdin = "" })
      assert.equal(2, status, err)
      assert.equal("", out)
      assert.truthy(err:find(c[2], 1, true), err)
    end
  end)

  it("under --dry-run prints the requests in the lines' order and sends nothing", function()
    sb:clear_requests()
    local status, out = run({ "--dry-run", "talview", "models.candidate.get", "--each", "-" },
      { env = env, stdin = '{"id": 1}\n{"id": 2}\n' })
    assert.equal(0, status)
    local a, b = out:find("/models/candidate/1", 1, true), out:find("/models/candidate/2", 1, true)
    assert.truthy(a and b and a < b, out)
    assert.equal(0, #sb:requests({ path = "/models/candidate" }))
  end)
end)
