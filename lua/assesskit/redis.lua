--- A store on Redis: a fleet of processes, on one machine or many, acts as one client.
--
-- Give every client of a credential, in every process, the same Redis store and they share
-- what must be one per credential (docs/DESIGN.md, "Stores"):
--
-- * **the token**: one token request for the whole fleet per expiry (and per 401), by
--   whoever needs it first, under a lock in Redis; the others wait and read it. The token is
--   kept **sealed** (AES-256-GCM under a key derived with HKDF-SHA256 from the credential's
--   secret, which never leaves the process): read access to Redis alone gives no usable
--   token. Key names hold a hash of the credential's identity, never a secret.
-- * **the rate budget** (`store:budget(key)`): a `Retry-After` pause seen by any process
--   holds every process; `max_rate` is a token bucket in Redis, permits taken in small
--   batches; the adaptive in-flight limit is fleet-wide once a 429 or 503 has cut it.
-- * **bulk jobs** (`store:journal(name)`): a journal for `client:map` shared by every process
--   running the same job; each item is done by exactly one of them.
--
-- **Redis down or unreachable.** Tokens and budgets fall back to process-local state (a
-- token of the process's own, a local budget) and the store says so once through `on_event`
-- (`{event = "redis_down", message =}`); it tries Redis again every `retry_interval` seconds
-- and says `{event = "redis_up"}` when it is back, then the fleet converges on one token
-- again. Nothing waits past `timeout` for Redis, and a request is never sent twice because
-- of it. A journal needs Redis: `store:journal` fails without it, and a job whose Redis goes
-- away stops taking new items (see `journal`).
--
-- **Where.** Outside nginx the store talks to Redis through the C core (libhiredis, one
-- connection per store). Inside nginx it uses `resty.redis` (Debian's `lua-nginx-redis`,
-- module `nginx.redis`) over cosockets with nginx's connection pool; in phases without
-- cosockets (init, init_worker, log, ...) it works on local state.
--
-- The Redis password is never in an error, a log line, an event, `tostring(store)` or a
-- field of the store.
-- @module assesskit.redis
-- @usage
-- local store = require("assesskit.redis").new{ url = "redis://:pw@10.0.0.5:6379/0" }
-- local tv = require("assesskit.talview").new{ base_url = url, auth = creds, store = store }
-- -- a bulk job shared by every process that runs it:
-- local results = tv:map(rows, create, { journal = assert(store:journal("invites-2026-12")),
--   key = function(row) return row.email end })
-- luacheck: read globals ngx
local type, tostring, tonumber, pairs, ipairs, pcall, setmetatable, getmetatable, error, select, next =
  type, tostring, tonumber, pairs, ipairs, pcall, setmetatable, getmetatable, error, select, next
local string_format, string_match, string_sub, string_find, string_lower =
  string.format, string.match, string.sub, string.find, string.lower
local math_floor, math_min, math_max = math.floor, math.min, math.max
local unpack = table.unpack or unpack -- luacheck: ignore

local core = require("assesskit.core")
local errors = require("assesskit.errors")
local url = require("assesskit.url")
local client = require("assesskit.client")
local journal = require("assesskit.journal")

local json_encode, json_decode = client.json_encode, client.json_decode

local M = {}

local OPTIONS = {
  url = true, prefix = true, timeout = true, on_event = true, sleep = true, clock = true,
  retry_interval = true, lock_lease = true, pool_size = true, keepalive_timeout = true,
}
local DOWN_KINDS = { network = true, timeout = true, closed = true, protocol = true,
  too_large = true, auth = true }
-- Error replies of a Redis that cannot serve the store now (full with noeviction, a read-only
-- replica after a failover, loading its data, a script running too long, refusing writes
-- after a failed save, refusing this user): like Redis away, not a failure of the one call.
local UNAVAILABLE = { OOM = true, READONLY = true, LOADING = true, BUSY = true, MASTERDOWN = true,
  MISCONF = true, NOAUTH = true, WRONGPASS = true, NOPERM = true, TRYAGAIN = true,
  CLUSTERDOWN = true, NOREPLICAS = true }

local function unavailable(msg)
  return type(msg) == "string" and UNAVAILABLE[string_match(msg, "^(%u+) ")] == true
end

-- Whether a failure (kind, message) means the store cannot use Redis now.
local function unusable(kind, msg)
  return DOWN_KINDS[kind] or (kind == "redis" and unavailable(msg))
end
-- Renewal-lock polling: first step, largest step (seconds).
local LOCK_STEP, LOCK_MAX_STEP = 0.002, 0.05
-- A token is kept in Redis this long after it expires (seconds), at most this long.
local TOKEN_GRACE, TOKEN_MAX_TTL = 60, 31 * 86400

-- store -> {password =, user =}: never a field of the store.
local private = setmetatable({}, { __mode = "k" })

local Store = {}
Store.__index = Store

-- ------------------------------------------------------------------------------------------
-- Runtime: nginx cosockets, or the C core

local function in_cosocket_phase()
  if type(ngx) ~= "table" or type(ngx.get_phase) ~= "function" then return false end
  local ok, ngx_transport = pcall(require, "assesskit.ngx.transport")
  return ok and ngx_transport.available() == true
end

local function inside_nginx()
  return type(ngx) == "table" and type(ngx.get_phase) == "function"
end

local function default_clock()
  if inside_nginx() then
    return function() ngx.update_time() return ngx.now() end
  end
  local ok, socket = pcall(require, "socket")
  if ok then return socket.gettime end
  return os.time
end

-- How the store waits (for a lock): a scheduler task or a light thread is suspended, never
-- the process, when they exist.
local function default_sleep()
  return function(s)
    if in_cosocket_phase() then return ngx.sleep(s) end
    local ok, scheduler = pcall(require, "assesskit.scheduler")
    if ok and type(scheduler) == "table" and type(scheduler.sleep) == "function" then
      return scheduler.sleep(s)
    end
    return require("socket").sleep(s)
  end
end

-- resty.redis as Debian installs it (nginx.redis), or as OpenResty does (resty.redis).
local resty_redis
local function load_resty()
  if resty_redis == nil then
    local ok, mod = pcall(require, "nginx.redis")
    if not ok then ok, mod = pcall(require, "resty.redis") end
    resty_redis = ok and mod or false
  end
  return resty_redis
end

-- resty.redis replies in the core's shape: nil -> false, an error element -> {err = msg}.
local function from_resty(v)
  if v == ngx.null then return false end
  if type(v) == "table" then
    if v[1] == false and type(v[2]) == "string" and v[3] == nil then return { err = v[2] } end
    local out = {}
    for i = 1, #v do out[i] = from_resty(v[i]) end
    return out
  end
  return v
end

local function resty_failure(err)
  if err == "timeout" then return "timeout" end
  return "network"
end

-- A connection over a resty.redis object, with the core connection's methods.
local RestyConn = {}
RestyConn.__index = RestyConn

function RestyConn:command(name, ...)
  local red = self.red
  local res, err = red[string_lower(name)](red, ...)
  if res == nil then
    self.broken = true
    return nil, "Redis: " .. tostring(err), resty_failure(err)
  end
  if res == false then return nil, err, "redis" end
  return from_resty(res)
end

function RestyConn:pipeline(cmds)
  local red = self.red
  red:init_pipeline(#cmds)
  for _, cmd in ipairs(cmds) do
    red[string_lower(cmd[1])](red, select(2, unpack(cmd)))
  end
  local res, err = red:commit_pipeline()
  if not res then
    self.broken = true
    return nil, "Redis: " .. tostring(err), resty_failure(err)
  end
  return from_resty(res)
end

function RestyConn:is_closed()
  return self.broken == true
end

function RestyConn:close()
  if self.broken then self.red:close() return end
  self.red:set_keepalive(self.keepalive, self.pool_size)
end

-- ------------------------------------------------------------------------------------------
-- Construction

local function parse_url(s)
  if type(s) ~= "string" then
    error("assesskit.redis.new: url must be a string like redis://[user:password@]host:port/db", 3)
  end
  local u, why = url.parse(s, { redis = 6379 })
  if not u then
    error("assesskit.redis.new: bad url (" .. errors.mask_url(why) .. ")", 3)
  end
  if u.query or u.fragment then
    error("assesskit.redis.new: the url takes no query or fragment", 3)
  end
  local db = 0
  if u.path ~= "" and u.path ~= "/" then
    db = tonumber(string_match(u.path, "^/(%d+)$"))
    if not db then error("assesskit.redis.new: the url's path must be /<database number>", 3) end
  end
  local user, password
  if u.userinfo and u.userinfo ~= "" then
    local a, b = string_match(u.userinfo, "^([^:]*):(.*)$")
    if a then user, password = url.decode(a), url.decode(b) else password = url.decode(u.userinfo) end
    if user == "" then user = nil end
    if password == "" then password = nil end
  end
  return { host = u.host, port = u.port or 6379, db = db, user = user, password = password }
end

local function suggest(name)
  local best, bd
  for k in pairs(OPTIONS) do
    local d = 0
    for i = 1, math_max(#k, #name) do
      if string_sub(k, i, i) ~= string_sub(name, i, i) then d = d + 1 end
    end
    if not bd or d < bd then best, bd = k, d end
  end
  return best
end

--- Create a Redis store. No connection is made until the store is used.
-- @tparam table opts
--   `url` (required: `redis://[user:password@]host[:port][/db]`, percent-encoded),
--   `prefix` (of every key, default `"assesskit:"`),
--   `timeout` (seconds for each Redis call, default 1),
--   `retry_interval` (seconds on local state before trying Redis again, default 1),
--   `lock_lease` (seconds a token-renewal lock outlives a holder that died, default 15),
--   `on_event` (`function(event)`: `{event = "redis_down", message =}` once when Redis
--   becomes unreachable, `{event = "redis_up"}` when it is back; errors it raises are ignored),
--   `sleep` (`function(seconds)` lock waits use; default: suspend the running scheduler task
--   or nginx light thread, else block), `clock` (`function() -> epoch seconds`),
--   inside nginx: `pool_size` (default 30), `keepalive_timeout` (ms, default 60000)
-- @treturn table the store
-- @raise on a malformed url or an unknown option (naming the nearest one)
function M.new(opts)
  if type(opts) ~= "table" then error("assesskit.redis.new: opts must be a table", 2) end
  for k in pairs(opts) do
    if not OPTIONS[k] then
      error(string_format("assesskit.redis.new: unknown option '%s' (did you mean '%s'?)",
        tostring(k), suggest(tostring(k))), 2)
    end
  end
  local cfg = parse_url(opts.url)
  local function num(name, dflt, min)
    local v = opts[name]
    if v == nil then return dflt end
    if type(v) ~= "number" or v ~= v or v < min then
      error(string_format("assesskit.redis.new: %s must be a number >= %s", name, tostring(min)), 3)
    end
    return v
  end
  for _, f in ipairs({ "on_event", "sleep", "clock" }) do
    if opts[f] ~= nil and type(opts[f]) ~= "function" then
      error("assesskit.redis.new: " .. f .. " must be a function", 2)
    end
  end
  if opts.prefix ~= nil and type(opts.prefix) ~= "string" then
    error("assesskit.redis.new: prefix must be a string", 2)
  end
  local self = setmetatable({
    host = cfg.host, port = cfg.port, db = cfg.db, user = cfg.user,
    prefix = opts.prefix or "assesskit:",
    timeout = num("timeout", 1, 0.001),
    retry_interval = num("retry_interval", 1, 0),
    lock_lease = num("lock_lease", 15, 0.01),
    pool_size = num("pool_size", 30, 1),
    keepalive_timeout = num("keepalive_timeout", 60000, 0),
    on_event = opts.on_event,
    sleep = opts.sleep or default_sleep(),
    clock = opts.clock or default_clock(),
    down = false, retry_at = 0, epoch_n = 0,
    shas = {}, budgets = {}, fallback = nil,
  }, Store)
  private[self] = { password = cfg.password }
  -- the nginx pool of this server, database and account (the password only as a hash)
  self.pool = "assesskit:" .. cfg.host .. ":" .. cfg.port .. ":" .. cfg.db .. ":"
    .. (cfg.user or "") .. ":" .. string_sub(core.b64url_encode(core.sha256(cfg.password or "")), 1, 12)
  return self
end

--- The secret values of the store (its Redis password), for the clients given it to mask
-- wherever they could show (`token_store`'s optional `secrets()`, docs/DESIGN.md "Secrets").
-- @treturn table array of strings
function Store:secrets()
  local pw = private[self].password
  return pw and { pw } or {}
end

function Store:__tostring()
  return string_format("assesskit.redis(%s:%d/%d%s)", self.host, self.port, self.db,
    self.down and ", down" or "")
end

-- ------------------------------------------------------------------------------------------
-- Connections, failures, events

local function redact(self, msg)
  local pw = private[self].password
  return errors.redact(tostring(msg), pw and { pw } or nil)
end

local function emit(self, event)
  if self.on_event then pcall(self.on_event, event) end
end

-- name -> the source of a Lua script the store runs in Redis (filled below).
local SCRIPTS = {}
-- name -> function(reply) -> whether the script's reply has the shape its callers read (a
-- server that is not Redis, or not in step, may answer anything: that is a protocol failure,
-- never a Lua error in a caller).
local SHAPES = {}

-- AUTH and SELECT on a new connection, then every script loaded once: a Redis that does not
-- let this user in (a password missing from the url: NOAUTH) or does not let it run scripts
-- (an ACL user without @scripting: NOPERM) is found here, as a refusal (kind `auth`: the store
-- works on local state and says so once), not by every later use failing on its own.
local function greet(self, c)
  local pw = private[self].password
  if pw then
    local ok, msg
    if self.user then ok, msg = c:command("AUTH", self.user, pw)
    else ok, msg = c:command("AUTH", pw) end
    if not ok then
      return nil, "Redis refused the credentials (" .. redact(self, msg) .. ")", "auth"
    end
  end
  if self.db ~= 0 then
    local ok, msg = c:command("SELECT", self.db)
    if not ok then return nil, "Redis refused SELECT " .. self.db .. " (" .. redact(self, msg) .. ")", "auth" end
  end
  local names, cmds = {}, {}
  for name, src in pairs(SCRIPTS) do
    names[#names + 1] = name
    cmds[#cmds + 1] = { "SCRIPT", "LOAD", src }
  end
  local res, msg, kind = c:pipeline(cmds)
  if not res then return nil, redact(self, msg), kind end
  for n, name in ipairs(names) do
    local sha = res[n]
    if type(sha) == "table" then
      return nil, "Redis refused the store's scripts (" .. redact(self, sha.err) .. ")", "auth"
    elseif type(sha) ~= "string" then
      return nil, "Redis answered SCRIPT LOAD with a " .. type(sha), "protocol"
    end
    self.shas[name] = sha
  end
  return true
end

local function connect(self)
  if in_cosocket_phase() then
    local mod = load_resty()
    if not mod then return nil, "nginx.redis (lua-nginx-redis) is not installed", "network" end
    local red = mod:new()
    red:set_timeout(math_floor(self.timeout * 1000))
    local ok, err = red:connect(self.host, self.port, { pool = self.pool })
    if not ok then
      return nil, string_format("cannot connect to Redis at %s:%d: %s", self.host, self.port,
        tostring(err)), resty_failure(err)
    end
    local c = setmetatable({ red = red, keepalive = self.keepalive_timeout,
      pool_size = self.pool_size }, RestyConn)
    if (red:get_reused_times() or 0) == 0 then
      local gok, gmsg, gkind = greet(self, c)
      if not gok then c.broken = true c:close() return nil, gmsg, gkind end
    end
    return c
  end
  if inside_nginx() then
    -- init, init_worker, log...: no cosockets, and blocking the worker is not an option
    return nil, "no cosockets in nginx's '" .. tostring(ngx.get_phase()) .. "' phase", "closed"
  end
  local c = self.conn
  if c and not c:is_closed() then return c end
  self.conn = nil
  local msg, kind
  c, msg, kind = core.redis_connect { host = self.host, port = self.port, timeout = self.timeout }
  if not c then return nil, msg, kind end
  local ok, gmsg, gkind = greet(self, c)
  if not ok then c:close() return nil, gmsg, gkind end
  self.conn = c
  return c
end

local function release(self, c)
  if getmetatable(c) == RestyConn then c:close() end
  -- a core connection is kept in self.conn (closed by the core itself on a failure)
  if c.is_closed and c:is_closed() and self.conn == c then self.conn = nil end
end

local function mark_down(self, msg)
  if not self.down then
    self.down = true
    self.epoch_n = self.epoch_n + 1
    emit(self, { event = "redis_down", store = tostring(self), message = msg })
  end
  self.retry_at = self.clock() + self.retry_interval
end

local function mark_up(self)
  if self.down then
    self.down = false
    self.epoch_n = self.epoch_n + 1
    emit(self, { event = "redis_up", store = tostring(self) })
  end
end

-- Runs fn(conn) on a connection. Returns what fn returns; when Redis cannot be reached (or
-- is known to be down and `force` is not set): nil, message, "down".
function Store:_run(fn, force)
  if self.down and not force and self.clock() < self.retry_at then
    return nil, "Redis is unreachable", "down"
  end
  local c, msg = connect(self)
  if c then
    local a, b, k
    if self.down then
      -- back only when Redis takes a write again (a full or read-only Redis answers reads)
      local pa, pb, pk = c:command("SET", self.prefix .. "probe", "1", "PX", 1000)
      if pa == nil and unusable(pk, pb) then a, b, k = nil, pb, pk end
    end
    if b == nil then a, b, k = fn(c) end
    release(self, c)
    if a ~= nil or not unusable(k, b) then
      mark_up(self)
      if a == nil and b ~= nil then b = redact(self, b) end -- an error reply may echo anything
      return a, b, k
    end
    msg = b
  end
  msg = redact(self, msg)
  mark_down(self, msg)
  return nil, msg, "down"
end

-- EVALSHA of a registered script (EVAL when Redis does not know it: first use, restart).

local function numbers(res, n)
  if type(res) ~= "table" then return false end
  for i = 1, n do
    if type(res[i]) ~= "number" then return false end
  end
  return true
end

-- Gives up a connection whose stream cannot be trusted (never back to nginx's pool).
local function drop(c)
  if getmetatable(c) == RestyConn then c.broken = true end
  c:close()
end

local function script(c, self, name, keys, args)
  local src = SCRIPTS[name]
  local sha = self.shas[name]
  if not sha then
    local msg, kind
    sha, msg, kind = c:command("SCRIPT", "LOAD", src)
    if type(sha) ~= "string" then
      if sha == nil then return nil, msg, kind end
      drop(c)
      return nil, "Redis answered SCRIPT LOAD with a " .. type(sha), "protocol"
    end
    self.shas[name] = sha
  end
  local cmd = { "EVALSHA", sha, #keys }
  for _, k in ipairs(keys) do cmd[#cmd + 1] = k end
  for _, a in ipairs(args) do cmd[#cmd + 1] = a end
  local res, msg, kind = c:command(unpack(cmd))
  if res == nil and kind == "redis" and string_find(msg, "NOSCRIPT", 1, true) then
    cmd[1], cmd[2] = "EVAL", src -- Redis restarted, or its script cache was flushed
    res, msg, kind = c:command(unpack(cmd))
  end
  if res ~= nil and SHAPES[name] and not SHAPES[name](res) then
    drop(c) -- not Redis, or not in step with us: start again on a new connection
    return nil, "Redis answered the " .. name .. " script out of shape", "protocol"
  end
  return res, msg, kind
end

--- A number that changes whenever the state this process shares may have changed under it
-- (Redis went away or came back): a token manager that sees it change reads the store again
-- instead of trusting its own copy, so that the fleet goes back to one token. While Redis is
-- away, this is where the store looks whether it is back (once per `retry_interval`).
-- @treturn number
function Store:epoch()
  if self.down and self.clock() >= self.retry_at then
    -- ask Redis whether it is back (at most once per retry_interval while it is away)
    self:_run(function(c) return c:command("PING") end)
  end
  return self.epoch_n
end

--- Whether the store works on local state now (Redis unreachable).
-- @treturn boolean
function Store:is_down()
  return self.down
end

--- Close the store's connection (outside nginx). The store can still be used: it connects
-- again.
function Store:close()
  if self.conn then self.conn:close() self.conn = nil end
end

-- ------------------------------------------------------------------------------------------
-- Local state while Redis is away

local Local = {}
Local.__index = Local

local function fallback(self)
  local f = self.fallback
  if not f then
    f = setmetatable({ entries = {}, locks = {}, sleep = self.sleep, clock = self.clock }, Local)
    self.fallback = f
  end
  return f
end

function Local:get(key) return self.entries[key] end
function Local:set(key, entry) self.entries[key] = entry return true end
function Local:delete(key) self.entries[key] = nil end
function Local:lock(key, timeout)
  local locks, waited, step = self.locks, 0, LOCK_STEP
  while locks[key] do
    if waited >= timeout then return nil, "timeout" end
    local d = math_min(step, timeout - waited)
    self.sleep(d)
    waited, step = waited + d, math_min(step * 2, LOCK_MAX_STEP)
  end
  local mine = {}
  locks[key] = mine
  return function() if locks[key] == mine then locks[key] = nil end end
end

-- ------------------------------------------------------------------------------------------
-- Tokens

local function check_key(key, where)
  if type(key) ~= "string" or key == "" then
    error("assesskit.redis:" .. where .. ": key must be a non-empty string", 3)
  end
end

-- Key names of a credential's identity: a hash, never a secret.
local function names(self, key)
  local h = core.b64url_encode(core.sha256(key))
  return self.prefix .. "token:" .. h, self.prefix .. "lock:" .. h
end

local function seal_key(secret, name)
  return assert(core.hkdf(secret, "assesskit token", name, 32))
end

--- The token entry of a credential, or nil.
-- @tparam string key the credential's identity (the token manager's key; never a secret)
-- @tparam[opt] string secret the credential's secret: the entry is opened with a key derived
--   from it. Without it the store shares nothing (the entry is process-local).
-- @treturn table|nil `{token =, expires_at =, lifetime =, refresh_token =}`
function Store:get(key, secret)
  check_key(key, "get")
  if secret == nil then return fallback(self):get(key) end
  local name = names(self, key)
  local blob, _, kind = self:_run(function(c) return c:command("GET", name) end)
  if blob == nil and kind == "down" then return fallback(self):get(key) end
  if type(blob) ~= "string" then return nil end
  local plain = core.aead_open(seal_key(secret, name), blob, name)
  if not plain then return nil end -- sealed under another secret (rotated): as if missing
  local ok, e = pcall(json_decode, plain)
  if not ok or type(e) ~= "table" or type(e.token) ~= "string" or type(e.expires_at) ~= "number" then
    return nil
  end
  if e.refresh_token == client.null then e.refresh_token = nil end
  return e
end

--- Store the token entry of a credential, sealed (AES-256-GCM, HKDF-SHA256 key from `secret`).
-- It expires from Redis a minute after the token does.
-- @tparam string key
-- @tparam table entry `{token =, expires_at =, lifetime =, refresh_token =}`
-- @tparam[opt] string secret as for `get`
-- @treturn true|nil
-- @treturn string|nil the reason it was not stored
function Store:set(key, entry, secret)
  check_key(key, "set")
  if type(entry) ~= "table" then error("assesskit.redis:set: entry must be a table", 2) end
  if secret == nil then return fallback(self):set(key, entry) end
  local name = names(self, key)
  local plain = json_encode({ token = entry.token, expires_at = entry.expires_at,
    lifetime = entry.lifetime, refresh_token = entry.refresh_token })
  local sealed = assert(core.aead_seal(seal_key(secret, name), plain, name))
  local ttl = (tonumber(entry.expires_at) or 0) - self.clock() + TOKEN_GRACE
  local ms = math_floor(math_max(1, math_min(ttl, TOKEN_MAX_TTL)) * 1000)
  local ok, msg, kind = self:_run(function(c) return c:command("SET", name, sealed, "PX", ms) end)
  if ok == nil then
    if kind == "down" then return fallback(self):set(key, entry) end
    return nil, msg
  end
  return true
end

--- Drop the token entry of a credential.
-- @tparam string key
function Store:delete(key)
  check_key(key, "delete")
  fallback(self):delete(key)
  local name = names(self, key)
  self:_run(function(c) return c:command("DEL", name) end)
end

SCRIPTS.unlock = [[
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0]]

--- Take the renewal lock of a credential: one holder at a time in the whole fleet. Waits
-- (suspending a task or a light thread) at most `timeout` seconds. A holder that dies keeps
-- it at most `lock_lease` seconds; and a waiter stops waiting as soon as the credential's
-- token changes in Redis (the holder has renewed it, even if its release was lost): it then
-- holds nothing, and reads the new token. With Redis down, the lock is the process's own.
-- @tparam string key
-- @tparam[opt=30] number timeout seconds
-- @treturn[1] function `release()` (idempotent)
-- @treturn[2] nil
-- @treturn[2] string `"timeout"`, or why the lock could not be taken
function Store:lock(key, timeout)
  check_key(key, "lock")
  timeout = timeout or 30
  local tname, lname = names(self, key)
  local owner = core.b64url_encode(core.random_bytes(12))
  local lease = math_floor(self.lock_lease * 1000)
  local deadline = self.clock() + timeout
  local step = LOCK_STEP
  local seen -- the token as it was when we started waiting
  while true do
    local res, msg, kind = self:_run(function(c)
      local r, m, k = c:pipeline { { "SET", lname, owner, "NX", "PX", lease }, { "GET", tname } }
      if r and type(r[1]) == "table" and unavailable(r[1].err) then return nil, r[1].err, "redis" end
      return r, m, k
    end)
    if res == nil then
      if kind == "down" then
        return fallback(self):lock(key, math_max(0, deadline - self.clock()))
      end
      return nil, msg
    end
    if res[1] == "OK" then
      local done = false
      return function()
        if done then return end
        done = true
        for _ = 1, 2 do -- once more if Redis missed it, else others wait for the lease
          local ok = self:_run(function(c) return script(c, self, "unlock", { lname }, { owner }) end, true)
          if ok ~= nil then break end
        end
      end
    end
    if type(res[1]) == "table" then return nil, redact(self, res[1].err) end
    if seen == nil then
      seen = res[2]
    elseif res[2] ~= seen then
      return function() end -- renewed meanwhile: nothing to hold
    end
    local left = deadline - self.clock()
    if left <= 0 then return nil, "timeout" end
    self.sleep(math_min(step, left))
    step = math_min(step * 2, LOCK_MAX_STEP)
  end
end

-- ------------------------------------------------------------------------------------------
-- The rate budget

-- Seconds between two looks at the shared budget (a pause set by another process is seen
-- at most this late).
local SYNC_EVERY = 0.02
-- Seconds a batch of max_rate permits may be kept before use (then it is dropped): any
-- one-second window sees at most max_rate * (1 + HOLD) + burst requests.
local HOLD = 0.04
-- How long a request waits before asking again for a slot under the in-flight limit.
local SLOT_POLL = 0.005
-- A pause that ends at most this much after the one a caller waited out does not hold it.
local PAUSE_SLACK = 0.02
-- Seconds a process's published in-flight count counts (it publishes at every look).
local PROC_TTL = 5

local NOW_MS = [[
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
]]

-- KEYS: pause, bucket, aimd, procs. ARGV: proc, in_flight, rate ('' none), burst, want.
-- Publishes this process's in-flight count; returns {pause left ms, limit (-1: none), gen,
-- permits granted, ms until the next permit}.
SCRIPTS.budget_sync = NOW_MS .. [[
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2] .. ' ' .. (now + ]] .. PROC_TTL * 1000 .. [[))
redis.call('PEXPIRE', KEYS[4], 600000)
local pause = tonumber(redis.call('GET', KEYS[1]) or '0')
local left = 0
if pause > now then left = pause - now end
local a = redis.call('HMGET', KEYS[3], 'limit', 'gen')
local limit, gen = tonumber(a[1] or '-1'), tonumber(a[2] or '0')
local granted, wait = 0, 0
local rate, want = tonumber(ARGV[3]), tonumber(ARGV[5])
if rate and want > 0 and left == 0 then
  local burst = tonumber(ARGV[4])
  local b = redis.call('HMGET', KEYS[2], 'tokens', 'stamp')
  local tokens, stamp = tonumber(b[1] or '1'), tonumber(b[2] or now)
  tokens = math.min(burst, tokens + (now - stamp) * rate / 1000)
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens), 'stamp', now)
  redis.call('PEXPIRE', KEYS[2], 600000)
  if granted == 0 then wait = math.ceil((1 - tokens) * 1000 / rate) end
end
return {left, limit, gen, granted, wait}]]
SHAPES.budget_sync = function(res) return numbers(res, 5) end

-- KEYS: pause. ARGV: ms. Returns the ms left of the pause now in force.
SCRIPTS.budget_pause = NOW_MS .. [[
local till = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if till > cur then redis.call('SET', KEYS[1], till, 'PX', tonumber(ARGV[1]) + 1000) else till = cur end
return till - now]]
SHAPES.budget_pause = function(res) return type(res) == "number" end

-- The fleet's requests in flight: the sum of the counts the processes publish (each at every
-- look at the budget, and at every permit and release while the limit is cut), a count
-- forgotten PROC_TTL after its process stopped publishing; `me`'s own count is `mine`.
local IN_FLIGHT = NOW_MS .. [[
local function in_flight(procs, me, mine)
  local total = mine
  local h = redis.call('HGETALL', procs)
  for i = 1, #h, 2 do
    if h[i] ~= me then
      local n, till = string.match(h[i + 1], '^(%d+) (%d+)$')
      if n and tonumber(till) > now then total = total + tonumber(n)
      else redis.call('HDEL', procs, h[i]) end
    end
  end
  return total
end
local function publish(procs, me, n)
  redis.call('HSET', procs, me, n .. ' ' .. (now + ]] .. PROC_TTL * 1000 .. [[))
  redis.call('PEXPIRE', procs, 600000)
end
]]

-- KEYS: aimd, procs. ARGV: proc, its in-flight count. A place under the in-flight limit:
-- {1 granted | 0 full | -1 no limit any more, limit, gen}.
SCRIPTS.budget_take = IN_FLIGHT .. [[
local a = redis.call('HMGET', KEYS[1], 'limit', 'gen')
local gen = tonumber(a[2] or '0')
local mine = tonumber(ARGV[2])
if not a[1] then return {-1, -1, gen} end
local limit = tonumber(a[1])
if in_flight(KEYS[2], ARGV[1], mine) >= limit then
  publish(KEYS[2], ARGV[1], mine)
  return {0, limit, gen}
end
publish(KEYS[2], ARGV[1], mine + 1)
return {1, limit, gen}]]
SHAPES.budget_take = function(res) return numbers(res, 3) end

-- KEYS: aimd, procs. ARGV: outcome, the permit's gen, this process's in-flight count (after
-- this release), proc. Publishes the count and applies AIMD: a pushback cuts the limit to half
-- of what the fleet has in flight, once per round (the permits of the round before a cut carry
-- an older gen); answers grow it by one per `limit` answers until it is back at the ceiling,
-- where it is lifted. Returns {limit (-1: none), gen}.
SCRIPTS.budget_release = IN_FLIGHT .. [[
local a = redis.call('HMGET', KEYS[1], 'limit', 'gen', 'ceiling', 'grown')
local limit, gen = tonumber(a[1] or '-1'), tonumber(a[2] or '0')
local ceiling, grown = tonumber(a[3] or '0'), tonumber(a[4] or '0')
local mine = tonumber(ARGV[3])
publish(KEYS[2], ARGV[4], mine)
if ARGV[1] == 'pushback' then
  if tonumber(ARGV[2]) ~= gen then return {limit, gen} end
  local total = in_flight(KEYS[2], ARGV[4], mine + 1)
  local current = limit
  if current < 0 or total > current then current = total end
  limit = math.max(1, math.floor(current / 2))
  if total > ceiling then ceiling = total end
  gen = gen + 1
  redis.call('HSET', KEYS[1], 'limit', limit, 'gen', gen, 'ceiling', ceiling, 'grown', 0)
  redis.call('PEXPIRE', KEYS[1], 600000)
elseif ARGV[1] == 'ok' and limit > 0 then
  grown = grown + 1
  if grown >= limit then
    grown = 0
    limit = limit + 1
    if limit >= ceiling then
      redis.call('HDEL', KEYS[1], 'limit', 'ceiling', 'grown')
      return {-1, gen}
    end
  end
  redis.call('HSET', KEYS[1], 'limit', limit, 'grown', grown)
end
return {limit, gen}]]
SHAPES.budget_release = function(res) return numbers(res, 2) end

local Budget = {}
Budget.__index = Budget

local function local_budget(self)
  local f = self.fallback
  if not f then
    f = require("assesskit.store").budget({ max_rate = self.rate })
    self.fallback = f
  end
  return f
end

-- Runs a budget script; nil when Redis is away (the budget is then local).
local function brun(self, name, keys, args)
  local store = self.store
  local res = store:_run(function(c) return script(c, store, name, keys, args) end)
  if type(res) ~= "table" and type(res) ~= "number" then return nil end
  return res
end

-- One look at the shared budget: the pause, the limit, and max_rate permits when wanted.
local function sync(self, now, want)
  local res = brun(self, "budget_sync", self.keys4,
    { self.proc, self.in_flight, self.rate or "", self.burst or 0, want or 0 })
  if not res then return false end
  self.sync_at = now + SYNC_EVERY
  local left = res[1] / 1000
  self.until_ = left > 0 and math_max(self.until_, now + left) or (self.until_ > now and self.until_ or 0)
  self.limit = res[2] >= 0 and res[2] or nil
  self.gen = res[3]
  if res[4] > 0 then
    self.tokens, self.tokens_until = res[4], now + HOLD
  elseif want and want > 0 then
    self.tokens, self.rate_retry_at = 0, now + math_max(res[5], 1) / 1000
  end
  return true
end

--- A permit to send one request now, or how long to wait (the `assesskit.store` budget
-- interface). Looks at the fleet's budget in Redis at most every 20 ms (a pause set
-- elsewhere), takes `max_rate` permits in small batches, and a place in Redis only while the
-- in-flight limit is cut. With Redis away: a process-local budget.
-- @tparam function clock
-- @tparam[opt] number waited_until the end of a pause the caller waited out itself
-- @return the permit, or nil
-- @treturn number|nil seconds to wait before asking again
function Budget:acquire(clock, waited_until)
  local now = clock()
  if self.store.down and now < self.store.retry_at then
    return local_budget(self):acquire(clock, waited_until)
  end
  local rate = self.rate
  local want
  if rate and (self.tokens < 1 or now > self.tokens_until) and now >= self.rate_retry_at then
    want = math_max(1, math.ceil(rate * HOLD))
  end
  if now >= self.sync_at or want then
    if not sync(self, now, want) then return local_budget(self):acquire(clock, waited_until) end
  end
  local until_ = self.until_
  -- (a pause the caller waited out comes back from Redis a few ms off: PAUSE_SLACK)
  if until_ > now and until_ > (waited_until or 0) + PAUSE_SLACK then return nil, until_ - now end
  if rate then
    if now > self.tokens_until then self.tokens = 0 end
    if self.tokens < 1 then return nil, math_max(self.rate_retry_at - now, 0.001) end
  end
  local permit = { gen = self.gen }
  if self.limit then
    local res = brun(self, "budget_take", { self.keys4[3], self.keys4[4] }, { self.proc, self.in_flight })
    if not res then return local_budget(self):acquire(clock, waited_until) end
    self.gen = res[3]
    if res[1] == 0 then
      self.limit = res[2]
      return nil, SLOT_POLL
    elseif res[1] < 0 then
      self.limit = nil
    end
    permit.gen = self.gen
  end
  if rate then self.tokens = self.tokens - 1 end
  self.in_flight = self.in_flight + 1
  return permit
end

--- Look at the fleet's budget now (the pause, the in-flight limit) and publish this
-- process's in-flight count, instead of waiting for the next look (every 20 ms of use).
-- @tparam function clock
-- @treturn boolean false when Redis is away
function Budget:refresh(clock)
  return sync(self, clock())
end

--- Give a permit back with the request's outcome: `"ok"`, `"pushback"` (429, 503: the
-- fleet's in-flight limit is cut, once per round) or `"failed"`.
-- @param permit from `acquire`
-- @tparam string outcome
function Budget:release(permit, outcome)
  if type(permit) ~= "table" then return local_budget(self):release(permit, outcome) end
  self.in_flight = self.in_flight - 1
  if outcome == "pushback" or self.limit then
    local res = brun(self, "budget_release", { self.keys4[3], self.keys4[4] },
      { outcome, permit.gen, self.in_flight, self.proc })
    if res then
      self.limit = res[1] >= 0 and res[1] or nil
      self.gen = res[2]
    end
  end
end

--- Pause every request of the fleet for `seconds` (a longer pause already running is kept).
-- @tparam number seconds
-- @tparam function clock
-- @treturn number the end of the pause (epoch seconds of this process's clock)
function Budget:pause(seconds, clock)
  local now = clock()
  local till = now + seconds
  if till > self.until_ then self.until_ = till end
  local res = brun(self, "budget_pause", { self.keys4[1] }, { math_floor(seconds * 1000 + 0.5) })
  if type(res) == "number" and now + res / 1000 > self.until_ then self.until_ = now + res / 1000 end
  if not res then local_budget(self):pause(seconds, clock) end
  return self.until_
end

--- The end of the pause in force as this process last saw it (epoch seconds), or 0.
-- @treturn number
function Budget:paused_until()
  local f = self.fallback
  if f and f:paused_until() > self.until_ then return f:paused_until() end
  return self.until_
end

--- `{in_flight =, limit =, paused_until =, max_rate =}` (this process's view).
-- @treturn table
function Budget:state()
  return { in_flight = self.in_flight, limit = self.limit, paused_until = self:paused_until(),
    max_rate = self.rate }
end

--- Change the settings: `max_rate` (requests per second for the whole fleet; `false` removes
-- the cap). Every process of the fleet should give the same.
-- @tparam table opts
function Budget:configure(opts)
  if opts.max_rate == false then
    self.rate, self.burst = nil, nil
  elseif opts.max_rate ~= nil then
    local rate = opts.max_rate
    if type(rate) ~= "number" or rate ~= rate or rate <= 0 then
      error("assesskit.redis: max_rate must be a number > 0 (requests per second)", 3)
    end
    -- a burst of a 25th of a second's worth: with HOLD, a one-second window sees at most
    -- about max_rate * 1.08 requests (55 for 50)
    self.rate, self.burst = rate, math_max(1, math_floor(rate / 25))
  end
  self.tokens, self.tokens_until, self.rate_retry_at = 0, 0, 0
  if self.fallback then self.fallback:configure(opts) end
end

function Budget:__tostring()
  return "assesskit.redis.budget(in_flight=" .. self.in_flight .. ", limit=" .. tostring(self.limit) .. ")"
end

--- The rate budget of a credential, shared by the fleet (created at the first call; one
-- object per key in this process).
-- @tparam string key the credential's identity
-- @tparam[opt] table opts `max_rate`
-- @treturn table the budget (`acquire`, `release`, `pause`, `paused_until`, `state`,
--   `configure`)
function Store:budget(key, opts)
  check_key(key, "budget")
  local b = self.budgets[key]
  if not b then
    local base = self.prefix .. "budget:" .. core.b64url_encode(core.sha256(key)) .. ":"
    b = setmetatable({
      store = self, in_flight = 0, until_ = 0, sync_at = 0, gen = 0,
      tokens = 0, tokens_until = 0, rate_retry_at = 0,
      proc = core.b64url_encode(core.random_bytes(9)),
      keys4 = { base .. "pause", base .. "bucket", base .. "aimd", base .. "procs" },
    }, Budget)
    self.budgets[key] = b
  end
  if opts then b:configure(opts) end
  return b
end

-- ------------------------------------------------------------------------------------------
-- The fleet journal

-- The job is gone: its meta key (Redis restarted without persistence, flushed), or records it
-- had (`meta.recorded` set with the first record; the items or index evicted).
local JOB_GONE = [[
if redis.call('EXISTS', KEYS[1]) == 0 then return {'lost'} end
if redis.call('HEXISTS', KEYS[1], 'recorded') == 1 and redis.call('EXISTS', KEYS[2]) == 0 then
  return {'lost'}
end
]]

SCRIPTS.claim = JOB_GONE .. [[
if redis.call('HEXISTS', KEYS[1], 'recorded') == 1 and redis.call('EXISTS', KEYS[4]) == 0 then
  return {'lost'}
end
local key, i, owner, lease = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local k = redis.call('HGET', KEYS[4], 'i:' .. i)
if k and k ~= key then return {'other_key', k} end
local j = redis.call('HGET', KEYS[4], 'k:' .. key)
if j and j ~= i then return {'other_index', j} end
local rec = redis.call('HGET', KEYS[2], key)
if rec then
  local state = string.match(rec, '^(%a+)')
  if state == 'done' or state == 'resolved' then return {'done', rec} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local claim = redis.call('HGET', KEYS[3], key)
if claim then
  local who, till = string.match(claim, '^(%S+) (%d+)$')
  if who ~= owner and tonumber(till) > now then return {'busy'} end
end
redis.call('HSET', KEYS[3], key, owner .. ' ' .. (now + lease))
if not rec then
  redis.call('HSET', KEYS[2], key, 'started {"i":' .. i .. '}')
  redis.call('HSET', KEYS[4], 'i:' .. i, key, 'k:' .. key, i)
  redis.call('HSETNX', KEYS[1], 'recorded', '1')
  return {'run'}
end
return {'held', rec}]]
-- {what}, or {what, a string}
local CLAIM_ANSWERS = { lost = 1, busy = 1, run = 1, done = 2, held = 2, other_key = 2, other_index = 2 }
SHAPES.claim = function(res)
  local n = type(res) == "table" and CLAIM_ANSWERS[res[1]]
  return n == 1 or (n == 2 and type(res[2]) == "string")
end

-- Writes an item's record if this owner holds it (or nobody does and it has no outcome yet:
-- an outcome recorded by another process is never overwritten); keeps the claim (and renews
-- its lease) when ARGV[4] is set, else lets it go.
SCRIPTS.record = JOB_GONE .. [[
local key, owner, rec, keep, lease = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1', tonumber(ARGV[5])
local claim = redis.call('HGET', KEYS[3], key)
local who = claim and string.match(claim, '^(%S+) ')
if who ~= owner then
  local cur = redis.call('HGET', KEYS[2], key) or ''
  local state = string.match(cur, '^(%a+)')
  if state == 'done' or state == 'resolved' then return {'done'} end
  if claim then return {'taken'} end
  if state == 'failed' then return {'done'} end
end
redis.call('HSET', KEYS[2], key, rec)
if keep then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[3], key, owner .. ' ' .. (now + lease))
else
  redis.call('HDEL', KEYS[3], key)
end
return {'ok'}]]
local RECORD_ANSWERS = { lost = true, done = true, taken = true, ok = true }
SHAPES.record = function(res) return type(res) == "table" and RECORD_ANSWERS[res[1]] == true end

-- Renews the leases of the items this owner holds (ARGV[3..]); lets go of none.
SCRIPTS.renew = [[
if redis.call('EXISTS', KEYS[1]) == 0 then return {'lost'} end
local owner, lease = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
for a = 3, #ARGV do
  local claim = redis.call('HGET', KEYS[2], ARGV[a])
  if claim and string.match(claim, '^(%S+) ') == owner then
    redis.call('HSET', KEYS[2], ARGV[a], owner .. ' ' .. (now + lease))
    n = n + 1
  end
end
return {'ok', n}]]
SHAPES.renew = function(res) return type(res) == "table" and (res[1] == "ok" or res[1] == "lost") end

-- Lets go of the claims this owner holds (ARGV[2..]).
SCRIPTS.unclaim = [[
for a = 2, #ARGV do
  local claim = redis.call('HGET', KEYS[1], ARGV[a])
  if claim and string.match(claim, '^(%S+) ') == ARGV[1] then redis.call('HDEL', KEYS[1], ARGV[a]) end
end
return 0]]

local Journal = {}
Journal.__index = Journal

local function jerror(self, kind, message, extra)
  local f = { kind = kind, message = "Redis journal " .. self.name .. ": " .. message }
  for k, v in pairs(extra or {}) do f[k] = v end
  return errors.new(f)
end

-- Runs a journal script; returns its reply, or nil, err (Redis away: kind `io`, the job
-- stops taking items).
local function jrun(self, name, keys, args)
  local store = self.store
  local res, msg, kind = store:_run(function(c) return script(c, store, name, keys, args) end, true)
  if res == nil then
    local why = kind == "down" and ("Redis is unreachable (" .. msg .. ")") or redact(store, msg)
    self.broken = jerror(self, "io", why .. "; the job stops taking items")
    return nil, self.broken
  end
  if type(res) == "table" and res[1] == "lost" then
    self.broken = jerror(self, "io", "the journal is gone from Redis (restarted without "
      .. "persistence, flushed, or its keys evicted); refusing to go on, which could do items twice")
    return nil, self.broken
  end
  return res
end

local function renew_due(self)
  local now = self.store.clock()
  if now < self.renew_at or next(self.held) == nil then return true end
  self.renew_at = now + self.lease / 3
  local args = { self.owner, math_floor(self.lease * 1000) }
  for key in pairs(self.held) do args[#args + 1] = key end
  local res, err = jrun(self, "renew", { self.k.meta, self.k.claims }, args)
  if not res then return nil, err end
  return true
end

local function is_index(i)
  return type(i) == "number" and i >= 1 and i == math_floor(i) and i < 2^53
end

local function check_args(where, key, i)
  if type(key) ~= "string" then
    error(string_format("journal:%s: key must be a string, got %s", where, type(key)), 3)
  end
  if not is_index(i) then
    error(string_format("journal:%s: index must be a whole number >= 1, got %s", where, tostring(i)), 3)
  end
end

local RECORD_STATES = { started = true, done = true, failed = true, resolved = true }

-- An item's record as the journal wrote it (`<state> <json>`), or nil, why: a record changed
-- in Redis (by hand, by another program) is refused rather than replayed as something else.
local function decode_record(rec, i)
  local state, body = string_match(rec, "^(%a+) (.*)$")
  if not RECORD_STATES[state] then return nil, "unknown state" end
  local ok, t = pcall(json_decode, body)
  if not ok or type(t) ~= "table" then return nil, "not JSON" end
  if t.i ~= i then return nil, "another item's index" end
  if state == "failed" then
    local e = t.error
    if e == nil and t.raised == nil then return nil, "a failure without its error" end
    if e ~= nil and not (type(e) == "table" and errors.KINDS[e.kind]) then
      return nil, "a failure whose error is not an error object of a known kind"
    end
  end
  t.state = state
  return t
end

local function record(self, key, i, rec, keep)
  local res, err = jrun(self, "record", { self.k.meta, self.k.items, self.k.claims },
    { key, self.owner, rec, keep and "1" or "0", math_floor(self.lease * 1000) })
  if not res then return nil, err end
  if not keep then self.held[key] = nil end
  if res[1] == "taken" then
    self.held[key] = nil
    return nil, jerror(self, "ambiguous", "item " .. key .. " was taken over by another process "
      .. "after this one's lease ran out (make `lease` longer than an item takes)", { key = key, index = i })
  end
  return true
end

--- Claim an item: `"run"` (this process holds it and does it), `"done", rec` (done by
-- anyone: `rec.value`), `"failed", rec` (`rec.err`), `"ambiguous", rec` (its holder died
-- before recording an outcome: taken over after its lease; or its write's answer was lost),
-- `"busy"` (another process holds it now), or `nil, err`.
-- @tparam string key the item's key
-- @tparam number i its index
-- @tparam[opt] table opts `retry_failed`
function Journal:claim(key, i, opts)
  check_args("claim", key, i)
  if self.broken then return nil, self.broken end
  local ok, rerr = renew_due(self)
  if not ok then return nil, rerr end
  local res, err = jrun(self, "claim", { self.k.meta, self.k.items, self.k.claims, self.k.index },
    { key, string_format("%d", i), self.owner, math_floor(self.lease * 1000) })
  if not res then return nil, err end
  local what = res[1]
  if what == "run" then
    self.held[key] = true
    return "run"
  elseif what == "busy" then
    return "busy"
  elseif what == "other_key" then
    return nil, jerror(self, "validation", string_format("item %d has the key %s in the journal, "
      .. "%s now: the journal is another job's, or the items changed", i, json_encode(res[2]),
      json_encode(key)))
  elseif what == "other_index" then
    return nil, jerror(self, "validation", string_format("the key %s is item %s's in the journal, "
      .. "not item %d's: two items have the same key, or the items changed", json_encode(key),
      tostring(res[2]), i))
  end
  local rec, why = decode_record(res[2], i)
  if not rec then
    if what == "held" then self.held[key] = true end -- claimed: close lets it go
    return nil, jerror(self, "validation", string_format("the record of item %s (#%d) is corrupted "
      .. "(%s): not written by this job's journal, or damaged; refusing to use it", json_encode(key),
      i, why))
  end
  local out = { key = key, i = i, state = rec.state }
  if what == "done" then
    out.value = rec.value -- nil when nothing was recorded; client.null when fn gave null
    return "done", out
  end
  -- "held": this process holds it now; it was started by a process that died, or it failed
  self.held[key] = true
  if rec.state == "started" then return "ambiguous", out end
  out.err = journal.decode_error(rec)
  if journal.is_ambiguous(out.err) then return "ambiguous", out end
  local e = out.err
  -- done, but its result could not be recorded: running it again could write twice
  if rec.landed ~= true and ((type(e) == "table" and e.retryable) or (opts and opts.retry_failed)) then
    local okr, werr = record(self, key, i, 'started {"i":' .. string_format("%d", i) .. "}", true)
    if not okr then return nil, werr end
    return "run"
  end
  self.held[key] = nil
  jrun(self, "unclaim", { self.k.claims }, { self.owner, key })
  return "failed", out
end

--- Record the outcome of an item this process claimed (and let it go).
-- @tparam string key
-- @tparam number i
-- @param value its result (JSON-encodable)
-- @param err its error, if it failed
-- @treturn true|nil
-- @treturn table|nil the error
function Journal:finish(key, i, value, err)
  check_args("finish", key, i)
  if self.broken then return nil, self.broken end
  local head = '{"i":' .. string_format("%d", i)
  if err ~= nil then
    return record(self, key, i, "failed " .. head .. "," .. journal.encode_error(err) .. "}")
  end
  if value == nil then return record(self, key, i, "done " .. head .. "}") end
  local ok, s = pcall(journal.encode_value, value)
  if not ok then
    local verr = errors.new({ kind = "validation", key = key,
      message = "the result of item " .. key .. " cannot be recorded in the journal: " .. tostring(s) })
    -- "landed": the item was done (a write may have been made); never run again
    local okw, werr = record(self, key, i, "failed " .. head .. "," .. journal.encode_error(verr)
      .. ',"landed":true}')
    if not okw then return nil, werr end
    return nil, verr
  end
  return record(self, key, i, "done " .. head .. ',"value":' .. s .. "}")
end

--- What `reconcile` found for an ambiguous item this process holds: `value` (it landed:
-- recorded as done) or nil (it did not: the item stays claimed, to be run again).
-- @tparam string key
-- @tparam number i
-- @param value
-- @treturn true|nil
-- @treturn table|nil the error
function Journal:resolve(key, i, value)
  check_args("resolve", key, i)
  if self.broken then return nil, self.broken end
  local head = '{"i":' .. string_format("%d", i)
  if value == nil or value == false then
    return record(self, key, i, "started " .. head .. "}", true)
  end
  local ok, s = pcall(journal.encode_value, value)
  if not ok then
    return nil, errors.new({ kind = "validation", key = key,
      message = "the value reconcile found for item " .. key .. " cannot be recorded: " .. tostring(s) })
  end
  return record(self, key, i, "resolved " .. head .. ',"value":' .. s .. "}")
end

--- Records are durable once Redis has them (as durable as the Redis server is configured
-- to be): this renews the leases of the items held, and reports a broken journal.
-- @treturn true|nil
-- @treturn table|nil the error
function Journal:sync()
  if self.broken then return nil, self.broken end
  return renew_due(self)
end

--- Let go of the items still held (another process may take them at once) and stop.
-- @treturn true
function Journal:close()
  if next(self.held) and not self.broken then
    local args = { self.owner }
    for key in pairs(self.held) do args[#args + 1] = key end
    jrun(self, "unclaim", { self.k.claims }, args)
  end
  self.held = {}
  return true
end

--- Counts of the job in Redis: `{items =, claimed =}` (items recorded, claims held).
-- @treturn table|nil
-- @treturn table|nil the error
function Journal:stats()
  local store, k = self.store, self.k
  local res, msg = store:_run(function(c)
    return c:pipeline { { "HLEN", k.items }, { "HLEN", k.claims } }
  end, true)
  if not res then return nil, jerror(self, "io", msg) end
  if not numbers(res, 2) then return nil, jerror(self, "io", "Redis answered HLEN out of shape") end
  return { items = res[1], claimed = res[2] }
end

function Journal:__tostring()
  return "assesskit.redis.journal(" .. self.name .. ")"
end

--- A journal for `client:map` shared by every process running the same job over Redis.
-- Several processes run the same `map` over the same items with `journal =
-- store:journal(name)` and split the items: each is done by exactly one of them (the others
-- wait for it while it is `busy`, then take its recorded result), and each process's `map`
-- returns the results of all items. An item held by a process that died is taken over once
-- its lease runs out and treated as ambiguous (`reconcile`, or kind `ambiguous`), as with the
-- file journal. Needs Redis: without it, this fails, and a job whose Redis goes away stops
-- taking new items and reports the items in flight as not recorded. Keep the journal in a
-- Redis with persistence (AOF) if a Redis restart must not forget it, and whose
-- `maxmemory-policy` never evicts it (`noeviction` or `volatile-*`; an `allkeys-*` policy
-- with a `maxmemory` is refused here): a journal found gone mid-run (or its records) is
-- refused.
-- @tparam string name the job (one journal per name; not a secret: it is in key names)
-- @tparam[opt] table opts `lease` (seconds a claim outlives a silent holder, default 30;
--   longer than one item takes, retries included)
-- @treturn[1] table the journal
-- @treturn[2] nil
-- @treturn[2] table the error (kind `io`: Redis unreachable, or one that may evict the job)
function Store:journal(name, opts)
  if type(name) ~= "string" or name == "" then
    error("assesskit.redis:journal: name must be a non-empty string", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("assesskit.redis:journal: opts must be a table", 2) end
  for k in pairs(opts) do
    if k ~= "lease" then
      error("assesskit.redis:journal: unknown option '" .. tostring(k) .. "' (known: lease)", 2)
    end
  end
  local lease = opts.lease or 30
  if type(lease) ~= "number" or lease ~= lease or lease <= 0 then
    error("assesskit.redis:journal: lease must be a number of seconds > 0", 2)
  end
  local base = self.prefix .. "journal:" .. name .. ":"
  local j = setmetatable({
    store = self, name = name, lease = lease, held = {}, renew_at = 0,
    owner = core.b64url_encode(core.random_bytes(12)),
    k = { meta = base .. "meta", items = base .. "items", claims = base .. "claims",
      index = base .. "index" },
  }, Journal)
  local created = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local res, msg, kind = self:_run(function(c)
    return c:pipeline { { "HSETNX", j.k.meta, "created", created }, { "INFO", "memory" } }
  end, true)
  if res == nil or type(res[1]) == "table" then
    if res then msg = redact(self, res[1].err) end
    return nil, jerror(j, "io", (kind == "down" and "Redis is unreachable (" .. msg .. ")"
      or msg) .. "; a fleet journal needs Redis")
  end
  -- a Redis that may evict any key when full would lose the job's records (items done twice);
  -- volatile-* policies never take its keys (they have no expiry), noeviction refuses writes.
  -- (INFO may be refused to this user: then this cannot be seen.)
  local info = type(res[2]) == "string" and res[2] or ""
  local policy = string_match(info, "maxmemory_policy:(%S+)")
  local limit = tonumber(string_match(info, "\nmaxmemory:(%d+)"))
  if policy and string_find(policy, "^allkeys%-") and limit and limit > 0 then
    return nil, jerror(j, "io", "Redis may evict the journal's keys when full (maxmemory-policy "
      .. policy .. "): a job could then do items twice; keep journals in a Redis whose policy is "
      .. "noeviction or volatile-*")
  end
  return j
end

return M
