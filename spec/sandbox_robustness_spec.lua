-- The sandbox under odd input: every catalogue endpoint with wrong types, absurd pages,
-- negative and non-numeric ids, bad JSON and bad expand. No request may make it raise a Lua
-- error (a 5xx, a dropped connection, or a trace in error.log).
local sandbox = require("support.sandbox")
local sys = require("support.sys")
local catalogue = require("assesskit.talview.catalogue")

local body_methods = { POST = true, PUT = true, PATCH = true }

-- Lua errors the sandbox's worker wrote to its error log (its own 500s and aborted handlers).
local function lua_errors(sb)
  local out = {}
  for line in (sys.read(sb.dir .. "/logs/error.log") or ""):gmatch("[^\n]+") do
    if line:find("sandbox: ", 1, true) or line:find("runtime error", 1, true) then out[#out + 1] = line end
  end
  return out
end

describe("sandbox robustness", function()
  local sb = sandbox.fixture({ token = true, reset = true })

  -- Sends every request; collects those answered with a 5xx or not at all.
  local function sweep(requests)
    local bad = {}
    for _, r in ipairs(requests) do
      local res = sb:request(r[1], r[2], { token = sb.tok, body = r[3], headers = r[4] })
      if not res.status or res.status >= 500 then
        bad[#bad + 1] = r[1] .. " " .. r[2] .. " -> " .. tostring(res.status or res.error)
      end
    end
    return bad
  end

  local ids = { "-1", "0", "abc", "nan", "inf", "1e999", "1.5", "99999999999999999999", "%FF" }
  local queries = { "page=-5&pageSize=-1", "page=abc&pageSize=abc", "page=nan&pageSize=nan",
    "per-page=nan", "page=inf&pageSize=inf", "page=1e309&pageSize=1e309", "pageSize=0",
    "page=99999999999999999999", "page%5B%5D=1&pageSize%5Bx%5D=2", "expand=,,,...,a..b,",
    "expand%5B%5D=candidate&expand%5Bx%5D=assessment",
    "expand=assessment.assessment.assessment.assessment.assessment.assessment.assessment",
    "fields=&sort=-,--,", "sort%5B%5D=id&fields%5Ba%5D=1&s%5B%5D=x", "ids=abc&ids%5Ba%5D%5Bb%5D=1",
    "%zz=%zz&a%5B%5B%5B=1&=&&", "suppress_error_code%5B%5D=1" }
  local json = { ["Content-Type"] = "application/json" }
  local bodies = {
    { "null", json }, { "[]", json }, { "1", json }, { '"x"', json }, { "{", json },
    { string.rep("[", 1000), json }, { '{"a": 1e999, "b": -0, "c": "\\ud800"}', json },
    { '{"email": 5, "id": "abc", "_links": 5, "organization_id": [1, 2], "first_name": {}}', json },
    { '{"candidates": [null, true, {"id": null}], "assessmentCandidates": [{"id": "x"}], "panel": [{}],'
      .. ' "sections": [1], "assessmentSections": [], "rating": "x", "eventUsers": 5, "event_id": 60001,'
      .. ' "assessmentSectionID": {}, "statusSortKey": "nan", "liveSessionID": 1e999}', json },
    { "a[b][c]=1&a=2&a[]=3&candidates[0][id]=nan", { ["Content-Type"] = "application/x-www-form-urlencoded" } },
    { "--zz\r\n", { ["Content-Type"] = "multipart/form-data" } },
    { "--zz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--zz--\r\n",
      { ["Content-Type"] = "multipart/form-data; boundary=zz" } },
  }

  local function path_with(e, value)
    return (e.path:gsub("{[%w_]+}", (value:gsub("%%", "%%%%"))))
  end

  it("answers odd ids on every catalogue path without a server error", function()
    local requests = {}
    for _, e in ipairs(catalogue.endpoints) do
      for _, id in ipairs(ids) do
        requests[#requests + 1] = { e.method, path_with(e, id), body_methods[e.method] and "{}" or nil,
          body_methods[e.method] and json or nil }
      end
    end
    assert.same({}, sweep(requests))
    assert.same({}, lua_errors(sb))
  end)

  it("answers odd query strings and bodies on every catalogue path without a server error", function()
    local requests = {}
    for _, e in ipairs(catalogue.endpoints) do
      local path = e.path:gsub("{oid}", "2"):gsub("{uid}", "41"):gsub("{[%w_]+}", "1")
      for _, q in ipairs(queries) do requests[#requests + 1] = { e.method, path .. "?" .. q } end
      if body_methods[e.method] then
        for _, b in ipairs(bodies) do requests[#requests + 1] = { e.method, path, b[1], b[2] } end
      end
    end
    assert.same({}, sweep(requests))
    assert.same({}, lua_errors(sb))
  end)

  it("pages a list asked for NaN or infinite pages like one asked for none", function()
    local plain = sb:request("GET", "/models/candidate", { token = sb.tok })
    for _, q in ipairs({ "pageSize=nan", "per-page=nan&page=nan", "pageSize=inf&page=-inf" }) do
      local r = sb:request("GET", "/models/candidate?" .. q, { token = sb.tok })
      assert.equal(200, r.status, q)
      assert.equal(plain.headers["x-pagination-per-page"], r.headers["x-pagination-per-page"], q)
      assert.same(plain.json, r.json, q)
    end
  end)

  it("answers odd InterviewMocha ids, report types and PDF ids with 4xx", function()
    local key = { ["x-api-key"] = sb.credentials.interviewmocha.api_key }
    for _, path in ipairs({ "/v2/org/tests/-1/testlinks", "/v2/org/tests/nan/testlinks", "/v3/reports/-1",
      "/v3/reports/99999999999999999999", "/v3/reports/225634?reportType=nan", "/v3/reports/225634?reportType=",
      "/files/PDFReport?id%5B%5D=1",
      "/files/PDFReport", "/v2", "/v3/", "/v2/org/tests//testlinks" }) do
      local r = sb:request("GET", path, { headers = key })
      assert.is_true(r.status >= 400 and r.status < 500, path .. " " .. tostring(r.status))
    end
    assert.same({}, lua_errors(sb))
  end)

  it("refuses fault specs and headers with numbers that are not numbers (NaN) or not whole", function()
    for _, spec in ipairs({ { kind = "slow", delay = "nan" }, { kind = "status", status = "nan" },
      { kind = "status", times = "nan" }, { kind = "status", times = 1.5 },
      { kind = "rate_limit", retry_after = "nan" } }) do
      assert.has_error(function() sb:fault(spec) end)
    end
    assert.same({}, sb:faults())
    for _, h in ipairs({ "slow; delay=nan", "status; status=nan", "rate_limit; retry_after=nan",
      "status; times=1.5" }) do
      local r = sb:request("GET", "/models/candidate", { token = sb.tok, headers = { ["X-Sandbox-Fault"] = h } })
      assert.equal(400, r.status, h)
    end
    assert.same({}, lua_errors(sb))
  end)

  it("refuses run-time settings that would break paging or are not finite", function()
    local before = sb:config()
    for _, changes in ipairs({ { max_page_size = 0 }, { default_page_size = 0 }, { default_page_size = 2.5 },
      { token_ttl = "nan" }, { token_ttl = "inf" }, { refresh_ttl = -1 } }) do
      assert.has_error(function() sb:config(changes) end)
    end
    assert.same(before, sb:config())
  end)

  it("answers odd token requests with OAuth2 errors, never a server error", function()
    local jwt = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    local iss = "eyJpc3MiOiJzZXJ2aWNlLWFjY291bnRAc2FuZGJveC5hc3Nlc3NraXQudGVzdCJ9" -- {"iss": the demo issuer}
    local requests = {}
    for _, b in ipairs({ '{"grant_type": 5}', '{"grant_type": "password", "username": {}, "password": []}',
      '{"grant_type": "refresh_token", "refresh_token": {}, "client_id": "sandbox-client",'
        .. ' "client_secret": "sandbox-client-secret"}',
      '{"grant_type": "' .. jwt .. '", "assertion": "a.bnVsbA.c"}',
      '{"grant_type": "' .. jwt .. '", "assertion": "a.WzFd.c"}',
      '{"grant_type": "' .. jwt .. '", "assertion": "a.' .. iss .. '.c", "client_id": 5}',
      '{"grant_type": "' .. jwt .. '", "assertion": "W10.' .. iss .. '.c"}',
      '{"grant_type": "' .. jwt .. '", "assertion": "eyJhbGciOiJSUzI1NiJ9.' .. iss .. '.AAAA"}' }) do
      requests[#requests + 1] = { "POST", "/oauth2/token", b, json }
    end
    local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }
    requests[#requests + 1] = { "POST", "/oauth2/token", "grant_type=password",
      { ["Content-Type"] = form["Content-Type"], Authorization = "Basic !!!!" } }
    requests[#requests + 1] = { "POST", "/oauth2/token", "grant_type%5B%5D=password", form }
    assert.same({}, sweep(requests))
    assert.same({}, lua_errors(sb))
  end)

  it("keeps its request log and records readable after deeply nested input", function()
    sb:clear_requests()
    -- a query nested past PHP's 64 levels (dropped), one just under, and a deep JSON body
    sb:request("GET", "/models/candidate?deep" .. string.rep("%5Bx%5D", 80) .. "=1&ok"
      .. string.rep("%5Bx%5D", 60) .. "=1", { token = sb.tok })
    local deep = string.rep("[", 150) .. string.rep("]", 150)
    local c = sb.credentials.password
    local r = sb:request("POST", "/oauth2/token", { headers = json, body = '{"grant_type": "password", "client_id": "'
      .. c.client_id .. '", "client_secret": "' .. c.client_secret .. '", "nested": ' .. deep .. "}" })
    assert.equal(400, r.status)
    r = sb:request("POST", "/models/candidate", { token = sb.tok, headers = json,
      body = '{"email": "deep@example.test", "first_name": ' .. deep .. "}" })
    assert.equal(201, r.status)
    assert.equal(200, sb:request("GET", "/models/candidate/" .. r.json.id, { token = sb.tok }).status)
    assert.equal("deep@example.test", sb:state("candidate", r.json.id).email)
    local log = sb:requests()
    assert.equal(4, #log)
    assert.is_nil(log[1].args.deep)
    assert.is_table(log[1].args.ok)
    assert.falsy(sb:request("GET", "/_sandbox/requests").body:find(c.client_secret, 1, true))
    assert.same({}, lua_errors(sb))
  end)

  it("parses a large form body with appended array items in linear time", function()
    -- `a[]=` appends; finding the next index by scanning the array each time was quadratic,
    -- and 180 kB of it held the single worker for tens of seconds
    local body = string.rep("a%5B%5D=1&", 50000)
    local r = sb:request("POST", "/models/candidate", { token = sb.tok, body = body, timeout = 10,
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
    assert.equal(422, r.status) -- parsed, and no email in it
    local log = sb:requests()
    assert.equal(#body, log[#log].body_size)
  end)
end)
