-- assesskit.talview.callback: the receiver of Talview action callbacks, inside a real nginx
-- (the OpenResty handler, fed by the sandbox's deliveries and by hand-made requests) and as a
-- plain function. It takes only a POST carrying the secret, of bounded size, holding an action;
-- it refuses the rest with the right 4xx and a reason that never echoes the secret; it calls
-- user code exactly once per action id and status.
local callback = require("assesskit.talview.callback")
local sandbox = require("support.sandbox")
local nginx = require("support.nginx")
local sys = require("support.sys")
local http = require("support.http")
local cjson = require("cjson")

local SECRET = "s3cr3t-0123456789abcdef0123456789"
local END = "2030-01-31T00:00:00Z"

-- One receiver per worker (built in init_worker), its replays remembered in a shared dict; the
-- handler counts its calls per action id and status in another, and raises while `fail` says so.
local SITE = {
  workers = 2,
  http = [[
  lua_shared_dict talview_seen 1m;
  lua_shared_dict calls 1m;
  init_worker_by_lua_block {
    local callback = require("assesskit.talview.callback")
    RECEIVER = callback.new{
      secret = "@SECRET@", seen = "talview_seen", max_body = 65536,
      handler = function(action)
        local calls = ngx.shared.calls
        local slow = calls:get("slow")
        if slow then
          calls:delete("slow")
          ngx.sleep(slow)
        end
        if (calls:get("fail") or 0) > 0 then
          calls:incr("fail", -1)
          error("the handler failed on purpose, secret @SECRET@ and all")
        end
        calls:incr(string.format("%.0f:%.0f", action.id, action.status), 1, 0)
        calls:incr("total", 1, 0)
        calls:set("last", require("cjson").encode(action))
      end,
    }
  }
]],
  locations = [[
    location = /talview/callback {
      content_by_lua_block { RECEIVER:serve() }
    }
    location = /_calls {
      content_by_lua_block {
        local calls = ngx.shared.calls
        if ngx.var.arg_fail then
          calls:flush_all()
          calls:set("fail", tonumber(ngx.var.arg_fail))
          if ngx.var.arg_slow then calls:set("slow", tonumber(ngx.var.arg_slow)) end
          return ngx.say("ok")
        end
        local out = {}
        for _, k in ipairs(calls:get_keys(0)) do out[k] = calls:get(k) end
        ngx.say(require("cjson").encode(out))
      }
    }
  ]],
}

describe("assesskit.talview.callback in nginx", function()
  local sb = sandbox.fixture({ token = true, reset = true, clear = true })
  local site

  setup(function()
    site = nginx.start({ workers = SITE.workers, http = SITE.http:gsub("@SECRET@", SECRET),
      locations = SITE.locations })
  end)

  teardown(function()
    if site then site:stop() end
  end)

  local function calls()
    local status, body = site:http("GET", "/_calls")
    assert.equal(200, status)
    return cjson.decode(body)
  end

  local function send(method, path, body, headers)
    local h = { ["content-type"] = "application/json" }
    for k, v in pairs(headers or {}) do h[k] = v end
    local status, _, rbody = http.request(method, site:url(path), { headers = h, body = body })
    return status, rbody
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

  local function invite(callback_url, candidates)
    local r = sb:request("POST", "/actions/invite", { token = sb.tok, body = { assessmentSectionID = 2002,
      endDate = END, candidates = candidates or { { id = 10250 } }, callbackUrl = callback_url } })
    assert.equal(200, r.status, r.body)
    return r.json
  end

  before_each(function()
    sb:config({ action_delay = 600, callback_backoff = 600 })
    site:http("GET", "/_calls?fail=0") -- and forget the counts
  end)

  it("gets the sandbox's callback and hands the action to user code once", function()
    local url = callback.url(site:url("/talview/callback"), SECRET)
    local a = invite(url)
    sb:run_actions()
    local c = calls()
    assert.equal(1, c[string.format("%d:3", a.id)])
    local got = cjson.decode(c.last)
    assert.equal(a.id, got.id)
    assert.equal(3, got.status)
    assert.equal(1, got.success_count)
    -- user code never sees the secret
    assert.is_nil(c.last:find(SECRET, 1, true))
    assert.truthy(got.callbackUrl:find("secret=***", 1, true))
    local log = sb:requests()
    assert.equal(200, log[#log].status)
    assert.equal("callback", log[#log].kind)
  end)

  it("refuses a replay of the same action and status (409), from anyone, and user code is not called again",
    function()
    local a = invite(callback.url(site:url("/talview/callback"), SECRET))
    sb:run_actions()
    local body = assert(sb:requests()[#sb:requests()].body)
    -- the delivered body as the receiver got it (the log masks the secret in callbackUrl: same shape)
    for _ = 1, 4 do -- over two workers: the shared dict remembers across them
      local status, rbody = send("POST", "/talview/callback?secret=" .. SECRET, body)
      assert.equal(409, status)
      assert.matches("already received", rbody)
    end
    assert.equal(1, calls()[string.format("%d:3", a.id)])
    -- the same action with another status is news
    local other = cjson.decode(body)
    other.status = 99
    assert.equal(200, (send("POST", "/talview/callback?secret=" .. SECRET, cjson.encode(other))))
    assert.equal(1, calls()[string.format("%d:99", a.id)])
  end)

  it("answers 500 when user code fails, so that the sandbox retries, and then calls it once", function()
    site:http("GET", "/_calls?fail=1")
    sb:config({ callback_backoff = 0.05 })
    local a = invite(callback.url(site:url("/talview/callback"), SECRET))
    sb:run_actions()
    assert.truthy(eventually(function() return calls()[string.format("%d:3", a.id)] end), "never delivered")
    assert.equal(1, calls()[string.format("%d:3", a.id)])
    local statuses = {}
    for _, e in ipairs(sb:requests()) do
      if e.kind == "callback" then statuses[#statuses + 1] = e.status end
    end
    assert.same({ 500, 200 }, statuses)
    -- the handler's error is logged without the secret
    local errlog = site:error_log()
    assert.matches("the handler failed on purpose", errlog)
    assert.is_nil(errlog:find(SECRET, 1, true))
  end)

  it("asks a delivery that comes while user code still runs to come again (503), so that its failure loses nothing",
    function()
    -- the first call of the handler takes longer than the sender waits, and then fails: the
    -- sender's retry arrives meanwhile (in either worker) and must not be refused for good
    site:http("GET", "/_calls?fail=1&slow=1.5")
    sb:config({ callback_timeout = 0.3, callback_backoff = 0.2, callback_attempts = 12 })
    local a = invite(callback.url(site:url("/talview/callback"), SECRET))
    sb:run_actions()
    local key = string.format("%d:3", a.id)
    assert.truthy(eventually(function() return calls()[key] end, 30), "never delivered")
    assert.equal(1, calls()[key])
    local statuses = {}
    for _, e in ipairs(sb:requests()) do
      if e.kind == "callback" then statuses[#statuses + 1] = e.status or "timeout" end
    end
    -- the first attempt gave up waiting; those that came while the handler ran were asked to
    -- come again; the one after its failure was taken
    assert.equal("timeout", statuses[1])
    for i = 2, #statuses - 1 do assert.equal(503, statuses[i]) end
    assert.equal(200, statuses[#statuses])
  end)

  it("calls user code exactly once per action, over many actions and retried deliveries", function()
    local url = callback.url(site:url("/talview/callback"), SECRET)
    local ids = {}
    for i = 1, 6 do ids[i] = invite(url, { { id = 10250 + i } }).id end
    sb:run_actions()
    -- every delivery again, as a sender retrying after a lost answer would
    for _, e in ipairs(sb:requests()) do
      if e.kind == "callback" then
        assert.equal(409, (send("POST", "/talview/callback?secret=" .. SECRET, e.body)))
      end
    end
    local c = calls()
    for _, id in ipairs(ids) do assert.equal(1, c[string.format("%d:3", id)], id) end
    assert.equal(6, c.total)
  end)

  describe("refuses, never calling user code and never echoing the secret", function()
    local good = cjson.encode({ id = 4242, status = 3, total_count = 1, success_count = 1, error_count = 0 })
    local cases = {
      { "a GET", "GET", "?secret=" .. SECRET, nil, nil, 405 },
      { "no secret", "POST", "", good, nil, 401 },
      { "an empty secret", "POST", "?secret=", good, nil, 403 },
      { "a wrong secret", "POST", "?secret=" .. SECRET:sub(1, -2) .. "x", good, nil, 403 },
      { "a longer secret", "POST", "?secret=" .. SECRET .. "0", good, nil, 403 },
      { "the secret twice", "POST", "?secret=" .. SECRET .. "&secret=" .. SECRET, good, nil, 400 },
      { "a body over max_body", "POST", "?secret=" .. SECRET, string.rep(" ", 70000) .. good, nil, 413 },
      { "a body that is not JSON", "POST", "?secret=" .. SECRET, '{"id": 1, "status": ', nil, 400 },
      { "JSON nested too deep", "POST", "?secret=" .. SECRET, string.rep("[", 5000), nil, 400 },
      { "another media type", "POST", "?secret=" .. SECRET, good, { ["content-type"] = "text/plain" }, 415 },
      { "no body", "POST", "?secret=" .. SECRET, nil, nil, 400 },
      { "a JSON array", "POST", "?secret=" .. SECRET, "[1,2]", nil, 422 },
      { "an id that is not a number", "POST", "?secret=" .. SECRET, '{"id":"7","status":3}', nil, 422 },
      { "an unknown status", "POST", "?secret=" .. SECRET, '{"id":7,"status":4}', nil, 422 },
      { "a negative count", "POST", "?secret=" .. SECRET, '{"id":7,"status":3,"error_count":-1}', nil, 422 },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. " (" .. case[6] .. ")", function()
        local before = calls().total or 0
        local status, body = send(case[2], "/talview/callback" .. case[3], case[4], case[5])
        assert.equal(case[6], status, body)
        assert.is_string(cjson.decode(body).error)
        assert.is_nil(body:find(SECRET, 1, true))
        assert.is_nil(body:find(SECRET:sub(1, 16), 1, true))
        assert.equal(before, calls().total or 0)
      end)
    end
  end)
end)

describe("assesskit.talview.callback as a plain function", function()
  local got
  local function receiver(opts)
    got = {}
    local o = { secret = SECRET, handler = function(a) got[#got + 1] = a end }
    for k, v in pairs(opts or {}) do o[k] = v end
    return callback.new(o)
  end
  local function body(id, status) return cjson.encode({ id = id, status = status or 3 }) end
  local URL = "/cb?secret=" .. SECRET

  it("answers 200 and calls the handler with the action, its callbackUrl secret masked", function()
    local r = receiver()
    local action = { id = 5, status = 3, callbackUrl = "https://h.example/cb?x=1&secret=" .. SECRET }
    local status, rbody, headers = r:handle("POST", "https://h.example" .. URL,
      { ["Content-Type"] = "application/json" }, cjson.encode(action))
    assert.equal(200, status)
    assert.same({ ok = true }, cjson.decode(rbody))
    assert.equal("application/json", headers["Content-Type"])
    assert.equal(1, #got)
    assert.equal(5, got[1].id)
    assert.equal("https://h.example/cb?x=1&secret=***", got[1].callbackUrl)
    assert.equal(409, (r:handle("POST", URL, {}, cjson.encode(action))))
    assert.equal(1, #got)
  end)

  it("returns the handler's failure (secret masked) with its 500, and takes the action again later", function()
    local fail = true
    local r = callback.new{ secret = SECRET, handler = function()
      if fail then error("boom " .. SECRET) end
    end }
    local status, _, _, err = r:handle("POST", URL, nil, body(6))
    assert.equal(500, status)
    assert.matches("boom %*%*%*", err)
    fail = false
    assert.equal(200, (r:handle("POST", URL, nil, body(6))))
    assert.equal(409, (r:handle("POST", URL, nil, body(6))))
  end)

  it("remembers a bounded number of deliveries in memory (seen_size)", function()
    local r = receiver({ seen_size = 2 })
    for id = 1, 3 do assert.equal(200, (r:handle("POST", URL, nil, body(id)))) end
    assert.equal(409, (r:handle("POST", URL, nil, body(3))))
    assert.equal(409, (r:handle("POST", URL, nil, body(2))))
    assert.equal(200, (r:handle("POST", URL, nil, body(1)))) -- the oldest was forgotten
  end)

  it("remembers a delivery taken after a handler failure as long as any other (seen_size)", function()
    local calls, fail = {}, 3
    local r = callback.new{ secret = SECRET, seen_size = 2, handler = function(a)
      if fail > 0 then fail = fail - 1 error("not now") end
      calls[a.id] = (calls[a.id] or 0) + 1
    end }
    for _ = 1, 3 do assert.equal(500, (r:handle("POST", URL, nil, body(1)))) end
    assert.equal(200, (r:handle("POST", URL, nil, body(1))))
    assert.equal(200, (r:handle("POST", URL, nil, body(2))))
    -- the last two deliveries taken are 1 and 2: both are replays now
    assert.equal(409, (r:handle("POST", URL, nil, body(1))))
    assert.equal(409, (r:handle("POST", URL, nil, body(2))))
    assert.same({ 1, 1 }, calls)
  end)

  it("answers 503 (come again) to a delivery that arrives while the handler of the same one runs", function()
    local r, inner
    r = callback.new{ secret = SECRET, handler = function()
      -- a server that interleaves requests (coroutines) takes the sender's retry meanwhile
      if not inner then inner = { r:handle("POST", URL, nil, body(8)) } end
    end }
    assert.equal(200, (r:handle("POST", URL, nil, body(8))))
    assert.equal(503, inner[1])
    assert.equal("1", inner[3]["Retry-After"])
    assert.matches("being handled", cjson.decode(inner[2]).error)
    assert.equal(409, (r:handle("POST", URL, nil, body(8))))
  end)

  it("takes any of several secrets (rotation), and a seen store of the caller's", function()
    local store = { keys = {} }
    function store:add(key) if self.keys[key] then return false, "exists" end self.keys[key] = true return true end
    function store:delete(key) self.keys[key] = nil end
    local other = callback.secret()
    local r = receiver({ secret = { other, SECRET }, seen = store })
    assert.equal(200, (r:handle("POST", "/cb?secret=" .. other, nil, body(1))))
    assert.equal(200, (r:handle("POST", URL, nil, body(2))))
    assert.truthy(store.keys["talview-action:2:3"])
  end)

  it("makes secrets and callback URLs", function()
    local a, b = callback.secret(), callback.secret()
    assert.matches("^%x+$", a)
    assert.equal(64, #a)
    assert.are_not.equal(a, b)
    local url, secret = callback.url("https://hooks.example.test/talview")
    assert.equal("https://hooks.example.test/talview?secret=" .. secret, url)
    assert.equal(64, #secret)
    assert.equal("http://127.0.0.1:8091/cb?site=2&secret=" .. SECRET,
      (callback.url("http://127.0.0.1:8091/cb?site=2", SECRET)))
    -- the URL it makes is one its receiver takes
    assert.equal(200, (receiver({ secret = secret }):handle("POST", url, nil, body(9))))
  end)

  it("raises on a caller's mistake, before anything is received", function()
    local function where(fn)
      local ok, err = pcall(fn)
      assert.is_false(ok)
      return err
    end
    assert.matches("unknown option 'secrte'", where(function() callback.new{ secrte = SECRET, handler = print } end))
    assert.matches("callback_spec.lua:%d+: ", where(function() callback.new{ secret = "short", handler = print } end))
    assert.matches("handler must be a function", where(function() callback.new{ secret = SECRET } end))
    assert.matches("lua_shared_dict",
      where(function() callback.new{ secret = SECRET, handler = print, seen = "x" } end))
    assert.matches("base must be an http", where(function() callback.url("ftp://x/") end))
    -- a base that has a secret already would make a URL the receiver refuses (the secret twice)
    assert.matches("callback_spec.lua:%d+: callback.url: base already has a 'secret' parameter",
      where(function() callback.url("https://h.example/cb?secret=" .. SECRET, callback.secret()) end))
    assert.matches("bytes must be", where(function() callback.secret(4) end))
  end)

  it("names action statuses", function()
    assert.equal("requested", callback.status_name(1))
    assert.equal("processing", callback.status_name(2))
    assert.equal("completed", callback.status_name(3))
    assert.equal("failed", callback.status_name(99))
    assert.equal("deleted", callback.status_name(0))
    assert.is_nil(callback.status_name(7))
  end)
end)
