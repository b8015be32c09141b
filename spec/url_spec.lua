-- assesskit.url: one reading of URLs and one plain-HTTP rule, the same answer at every entry
-- point. One table of URLs runs through assesskit.url, client.new, talview.new,
-- interviewmocha.new, an InterviewMocha PDF download, a core session, the nginx transport
-- inside a real nginx, and the command line; every one must answer as the table says:
-- "allowed" (the request may go: it is attempted), "refused" (plain http to a non-loopback
-- host: raised at construction, or kind `insecure`, before anything is sent) or "malformed".
--
-- The allowed URLs point at this spec's nginx (port @P@), so an allowed request really goes
-- to loopback; nothing leaves the machine.

local nginx = require("support.nginx")
local sys = require("support.sys")
local cjson = require("cjson")
local url = require("assesskit.url")

local TABLE = {
  { "http://localhost.:@P@/", "allowed" },
  { "http://[0:0:0:0:0:0:0:1]:@P@/", "allowed" },
  { "http://[::1]:@P@/", "allowed" },
  { "http://127.300.0.1:@P@/", "refused" },
  { "http://127.1:@P@/", "allowed" },
  { "http://0x7f.0.0.1:@P@/", "allowed" },
  { "http://2130706433:@P@/", "allowed" },
  { "http://127.0.0.01:@P@/", "allowed" },
  { "http://127.255.255.254:@P@/", "allowed" },
  { "http://128.0.0.1:@P@/", "refused" },
  { "http://0:@P@/", "refused" },
  { "http://user:pw@127.0.0.1:@P@/", "allowed" },
  { "http://127.0.0.1:@P@@example.com/", "refused" },
  { "http://localhost:@P@@example.com/", "refused" },
  { "http://[::1%25lo]:@P@/", "allowed" },
  { "http://[fe80::1%25lo]:@P@/", "refused" },
  { "HTTP://LOCALHOST:@P@/", "allowed" },
  { "http://LocalHost.:@P@/", "allowed" },
  { "http://%6c%6fcalhost:@P@/", "allowed" },
  { "http://127.0.0.1.:@P@/", "refused" },
  { "http://localhost..:@P@/", "refused" },
  { "http://foo.localhost:@P@/", "refused" },
  { "http://localhost.example.com:@P@/", "refused" },
  { "http://127.0.0.1.example.com:@P@/", "refused" },
  { "http://[::ffff:127.0.0.1]:@P@/", "refused" },
  { "http://[::127.0.0.1]:@P@/", "refused" },
  { "http://example.com/", "refused" },
  { "HTTPS://127.0.0.1:@P@/", "allowed" },
  { "https://127.300.0.1:1/", "allowed" }, -- https goes anywhere (it fails to resolve here)
  { "http://127.0.0.1:99999/", "malformed" },
  { "http://a@b@127.0.0.1/", "malformed" },
  { "http://[::1/", "malformed" },
  { "http://127.0.0.1:8a/", "malformed" },
  { "http://local%00host/", "malformed" },
}

local function fill(u, port)
  return (u:gsub("@P@", tostring(port)))
end

-- A raised error's answer: refused when it names the plain-HTTP rule, else malformed.
local function raised(msg)
  if tostring(msg):find("refusing plain http", 1, true) then return "refused" end
  return "malformed"
end

local function outcome_of_call(ok, v, err)
  if not ok then return raised(v) end
  if v == nil and type(err) == "table" and err.kind == "insecure" then return "refused" end
  if v == nil and type(err) == "table" and err.kind == "validation" then return "malformed" end
  return "allowed"
end

describe("assesskit.url: the same answer for a URL at every entry point #luajit", function()
  local srv, port, tmp

  setup(function()
    srv = nginx.start({
      ports = { "P" },
      servers = [[
        server {
          listen 127.0.0.1:@P@;
          location = /probe {
            content_by_lua_block {
              ngx.req.read_body()
              local cjson = require("cjson")
              local urls = cjson.decode(ngx.req.get_body_data())
              local t = require("assesskit.ngx.transport").new()
              local out = {}
              for i, u in ipairs(urls) do
                local ok, status, msg, kind = pcall(t.request, t, { url = u, timeout = 2,
                  connect_timeout = 1 })
                if not ok then out[i] = "malformed"
                elseif not status and kind == "insecure" then out[i] = "refused"
                else out[i] = "allowed" end
              end
              ngx.header["Content-Type"] = "application/json"
              ngx.say(cjson.encode(out))
            }
          }
          location / { default_type application/json; return 200 '{"ok": true}'; }
        }
      ]],
    })
    port = srv.ports.P
    tmp = sys.tmpdir("url-spec")
  end)

  teardown(function()
    if srv then srv:stop() end
    if tmp then sys.rmdir(tmp) end
  end)

  local function each(fn)
    for _, row in ipairs(TABLE) do
      local u = fill(row[1], port)
      assert.equal(row[2], fn(u), u)
    end
  end

  it("assesskit.url.allowed", function()
    each(function(u)
      local parsed = url.parse(u)
      if not parsed then return "malformed" end
      return url.allowed(parsed) and "allowed" or "refused"
    end)
  end)

  it("assesskit.client.new (base_url)", function()
    local client = require("assesskit.client")
    each(function(u)
      local ok, c = pcall(client.new, { base_url = u })
      if ok then c:close() end
      return outcome_of_call(ok, c)
    end)
  end)

  -- The answer of `new(opts_for(u))` for each of two options taking the URL: they must agree.
  local function both_options(new, opts_a, opts_b, what)
    return function(u)
      local answers = {}
      for i, opts_for in ipairs({ opts_a, opts_b }) do
        local ok, c = pcall(new, opts_for(u))
        if ok then c:close() end
        answers[i] = outcome_of_call(ok, c)
      end
      assert.equal(answers[1], answers[2], u .. " " .. what)
      return answers[1]
    end
  end

  it("assesskit.talview.new (base_url and token_url)", function()
    local loop = "http://127.0.0.1:" .. port
    each(both_options(require("assesskit.talview").new,
      function(u) return { base_url = u } end,
      function(u) return { base_url = loop, token_url = u } end, "as base_url and as token_url"))
  end)

  it("assesskit.interviewmocha.new (v2_url, v3_url)", function()
    local loop = "http://127.0.0.1:" .. port
    each(both_options(require("assesskit.interviewmocha").new,
      function(u) return { api_key = "k", v3_url = u, v2_url = loop } end,
      function(u) return { api_key = "k", v2_url = u, v3_url = loop } end, "as v3_url and as v2_url"))
  end)

  it("an InterviewMocha PDF download (pdfReportUrl) and an absolute URL through client:request", function()
    local im = require("assesskit.interviewmocha").new({ api_key = "k", max_retries = 0,
      v3_url = "http://127.0.0.1:" .. port .. "/v3", v2_url = "http://127.0.0.1:" .. port .. "/v2",
      timeout = 2, connect_timeout = 1 })
    local client = require("assesskit.client").new({ base_url = "http://127.0.0.1:" .. port,
      max_retries = 0, timeout = 2, connect_timeout = 1 })
    each(function(u)
      local pok, n, err = pcall(im.reports.download_pdf, im.reports, { pdfReportUrl = u },
        tmp .. "/r.pdf", { check_pdf = false })
      local a = outcome_of_call(pok, n, err)
      local rok, v, rerr = pcall(client.request, client, "GET", u, { auth = false })
      assert.equal(a, outcome_of_call(rok, v, rerr), u .. " through client:request")
      return a
    end)
    im:close()
    client:close()
  end)

  it("a core session", function()
    local s = require("assesskit.core").session({})
    each(function(u)
      local ok, status, _, kind = pcall(s.request, s, { url = u, timeout = 2, connect_timeout = 1 })
      if not ok then return "malformed" end
      if not status and kind == "insecure" then return "refused" end
      return "allowed"
    end)
    s:close()
  end)

  it("the nginx transport inside nginx", function()
    local urls = {}
    for i, row in ipairs(TABLE) do urls[i] = fill(row[1], port) end
    local status, body = srv:http("POST", "/probe", cjson.encode(urls), port)
    assert.equal(200, status, body)
    local got = cjson.decode(body)
    for i, row in ipairs(TABLE) do
      assert.equal(row[2], got[i], urls[i])
    end
  end)

  it("the command line (ASSESSKIT_TALVIEW_URL)", function()
    each(function(u)
      local status, _, err = sys.exec("lua5.4 bin/assesskit --timeout 2 talview models.candidate.get --id 1",
        { cwd = sys.repo, env = { PATH = os.getenv("PATH"), HOME = tmp,
          ASSESSKIT_TALVIEW_URL = u, ASSESSKIT_ACCESS_TOKEN = "static-token" } })
      if err:find("refusing plain http", 1, true) then return "refused" end
      if status == 2 then return "malformed" end
      return "allowed"
    end)
  end)
end)
