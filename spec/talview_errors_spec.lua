-- Talview client errors and retries against the real sandbox (HTTPS, with fault injection):
-- every error kind, and retries of 429 (honouring Retry-After), 502/503, resets, with POST
-- left alone unless the call opts in.

local sandbox = require("support.sandbox")
local recording = require("support.transport").recording
local errors = require("assesskit.errors")

describe("talview errors and retries", function()
  local sb = sandbox.fixture({ tls = true, reset = true, clear = true })
  local p

  setup(function()
    p = sb.credentials.password
  end)

  -- a client whose sleep records the delays (the server's faults are real)
  local function new_tv(opts)
    local slept = {}
    opts = opts or {}
    opts.sleep = function(s) slept[#slept + 1] = s end
    return sb:talview(opts), slept
  end

  local function calls(path)
    return #sb:requests({ path = path })
  end

  local function check_error(err, kind)
    assert.is_true(errors.is(err))
    assert.equal(kind, err.kind)
    local line = tostring(err)
    assert.is_nil(line:find("\n"))
    assert.is_nil(line:find(p.password, 1, true))
    assert.is_nil(line:find(p.client_secret, 1, true))
    return err
  end

  describe("kinds", function()
    it("http: an unknown path is a 404 with the server's message", function()
      local tv = new_tv()
      local v, err = tv:request("GET", "/models/no-such-resource")
      assert.is_nil(v)
      check_error(err, "http")
      assert.equal(404, err.status)
      assert.equal("GET", err.method)
      assert.equal(sb.url .. "/models/no-such-resource", err.url)
      assert.is_string(err.message)
    end)

    it("http: a wrong method is a 405", function()
      local _, err = new_tv():request("PATCH", "/user/me")
      check_error(err, "http")
      assert.equal(405, err.status)
    end)

    it("auth: a refused token is a 401 auth error", function()
      local _, err = new_tv({ auth = { access_token = "refused-token-000000" } }).user.me:get()
      check_error(err, "auth")
      assert.equal(401, err.status)
    end)

    it("validation: a missing required parameter, nothing sent", function()
      local _, err = new_tv().actions:invite({ candidates = { 1 } })
      check_error(err, "validation")
      assert.equal(0, #sb:requests())
    end)

    it("decode: a malformed JSON body", function()
      sb:fault({ kind = "malformed_json", path = "/user/me" })
      local _, err = new_tv().user.me:get()
      check_error(err, "decode")
      assert.equal(200, err.status)
    end)

    it("network: a connection reset with no response", function()
      sb:fault({ kind = "reset", path = "/user/me", times = -1 })
      local _, err = new_tv({ max_retries = 0 }).user.me:get()
      check_error(err, "network")
      assert.is_true(err.retryable)
    end)

    it("network: a truncated body", function()
      sb:fault({ kind = "truncate", path = "/user/me", times = -1 })
      local _, err = new_tv({ max_retries = 0 }).user.me:get()
      check_error(err, "network")
    end)

    it("timeout: an answer slower than the timeout", function()
      sb:fault({ kind = "slow", delay = 2, path = "/user/me" })
      local tv = new_tv({ timeout = 0.5, max_retries = 0 })
      assert(tv:authenticate())
      local _, err = tv.user.me:get()
      check_error(err, "timeout")
    end)

    it("tls: a server certificate we cannot verify, never retried", function()
      local rec = recording()
      local tv, slept = new_tv({ ca_file = false, transport = rec, max_retries = 3 })
      local _, err = tv.user.me:get()
      check_error(err, "tls")
      assert.is_false(err.retryable)
      assert.equal(1, #rec.sent)
      assert.equal(0, #slept)
      rec.close()
    end)

    it("too_large: an answer over max_response_size", function()
      local tv = new_tv({ max_response_size = 64 })
      local _, err = tv.user.me:get()
      -- the token answer itself is over 64 bytes
      check_error(err, "too_large")
    end)

    it("io: a file to upload that cannot be read, nothing sent", function()
      local tv = new_tv()
      assert(tv:authenticate())
      sb:clear_requests()
      local _, err = tv.spreadsheet:upload({ file = "/nonexistent/file.csv" })
      check_error(err, "io")
      _, err = tv.models.file:upload({ file = "/nonexistent/file.bin" })
      check_error(err, "io")
      assert.equal(0, #sb:requests())
    end)
  end)

  describe("retries", function()
    it("retries a 429 and honours Retry-After", function()
      sb:fault({ kind = "rate_limit", retry_after = 2, path = "/user/me" })
      local tv, slept = new_tv()
      local me, err, res = tv.user.me:get()
      assert.is_nil(err)
      assert.is_table(me)
      assert.equal(2, res.attempts)
      assert.same({ 2 }, slept)
      local log = sb:requests({ path = "/user/me" })
      assert.equal(429, log[1].status)
      assert.equal(200, log[2].status)
    end)

    it("caps Retry-After at max_retry_after", function()
      sb:fault({ kind = "rate_limit", retry_after = 3600, path = "/user/me" })
      local tv, slept = new_tv({ max_retry_after = 5 })
      assert.is_table((tv.user.me:get()))
      assert.same({ 5 }, slept)
    end)

    it("retries 503 twice then succeeds, with growing backoff", function()
      sb:fault({ kind = "status", status = 503, times = 2, path = "/user/me" })
      local tv, slept = new_tv({ random = function() return 1 end })
      local me, err = tv.user.me:get()
      assert.is_nil(err)
      assert.is_table(me)
      assert.equal(3, calls("/user/me"))
      assert.same({ 0.5, 1 }, slept)
    end)

    it("retries a 502 and a reset for PUT and DELETE", function()
      local tv = new_tv()
      sb:fault({ kind = "status", status = 502, path = "/user/me", method = "PUT" })
      local v, err = tv.user.me:update({ name = "Renamed" })
      assert.is_nil(err)
      assert.is_truthy(v)
      assert.equal(2, calls("/user/me"))
      sb:fault({ kind = "reset", path = "/models/candidate/10300", method = "DELETE" })
      v, err = tv.models.candidate:delete(10300)
      assert.is_nil(err)
      assert.is_truthy(v)
      assert.equal(2, calls("/models/candidate/10300"))
    end)

    it("gives up after max_retries with a retryable error", function()
      sb:fault({ kind = "rate_limit", retry_after = 1, times = -1, path = "/user/me" })
      local tv, slept = new_tv({ max_retries = 2 })
      local _, err = tv.user.me:get()
      check_error(err, "http")
      assert.equal(429, err.status)
      assert.is_true(err.retryable)
      assert.equal(1, err.retry_after)
      assert.equal(3, calls("/user/me"))
      assert.equal(2, #slept)
    end)

    it("does not retry a POST unless the call opts in", function()
      -- seeded: assessment section 2001, candidates 10001-10300
      local body = { assessmentSectionID = 2001, endDate = "2030-01-01 00:00:00", candidates = { 10250 } }
      local tv = new_tv()
      sb:fault({ kind = "status", status = 503, path = "/actions/invite" })
      local _, err = tv.actions:invite(body)
      check_error(err, "http")
      assert.equal(503, err.status)
      assert.equal(1, calls("/actions/invite"))
      sb:fault({ kind = "status", status = 503, path = "/actions/invite" })
      local v
      v, err = tv.actions:invite(body, { retry = true })
      assert.is_nil(err)
      assert.is_truthy(v)
      assert.equal(3, calls("/actions/invite"))
    end)
  end)
end)
