-- Fault injection in the sandbox: per request (X-Sandbox-Fault) and through the control
-- endpoint (sb:fault). Raw sockets where the failure is below HTTP.
local sandbox = require("support.sandbox")
local http = require("support.http")
local cjson = require("cjson")

-- Send a raw HTTP/1.1 GET to the sandbox; returns the connected socket (nothing read yet).
local function raw_send(sb, path, headers)
  return http.send(sb.url:match("^http://127%.0%.0%.1:(%d+)"), path, { headers = headers, timeout = 10 })
end

-- Read a whole response from a raw socket: status, headers (lower case), body, error.
local raw_read = http.receive

describe("sandbox faults", function()
  local sb = sandbox.fixture({ token = true, reset = true })

  local function get(path, headers)
    return sb:request("GET", path, { token = sb.tok, headers = headers })
  end

  it("resets the connection: no response at all", function()
    local r = get("/models/candidate/10001", { ["X-Sandbox-Fault"] = "reset" })
    assert.is_nil(r.status)
    assert.truthy(r.error)
    local status, _, _, err = raw_read(raw_send(sb, "/models/candidate/10001",
      { Authorization = "Bearer " .. sb.tok, ["X-Sandbox-Fault"] = "reset" }))
    assert.is_nil(status)
    assert.equal("closed", err)
    assert.equal(200, get("/models/candidate/10001").status)
  end)

  it("truncates the body: Content-Length promises more than arrives", function()
    local status, headers, body = raw_read(raw_send(sb, "/models/candidate/10001",
      { Authorization = "Bearer " .. sb.tok, ["X-Sandbox-Fault"] = "truncate" }))
    assert.equal(200, status)
    assert.is_true(tonumber(headers["content-length"]) > #body)
    assert.is_true(#body > 0)
    assert.is_nil(get("/models/candidate/10001", { ["X-Sandbox-Fault"] = "truncate" }).status)
  end)

  it("answers 429 with Retry-After", function()
    local r = get("/models/candidate", { ["X-Sandbox-Fault"] = "rate_limit; retry_after=7" })
    assert.equal(429, r.status)
    assert.equal("7", r.headers["retry-after"])
    assert.equal("Too Many Requests", r.json.name)
  end)

  it("answers 500, 502 and 503 with an HTML body", function()
    for _, code in ipairs({ 500, 502, 503 }) do
      local r = get("/models/candidate", { ["X-Sandbox-Fault"] = "status; status=" .. code })
      assert.equal(code, r.status)
      assert.matches("^text/html", r.headers["content-type"])
      assert.matches("<html>", r.body, 1, true)
      assert.is_nil(r.json)
    end
    local r = get("/models/candidate", { ["X-Sandbox-Fault"] = "status; status=503; retry_after=2" })
    assert.equal("2", r.headers["retry-after"])
  end)

  it("sends malformed JSON as application/json", function()
    local r = get("/models/candidate/10001", { ["X-Sandbox-Fault"] = "malformed_json" })
    assert.equal(200, r.status)
    assert.matches("^application/json", r.headers["content-type"])
    assert.is_false(pcall(cjson.decode, r.body))
  end)

  it("holds a slow response while the single worker serves other requests", function()
    local slow = raw_send(sb, "/models/candidate/10001",
      { Authorization = "Bearer " .. sb.tok, ["X-Sandbox-Fault"] = "slow; delay=3" })
    -- another request is answered while the slow one waits
    assert.equal(200, get("/models/candidate/10002").status)
    slow:settimeout(0)
    local early, err = slow:receive(1)
    assert.is_nil(early)
    assert.equal("timeout", err)
    slow:settimeout(10)
    local status, _, body = raw_read(slow)
    assert.equal(200, status)
    assert.equal(10001, cjson.decode(body).id)
  end)

  it("sends half a body, then the rest after a delay (slow_body)", function()
    local r = get("/models/candidate/10001", { ["X-Sandbox-Fault"] = "slow_body; delay=0.2" })
    assert.equal(200, r.status)
    assert.equal(10001, r.json.id)
  end)

  it("expires the request's token now, for this and every later request", function()
    local other = sb:token()
    local r = get("/models/candidate", { ["X-Sandbox-Fault"] = "expire_token" })
    assert.equal(401, r.status)
    assert.matches("expired", r.headers["www-authenticate"])
    assert.equal(401, get("/models/candidate").status)
    assert.equal(200, sb:request("GET", "/models/candidate", { token = other }).status)
    sb.tok = sb:token()
  end)

  it("fails N times then succeeds (armed through the control endpoint)", function()
    local armed = sb:fault({ kind = "status", status = 503, times = 2, path = "/models/candidate" })
    assert.equal(1, #armed)
    assert.is_number(armed[1].id)
    assert.equal(200, get("/models/assessment").status) -- another path is not hit
    assert.equal(503, get("/models/candidate").status)
    assert.equal(1, #sb:faults())
    assert.equal(503, get("/models/candidate/10001").status)
    assert.equal(200, get("/models/candidate").status)
    assert.equal(0, #sb:faults())
  end)

  it("fails N times then succeeds for the same header (a client's retries)", function()
    local h = { ["X-Sandbox-Fault"] = "status; status=502; times=2; id=spec-retry" }
    assert.equal(502, get("/models/candidate", h).status)
    assert.equal(502, get("/models/candidate", h).status)
    assert.equal(200, get("/models/candidate", h).status)
    assert.equal(200, get("/models/candidate", h).status)
  end)

  it("matches method and path, and can hit the token endpoint", function()
    sb:fault({ kind = "rate_limit", retry_after = 3, method = "POST", path = "/oauth2/token" })
    assert.equal(200, get("/models/candidate").status)
    local c = sb.credentials.password
    local r = sb:request("POST", "/oauth2/token", { body = { grant_type = "password", client_id = c.client_id,
      client_secret = c.client_secret, username = c.username, password = c.password } })
    assert.equal(429, r.status)
    assert.equal("3", r.headers["retry-after"])
    assert.truthy(sb:token())
  end)

  it("never faults the control endpoints, and clears and resets faults", function()
    sb:fault({ kind = "reset", times = -1 })
    assert.is_table(sb:requests())
    assert.equal(1, #sb:faults())
    assert.is_nil(get("/models/candidate").status)
    sb:clear_faults()
    assert.equal(200, get("/models/candidate").status)
    sb:fault({ kind = "reset", times = -1 })
    sb:reset()
    assert.equal(200, get("/models/candidate").status)
  end)

  it("refuses a bad fault spec and a bad fault header", function()
    assert.has_error(function() sb:fault({ kind = "explode" }) end)
    assert.has_error(function() sb:fault({ kind = "status", times = 0 }) end)
    assert.has_error(function() sb:fault({ kind = "slow", delay = -1 }) end)
    local r = get("/models/candidate", { ["X-Sandbox-Fault"] = "explode" })
    assert.equal(400, r.status)
    assert.matches("X%-Sandbox%-Fault", r.json.message)
  end)

  it("records the fault applied in the request log", function()
    sb:clear_requests()
    get("/models/candidate", { ["X-Sandbox-Fault"] = "rate_limit" })
    local log = sb:requests()
    assert.equal("rate_limit", log[#log].fault)
    assert.equal(429, log[#log].status)
  end)
end)
