-- The `assesskit` command line, run as a subprocess (lua5.4 bin/assesskit ...) against a real
-- sandbox: output, exit statuses, --help, --all, --dry-run, standard input, configuration
-- sources and the secrecy of credentials.

local sandbox = require("support.sandbox")
local sys = require("support.sys")
local cjson = require("cjson")

local shell_quote, read_file, write_file = sys.quote, sys.read, sys.write

local tmp_dir -- made in the outer setup, removed in its teardown

-- Run bin/assesskit in a clean environment (only PATH, HOME and `env`).
-- opts: env (table), stdin (string), tty (run under script(1): stdout and stderr on a pty),
-- tty_redirect (appended to the command under the pty), home
-- Returns status, stdout, stderr (with tty: status, terminal output).
local function run(argv, opts)
  opts = opts or {}
  local env = { PATH = os.getenv("PATH") or "/usr/bin:/bin", HOME = opts.home or (tmp_dir .. "/home") }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local words = {}
  for i, a in ipairs(argv) do words[i] = shell_quote(a) end
  return sys.exec("lua5.4 bin/assesskit " .. table.concat(words, " ") .. (opts.tty and opts.tty_redirect or ""),
    { cwd = sys.repo, env = env, stdin = opts.stdin, tty = opts.tty })
end

local function lines(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- exactly one line on stderr, starting "assesskit: "
local function one_error_line(stderr)
  local l = lines(stderr)
  assert.equal(1, #l, "expected one line on stderr, got:\n" .. stderr)
  assert.truthy(l[1]:find("^assesskit: "), l[1])
  return l[1]
end

describe("assesskit command line", function()
  local sb = sandbox.fixture()
  local sbenv, creds

  setup(function()
    tmp_dir = sys.tmpdir("cli-spec")
    sys.must("mkdir -p " .. shell_quote(tmp_dir .. "/home"))
    creds = sb.credentials
    sbenv = { ASSESSKIT_SANDBOX_DIR = sb.dir }
  end)

  teardown(function()
    if tmp_dir then sys.rmdir(tmp_dir) end
  end)

  local function assert_no_secret(text)
    for _, s in ipairs(sb:secrets()) do
      assert.is_nil(text:find(s, 1, true), "a secret leaked into: " .. text)
    end
    assert.is_nil(text:find("PRIVATE KEY", 1, true))
  end

  describe("--help", function()
    local cases = {
      { { "--help" }, "Usage: assesskit %[OPTIONS%] COMMAND" },
      { { "help" }, "Usage: assesskit %[OPTIONS%] COMMAND" },
      { { "-h" }, "Usage: assesskit %[OPTIONS%] COMMAND" },
      { { "endpoints", "--help" }, "Usage: assesskit endpoints" },
      { { "talview", "--help" }, "Usage: assesskit talview NAME" },
      { { "talview", "models.candidate.get", "--help" }, "GET /models/candidate/{id}" },
      { { "help", "talview", "actions.invite" }, "Body fields: .*%-%-assessmentSectionID %(required%)" },
      { { "im", "--help" }, "Usage: assesskit im COMMAND" },
      { { "im", "links", "--help" }, "Usage: assesskit im links TEST_ID" },
      { { "im", "report", "-h" }, "Usage: assesskit im report ID" },
      { { "config", "--help" }, "ASSESSKIT_SANDBOX_DIR" },
      { { "--help", "im" }, "Usage: assesskit im COMMAND" },
    }
    for _, c in ipairs(cases) do
      it("answers " .. table.concat(c[1], " ") .. " on standard output with status 0", function()
        local status, out, err = run(c[1])
        assert.equal(0, status)
        assert.equal("", err)
        assert.truthy(out:find(c[2]), out)
      end)
    end
  end)

  describe("endpoints", function()
    it("lists every catalogue endpoint as name, method and path", function()
      local status, out = run({ "endpoints" })
      assert.equal(0, status)
      local cat = require("assesskit.talview.catalogue")
      local l = lines(out)
      assert.equal(#cat.endpoints, #l)
      local name, method, path = l[1]:match("^(%S+)%s+(%u+)%s+(%S+)$")
      assert.equal(cat.endpoints[1].name, name)
      assert.equal(cat.endpoints[1].method, method)
      assert.equal(cat.endpoints[1].path, path)
    end)

    it("keeps the endpoints whose name or path contains FILTER, and --json writes JSON lines", function()
      local status, out = run({ "endpoints", "models.candidate.", "--json" })
      assert.equal(0, status)
      local names = {}
      for _, l in ipairs(lines(out)) do
        local e = cjson.decode(l)
        assert.truthy(e.name:find("models.candidate.", 1, true))
        names[e.name] = e.method .. " " .. e.path
      end
      assert.equal("GET /models/candidate/{id}", names["models.candidate.get"])
      assert.equal("POST /models/candidate", names["models.candidate.create"])
      status, out = run({ "endpoints", "/actions/invite" })
      assert.equal(0, status)
      assert.truthy(out:find("^actions%.invite%s+POST%s+/actions/invite\n"))
    end)
  end)

  describe("talview", function()
    before_each(function()
      sb:reset()
      sb:clear_requests()
    end)

    it("calls an endpoint by name and prints its JSON on one line when not on a terminal", function()
      local status, out, err = run({ "talview", "models.candidate.get", "--id", "10001" }, { env = sbenv })
      assert.equal(0, status)
      assert.equal("", err)
      assert.equal(1, #lines(out))
      local c = cjson.decode(out)
      assert.equal(10001, c.id)
      assert.equal("candidate001@example.test", c.email)
      -- the sandbox's default grant for the command line is the JWT service account
      local tok = sb:requests({ path = "/oauth2/token" })
      assert.equal(1, #tok)
      assert.truthy(tok[1].body:find("jwt-bearer", 1, true))
    end)

    it("accepts options before the command, including one with a value", function()
      local status, out, err = run({ "--timeout", "5", "--compact", "talview", "models.candidate.get",
        "--id", "10001" }, { env = sbenv })
      assert.equal(0, status, err)
      assert.equal(10001, cjson.decode(out).id)
      status, out = run({ "--version" })
      assert.equal(0, status)
      assert.truthy(out:find("^assesskit %S+\n$"), out)
    end)

    it("prints indented JSON on a terminal, and --compact keeps one line there", function()
      local status, out = run({ "talview", "models.candidate.get", "--id", "10002" },
        { env = sbenv, tty = true })
      assert.equal(0, status)
      assert.truthy(out:find('\n  "email": "candidate002@example.test"', 1, true), out)
      status, out = run({ "talview", "models.candidate.get", "--id", "10002", "--compact" },
        { env = sbenv, tty = true })
      assert.equal(0, status)
      assert.truthy(out:find('"email":"candidate002@example.test"', 1, true), out)
    end)

    it("sends query parameters typed from the command line, arrays as name[0], name[1]", function()
      local status, out = run({ "talview", "models.candidate.list", "--pageSize", "3",
        "--ids", "10004", "--ids", "10005" }, { env = sbenv })
      assert.equal(0, status)
      local list = cjson.decode(out)
      assert.equal(2, #list)
      local last = sb:requests({ path = "/models/candidate" })
      local entry = last[#last]
      assert.equal("3", entry.args.pageSize)
      assert.truthy(entry.query:find("ids%5B0%5D=10004&ids%5B1%5D=10005", 1, true), entry.query)
    end)

    it("takes parameters as JSON on standard input; the command line wins", function()
      local body = cjson.encode({ email = "stdin.user@example.test", first_name = "Stdin",
        last_name = "Overridden" })
      local status, out, err = run({ "talview", "models.candidate.create", "-", "--last_name", "User" },
        { env = sbenv, stdin = body })
      assert.equal(0, status, err)
      local c = cjson.decode(out)
      assert.equal("stdin.user@example.test", c.email)
      local stored = sb:state("candidate", c.id)
      assert.equal("Stdin", stored.first_name)
      assert.equal("User", stored.last_name)
    end)

    it("exits 2 when standard input is not a JSON object", function()
      local status, out, err = run({ "talview", "models.candidate.create", "-" },
        { env = sbenv, stdin = "[1, 2]" })
      assert.equal(2, status)
      assert.equal("", out)
      assert.truthy(one_error_line(err):find("JSON object", 1, true))
    end)

    it("--save writes a non-JSON answer to a file, and an error answer to no file", function()
      local path = tmp_dir .. "/placeholder.png"
      local status, out, err = run({ "talview", "helpers.placeholder", "--text", "AB", "--save", path },
        { env = sbenv })
      assert.equal(0, status, err)
      assert.equal("", out)
      assert.equal("\137PNG", (read_file(path) or ""):sub(1, 4))
      assert.truthy(one_error_line(err):find("saved %d+ bytes to " .. path:gsub("%p", "%%%0")), err)
      os.remove(path)
      status, out, err = run({ "talview", "models.candidate_image.get", "--id", "999999", "--save", path },
        { env = sbenv })
      assert.equal(1, status)
      assert.equal("", out)
      assert.truthy(one_error_line(err):find("404", 1, true))
      assert.is_nil(read_file(path))
      assert.is_nil(read_file(path .. ".part"))
    end)

    it("--dry-run --save touches no file, even when the call is refused", function()
      local path = tmp_dir .. "/keep.png"
      write_file(path, "precious")
      local status, out = run({ "--dry-run", "talview", "models.candidate_image.get", "--id", "7", "--save", path },
        { env = sbenv })
      assert.equal(0, status)
      assert.truthy(out:find("-o " .. path, 1, true), out)
      status = run({ "--dry-run", "talview", "models.candidate_image.get", "--save", path }, { env = sbenv })
      assert.equal(2, status)
      assert.equal("precious", read_file(path))
      assert.is_nil(read_file(path .. ".part"))
      os.remove(path)
    end)

    it("exits 1 with one line on stderr on a 404, and prints nothing on stdout", function()
      local status, out, err = run({ "talview", "models.candidate.get", "--id", "999999" }, { env = sbenv })
      assert.equal(1, status)
      assert.equal("", out)
      local line = one_error_line(err)
      assert.truthy(line:find("404", 1, true), line)
      assert.truthy(line:find("/models/candidate/999999", 1, true), line)
    end)

    it("exits 1 on a 422 and names the field", function()
      local status, _, err = run({ "talview", "models.candidate.create", "--email", "not-an-email" },
        { env = sbenv })
      assert.equal(1, status)
      local line = one_error_line(err)
      assert.truthy(line:find("422", 1, true))
      assert.truthy(line:find("email", 1, true))
    end)

    it("--all walks every page and prints one JSON object a line", function()
      local total = #sb:state("candidate")
      local status, out, err = run({ "talview", "models.candidate.list", "--all", "--pageSize", "40" },
        { env = sbenv })
      assert.equal(0, status, err)
      assert.equal("", err) -- no progress bar when stderr is not a terminal
      local seen, n = {}, 0
      for _, l in ipairs(lines(out)) do
        local c = cjson.decode(l)
        assert.is_nil(seen[c.id])
        seen[c.id] = true
        n = n + 1
      end
      assert.equal(total, n)
      local pages = sb:requests({ path = "/models/candidate" })
      assert.equal(math.ceil(total / 40), #pages)
    end)

    it("--all draws a progress bar on standard error when it is a terminal", function()
      local total = #sb:state("candidate")
      local status, out = run({ "talview", "models.candidate.list", "--all", "--pageSize", "50" },
        { env = sbenv, tty = true, tty_redirect = " >/dev/null" })
      assert.equal(0, status)
      assert.truthy(out:find("\r[", 1, true), out)
      assert.truthy(out:find("100% " .. total .. "/" .. total, 1, true), out)
    end)

    it("--dry-run prints the curl command with the token masked and sends nothing", function()
      local status, out, err = run({ "--dry-run", "talview", "actions.invite", "--assessmentSectionID", "2001",
        "--endDate", "2030-01-01T00:00:00Z", "--candidates", '[{"id": 10001}]' }, { env = sbenv })
      assert.equal(0, status, err)
      assert.truthy(out:find("^curl %-sS %-X POST " .. sb.url:gsub("%p", "%%%0") .. "/actions/invite"), out)
      assert.truthy(out:find("-H 'Authorization: Bearer ***'", 1, true), out)
      assert.truthy(out:find('"candidates":[{"id":10001}]', 1, true), out)
      assert.truthy(out:find('"assessmentSectionID":2001', 1, true), out)
      assert_no_secret(out)
      -- not even the token endpoint was contacted
      assert.same({}, sb:requests())
    end)

    it("--dry-run's curl goes through the configured proxy (-x, userinfo masked)", function()
      -- (a sandbox's configuration takes no proxy: the default hosts, nothing sent)
      local env = { ASSESSKIT_PROXY = "http://bob:Pr0xy-5ecret-77@127.0.0.1:3128" }
      local status, out, err = run({ "--dry-run", "talview", "models.candidate.get", "--id", "7" }, { env = env })
      assert.equal(0, status, err)
      assert.truthy(out:find("-x 'http://***@127.0.0.1:3128'", 1, true), out)
      assert.is_nil(out:find("Pr0xy-5ecret-77", 1, true), out)
      assert.is_nil(out:find("bob", 1, true), out)
      status, out, err = run({ "--dry-run", "im", "links", "114110" }, { env = env })
      assert.equal(0, status, err)
      assert.truthy(out:find("-x 'http://***@127.0.0.1:3128'", 1, true), out)
      -- without a proxy configured, no -x
      status, out = run({ "--dry-run", "talview", "models.candidate.get", "--id", "7" }, { env = sbenv })
      assert.equal(0, status)
      assert.is_nil(out:find(" -x ", 1, true), out)
    end)

    it("--dry-run masks secret body fields and works without any credentials", function()
      local status, out = run({ "talview", "user.me.update_password", "--dry-run",
        "--current_password", "old-secret-1", "--new_password", "new-secret-2",
        "--new_password_repeat", "new-secret-2" })
      assert.equal(0, status)
      assert.truthy(out:find("https://apiv4.talview.com/user/me/update-password", 1, true), out)
      assert.is_nil(out:find("old-secret-1", 1, true))
      assert.is_nil(out:find("new-secret-2", 1, true))
      assert.truthy(out:find('"current_password":"***"', 1, true), out)
    end)

    describe("usage errors exit 2 with one line on stderr", function()
      local cases = {
        { { "frobnicate" }, "unknown command" },
        { {}, "which command" },
        { { "talview" }, "which endpoint" },
        { { "talview", "models.candidate.fetch" }, "did you mean" },
        { { "talview", "models.candidate.get", "--id" }, "needs a value" },
        { { "talview", "models.candidate.get" }, "parameter 'id' is required" },
        { { "talview", "models.candidate.get", "--id", "1", "--all" }, "--all needs a paged list" },
        { { "talview", "models.candidate.list", "--pretty", "--compact" }, "exclude each other" },
        { { "talview", "models.candidate.list", "--timeout", "soon" }, "--timeout" },
        { { "im", "links" }, "TEST_ID is required" },
        { { "im", "links", "12x" }, "positive integer" },
        { { "im", "report", "1", "--type", "9" }, "--type must be 1, 2 or 3" },
        { { "im", "fetch" }, "unknown command" },
        { { "endpoints", "--bogus" }, "unknown option --bogus" },
        -- a typo names the nearest command, option or flag
        { { "endpints" }, "unknown command 'endpints' (did you mean endpoints?)" },
        { { "im", "reprot", "225634" }, "im: unknown command 'reprot' (did you mean report?)" },
        { { "endpoints", "--jsn" }, "unknown option --jsn (did you mean --json?)" },
        { { "--tmeout", "3", "talview", "user.me.get" }, "unknown option --tmeout (did you mean --timeout?)" },
        { { "im", "report", "1", "--typ", "3" }, "unknown option --typ (did you mean --type?)" },
        { { "talview", "models.candidate.delete", "--id", "5", "--dryrun" },
          "unknown option --dryrun (did you mean --dry-run?)" },
        { { "talview", "models.candidate.delete", "--dry_run", "--id", "5" },
          "unknown option --dry_run (did you mean --dry-run?)" },
        { { "talview", "models.candidate.list", "--timout", "3" },
          "--timout is not a documented parameter (did you mean --timeout?)" },
      }
      for _, c in ipairs(cases) do
        it(table.concat(c[1], " ") .. " -> " .. c[2], function()
          local status, out, err = run(c[1], { env = sbenv })
          assert.equal(2, status)
          assert.equal("", out)
          assert.truthy(one_error_line(err):find(c[2], 1, true), err)
        end)
      end
    end)
  end)

  describe("im", function()
    before_each(function() sb:clear_requests() end)

    it("links prints a test's links as a JSON array", function()
      local status, out, err = run({ "im", "links", "114110" }, { env = sbenv })
      assert.equal(0, status, err)
      local links = cjson.decode(out)
      assert.equal(3, #links)
      assert.equal("Default", links[1].testLinkName)
      local req = sb:requests({ path = "/v2/org/tests/114110/testlinks" })
      assert.equal(1, #req)
      assert.equal("***", req[1].headers["x-api-key"])
    end)

    it("report prints the report and --pdf saves its PDF", function()
      local pdf = tmp_dir .. "/report.pdf"
      local status, out, err = run({ "im", "report", "225634", "--type", "3", "--pdf", pdf }, { env = sbenv })
      assert.equal(0, status, err)
      local r = cjson.decode(out)
      assert.equal("dave@yopmail.com", r.candidateEmail)
      assert.equal("3", sb:requests({ path = "/v3/reports/225634" })[1].args.reportType)
      assert.equal("%PDF", (read_file(pdf) or ""):sub(1, 4))
      assert.truthy(err:find("saved the PDF report to " .. pdf, 1, true))
    end)

    it("exits 1 on an unknown report", function()
      local status, out, err = run({ "im", "report", "2807399" }, { env = sbenv })
      assert.equal(1, status)
      assert.equal("", out)
      assert.truthy(one_error_line(err):find("404", 1, true))
    end)

    it("--dry-run shows x-api-key: *** and sends nothing", function()
      local status, out = run({ "--dry-run", "im", "links", "114110" }, { env = sbenv })
      assert.equal(0, status)
      assert.truthy(out:find("-H 'x-api-key: ***'", 1, true), out)
      assert.truthy(out:find(sb.url .. "/v2/org/tests/114110/testlinks", 1, true), out)
      assert_no_secret(out)
      assert.same({}, sb:requests())
    end)
  end)

  describe("configuration", function()
    before_each(function() sb:clear_requests() end)

    local function password_env()
      local p = creds.password
      return {
        ASSESSKIT_TALVIEW_URL = sb.url, ASSESSKIT_CLIENT_ID = p.client_id,
        ASSESSKIT_CLIENT_SECRET = p.client_secret, ASSESSKIT_USERNAME = p.username,
        ASSESSKIT_PASSWORD = p.password, ASSESSKIT_IM_API_KEY = creds.interviewmocha.api_key,
        ASSESSKIT_IM_V2_URL = sb.url .. "/v2", ASSESSKIT_IM_V3_URL = sb.url .. "/v3",
      }
    end

    it("takes credentials from environment variables (password grant)", function()
      local status, out, err = run({ "talview", "user.me.get" }, { env = password_env() })
      assert.equal(0, status, err)
      assert.equal(creds.password.username, cjson.decode(out).username)
      local tok = sb:requests({ path = "/oauth2/token" })
      assert.truthy(tok[1].body:find('"grant_type":"password"', 1, true))
      status, out = run({ "im", "links", "114110" }, { env = password_env() })
      assert.equal(0, status)
      assert.equal(3, #cjson.decode(out))
    end)

    it("takes credentials from a Lua config file named by ASSESSKIT_CONFIG", function()
      local p = creds.password
      local path = tmp_dir .. "/config.lua"
      write_file(path, ([[
talview = {
  base_url = %q,
  auth = { grant = "password", client_id = %q, client_secret = %q, username = %q, password = %q },
}
]]):format(sb.url, p.client_id, p.client_secret, p.username, p.password), "600")
      local status, out, err = run({ "talview", "user.me.get" }, { env = { ASSESSKIT_CONFIG = path } })
      assert.equal(0, status, err)
      assert.equal("", err)
      assert.equal(p.username, cjson.decode(out).username)
    end)

    it("takes talview.auth.scope as a string or an array of strings, as the library does", function()
      local j = creds.jwt
      local scopes = {}
      for w in tostring(j.scope):gmatch("%S+") do scopes[#scopes + 1] = w end
      assert.is_true(#scopes > 0)
      local path = tmp_dir .. "/scopes.json"
      write_file(path, cjson.encode({ talview = { base_url = sb.url, auth = { grant = "jwt",
        client_id = j.client_id, issuer = j.issuer, scope = scopes,
        private_key_file = j.private_key_file } } }), "600")
      local status, out, err = run({ "talview", "models.candidate.get", "--id", "10003" },
        { env = { ASSESSKIT_CONFIG = path } })
      assert.equal(0, status, err)
      assert.equal(10003, cjson.decode(out).id)
      path = tmp_dir .. "/scopes.lua"
      write_file(path, "talview = { auth = { grant = 'jwt', scope = { 'a', 5 } } }", "600")
      status, out, err = run({ "config" }, { env = { ASSESSKIT_CONFIG = path } })
      assert.equal("", out)
      assert.equal(2, status)
      assert.truthy(one_error_line(err):find("talview.auth.scope must be a string or an array of strings",
        1, true), err)
    end)

    it("finds ~/.config/assesskit/config.json and warns when others can read it", function()
      local j = creds.jwt
      local home = tmp_dir .. "/home2"
      sys.must("mkdir -p " .. shell_quote(home .. "/.config/assesskit"))
      local path = home .. "/.config/assesskit/config.json"
      write_file(path, cjson.encode({ talview = { base_url = sb.url, auth = { grant = "jwt",
        client_id = j.client_id, issuer = j.issuer, scope = j.scope,
        private_key_file = j.private_key_file } } }), "644")
      local status, out, err = run({ "talview", "models.candidate.get", "--id", "10003" }, { home = home })
      assert.equal(0, status, err)
      assert.equal(10003, cjson.decode(out).id)
      local line = one_error_line(err)
      assert.truthy(line:find("warning: config file " .. path .. " is readable by other users", 1, true))
      assert.truthy(line:find("chmod 600", 1, true))
      sys.must("chmod 600 " .. shell_quote(path))
      status, out, err = run({ "talview", "models.candidate.get", "--id", "10003" }, { home = home })
      assert.equal(0, status)
      assert.equal(10003, cjson.decode(out).id)
      assert.equal("", err)
    end)

    it("environment variables override the config file", function()
      local path = tmp_dir .. "/override.json"
      write_file(path, cjson.encode({ talview = { base_url = "https://talview.invalid" } }), "600")
      local env = password_env()
      env.ASSESSKIT_CONFIG = path
      local status, _, err = run({ "talview", "models.candidate.get", "--id", "10001" }, { env = env })
      assert.equal(0, status, err)
    end)

    describe("connection options", function()
      local proxy

      setup(function()
        proxy = require("support.nginx").start({ locations = [[
          location / {
            default_type application/json;
            content_by_lua_block {
              ngx.say(require("cjson").encode({ request = ngx.var.request, host = ngx.var.http_host,
                authorization = ngx.var.http_authorization }))
            }
          }
        ]] })
      end)

      teardown(function()
        if proxy then proxy:stop() end
      end)

      it("honours every connection option of a config file, with its real type", function()
        local path = tmp_dir .. "/conn.lua"
        write_file(path, ([[
timeout = 60
max_retries = 0
talview = {
  base_url = "http://api.invalid",
  auth = { access_token = "tok-conn-123456" },
  allow_http = true,
  proxy = %q,
  user_agent = "conn-test/1",
  connect_timeout = 5,
}
]]):format(proxy:url("")), "600")
        local status, out, err = run({ "talview", "models.candidate.get", "--id", "1" },
          { env = { ASSESSKIT_CONFIG = path } })
        assert.equal(0, status, err)
        local got = cjson.decode(out)
        -- through the proxy, plain http to a non-loopback host (allow_http), the token sent
        assert.equal("GET http://api.invalid/models/candidate/1 HTTP/1.1", got.request)
        assert.equal("Bearer ***", got.authorization) -- sent, and masked in what is printed
        status, out = run({ "config" }, { env = { ASSESSKIT_CONFIG = path } })
        assert.equal(0, status)
        for _, line in ipairs({ "talview.timeout = 60", "talview.allow_http = true",
          "talview.max_retries = 0", "talview.user_agent = conn-test/1",
          "interviewmocha.timeout = 60" }) do
          assert.truthy(out:find(line .. "\n", 1, true), line .. " in:\n" .. out)
        end
      end)

      it("takes ASSESSKIT_ALLOW_HTTP and ASSESSKIT_PROXY from the environment", function()
        local env = { ASSESSKIT_TALVIEW_URL = "http://api.invalid", ASSESSKIT_ACCESS_TOKEN = "tok-env-123456",
          ASSESSKIT_PROXY = proxy:url(""), ASSESSKIT_ALLOW_HTTP = "true" }
        local status, out, err = run({ "talview", "models.candidate.get", "--id", "2" }, { env = env })
        assert.equal(0, status, err)
        assert.equal("GET http://api.invalid/models/candidate/2 HTTP/1.1", cjson.decode(out).request)
        env.ASSESSKIT_ALLOW_HTTP = "false"
        local _
        status, _, err = run({ "talview", "models.candidate.get", "--id", "2" }, { env = env })
        assert.equal(2, status)
        assert.truthy(one_error_line(err):find("refusing plain http://", 1, true), err)
        env.ASSESSKIT_ALLOW_HTTP = "perhaps"
        status, _, err = run({ "talview", "models.candidate.get", "--id", "2" }, { env = env })
        assert.equal(2, status)
        assert.truthy(one_error_line(err):find("ASSESSKIT_ALLOW_HTTP", 1, true), err)
      end)

      it("refuses an unknown key or a wrong type in the config file, naming the nearest key", function()
        local cases = {
          { "talview = { base_url = 'https://x.example', timout = 60 }",
            "unknown key talview.timout (did you mean talview.timeout?)" },
          { "timeout = '60'", "timeout must be a number" },
          { "allow_http = 'yes'", "allow_http must be a boolean" },
          { "interviewmocha = { apikey = 'k' }",
            "unknown key interviewmocha.apikey (did you mean interviewmocha.api_key?)" },
          { "talview = { auth = { grant = 'jwt', scopes = 'x' } }",
            "unknown key talview.auth.scopes (did you mean talview.auth.scope?)" },
          { "talview = { base_url = 'api.example.com' }", "talview.base_url is not an http(s) URL" },
        }
        for i, c in ipairs(cases) do
          local path = tmp_dir .. "/bad" .. i .. ".lua"
          write_file(path, c[1], "600")
          local status, out, err = run({ "config" }, { env = { ASSESSKIT_CONFIG = path } })
          assert.equal(2, status, c[1])
          assert.equal("", out)
          assert.truthy(one_error_line(err):find(c[2], 1, true), err)
        end
      end)
    end)

    it("refuses an undocumented --PARAM with the documented name, unless --raw-param", function()
      local status, out, err = run({ "--dry-run", "talview", "models.candidate.list", "--pagesize", "3" },
        { env = sbenv })
      assert.equal(2, status)
      assert.equal("", out)
      assert.truthy(one_error_line(err):find("--pagesize is not a documented parameter (did you mean --pageSize?)",
        1, true), err)
      status, out = run({ "--dry-run", "talview", "models.candidate.list", "--raw-param", "--pagesize", "3" },
        { env = sbenv })
      assert.equal(0, status)
      assert.truthy(out:find("pagesize=3", 1, true), out)
      status = run({ "talview", "models.candidate.list", "-" }, { env = sbenv, stdin = '{"pagsize": 2}' })
      assert.equal(2, status)
    end)

    it("ranks the did-you-mean of an endpoint name by edit distance", function()
      for typo, want in pairs({ ["actions.invit"] = "actions.invite",
        ["models.candidat.get"] = "models.candidate.get", ["user.me.updat_password"] = "user.me.update_password" }) do
        local status, _, err = run({ "talview", typo }, { env = sbenv })
        assert.equal(2, status)
        assert.truthy(one_error_line(err):find("(did you mean " .. want, 1, true), err)
      end
    end)

    it("exits 2 with one line when no credentials are configured", function()
      local status, out, err = run({ "talview", "models.candidate.get", "--id", "1" })
      assert.equal(2, status)
      assert.equal("", out)
      assert.truthy(one_error_line(err):find("no Talview credentials", 1, true))
      status, out, err = run({ "im", "links", "1" })
      assert.equal(2, status)
      assert.equal("", out)
      assert.truthy(one_error_line(err):find("no InterviewMocha API key", 1, true))
    end)

    it("exits 2 on a broken config file or a missing ASSESSKIT_CONFIG", function()
      local path = tmp_dir .. "/broken.lua"
      write_file(path, "talview = {", "600")
      local status, out, err = run({ "talview", "user.me.get" }, { env = { ASSESSKIT_CONFIG = path } })
      assert.equal(2, status)
      assert.equal("", out)
      one_error_line(err)
      status, out, err = run({ "talview", "user.me.get" }, { env = { ASSESSKIT_CONFIG = tmp_dir .. "/none.lua" } })
      assert.equal(2, status)
      assert.equal("", out)
      assert.truthy(one_error_line(err):find("does not exist", 1, true))
    end)

    it("with ASSESSKIT_SANDBOX_DIR ignores the other connection variables", function()
      local env = { ASSESSKIT_SANDBOX_DIR = sb.dir, ASSESSKIT_TALVIEW_URL = "https://talview.invalid" }
      local status, out = run({ "config" }, { env = env })
      assert.equal(0, status)
      assert.truthy(out:find("talview.base_url = " .. sb.url .. "\n", 1, true), out)
      assert.is_nil(out:find("invalid", 1, true))
      status = run({ "talview", "models.candidate.get", "--id", "10001" }, { env = env })
      assert.equal(0, status)
    end)

    it("config shows every setting with the secrets masked", function()
      local status, out = run({ "config" }, { env = password_env() })
      assert.equal(0, status)
      assert.truthy(out:find("talview.auth.password = ***", 1, true), out)
      assert.truthy(out:find("interviewmocha.api_key = ***", 1, true), out)
      assert.truthy(out:find("talview.auth.username = " .. creds.password.username, 1, true))
      assert_no_secret(out)
    end)

    it("config masks a password written inside a URL (proxy, base URL) and knows it as a secret", function()
      local env = password_env()
      env.ASSESSKIT_PROXY = "http://bob:Pr0xy-5ecret-77@127.0.0.1:3128"
      env.ASSESSKIT_TALVIEW_URL = sb.url:gsub("^http://", "http://ann:Url-5ecret-88@")
      local status, out, err = run({ "config" }, { env = env })
      assert.equal(0, status, err)
      assert.truthy(out:find("talview.proxy = http://***@127.0.0.1:3128", 1, true), out)
      assert.truthy(out:find("talview.base_url = http://***@127.0.0.1:", 1, true), out)
      for _, secret in ipairs({ "Pr0xy-5ecret-77", "Url-5ecret-88" }) do
        assert.is_nil((out .. err):find(secret, 1, true), out)
      end
      local config = require("assesskit.cli.config")
      env.HOME = tmp_dir .. "/home"
      local cfg = assert(config.load({ getenv = function(name) return env[name] end }))
      local text = require("assesskit.errors").redact("proxy password Pr0xy-5ecret-77, url password"
        .. " Url-5ecret-88", config.secrets(cfg))
      assert.equal("proxy password ***, url password ***", text)
    end)

    it("knows every configured secret: the values config shows as ***", function()
      local config = require("assesskit.cli.config")
      local env = password_env()
      env.HOME = tmp_dir .. "/home"
      local cfg = assert(config.load({ getenv = function(name) return env[name] end }))
      local secrets = config.secrets(cfg)
      table.sort(secrets)
      local expect = { creds.password.client_secret, creds.password.password, creds.interviewmocha.api_key }
      table.sort(expect)
      assert.same(expect, secrets)
      for _, line in ipairs(config.describe(cfg)) do
        for _, s in ipairs(secrets) do assert.is_nil(line:find(s, 1, true), line) end
      end
    end)

    it("never prints a credential in an error: rejected password, bad key", function()
      local env = password_env()
      env.ASSESSKIT_PASSWORD = "wrong-password-123"
      env.ASSESSKIT_CLIENT_SECRET = creds.password.client_secret
      local status, out, err = run({ "talview", "user.me.get" }, { env = env })
      assert.equal(1, status)
      assert.equal("", out)
      local line = one_error_line(err)
      assert.truthy(line:find("auth", 1, true), line)
      assert.is_nil(line:find("wrong-password-123", 1, true))
      assert_no_secret(line)
      env = password_env()
      env.ASSESSKIT_IM_API_KEY = "not-the-key-0123456789"
      status, out, err = run({ "im", "links", "114110" }, { env = env })
      assert.equal(1, status)
      assert.equal("", out)
      line = one_error_line(err)
      assert.is_nil(line:find("not-the-key-0123456789", 1, true))
    end)

    it("exits 1 with one line on a network error", function()
      local port = sys.free_port() -- released: nothing listens there
      local status, out, err = run({ "talview", "models.candidate.get", "--id", "1", "--timeout", "2" },
        { env = { ASSESSKIT_TALVIEW_URL = "http://127.0.0.1:" .. port, ASSESSKIT_ACCESS_TOKEN = "tok-abcdef-123" } })
      assert.equal(1, status)
      assert.equal("", out)
      local line = one_error_line(err)
      assert.truthy(line:find("network", 1, true), line)
      assert.is_nil(line:find("tok-abcdef-123", 1, true))
    end)
  end)
end)
