--- Callbacks of Talview actions: when an action is done (status 3, or 99 when it failed as a
-- whole) and its request had a `callbackUrl` and no `skipCallback: true`, the sandbox POSTs the
-- action object to that URL.
--
-- The seed names the callback (`callbackUrl`, `skipCallback`) but not its body, headers or any
-- signature; what the sandbox sends is its assumption, documented in docs/actions.md
-- ("Callbacks"): `POST <callbackUrl>` (the URL as given, query included),
-- `Content-Type: application/json`, the body the action object exactly as the API shows it,
-- no signature. A 2xx answer is a delivery; a 4xx other than 408 and 429 is a refusal (no
-- more attempts); anything else (5xx, 408, 429, a 3xx: redirects are not followed, no answer,
-- no connection) is tried again after `callback_backoff` seconds, doubling (at most 60), until
-- `callback_attempts` attempts were made. Every attempt is in the request log
-- (`kind = "callback"`). One attempt takes at most `callback_timeout` seconds.
--
-- The client is nginx's cosocket: http and https (the certificate is not verified: the sandbox
-- is a test tool) to an IP address or `localhost` (nginx resolves no other name without a
-- `resolver`).
-- @module assesskit.sandbox.callbacks

local ngx = ngx -- luacheck: read globals ngx
local json = require("assesskit.sandbox.json")
local config = require("assesskit.sandbox.config")
local log = require("assesskit.sandbox.log")

local type, ipairs, tonumber, tostring, math_min = type, ipairs, tonumber, tostring, math.min
local string_match, string_format, string_lower, string_sub, string_find =
  string.match, string.format, string.lower, string.sub, string.find

local M = {}

--- The user agent of callback requests.
M.user_agent = "assesskit-sandbox (Talview action callback)"

--- The longest wait between two attempts, in seconds.
M.max_backoff = 60

local deliveries = {}  -- every delivery not yet final, in start order
local epoch = 0
local attempted = 0
local batch           -- inside `M.batch`: its coroutine and the light threads it started

--- Forget every delivery (a reset); timers already set do nothing.
function M.clear()
  epoch = epoch + 1
  deliveries = {}
end

--- How many attempts were made since the worker started (every epoch).
-- @treturn number
function M.attempts()
  return attempted
end

--- Split an http(s) URL.
-- @tparam string url
-- @treturn[1] table `scheme`, `host`, `port`, `target` (path and query), `authority`
-- @treturn[2] nil
-- @treturn[2] string why
function M.parse_url(url)
  local scheme, rest = string_match(url, "^([Hh][Tt][Tt][Pp][Ss]?)://(.*)$")
  if not scheme then return nil, "not an http or https URL" end
  scheme = string_lower(scheme)
  local authority, target = string_match(rest, "^([^/?#]*)([^#]*)")
  authority = authority:gsub("^.*@", "") -- userinfo is not sent
  if target == "" then target = "/" elseif target:sub(1, 1) == "?" then target = "/" .. target end
  local host, port = string_match(authority, "^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = string_match(authority, "^([^:]+):?(%d*)$") end
  if not host or host == "" then return nil, "no host in the URL" end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if port < 1 or port > 65535 then return nil, "bad port in the URL" end
  return { scheme = scheme, host = host, port = port, target = target, authority = authority }
end

-- The most bytes of the body written in one send: each write gets only the time left.
local SEND_SLICE = 16384

-- One POST: the receiver's status, or nil and what went wrong. Connecting, the TLS handshake,
-- sending and reading the status line take `timeout` seconds in all: every socket operation
-- gets the time left (nginx's timeouts are per operation, and restart whenever a byte moves).
local function post(url, body, timeout)
  local u, err = M.parse_url(url)
  if not u then return nil, err end
  local addr = u.host == "localhost" and "127.0.0.1" or u.host
  if string_match(addr, ":") then addr = "[" .. addr .. "]" end
  local deadline = ngx.now() + timeout
  local sock = ngx.socket.tcp()
  -- true when there is time left (the socket's timeout set to it), else false
  local function time_left()
    ngx.update_time()
    local ms = math.floor((deadline - ngx.now()) * 1000)
    if ms < 1 then return false end
    sock:settimeouts(ms, ms, ms)
    return true
  end
  if not time_left() then return nil, "connect: timeout" end
  local ok, cerr = sock:connect(addr, u.port)
  if not ok then return nil, "connect: " .. tostring(cerr) end
  local function fail(what, why)
    sock:close()
    return nil, what .. ": " .. tostring(why)
  end
  if u.scheme == "https" then
    if not time_left() then return fail("tls", "timeout") end
    local hok, herr = sock:sslhandshake(nil, u.host, false)
    if not hok then return fail("tls", herr) end
  end
  local head = string_format("POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
    .. "Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
    u.target, u.authority, M.user_agent, #body)
  local data = head .. body
  for i = 1, #data, SEND_SLICE do
    if not time_left() then return fail("send", "timeout") end
    local sent, serr = sock:send(string_sub(data, i, i + SEND_SLICE - 1))
    if not sent then return fail("send", serr) end
  end
  -- the status line only, and at most 256 bytes of it: the receiver is not trusted either
  local line = ""
  while not string_find(line, "\n", 1, true) and #line < 256 do
    if not time_left() then return fail("no answer", "timeout") end
    local got, rerr = sock:receiveany(256 - #line)
    if not got then
      -- a receiver that closes after a partial line has said what it said
      if line == "" or rerr ~= "closed" then return fail("no answer", rerr) end
      break
    end
    line = line .. got
  end
  sock:close()
  local status = tonumber(string_match(line, "^HTTP/%d%.%d (%d%d%d)"))
  if not status then return nil, "not an HTTP answer" end
  return status
end

local function final(status)
  if status >= 200 and status < 300 then return "delivered" end
  if status >= 400 and status < 500 and status ~= 408 and status ~= 429 then return "refused" end
end

local schedule -- forward

-- One attempt of a delivery, logged; schedules the next when it failed.
local function attempt(d)
  if d.epoch ~= epoch or d.state ~= "waiting" then return end
  d.state = "sending"
  d.attempts = d.attempts + 1
  attempted = attempted + 1
  local body = json.encode(d.rec)
  local status, err
  if d.down and (d.down.attempts == nil or d.attempts <= d.down.attempts) then
    err = "connect: connection refused (sandbox fault callback_down)"
  else
    status, err = post(d.url, body, config.settings.callback_timeout)
  end
  log.record_callback({
    url = d.url, body = body, action_id = d.rec.id, action_status = d.rec.status,
    attempt = d.attempts, status = status, error = err,
    fault = (d.down and not status) and "callback_down" or nil,
    headers = { ["content-type"] = "application/json", ["user-agent"] = M.user_agent },
  })
  if d.epoch ~= epoch then return end
  local outcome = status and final(status)
  if outcome then
    d.state = outcome
  elseif d.attempts >= config.settings.callback_attempts then
    d.state = "failed"
  else
    d.state = "waiting"
    schedule(d, math_min(M.max_backoff, config.settings.callback_backoff * 2 ^ (d.attempts - 1)))
  end
  if d.state ~= "waiting" then
    for i, x in ipairs(deliveries) do
      if x == d then table.remove(deliveries, i) break end
    end
  end
end

local function on_timer(premature, d, due_attempt)
  if premature then return end
  -- `run` may have made this attempt already
  if d.attempts + 1 == due_attempt then attempt(d) end
end

schedule = function(d, delay)
  local ok, err = ngx.timer.at(delay, on_timer, d, d.attempts + 1)
  if not ok then ngx.log(ngx.ERR, "sandbox callbacks: cannot set a timer: ", tostring(err)) end
end

-- An attempt made now: inside `M.batch`, in a light thread of its own (so that one receiver's
-- wait does not hold the others'), else in this thread.
local function attempt_now(d)
  -- only the batch's own thread can wait for the threads it starts (a timer may run meanwhile)
  if batch and batch.co == coroutine.running() then
    local th, err = ngx.thread.spawn(attempt, d)
    if th then
      batch.threads[#batch.threads + 1] = th
      return
    end
    ngx.log(ngx.ERR, "sandbox callbacks: cannot start a thread: ", tostring(err))
  end
  attempt(d)
end

--- Run `fn`; the attempts it makes now (`start` inline, `run`) go side by side, and are over
-- when `batch` returns (each takes at most `callback_timeout`). For `POST /_sandbox/actions/run`.
-- @tparam function fn
-- @return what `fn` returns
function M.batch(fn)
  local outer = batch
  local mine = { co = coroutine.running(), threads = {} }
  batch = mine
  local ok, res = pcall(fn)
  batch = outer
  for _, th in ipairs(mine.threads) do ngx.thread.wait(th) end
  if not ok then error(res, 0) end
  return res
end

--- Start the callback of a finished action, unless it has no `callbackUrl` or asked
-- `skipCallback`.
-- @tparam table rec the action object (sent as it is at each attempt)
-- @tparam table cb `url`, `skip`, `down` (a `callback_down` fault)
-- @tparam boolean inline make the first attempt now (in a timer or `run`) instead of in a
--   timer of its own (when the action finished inside a request)
function M.start(rec, cb, inline)
  if not cb or type(cb.url) ~= "string" or cb.skip then return end
  local d = { rec = rec, url = cb.url, down = cb.down, attempts = 0, state = "waiting", epoch = epoch }
  deliveries[#deliveries + 1] = d
  if inline then attempt_now(d) else schedule(d, 0) end
end

--- Make one attempt of every delivery waiting for its next one (`POST /_sandbox/actions/run`).
function M.run()
  local waiting = {}
  for _, d in ipairs(deliveries) do
    if d.state == "waiting" then waiting[#waiting + 1] = d end
  end
  for _, d in ipairs(waiting) do attempt_now(d) end
end

--- Wait until no attempt is under way (or the deadline).
-- @tparam number deadline `ngx.now()` value
function M.wait_sending(deadline)
  while ngx.now() < deadline do
    local busy = false
    for _, d in ipairs(deliveries) do
      if d.state == "sending" then busy = true break end
    end
    if not busy then return end
    ngx.sleep(0.01)
  end
end

return M
