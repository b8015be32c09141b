-- The OpenResty callback example (examples/openresty-callback/nginx.conf + callback_site.lua)
-- in a real nginx, called back by the sandbox: the action reaches `on_action` once, a replay
-- and a wrong secret are refused, no log line carries the secret.
--
-- The spec uses the example's own nginx.conf, changing only what a test must: the port (free)
-- and the repository paths (absolute). nginx is stopped by its pid.
local nginx = require("support.nginx")
local sys = require("support.sys")
local http = require("support.http")
local sandbox = require("support.sandbox")
local callback = require("assesskit.talview.callback")
local cjson = require("cjson")

local REPO = nginx.repo
local EXAMPLE = REPO .. "/examples/openresty-callback"

local function replace_once(text, old, new)
  local s, e = text:find(old, 1, true)
  assert(s, "examples/openresty-callback/nginx.conf no longer contains: " .. old)
  assert(not text:find(old, e + 1, true), "examples/openresty-callback/nginx.conf has several: " .. old)
  return text:sub(1, s - 1) .. new .. text:sub(e + 1)
end

local function site_conf()
  local conf = assert(sys.read(EXAMPLE .. "/nginx.conf"))
  conf = replace_once(conf, "listen 127.0.0.1:8091;", "listen 127.0.0.1:@P@;")
  conf = replace_once(conf, '"$prefix/?.lua;$prefix/../../lua/?.lua;$prefix/../../lua/?/init.lua;;"',
    '"' .. EXAMPLE .. "/?.lua;" .. REPO .. "/lua/?.lua;" .. REPO .. '/lua/?/init.lua;;"')
  return nginx.user_line() .. "\n" .. conf
end

describe("examples/openresty-callback", function()
  local sb = sandbox.fixture({ token = true, reset = true })
  local site
  local secret = callback.secret()

  setup(function()
    site = nginx.start({ ports = { "P" }, conf = site_conf(), pid = "logs/nginx.pid",
      environ = { TALVIEW_CALLBACK_SECRET = secret } })
  end)

  teardown(function()
    if site then site:stop() end
  end)

  local function url(path)
    return "http://127.0.0.1:" .. site.ports.P .. path
  end

  local function received()
    local status, _, body = http.request("GET", url("/actions"))
    assert.equal(200, status)
    return cjson.decode(body)
  end

  it("gets the action the sandbox calls back with, once; refuses a replay and a wrong secret", function()
    sb:config({ action_delay = 600 })
    local r = sb:request("POST", "/actions/invite", { token = sb.tok, body = { assessmentSectionID = 2001,
      endDate = "2030-12-31T23:59:59Z", candidates = { { id = 10250 } },
      callbackUrl = callback.url(url("/talview/callback"), secret) } })
    assert.equal(200, r.status, r.body)
    assert.equal(1, r.json.status)
    assert.same({}, received())
    sb:run_actions()
    local got = received()
    assert.equal(1, #got)
    assert.equal(r.json.id, got[1].id)
    assert.equal("completed", got[1].status_name)
    assert.equal(1, got[1].success_count)
    -- the sandbox's delivery, sent again: a replay
    local log = sb:requests()
    local delivery = log[#log]
    assert.equal("callback", delivery.kind)
    assert.equal(200, delivery.status)
    local status, _, body = http.request("POST", url("/talview/callback?secret=" .. secret),
      { headers = { ["content-type"] = "application/json" }, body = delivery.body })
    assert.equal(409, status, body)
    status, _, body = http.request("POST", url("/talview/callback?secret=wrong"),
      { headers = { ["content-type"] = "application/json" }, body = "{}" })
    assert.equal(403, status)
    assert.same({ error = "wrong secret" }, cjson.decode(body))
    assert.equal(1, #received())
    -- on_action's log line is there, and no line has the secret
    local errlog = ""
    for _ = 1, 50 do
      errlog = sys.read(site.dir .. "/logs/error.log") or ""
      if errlog:find("completed: 1 of 1 done", 1, true) then break end
      sys.sleep(0.02)
    end
    assert.truthy(errlog:find("action " .. r.json.id .. " completed: 1 of 1 done, 0 failed", 1, true), errlog)
    assert.is_nil(errlog:find(secret, 1, true))
    assert.is_nil((sys.read(site.dir .. "/logs/access.log") or ""):find(secret, 1, true))
  end)

  it("keeps the secret out of the error log when a delivery is large (an action with many failed items)",
    function()
    sb:config({ action_delay = 600 })
    -- 600 candidates that do not exist: the callback's body lists each in `response` (~50 KiB),
    -- more than nginx keeps in memory by default (it logs the request line, secret and all,
    -- when it buffers a body to a file)
    local candidates = {}
    for i = 1, 600 do candidates[i] = { id = 90000000 + i } end
    local r = sb:request("POST", "/actions/invite", { token = sb.tok, body = { assessmentSectionID = 2001,
      endDate = "2030-12-31T23:59:59Z", candidates = candidates,
      callbackUrl = callback.url(url("/talview/callback"), secret) } })
    assert.equal(200, r.status, r.body)
    sb:run_actions()
    local log = sb:requests()
    local delivery = log[#log]
    assert.equal("callback", delivery.kind)
    assert.equal(200, delivery.status, delivery.error)
    assert.is_true(delivery.body_size > 32 * 1024, tostring(delivery.body_size))
    local got
    for _, a in ipairs(received()) do
      if a.id == r.json.id then got = a end
    end
    assert.equal(600, got.error_count)
    assert.is_nil((sys.read(site.dir .. "/logs/error.log") or ""):find(secret, 1, true))
  end)

  it("logs an action whose counts are null (create-assessment's, as its seed example) without inventing any",
    function()
    local r = sb:request("POST", "/actions/create-assessment", { token = sb.tok, body = { title = "Site",
      sections = { { order = 1, title = "S" } }, callbackUrl = callback.url(url("/talview/callback"), secret) } })
    assert.equal(200, r.status, r.body)
    assert.equal(cjson.null, r.json.total_count)
    sb:run_actions() -- its delivery, if its timer has not made it yet
    local line
    for _ = 1, 100 do
      line = (sys.read(site.dir .. "/logs/error.log") or ""):match("action " .. r.json.id .. " [^\n]*")
      if line then break end
      sys.sleep(0.02)
    end
    assert.truthy(line, "no log line for action " .. r.json.id)
    assert.truthy(line:find("action " .. r.json.id .. " completed: no counts given", 1, true), line)
    assert.is_nil(line:find("userdata", 1, true), line)
  end)
end)
