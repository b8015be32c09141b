-- Newcomer friction, each tried as a new user would (issue 15.7): the sandbox command's help,
-- the CLI before `make`, `--pdf` into a missing directory, `--save` on an error, and the
-- OpenResty recipe's port beside the sandbox's.

local sys = require "support.sys"
local sandbox = require "support.sandbox"
local nginx = require "support.nginx"

local q = sys.quote
local REPO = nginx.repo

local function env(extra)
  local e = { PATH = os.getenv("PATH"), HOME = "/tmp", LANG = "C.UTF-8" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

describe("a newcomer", function()
  it("gets assesskit-sandbox's help on standard output, exit 0; a wrong option is a usage error", function()
    for _, args in ipairs({ "--help", "help", "-h", "start --help", "stop --help", "status -h" }) do
      local code, out, err = sys.exec(q(REPO .. "/bin/assesskit-sandbox") .. " " .. args, { env = env() })
      assert.equal(0, code, args)
      assert.equal("", err, args)
      assert.matches("assesskit%-sandbox start", out, args)
      assert.matches("Exit status", out, args)
    end
    local code, out, err = sys.exec(q(REPO .. "/bin/assesskit-sandbox") .. " stop --bogus", { env = env() })
    assert.equal(2, code)
    assert.equal("", out)
    assert.matches("unknown option %-%-bogus", err)
  end)

  it("is told to run make when the CLI runs before the C core is built", function()
    local dir = sys.tmpdir("nomake")
    sys.must("cp -r " .. q(REPO .. "/bin") .. " " .. q(REPO .. "/lua") .. " " .. q(dir))
    local code, out, err = sys.exec("lua5.4 " .. q(dir .. "/bin/assesskit") .. " endpoints", { env = env() })
    sys.rmdir(dir)
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("the C core is not built: run `make` in " .. dir:gsub("%p", "%%%0"), err)
    assert.is_true(#err < 200, err)
  end)

  describe("with a sandbox", function()
    local sb = sandbox.fixture({ clear = true })

    local function cli(args)
      return sys.exec("lua5.4 " .. q(REPO .. "/bin/assesskit") .. " " .. args,
        { env = env({ ASSESSKIT_SANDBOX_DIR = sb.dir }) })
    end

    it("has --pdf into a missing directory refused before anything is fetched", function()
      local code, out, err = cli("im report 225634 --type 3 --pdf /nonexistent-dir/r.pdf")
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("%-%-pdf: cannot write /nonexistent%-dir/r%.pdf: No such file or directory", err)
      assert.same({}, sb:requests())
    end)

    it("keeps the server's message when --save meets an error, and leaves no file", function()
      local dir = sys.tmpdir("save")
      local code, _, err = cli("talview models.candidate.get --id 999999 --save " .. q(dir .. "/c.json"))
      local left = sys.ls(dir)
      sys.rmdir(dir)
      assert.equal(1, code)
      assert.matches("http 404 Not Found: Object not found: 999999", err)
      assert.same({}, left)
    end)
  end)

  it("can follow the OpenResty recipe beside a sandbox on its default port", function()
    local script = assert(sys.read(REPO .. "/bin/assesskit-sandbox"))
    local default = script:match("local port=(%d+)")
    assert.equal("8080", default)
    local conf = assert(sys.read(REPO .. "/examples/openresty/nginx.conf"))
    local listen = conf:match("\n%s*listen 127%.0%.0%.1:(%d+);")
    assert.is_not.equal(default, listen)
    -- the documented steps start the sandbox on a free port and call the gateway's port
    for _, f in ipairs({ "docs/openresty.md", "examples/openresty/README.md" }) do
      local doc = assert(sys.read(REPO .. "/" .. f))
      assert.matches("assesskit%-sandbox start %-%-port 0 %-%-dir /tmp/aksb", doc, f)
      assert.matches("TALVIEW_BASE_URL=%$%(cat /tmp/aksb/base_url%)", doc, f)
      assert.matches("curl %-s \"?http://127%.0%.0%.1:" .. listen .. "/candidates/", doc, f)
      assert.not_matches("127%.0%.0%.1:8080", doc, f)
    end
  end)
end)
