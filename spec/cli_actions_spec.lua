-- The command line shows a Talview action's status name beside its number, and takes the
-- actions' callbackUrl and skipCallback (run as a subprocess against a real sandbox).
local sandbox = require("support.sandbox")
local sys = require("support.sys")
local cjson = require("cjson")

describe("assesskit talview actions.*", function()
  local sb = sandbox.fixture({ reset = true })
  local home

  setup(function()
    home = sys.tmpdir("cli-actions-spec")
  end)

  teardown(function()
    if home then sys.rmdir(home) end
  end)

  local function run(argv)
    local words = {}
    for i, a in ipairs(argv) do words[i] = sys.quote(a) end
    return sys.exec("lua5.4 bin/assesskit " .. table.concat(words, " "), { cwd = sys.repo,
      env = { PATH = os.getenv("PATH") or "/usr/bin:/bin", HOME = home, ASSESSKIT_SANDBOX_DIR = sb.dir } })
  end

  it("prints the action with status_name beside status, and sends callbackUrl and skipCallback", function()
    sb:config({ action_delay = 600 })
    local status, out, err = run({ "--compact", "talview", "actions.invite", "--assessmentSectionID", "2002",
      "--endDate", "2030-01-01T00:00:00Z", "--candidates", '[{"id": 10250}]',
      "--callbackUrl", "http://127.0.0.1:9/cb?secret=0123456789abcdef", "--skipCallback", "true" })
    assert.equal(0, status, err)
    local a = cjson.decode(out)
    assert.equal(1, a.status)
    assert.equal("requested", a.status_name)
    assert.truthy(out:find('"status":1,"status_name":"requested"', 1, true), out) -- side by side
    local sent = cjson.decode(sb:requests({ path = "/actions/invite" })[1].body)
    assert.equal(true, sent.skipCallback)
    assert.equal("http://127.0.0.1:9/cb?secret=***", sent.callbackUrl)
    status, out = run({ "--compact", "talview", "actions.live_schedule", "--startDate", "2030-01-02T00:00:00Z",
      "--endDate", "2030-01-01T00:00:00Z", "--panel", '[{"id": 41}]' })
    assert.equal(0, status)
    assert.equal("failed", cjson.decode(out).status_name)
  end)

  it("leaves other answers as they are", function()
    local status, out = run({ "--compact", "talview", "models.assessment_candidate.get", "--id", "30001" })
    assert.equal(0, status)
    assert.is_nil(cjson.decode(out).status_name)
  end)
end)
