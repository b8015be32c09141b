-- The OpenResty example (examples/openresty/nginx.conf + gateway.lua) in a real nginx, in front
-- of the sandbox: GET /candidates/{id} through the SDK, a worker that stays free while Talview
-- is slow, one token request for many gateway requests across workers, JWT signing with the
-- LuaJIT build of the C core.
--
-- The spec uses the example's own nginx.conf, changing only what a test must: the port (free),
-- the repository paths (absolute), the number of workers, and an access log format with the
-- worker pid. nginx is started with the sandbox's credentials in its environment and stopped by
-- its pid.

local nginx = require("support.nginx")
local sys = require("support.sys")
local http = require("support.http")
local sandbox = require("support.sandbox")
local cjson = require("cjson")
local socket = require("socket")

local REPO = nginx.repo
local EXAMPLE = REPO .. "/examples/openresty"

-- Replaces exactly one occurrence of `old` (plain text); fails when the example changed.
local function replace_once(text, old, new)
  local s, e = text:find(old, 1, true)
  assert(s, "examples/openresty/nginx.conf no longer contains: " .. old)
  assert(not text:find(old, e + 1, true), "examples/openresty/nginx.conf has several: " .. old)
  return text:sub(1, s - 1) .. new .. text:sub(e + 1)
end

local function gateway_conf(workers)
  local conf = assert(sys.read(EXAMPLE .. "/nginx.conf"))
  conf = replace_once(conf, "listen 127.0.0.1:8088;", "listen 127.0.0.1:@P@ reuseport;")
  conf = replace_once(conf, "worker_processes 2;", "worker_processes " .. workers .. ";")
  conf = replace_once(conf, '"$prefix/?.lua;$prefix/../../lua/?.lua;$prefix/../../lua/?/init.lua;;"',
    '"' .. EXAMPLE .. "/?.lua;" .. REPO .. "/lua/?.lua;" .. REPO .. '/lua/?/init.lua;;"')
  conf = replace_once(conf, '"$prefix/../../build/luajit/?.so;', '"' .. REPO .. "/build/luajit/?.so;")
  conf = replace_once(conf, "access_log logs/access.log;",
    "log_format pids '$pid $status $request_uri'; access_log logs/access.log pids;")
  return nginx.user_line() .. "\n" .. conf
end

local function password_env(sb)
  local c = sb.credentials.password
  return {
    TALVIEW_BASE_URL = sb.url, TALVIEW_CLIENT_ID = c.client_id,
    TALVIEW_CLIENT_SECRET = c.client_secret, TALVIEW_USERNAME = c.username,
    TALVIEW_PASSWORD = c.password, TALVIEW_TIMEOUT = "10",
  }
end

local function jwt_env(sb)
  local c = sb.credentials.jwt
  return {
    TALVIEW_BASE_URL = sb.url, TALVIEW_GRANT = "jwt", TALVIEW_CLIENT_ID = c.client_id,
    TALVIEW_ISSUER = c.issuer, TALVIEW_PRIVATE_KEY_FILE = c.private_key_file,
    TALVIEW_SCOPE = c.scope, TALVIEW_AUDIENCE = c.audience,
  }
end

local function start_gateway(workers, environ)
  return nginx.start({ ports = { "P" }, conf = gateway_conf(workers), environ = environ,
    pid = "logs/nginx.pid" })
end

-- Opens a connection and sends GET path; the answer is read later with read_response.
local function send_get(port, path)
  return http.send(port, path, { host = "gateway" })
end

-- Reads a whole `Connection: close` response: status, body.
local function read_response(c)
  local status, _, body, err = http.receive(c)
  return status, body or err
end

-- Whether a response has started to arrive on c (without waiting).
local function has_answer(c)
  c:settimeout(0)
  local data, err, partial = c:receive(1)
  c:settimeout(30)
  if data then return true, data end
  return err ~= "timeout" or (partial ~= nil and partial ~= ""), partial
end

local function wait_for(pred, what)
  for _ = 1, 500 do
    if pred() then return end
    socket.sleep(0.01)
  end
  error("timed out waiting for " .. what)
end

describe("the OpenResty gateway example #ngx", function()
  local sb = sandbox.fixture({ lazy = true })
  local ids = {} -- candidates created in the sandbox

  lazy_setup(function()
    local tv = sb:talview()
    for i = 1, 40 do
      local cand = assert(tv.models.candidate:create({ email = "candidate" .. i .. "@example.com",
        first_name = "Candidate " .. i }))
      ids[i] = string.format("%d", cand.id)
    end
  end)

  before_each(function()
    sb:clear_faults()
    sb:clear_requests()
  end)

  describe("with the password grant", function()
    local gw

    lazy_setup(function()
      gw = start_gateway(1, password_env(sb))
    end)

    lazy_teardown(function()
      if gw then gw:stop() end
    end)

    it("serves GET /candidates/{id} with the candidate Talview returns", function()
      local want = assert(sb:talview().models.candidate:get(ids[5]))
      assert.are.equal("candidate5@example.com", want.email)
      sb:clear_requests()
      local status, body = read_response(send_get(gw.ports.P, "/candidates/" .. ids[5]))
      assert.are.equal(200, status, body)
      assert.are.same(want, cjson.decode(body))
      local calls = sb:requests({ path = "/models/candidate/" .. ids[5] })
      assert.are.equal(1, #calls)
      assert.are.equal("GET", calls[1].method)
      assert.are.equal("Bearer ***", calls[1].headers.authorization)
    end)

    it("answers 404 when Talview has no such candidate", function()
      local status, body = read_response(send_get(gw.ports.P, "/candidates/1"))
      assert.are.equal(404, status, body)
      assert.are.equal(404, cjson.decode(body).status)
    end)

    it("retries Talview's 503s like the libcurl transport, then answers 502", function()
      sb:fault({ kind = "status", status = 503, times = -1, path = "/models/candidate/" .. ids[6] })
      local status, body = read_response(send_get(gw.ports.P, "/candidates/" .. ids[6]))
      assert.are.equal(502, status)
      local err = cjson.decode(body)
      assert.are.equal("http", err.error)
      assert.are.equal(503, err.status)
      assert.are.equal(3, #sb:requests({ path = "/models/candidate/" .. ids[6] })) -- 1 + max_retries
      assert.is_nil(body:find("Bearer", 1, true))
    end)

    it("recovers when Talview fails once", function()
      sb:fault({ kind = "reset", times = 1, path = "/models/candidate/" .. ids[9] })
      local status = read_response(send_get(gw.ports.P, "/candidates/" .. ids[9]))
      assert.are.equal(200, status)
      assert.are.equal(2, #sb:requests({ path = "/models/candidate/" .. ids[9] }))
    end)

    it("keeps serving other clients while one Talview call waits (one worker)", function()
      -- a token first, so that neither request below waits for one
      assert.are.equal(200, (read_response(send_get(gw.ports.P, "/candidates/" .. ids[1]))))
      sb:fault({ kind = "slow", delay = 4, times = 1, path = "/models/candidate/" .. ids[7] })
      local slow = send_get(gw.ports.P, "/candidates/" .. ids[7])
      -- the slow call has reached Talview: the worker is now waiting on it
      wait_for(function() return #sb:requests({ path = "/models/candidate/" .. ids[7] }) == 1 end,
        "the gateway's call to reach the sandbox")
      local status = read_response(send_get(gw.ports.P, "/candidates/" .. ids[8]))
      assert.are.equal(200, status)
      -- the second request is complete while the first still has no answer
      assert.is_false((has_answer(slow)))
      local slow_status = read_response(slow)
      assert.are.equal(200, slow_status)
    end)
  end)

  describe("control: the same wait with the libcurl transport", function()
    local srv

    lazy_setup(function()
      local c = sb.credentials.password
      srv = nginx.start({ ports = { "P" }, servers = [[
      server {
        listen 127.0.0.1:@P@;
        location ~ ^/candidates/(\d+)$ {
          content_by_lua_block {
            local talview = require("assesskit.talview")
            local tv = talview.new({ base_url = "@URL@", transport = require("assesskit.core").session(),
              auth = { grant = "password", client_id = "@CID@", client_secret = "@CSECRET@",
                       username = "@USER@", password = "@PASS@" } })
            local v, err = tv.models.candidate:get(tonumber(ngx.var[1]))
            ngx.status = v and 200 or 502
            ngx.say(v and "ok" or tostring(err))
          }
        }
      }
      ]], vars = { URL = sb.url, CID = c.client_id, CSECRET = c.client_secret, USER = c.username,
        PASS = c.password } })
    end)

    lazy_teardown(function()
      if srv then srv:stop() end
    end)

    it("blocks the worker: the second request waits for the first", function()
      local warm_status, warm_body = read_response(send_get(srv.ports.P, "/candidates/" .. ids[1]))
      assert.are.equal(200, warm_status, warm_body)
      sb:fault({ kind = "slow", delay = 2, times = 1, path = "/models/candidate/" .. ids[7] })
      local slow = send_get(srv.ports.P, "/candidates/" .. ids[7])
      wait_for(function() return #sb:requests({ path = "/models/candidate/" .. ids[7] }) == 1 end,
        "the call to reach the sandbox")
      local status, body = read_response(send_get(srv.ports.P, "/candidates/" .. ids[8]))
      assert.are.equal(200, status, body)
      assert.is_true((has_answer(slow))) -- the first answer came before the second
      read_response(slow)
    end)
  end)

  describe("with four workers and the shared token cache", function()
    local gw

    lazy_setup(function()
      gw = start_gateway(4, password_env(sb))
    end)

    lazy_teardown(function()
      if gw then gw:stop() end
    end)

    it("makes one token request for many gateway requests", function()
      -- hold the first token request, so that every worker needs the token meanwhile
      sb:fault({ kind = "slow", delay = 1, times = 1, path = "/oauth2/token" })
      local conns = {}
      for i = 1, 32 do conns[i] = send_get(gw.ports.P, "/candidates/" .. ids[i]) end
      for i, c in ipairs(conns) do
        local status, body = read_response(c)
        assert.are.equal(200, status, "request " .. i .. ": " .. tostring(body))
      end
      assert.are.equal(1, #sb:requests({ path = "/oauth2/token" }))
      local tokens, distinct = {}, 0
      for _, e in ipairs(sb:requests({ path_prefix = "/models/candidate/" })) do
        if not tokens[e.auth.token] then distinct = distinct + 1 end
        tokens[e.auth.token] = true
      end
      assert.are.equal(1, distinct) -- every call carried the one token
      -- and the requests were spread over several workers
      local pids = {}
      local log = assert(sys.read(gw.dir .. "/logs/access.log"))
      for pid in log:gmatch("(%d+) 200 /candidates/") do pids[pid] = true end
      local n = 0
      for _ in pairs(pids) do n = n + 1 end
      assert.is_true(n >= 2, "only " .. n .. " worker served the requests")
    end)
  end)

  describe("with the JWT-bearer grant", function()
    local gw

    lazy_setup(function()
      gw = start_gateway(1, jwt_env(sb))
    end)

    lazy_teardown(function()
      if gw then gw:stop() end
    end)

    it("signs the assertion with the LuaJIT build of the C core inside nginx", function()
      local status, body = read_response(send_get(gw.ports.P, "/candidates/" .. ids[3]))
      assert.are.equal(200, status, body)
      local token_calls = sb:requests({ path = "/oauth2/token" })
      assert.are.equal(1, #token_calls)
      assert.are.equal(200, token_calls[1].status)
      assert.matches("jwt-bearer", token_calls[1].body, 1, true)
      local call = sb:requests({ path = "/models/candidate/" .. ids[3] })[1]
      assert.are.equal("jwt-bearer", call.auth.grant)
    end)
  end)
end)
