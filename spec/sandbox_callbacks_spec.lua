-- The sandbox calls an action's callbackUrl when the action is done: a POST of the action
-- object as JSON to a receiver on loopback, retried with back-off while the receiver fails or
-- is down, stopped after a success (or a refusal), every attempt in the request log.
local sandbox = require("support.sandbox")
local nginx = require("support.nginx")
local sys = require("support.sys")
local cjson = require("cjson")

local END = "2030-01-31T00:00:00Z"
local SECRET = "0123456789abcdef0123456789abcdef"

-- A receiver that keeps what it got (in a shared dict) and answers the status it is told to
-- for its first requests: `/_plan?fail=N&status=S` (reset), `/_got` (JSON: what it received).
local RECEIVER = {
  http = "lua_shared_dict rx 1m;",
  locations = [[
    location = /_plan {
      content_by_lua_block {
        local d = ngx.shared.rx
        d:flush_all()
        d:set("fail", tonumber(ngx.var.arg_fail) or 0)
        d:set("status", tonumber(ngx.var.arg_status) or 503)
        ngx.say("ok")
      }
    }
    location = /_got {
      content_by_lua_block {
        local d = ngx.shared.rx
        local out = {}
        for i = 1, d:get("n") or 0 do
          out[i] = { uri = d:get("uri" .. i), body = d:get("body" .. i), ctype = d:get("ctype" .. i),
                     method = d:get("method" .. i), ua = d:get("ua" .. i) }
        end
        ngx.say(require("cjson").encode(out))
      }
    }
    location = /garbage {
      content_by_lua_block {
        ngx.req.read_body()
        local sock = ngx.req.socket(true)
        sock:send(string.rep("x", 100000))
        sock:send("\r\n\r\n")
      }
    }
    location = /hang {
      content_by_lua_block { ngx.sleep(3) ngx.say("late") }
    }
    location = /busy {
      content_by_lua_block {
        local d = ngx.shared.rx
        local now = d:incr("busy", 1, 0)
        if now > (d:get("busy_max") or 0) then d:set("busy_max", now) end
        ngx.sleep(0.8)
        d:incr("busy", -1)
        d:incr("busy_done", 1, 0)
        ngx.say("ok")
      }
    }
    location = /busy_stats {
      content_by_lua_block {
        local d = ngx.shared.rx
        ngx.say(require("cjson").encode({ max = d:get("busy_max"), done = d:get("busy_done") }))
      }
    }
    location = /drip {
      content_by_lua_block {
        ngx.req.read_body()
        local sock = ngx.req.socket(true)
        for c in ("HTTP/1.1 200 OK\r\n"):gmatch(".") do
          if not sock:send(c) then return end
          ngx.sleep(0.2)
        end
        sock:send("Content-Length: 0\r\n\r\n")
      }
    }
    location / {
      content_by_lua_block {
        local d = ngx.shared.rx
        ngx.req.read_body()
        local n = d:incr("n", 1, 0)
        d:set("uri" .. n, ngx.var.request_uri)
        d:set("body" .. n, ngx.req.get_body_data() or "")
        d:set("ctype" .. n, ngx.var.http_content_type or "")
        d:set("method" .. n, ngx.req.get_method())
        d:set("ua" .. n, ngx.var.http_user_agent or "")
        if n <= (d:get("fail") or 0) then return ngx.exit(d:get("status") or 503) end
        ngx.say("ok")
      }
    }
  ]],
}

describe("sandbox action callbacks", function()
  local sb = sandbox.fixture({ token = true, reset = true, clear = true })
  local rx

  setup(function()
    rx = nginx.start(RECEIVER)
  end)

  teardown(function()
    if rx then rx:stop() end
  end)

  local function plan(fail, status)
    assert.equal(200, (rx:http("GET", "/_plan?fail=" .. fail .. "&status=" .. (status or 503))))
  end

  local function received()
    local status, body = rx:http("GET", "/_got")
    assert.equal(200, status)
    return cjson.decode(body)
  end

  local function callback_log()
    local out = {}
    for _, e in ipairs(sb:requests()) do
      if e.kind == "callback" then out[#out + 1] = e end
    end
    return out
  end

  local function eventually(fn, seconds)
    local deadline = os.time() + (seconds or 10)
    repeat
      local v = fn()
      if v then return v end
      sys.sleep(0.02)
    until os.time() > deadline
    return fn()
  end

  local function invite(extra, headers)
    local body = { assessmentSectionID = 2002, endDate = END, candidates = { { id = 10250 }, { id = 987654 } } }
    for k, v in pairs(extra or {}) do body[k] = v end
    local r = sb:request("POST", "/actions/invite", { token = sb.tok, body = body, headers = headers })
    assert.equal(200, r.status, r.body)
    return r.json
  end

  before_each(function()
    plan(0)
    sb:config({ action_delay = 600, callback_backoff = 600 }) -- nothing happens unless run
  end)

  it("POSTs the finished action as JSON to its callbackUrl, query and all", function()
    local url = rx:url("/talview/callback?secret=" .. SECRET)
    local a = invite({ callbackUrl = url })
    assert.same({}, received()) -- queued: no callback yet
    local ran = sb:run_actions()
    assert.same({ processed = 1, callbacks = 1 }, ran)
    local got = received()
    assert.equal(1, #got)
    assert.equal("POST", got[1].method)
    assert.equal("/talview/callback?secret=" .. SECRET, got[1].uri)
    assert.equal("application/json", got[1].ctype)
    local action = cjson.decode(got[1].body)
    assert.equal(a.id, action.id)
    assert.equal(3, action.status)
    assert.equal(2, action.total_count)
    assert.equal(1, action.success_count)
    assert.equal(1, action.error_count)
    assert.same(sb:state("action", a.id), action) -- the action object as the API shows it
    -- logged, the secret masked
    local log = callback_log()
    assert.equal(1, #log)
    assert.equal(200, log[1].status)
    assert.equal(1, log[1].attempt)
    assert.equal(a.id, log[1].action_id)
    assert.equal(3, log[1].action_status)
    assert.equal("/talview/callback", log[1].path)
    assert.is_nil(cjson.encode(log[1]):find(SECRET, 1, true))
  end)

  it("calls back by itself after the action's delay, without actions/run", function()
    sb:config({ action_delay = 0 })
    invite({ callbackUrl = rx:url("/cb?secret=" .. SECRET) })
    assert.truthy(eventually(function() return #received() == 1 end))
  end)

  it("retries a failing receiver with back-off and stops after the first success", function()
    plan(2, 503)
    sb:config({ callback_backoff = 0.05 })
    local a = invite({ callbackUrl = rx:url("/cb?secret=" .. SECRET) })
    sb:run_actions()
    assert.truthy(eventually(function() return #received() >= 3 end), "not retried")
    sys.sleep(0.5) -- time for a wrong fourth attempt (0.05 * 2^2 s later) to show
    local got = received()
    assert.equal(3, #got)
    for _, g in ipairs(got) do assert.equal(a.id, cjson.decode(g.body).id) end
    local log = callback_log()
    assert.same({ 1, 2, 3 }, { log[1].attempt, log[2].attempt, log[3].attempt })
    assert.same({ 503, 503, 200 }, { log[1].status, log[2].status, log[3].status })
  end)

  it("retries while the receiver is down, and delivers once it is up", function()
    local port = sys.free_port() -- nobody listens there
    local a = invite({ callbackUrl = "http://127.0.0.1:" .. port .. "/cb?secret=" .. SECRET })
    assert.same({ processed = 1, callbacks = 1 }, sb:run_actions())
    local log = callback_log()
    assert.equal(1, #log)
    assert.is_nil(log[1].status)
    assert.matches("connect", log[1].error)
    -- the waiting retry is made at the next run (its back-off is 600 s here)
    assert.same({ processed = 0, callbacks = 1 }, sb:run_actions())
    assert.equal(2, #callback_log())
    -- the receiver comes up on that port
    local up = nginx.start({ http = RECEIVER.http,
      servers = "server { listen 127.0.0.1:" .. port .. ";" .. RECEIVER.locations .. "}" })
    local ok, err = pcall(function()
      assert.same({ processed = 0, callbacks = 1 }, sb:run_actions())
      local status, body = up:http("GET", "/_got", nil, port)
      assert.equal(200, status)
      local got = cjson.decode(body)
      assert.equal(1, #got)
      assert.equal(a.id, cjson.decode(got[1].body).id)
      local log2 = callback_log()
      assert.equal(3, #log2)
      assert.equal(200, log2[3].status)
      -- delivered: nothing more to try
      assert.same({ processed = 0, callbacks = 0 }, sb:run_actions())
    end)
    up:stop()
    assert(ok, err)
  end)

  it("gives up after callback_attempts attempts", function()
    plan(100, 500)
    sb:config({ callback_attempts = 3 })
    invite({ callbackUrl = rx:url("/cb?secret=" .. SECRET) })
    for _ = 1, 5 do sb:run_actions() end
    assert.equal(3, #received())
    assert.equal(3, #callback_log())
  end)

  it("stops at a refusal (4xx)", function()
    plan(100, 403)
    invite({ callbackUrl = rx:url("/cb?secret=" .. SECRET) })
    sb:run_actions()
    sb:run_actions()
    assert.equal(1, #received())
  end)

  it("tries a redirect (3xx) again later, at the same URL: redirects are not followed", function()
    plan(1, 302)
    invite({ callbackUrl = rx:url("/cb?secret=" .. SECRET) })
    sb:run_actions()
    sb:run_actions()
    local got = received()
    assert.equal(2, #got)
    assert.equal(got[1].uri, got[2].uri)
    local log = callback_log()
    assert.equal(302, log[1].status)
    assert.equal(200, log[2].status)
  end)

  it("sends nothing with skipCallback, or without a callbackUrl", function()
    invite({ callbackUrl = rx:url("/cb?secret=" .. SECRET), skipCallback = true })
    invite()
    assert.same({ processed = 2, callbacks = 0 }, sb:run_actions())
    assert.same({}, received())
    assert.same({}, callback_log())
  end)

  it("calls back an action done at once (evaluate) and one failed as a whole (99)", function()
    sb:request("POST", "/actions/evaluate", { token = sb.tok, body = { assessmentSectionCandidateID = 40010,
      recommendation = "select", callbackUrl = rx:url("/cb?secret=" .. SECRET) } })
    sb:request("POST", "/actions/live-schedule", { token = sb.tok, body = { startDate = "2030-01-02T00:00:00Z",
      endDate = "2030-01-01T00:00:00Z", panel = { { id = 41 } }, callbackUrl = rx:url("/cb?secret=" .. SECRET) } })
    sb:run_actions() -- their first attempts, if their timers have not made them yet
    local got = eventually(function() local g = received() return #g == 2 and g end)
    assert.truthy(got)
    local statuses = {}
    for _, g in ipairs(got) do
      local a = cjson.decode(g.body)
      statuses[#statuses + 1] = a.status
      -- the action as kept, shaped as its seed example (evaluate's total_count is null)
      assert.same(sb:state("action", a.id), a)
      if a.status == 3 then assert.equal(cjson.null, a.total_count) end
    end
    table.sort(statuses)
    assert.same({ 3, 99 }, statuses)
  end)

  it("callback_down: the receiver counts as down for the first attempts", function()
    sb:fault({ kind = "callback_down", attempts = 2, path = "/actions/invite" })
    invite({ callbackUrl = rx:url("/cb?secret=" .. SECRET) })
    sb:run_actions()
    sb:run_actions()
    assert.same({}, received())
    local log = callback_log()
    assert.equal(2, #log)
    assert.equal("callback_down", log[1].fault)
    assert.matches("refused", log[2].error)
    sb:run_actions()
    assert.equal(1, #received())
    assert.equal(200, callback_log()[3].status)
  end)

  it("takes a receiver that answers garbage, or too late, as a failed attempt", function()
    sb:config({ callback_timeout = 0.5 })
    invite({ callbackUrl = rx:url("/garbage?secret=" .. SECRET) })
    invite({ callbackUrl = rx:url("/hang?secret=" .. SECRET) })
    assert.same({ processed = 2, callbacks = 2 }, sb:run_actions())
    local log = callback_log()
    assert.equal(2, #log)
    for _, e in ipairs(log) do
      assert.is_nil(e.status)
      assert.is_string(e.error)
    end
    assert.matches("not an HTTP answer", log[1].error)
    assert.matches("timeout", log[2].error)
    -- and the sandbox goes on serving
    assert.equal(200, sb:request("GET", "/models/candidate/10001", { token = sb.tok }).status)
  end)

  it("gives one attempt callback_timeout in all: a receiver dripping its answer does not stretch it", function()
    -- 17 bytes of status line, one every 0.2 s: each byte comes well within callback_timeout,
    -- the whole line does not
    sb:config({ callback_timeout = 1 })
    invite({ callbackUrl = rx:url("/drip?secret=" .. SECRET) })
    assert.same({ processed = 1, callbacks = 1 }, sb:run_actions())
    local log = callback_log()
    assert.equal(1, #log)
    assert.is_nil(log[1].status)
    assert.matches("timeout", log[1].error)
  end)

  it("makes the callback attempts of actions/run side by side, not one receiver's wait after another's",
    function()
    for _ = 1, 3 do invite({ callbackUrl = rx:url("/busy?secret=" .. SECRET) }) end
    assert.same({ processed = 3, callbacks = 3 }, sb:run_actions())
    local _, body = rx:http("GET", "/busy_stats")
    -- every attempt is over when run answers, and they were under way together
    assert.same({ max = 3, done = 3 }, cjson.decode(body))
    for _, e in ipairs(callback_log()) do assert.equal(200, e.status) end
    -- and so are the retries it makes: the first attempt of each finds the receiver down
    plan(0) -- forgets the counts
    sb:fault({ kind = "callback_down", attempts = 1, path = "/actions/invite", times = 3 })
    for _ = 1, 3 do invite({ callbackUrl = rx:url("/busy?secret=" .. SECRET) }) end
    assert.same({ processed = 3, callbacks = 3 }, sb:run_actions())
    assert.same({ processed = 0, callbacks = 3 }, sb:run_actions())
    _, body = rx:http("GET", "/busy_stats")
    assert.same({ max = 3, done = 3 }, cjson.decode(body))
  end)

  it("forgets pending callbacks on reset", function()
    invite({ callbackUrl = "http://127.0.0.1:" .. sys.free_port() .. "/cb?secret=" .. SECRET })
    sb:run_actions()
    sb:reset()
    assert.same({ processed = 0, callbacks = 0 }, sb:run_actions())
  end)
end)
