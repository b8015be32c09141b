-- The InterviewMocha v2/v3 client against the real sandbox (and, for answers the sandbox never
-- gives, a small nginx on loopback): test links, reports, the field spellings, errors, the API
-- key's secrecy, hooks, retries, endpoints/call, TLS.
-- Runs under Lua 5.4 and LuaJIT (tag luajit): no 5.4-only syntax here.

local sandbox = require("support.sandbox")
local nginx = require("support.nginx")
local interviewmocha = require("assesskit.interviewmocha")
local errors = require("assesskit.errors")

-- Does `needle` occur anywhere (keys or values, any depth) in `v`?
local function contains(v, needle, seen)
  seen = seen or {}
  local t = type(v)
  if t == "string" then return v:find(needle, 1, true) ~= nil end
  if t ~= "table" or seen[v] then return false end
  seen[v] = true
  for k, x in pairs(v) do
    if contains(k, needle, seen) or contains(x, needle, seen) then return true end
  end
  local mt = getmetatable(v)
  if mt and mt.__tostring and contains(tostring(v), needle, seen) then return true end
  return false
end

describe("interviewmocha client #luajit", function()
  local sb = sandbox.fixture({ reset = true, clear = true })
  local key, im

  setup(function()
    key = sb.credentials.interviewmocha.api_key
    im = sb:interviewmocha()
  end)

  teardown(function()
    if im then im:close() end
  end)

  describe("construction", function()
    it("defaults to the documented hosts and never shows the key in tostring", function()
      local c = interviewmocha.new({ api_key = "k-0123456789abcdef" })
      assert.equal("assesskit.interviewmocha(v2=https://api.interviewmocha.com/v2, "
        .. "v3=https://apiv3.interviewmocha.com/v3, api_key=***)", tostring(c))
      assert.equal("assesskit.interviewmocha(v2=https://api.interviewmocha.com/v2, "
        .. "v3=https://apiv3.interviewmocha.com/v3, api_key=none)",
        tostring(interviewmocha.new()))
      assert.is_false(contains(tostring(im), key))
      c:close()
    end)

    it("raises on wrong options and plain http:// to a non-loopback host", function()
      assert.has_error(function() interviewmocha.new("x") end)
      assert.has_error(function() interviewmocha.new({ api_key = 42 }) end)
      assert.has_error(function() interviewmocha.new({ v3_url = 7 }) end)
      assert.has_error(function() interviewmocha.new({ timeout = "soon" }) end,
        "assesskit.interviewmocha.new: option 'timeout' must be a number")
      assert.has_error(function() interviewmocha.new({ v2_url = "http://api.interviewmocha.com/v2" }) end)
      assert.has_no.errors(function()
        interviewmocha.new({ v2_url = "http://api.interviewmocha.com/v2", allow_http = true }):close()
      end)
    end)
  end)

  describe("tests:links", function()
    it("returns result.testLinks of the seed's test with every documented field", function()
      local links, err, res = im.tests:links(114110)
      assert.is_nil(err)
      local stored = {}
      for _, l in ipairs(sb:state("im_test_link")) do
        if l.testId == 114110 then stored[#stored + 1] = l end
      end
      assert.equal(3, #stored)
      assert.equal(#stored, #links)
      local fields = { "testId", "testLinkId", "testLinkName", "testLinkAccessKey", "accessTime",
        "startDateTime", "endDateTime", "timeZoneId", "inviteCandidateOnly", "imageProctoring",
        "emailToStakeholder", "testLinkStatus" }
      for i, l in ipairs(links) do
        for _, f in ipairs(fields) do
          assert.is_not_nil(l[f], f)
          assert.equal(stored[i][f], l[f], f)
        end
      end
      assert.equal(interviewmocha.null, links[1].startDateTime)
      assert.equal("New Link", links[2].testLinkName)
      assert.equal(200, res.status)
      assert.equal(res, interviewmocha.response(links))
      assert.equal(res, im:last_response())
    end)

    it("sends GET /v2/org/tests/{testId}/testlinks with the x-api-key header", function()
      assert(im.tests:links(114110))
      local log = sb:requests()
      assert.equal(1, #log)
      assert.equal("GET", log[1].method)
      assert.equal("/v2/org/tests/114110/testlinks", log[1].path)
      assert.equal("***", log[1].headers["x-api-key"]) -- present (the log masks it)
      assert.is_nil(log[1].headers.authorization)
    end)

    it("returns an empty list for a test without links", function()
      local links, err = im.tests:links(11225)
      assert.is_nil(err)
      assert.same({}, links)
    end)

    it("turns an unknown test's envelope into an error carrying its description", function()
      local links, err = im.tests:links(999)
      assert.is_nil(links)
      assert.equal("http", err.kind)
      assert.equal(404, err.status)
      assert.equal("Test not found.", err.message)
      assert.equal("404.1", err.code)
      assert.is_true(errors.is(err))
    end)

    it("accepts integral floats and digit strings, as decoded JSON gives them", function()
      assert(im.tests:links(114110.0))
      assert(im.tests:links("114110"))
      local log = sb:requests()
      assert.equal("/v2/org/tests/114110/testlinks", log[1].path)
      assert.equal("/v2/org/tests/114110/testlinks", log[2].path)
    end)

    it("refuses ids that are not positive Int64 values before sending anything", function()
      local bad = { 0, -3, 1.5, 0 / 0, math.huge, "", "12a", "0012", "-1", "1/2", "../x",
        "9223372036854775808", "99999999999999999999", {}, true }
      for _, v in ipairs(bad) do
        local links, err = im.tests:links(v)
        assert.is_nil(links, tostring(v))
        assert.equal("validation", err.kind, tostring(v))
        assert.equal("testId", err.fields[1].field)
      end
      local links, err = im.tests:links()
      assert.is_nil(links)
      assert.matches("parameter 'testId' is required", err.message)
      assert.equal(0, #sb:requests())
    end)

    it("sends ids beyond 2^53 exactly, as given in a string", function()
      local _, err = im.tests:links("9223372036854775807")
      assert.equal(400, err.status) -- the sandbox keeps ids to 18 digits
      local _, err2 = im.tests:links("9007199254740993")
      assert.equal(404, err2.status)
      local log = sb:requests()
      assert.equal("/v2/org/tests/9223372036854775807/testlinks", log[1].path)
      assert.equal("/v2/org/tests/9007199254740993/testlinks", log[2].path)
    end)
  end)

  describe("reports:get", function()
    it("sends reportType=1 in the query by default", function()
      local r, err, res = im.reports:get(225634)
      assert.is_nil(err)
      assert.equal(200, res.status)
      local log = sb:requests()
      assert.equal("/v3/reports/225634", log[1].path)
      assert.equal("reportType=1", log[1].query)
      assert.equal("***", log[1].headers["x-api-key"])
      assert.equal(225634, r.testInvitationId)
      assert.equal("dave@yopmail.com", r.candidateEmail)
      assert.equal(2, #r.sections)
      assert.is_nil(r.sections[1].skills)
    end)

    it("sends the report_type asked for", function()
      for _, rt in ipairs({ 1, 2, 3 }) do
        assert(im.reports:get(225634, { report_type = rt }))
      end
      local log = sb:requests()
      assert.equal("reportType=1", log[1].query)
      assert.equal("reportType=2", log[2].query)
      assert.equal("reportType=3", log[3].query)
    end)

    it("offers sectionId, skills and status on the seed's sample and keeps the raw spellings", function()
      local r = assert(im.reports:get(225634, { report_type = 3 }))
      assert.equal("Complete", r.status)
      local s1 = r.sections[1]
      assert.equal(1465186, s1.sectionId)
      assert.equal(1465186, s1.sectionID)
      assert.equal(s1.Skills, s1.skills)
      assert.equal(78689, s1.skills[1].qbId)
      assert.equal(1465186, s1.skills[1].sectionId)
      assert.equal(1465193, r.sections[2].sectionId)
    end)

    it("normalises the skill-wise report (report_type 2)", function()
      local r = assert(im.reports:get(2807325, { report_type = 2 }))
      assert.equal(3, #r.skills)
      for _, sk in ipairs(r.skills) do
        assert.is_number(sk.sectionId)
        assert.is_string(sk.qbName)
      end
    end)

    it("refuses a report_type other than 1, 2 or 3 before sending anything", function()
      for _, rt in ipairs({ 0, 4, "x", 2.5 }) do
        local r, err = im.reports:get(225634, { report_type = rt })
        assert.is_nil(r)
        assert.equal("validation", err.kind)
        assert.equal("reportType", err.fields[1].field)
      end
      assert.equal(0, #sb:requests())
    end)

    it("raises when params or opts are not tables", function()
      assert.has_error(function() im.reports:get(225634, 3) end, "reports.get: params must be a table")
      assert.has_error(function() im.reports:get(225634, {}, "fast") end, "reports.get: opts must be a table")
    end)

    it("blames the caller's line for a wrong argument", function()
      -- each call stands alone (not a tail call), so its own line is the caller's
      local function raised(f)
        local ok, msg = pcall(f)
        assert.is_false(ok)
        return msg
      end
      local here = "^[^:]*interviewmocha_client_spec%.lua:%d+: "
      assert.matches(here .. "reports%.get: params must be a table",
        raised(function() local v = im.reports:get(225634, 3) return v end))
      assert.matches(here .. "reports%.get: 'test_invitation_id' is a path value",
        raised(function() local v = im.reports:get(225634, { test_invitation_id = 1 }) return v end))
      assert.matches(here .. "assesskit: parameter 'x' cannot be a function",
        raised(function() local v = im.tests:links(114110, { x = print }, { raw_params = true }) return v end))
      assert.matches(here .. "reports%.get: undocumented parameter 'reprot_type' %(did you mean 'report_type'%?%)",
        raised(function() local v = im.reports:get(225634, { reprot_type = 3 }) return v end))
      assert.matches(here .. "interviewmocha:call: undocumented parameter 'reporttype' %(did you mean 'reportType'%?%)",
        raised(function() local v = im:call("reports.get", { testInvitationId = 1, reporttype = 3 }) return v end))
      assert.matches(here .. "reports%.get: undocumented parameter 'timeout' %(did you mean the option 'timeout'%?",
        raised(function() local v = im.reports:get(225634, { timeout = 3 }) return v end))
      assert.matches(here .. "interviewmocha:call: opts must be a table",
        raised(function() local v = im:call("tests.links", { testId = 1 }, 5) return v end))
    end)

    it("sends nothing for an undocumented parameter; opts.raw_params sends it as given", function()
      local before = #sb:requests()
      assert.has_error(function() im.reports:get(225634, { reprot_type = 3 }) end)
      assert.equal(before, #sb:requests())
      local r, err = im.reports:get(225634, { report_type = 3, trace = "t1" }, { raw_params = true })
      assert.is_nil(err)
      assert.is_table(r)
      local log = sb:requests()
      assert.equal(before + 1, #log)
      assert.matches("trace=t1", log[#log].query)
      assert.matches("reportType=3", log[#log].query)
    end)

    it("turns a 404 {errors: [...]} into the common error object", function()
      local r, err = im.reports:get(1)
      assert.is_nil(r)
      assert.equal("http", err.kind)
      assert.equal(404, err.status)
      assert.equal("Test invitation not found", err.message)
      assert.equal("Test invitation not found", err.fields[1].message)
      assert.equal("GET", err.method)
      assert.matches("/v3/reports/1%?reportType=1$", err.url)
    end)
  end)

  describe("the API key", function()
    it("is a validation error when missing, and nothing is sent", function()
      local c = sb:interviewmocha({ api_key = false })
      local links, err = c.tests:links(114110)
      assert.is_nil(links)
      assert.equal("validation", err.kind)
      assert.equal("api_key", err.fields[1].field)
      local r, err2 = c.reports:get(225634)
      assert.is_nil(r)
      assert.equal("validation", err2.kind)
      local r2, err3 = c:call("reports.get", { testInvitationId = 225634 })
      assert.is_nil(r2)
      assert.equal("validation", err3.kind)
      assert.equal(0, #sb:requests())
      c:close()
    end)

    it("treats an empty key as missing", function()
      local c = sb:interviewmocha({ api_key = "" })
      local _, err = c.tests:links(114110)
      assert.equal("validation", err.kind)
      assert.equal(0, #sb:requests())
      c:close()
    end)

    it("makes a rejected key an auth error, with the server's message and without the key", function()
      local wrong = "wrong-" .. key
      local c = sb:interviewmocha({ api_key = wrong })
      local r, err = c.reports:get(225634)
      assert.is_nil(r)
      assert.equal("auth", err.kind)
      assert.equal(400, err.status)
      assert.equal("ApiKey is not invalid or incorrect", err.message)
      local links, err2 = c.tests:links(114110)
      assert.is_nil(links)
      assert.equal("auth", err2.kind)
      assert.is_false(contains(err, wrong))
      assert.is_false(contains(tostring(err), wrong))
      assert.is_false(contains(tostring(c), wrong))
      c:close()
    end)

    it("never reaches a hook, an error or tostring, even when the server echoes it", function()
      local seen = {}
      local c = sb:interviewmocha({
        on_request = function(info) seen[#seen + 1] = info end,
        on_response = function(info) seen[#seen + 1] = info end,
      })
      assert(c.tests:links(114110))
      assert(c.reports:get(225634))
      local _, err = c.reports:get(1)
      assert.is_true(#seen >= 6)
      assert.equal("***", seen[1].headers["x-api-key"])
      assert.is_false(contains(seen, key))
      assert.is_false(contains(err, key))
      assert.is_false(contains(tostring(c), key))
      -- a server that puts the key in its message: redacted from the error
      local srv = nginx.start({ lua = false, locations = [[
        location /v3/reports/ {
          default_type application/json;
          return 400 '{"errors": ["ApiKey ]] .. key .. [[ is not invalid or incorrect"]}';
        }
      ]] })
      local c2 = interviewmocha.new({ api_key = key, v3_url = srv:url("/v3"), max_retries = 0 })
      local _, err2 = c2.reports:get(5)
      srv:stop()
      assert.equal("auth", err2.kind)
      assert.is_false(contains(err2, key))
      assert.matches("ApiKey %*%*%* is not invalid", err2.message)
      c2:close()
      c:close()
    end)
  end)

  describe("answers the sandbox never gives (nginx on loopback)", function()
    local srv, c

    setup(function()
      srv = nginx.start({ lua = false, locations = [[
        location = /v2/org/tests/1/testlinks {
          default_type application/json;
          return 200 '{"statuscode": "403.2", "description": "Test does not belong to your account.", "result": null}';
        }
        location = /v2/org/tests/2/testlinks {
          default_type application/json;
          return 200 '{"description": "no status", "result": {"testLinks": []}}';
        }
        location = /v2/org/tests/3/testlinks {
          default_type application/json;
          return 200 '{"statuscode": "200", "description": "ok", "result": {"testLinks": [{"testLinkId": 7}]}}';
        }
        location = /v2/org/tests/4/testlinks {
          default_type application/json;
          return 200 '{"statuscode": "2001", "description": "odd", "result": {"testLinks": []}}';
        }
        location = /v2/org/tests/5/testlinks {
          default_type application/json;
          return 200 '{"statuscode": "200.1", "description": "ok", "result": {"testLinks": "none"}}';
        }
        location /v3/reports/ {
          default_type application/json;
          return 400 '{"errors": ["testInvitationId is invalid", "reportType is invalid"]}';
        }
      ]] })
      c = interviewmocha.new({ api_key = "k-0123456789abcdef", v2_url = srv:url("/v2"),
        v3_url = srv:url("/v3"), max_retries = 0 })
    end)

    teardown(function()
      if c then c:close() end
      if srv then srv:stop() end
    end)

    it("checks the envelope's statuscode even under HTTP 200", function()
      local links, err = c.tests:links(1)
      assert.is_nil(links)
      assert.equal("auth", err.kind)
      assert.equal(403, err.status)
      assert.equal("403.2", err.code)
      assert.equal("Test does not belong to your account.", err.message)
    end)

    it("accepts a bare 200 statuscode and refuses one that only starts with 200", function()
      local links = assert(c.tests:links(3))
      assert.equal(7, links[1].testLinkId)
      local l2, err = c.tests:links(4)
      assert.is_nil(l2)
      assert.equal("decode", err.kind)
    end)

    it("makes an envelope without statuscode, or testLinks that is not a list, a decode error", function()
      local links, err = c.tests:links(2)
      assert.is_nil(links)
      assert.equal("decode", err.kind)
      local l2, err2 = c.tests:links(5)
      assert.is_nil(l2)
      assert.equal("decode", err2.kind)
    end)

    it("joins a 400 error list into the message and keeps each entry", function()
      local r, err = c.reports:get(5)
      assert.is_nil(r)
      assert.equal("http", err.kind)
      assert.equal(400, err.status)
      assert.equal("testInvitationId is invalid; reportType is invalid", err.message)
      assert.equal(2, #err.fields)
      assert.equal("reportType is invalid", err.fields[2].message)
    end)
  end)

  describe("retries and failures", function()
    it("retries a 503 and honours Retry-After", function()
      local slept = {}
      local c = sb:interviewmocha({ max_retries = 2, sleep = function(s) slept[#slept + 1] = s end })
      sb:fault({ kind = "status", status = 503, retry_after = 1, path = "/v3/reports", times = 1 })
      local r, err, res = c.reports:get(225634)
      assert.is_nil(err)
      assert.equal(225634, r.testInvitationId)
      assert.equal(2, res.attempts)
      assert.same({ 1 }, slept)
      assert.equal(2, #sb:requests())
      c:close()
    end)

    it("retries a 429 on v2 and gives up after max_retries", function()
      local slept = {}
      local c = sb:interviewmocha({ max_retries = 1, sleep = function(s) slept[#slept + 1] = s end })
      sb:fault({ kind = "rate_limit", retry_after = 2, path = "/v2/org/tests", times = -1 })
      local links, err = c.tests:links(114110)
      assert.is_nil(links)
      assert.equal("http", err.kind)
      assert.equal(429, err.status)
      assert.is_true(err.retryable)
      assert.equal(2, err.retry_after)
      assert.same({ 2 }, slept)
      assert.equal(2, #sb:requests())
      c:close()
    end)

    it("makes a malformed JSON body a decode error", function()
      sb:fault({ kind = "malformed_json", path = "/v3/reports" })
      local r, err = im.reports:get(225634)
      assert.is_nil(r)
      assert.equal("decode", err.kind)
    end)

    it("makes a refused connection a network error, with the key nowhere in it", function()
      local srv = nginx.start({ lua = false, locations = "" })
      local url = srv:url("/v3")
      srv:stop() -- nothing listens on that port any more
      local c = interviewmocha.new({ api_key = key, v3_url = url, max_retries = 0 })
      local r, err = c.reports:get(225634)
      assert.is_nil(r)
      assert.equal("network", err.kind)
      assert.is_false(contains(err, key))
      c:close()
    end)
  end)

  describe("endpoints and call", function()
    it("lists every catalogue endpoint with its method and URL", function()
      local eps = im:endpoints()
      local by = {}
      for _, e in ipairs(eps) do by[e.name] = e end
      assert.equal(2, #eps)
      assert.equal("GET", by["tests.links"].method)
      assert.equal("v2", by["tests.links"].api)
      assert.equal(sb.url .. "/v2/org/tests/{testId}/testlinks", by["tests.links"].url)
      assert.equal("/reports/{testInvitationId}", by["reports.get"].path)
      assert.equal(sb.url .. "/v3/reports/{testInvitationId}", by["reports.get"].url)
    end)

    it("calls an endpoint by name with the catalogue's parameter names", function()
      local links = assert(im:call("tests.links", { testId = 114110 }))
      assert.equal(3, #links)
      local r = assert(im:call("reports.get", { testInvitationId = 225634, reportType = 3 }))
      assert.equal(1465186, r.sections[1].sectionId)
      local log = sb:requests()
      assert.equal("/v3/reports/225634", log[2].path)
      assert.equal("reportType=3", log[2].query)
      local _, err = im:call("reports.get", { reportType = 3 })
      assert.equal("validation", err.kind)
      assert.equal(2, #sb:requests())
    end)

    it("raises on an unknown endpoint or non-table params", function()
      assert.has_error(function() im:call("tests.delete", {}) end,
        "interviewmocha:call: unknown endpoint tests.delete")
      assert.has_error(function() im:call("tests.links", 114110) end)
      assert.has_error(function() return im.tests.remove end)
    end)
  end)

  describe("over TLS", function()
    local tsb = sandbox.fixture({ tls = true })

    it("verifies the sandbox's certificate with ca_file, and refuses it without", function()
      local k = tsb.credentials.interviewmocha.api_key
      local ok = tsb:interviewmocha()
      local links, err = ok.tests:links(114110)
      assert.is_nil(err)
      assert.equal(3, #links)
      ok:close()
      local bad = tsb:interviewmocha({ ca_file = false })
      local l2, err2 = bad.tests:links(114110)
      assert.is_nil(l2)
      assert.equal("tls", err2.kind)
      assert.is_false(contains(err2, k))
      bad:close()
    end)
  end)
end)
