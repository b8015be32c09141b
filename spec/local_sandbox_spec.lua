-- Scripts reach a local sandbox through one public module, assesskit.local_sandbox: it reads
-- credentials.json (which names InterviewMocha's v2 and v3 URLs), gives the clients' options,
-- and says when the sandbox is not running and how to start it (the CLI and the examples too).

local sys = require "support.sys"
local sandbox = require "support.sandbox"
local nginx = require "support.nginx"

local q = sys.quote
local REPO = nginx.repo

describe("assesskit.local_sandbox", function()
  local local_sandbox = require "assesskit.local_sandbox"

  describe("with a running sandbox", function()
    local sb = sandbox.fixture()

    it("reads its credentials, InterviewMocha's v2 and v3 URLs among them", function()
      local raw = require("cjson").decode((assert(sys.read(sb.dir .. "/credentials.json"))))
      assert.equal(sb.url .. "/v2", raw.interviewmocha.v2_url)
      assert.equal(sb.url .. "/v3", raw.interviewmocha.v3_url)
      local creds = assert(local_sandbox.credentials(sb.dir))
      assert.equal(sb.url, creds.base_url)
      assert.equal(sb.dir, creds.dir)
    end)

    it("gives the options of both clients, which work against it", function()
      local creds = assert(local_sandbox.credentials(sb.dir))
      for _, grant in ipairs({ "jwt", "password" }) do
        local tv = require("assesskit.talview").new(assert(local_sandbox.talview_options(creds, grant)))
        local cand, err = tv.models.candidate:get(10001)
        assert(cand, tostring(err))
        assert.equal("candidate001@example.test", cand.email)
        tv:close()
      end
      local im = require("assesskit.interviewmocha").new(local_sandbox.interviewmocha_options(creds))
      local links, err = im.tests:links(114110)
      assert(links, tostring(err))
      assert.is_true(#links > 0)
      im:close()
      local none, why = local_sandbox.talview_options(creds, "magic")
      assert.is_nil(none)
      assert.matches("jwt and password", why)
    end)

    it("reads $ASSESSKIT_SANDBOX_DIR by default (the examples' way)", function()
      local code, out, err = sys.exec("lua5.4 -e " .. q([[
        local sb = assert(require("assesskit.local_sandbox").credentials())
        io.write(sb.base_url)]]), { env = { ASSESSKIT_SANDBOX_DIR = sb.dir,
          LUA_PATH = REPO .. "/lua/?.lua;" .. REPO .. "/lua/?/init.lua;;", PATH = os.getenv("PATH") } })
      assert.equal(0, code, err)
      assert.equal(sb.url, out)
    end)
  end)

  it("says a stopped sandbox is not running and how to start it, and so does the CLI", function()
    local sb = sandbox.start()
    local ok, err = pcall(function()
      sys.must(q(REPO .. "/bin/assesskit-sandbox") .. " stop --dir " .. q(sb.dir))
      local creds, why = local_sandbox.credentials(sb.dir)
      assert.is_nil(creds)
      assert.matches("the sandbox in " .. sb.dir:gsub("%p", "%%%0") .. " is not running", why)
      assert.matches("assesskit%-sandbox start", why)
      local code, _, stderr = sys.exec(q(REPO .. "/bin/assesskit") .. " talview models.candidate.get --id 1",
        { env = { ASSESSKIT_SANDBOX_DIR = sb.dir, PATH = os.getenv("PATH"), HOME = sb.dir } })
      assert.is_not.equal(0, code)
      assert.matches("is not running", stderr)
      assert.matches("assesskit%-sandbox start", stderr)
    end)
    sb:stop()
    assert(ok, err)
    -- no sandbox at all in the directory
    local creds, why = local_sandbox.credentials(sb.dir .. "-none")
    assert.is_nil(creds)
    assert.matches("no sandbox in", why)
    assert.matches("assesskit%-sandbox start", why)
  end)
end)
