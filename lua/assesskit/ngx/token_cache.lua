--- A token store shared by every nginx worker, with a cross-worker renewal lock.
--
-- The Talview token manager (`assesskit.talview.auth`) keeps its access token in a per-client
-- table by default, so N nginx workers would each ask the token endpoint for a token. Give the
-- client a token cache (`token_store` option) and the token lives in a `lua_shared_dict`
-- instead: every worker reads it there, and renewing it takes a lock in the same dict, so one
-- worker at a time calls the token endpoint while the others wait and then use its token.
--
-- The store interface, used by the token manager (docs/DESIGN.md, "Token stores"):
--
-- * `store:get(key) -> entry | nil`: `entry` is `{token =, expires_at =, lifetime =,
--   refresh_token =}` (epoch seconds for `expires_at`, seconds for `lifetime`);
-- * `store:set(key, entry) -> true | nil, err`;
-- * `store:delete(key)`;
-- * `store:lock(key, timeout) -> release | nil, err`: waits (with `ngx.sleep`, so the worker
--   keeps serving) until no other holder has the renewal lock for `key`, up to `timeout`
--   seconds; `release()` gives it back. A holder that dies keeps it at most `lock_ttl` seconds.
--
-- Entries hold tokens: the dict is process memory of the nginx workers, never written to disk
-- or logs by this module, and `tostring(store)` names only the dict.
--
-- Needs nginx's Lua module (`ngx.shared`); `lock` needs a phase where `ngx.sleep` works
-- (rewrite, access, content, timer), as every network call does.
-- @module assesskit.ngx.token_cache
-- @usage
-- -- nginx.conf (http block):  lua_shared_dict assesskit_tokens 1m;
-- local cache = require("assesskit.ngx.token_cache").new({ dict = "assesskit_tokens" })
-- local tv = require("assesskit.talview").new({ base_url = url, auth = creds, token_store = cache })

-- luacheck: read globals ngx

local ngx = ngx
local type = type
local tostring = tostring
local error = error
local setmetatable = setmetatable
local math_min = math.min
local str_format = string.format

local cjson = require("cjson.safe")
local options = require("assesskit.options")

local M = {}
local mt = { __index = M }

local DEFAULT_LOCK_TTL = 30
local DEFAULT_PREFIX = "assesskit:token:"
local FIRST_STEP, MAX_STEP = 0.002, 0.05

local owner_seq = 0

local function now()
  ngx.update_time()
  return ngx.now()
end

--- Creates a token cache over a `lua_shared_dict`.
-- @tparam table opts `dict` (the dict's name, or the `ngx.shared.<name>` object; required),
--   `prefix` (key prefix in the dict, default `"assesskit:token:"`), `lock_ttl` (seconds a
--   lock outlives a holder that never releases it, default 30)
-- @treturn table the store
-- @raise on an unknown option (naming the nearest valid one), outside nginx, or when the dict
--   does not exist
-- @usage local cache = token_cache.new({ dict = "assesskit_tokens" })
function M.new(opts)
  if type(opts) ~= "table" then
    error("assesskit.ngx.token_cache.new: opts must be a table", 2)
  end
  options.check(opts, { "dict", "prefix", "lock_ttl" }, "assesskit.ngx.token_cache.new", 2)
  if type(ngx) ~= "table" or type(ngx.shared) ~= "table" then
    error("assesskit.ngx.token_cache.new: needs nginx's Lua module (ngx.shared)", 2)
  end
  local dict, name = opts.dict, opts.dict
  if type(dict) == "string" then
    dict = ngx.shared[dict]
    if not dict then
      error("assesskit.ngx.token_cache.new: no lua_shared_dict named '" .. name
        .. "' (add `lua_shared_dict " .. name .. " 1m;` to the http block)", 2)
    end
  elseif type(dict) ~= "table" and type(dict) ~= "userdata" then
    error("assesskit.ngx.token_cache.new: dict must be a lua_shared_dict name or object", 2)
  else
    name = "shared dict"
  end
  local prefix = opts.prefix
  if prefix ~= nil and type(prefix) ~= "string" then
    error("assesskit.ngx.token_cache.new: prefix must be a string", 2)
  end
  local ttl = opts.lock_ttl
  if ttl ~= nil and (type(ttl) ~= "number" or ttl <= 0) then
    error("assesskit.ngx.token_cache.new: lock_ttl must be a positive number", 2)
  end
  return setmetatable({
    dict = dict,
    name = name,
    prefix = prefix or DEFAULT_PREFIX,
    lock_ttl = ttl or DEFAULT_LOCK_TTL,
  }, mt)
end

function mt.__tostring(self)
  return "assesskit.ngx.token_cache(" .. tostring(self.name) .. ")"
end

local function check_key(key)
  if type(key) ~= "string" or key == "" then
    error("assesskit.ngx.token_cache: key must be a non-empty string", 3)
  end
end

--- The cached entry for `key`, or nil.
-- @tparam string key
-- @treturn ?table `{token =, expires_at =, lifetime =, refresh_token =}`
function M:get(key)
  check_key(key)
  local raw = self.dict:get(self.prefix .. key)
  if type(raw) ~= "string" then
    return nil
  end
  local entry = cjson.decode(raw)
  if type(entry) ~= "table" or type(entry.token) ~= "string" then
    return nil
  end
  return entry
end

--- Stores the entry for `key`, visible to every worker. It is dropped from the dict when the
-- token expires, unless it carries a refresh token (that outlives the access token).
-- @tparam string key
-- @tparam table entry `token` (required), `expires_at`, `lifetime`, `refresh_token`
-- @treturn true|nil
-- @treturn ?string why not (the dict is full, ...)
function M:set(key, entry)
  check_key(key)
  if type(entry) ~= "table" or type(entry.token) ~= "string" then
    error("assesskit.ngx.token_cache:set: entry.token must be a string", 2)
  end
  local raw, jerr = cjson.encode({
    token = entry.token, expires_at = entry.expires_at, lifetime = entry.lifetime,
    refresh_token = entry.refresh_token,
  })
  if not raw then -- e.g. an infinite expires_at; dict:set(k, nil) would delete the entry
    return nil, "cannot store the token in " .. tostring(self.name) .. ": " .. tostring(jerr)
  end
  local exptime = 0
  if entry.refresh_token == nil and type(entry.expires_at) == "number" then
    exptime = entry.expires_at - now()
    if exptime < 1 then
      exptime = 1
    end
  end
  local ok, err = self.dict:set(self.prefix .. key, raw, exptime)
  if not ok then
    return nil, "cannot store the token in " .. tostring(self.name) .. ": " .. tostring(err)
  end
  return true
end

--- Drops the entry for `key`.
-- @tparam string key
function M:delete(key)
  check_key(key)
  self.dict:delete(self.prefix .. key)
end

--- Takes the renewal lock for `key`, waiting for another holder (any worker) up to `timeout`.
-- @tparam string key
-- @tparam[opt=30] number timeout seconds
-- @treturn[1] function `release()`: gives the lock back (idempotent)
-- @treturn[2] nil
-- @treturn[2] string `"timeout"`, or the dict's error
-- @usage local release, err = cache:lock("talview", 10)
-- if release then ... release() end
function M:lock(key, timeout)
  check_key(key)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("assesskit.ngx.token_cache:lock: timeout must be a number >= 0", 2)
  end
  timeout = timeout or 30
  local dict, lock_key = self.dict, self.prefix .. key .. ":lock"
  owner_seq = owner_seq + 1
  local owner = str_format("%d:%d:%.3f", ngx.worker.pid(), owner_seq, ngx.now())
  local deadline = now() + timeout
  local step = FIRST_STEP
  while true do
    local ok, err = dict:add(lock_key, owner, self.lock_ttl)
    if ok then
      local released = false
      return function()
        if not released then
          released = true
          -- only our own lock: it may have expired and been taken by another holder
          if dict:get(lock_key) == owner then
            dict:delete(lock_key)
          end
        end
      end
    end
    if err ~= "exists" then
      return nil, "cannot lock in " .. tostring(self.name) .. ": " .. tostring(err)
    end
    local left = deadline - now()
    if left <= 0 then
      return nil, "timeout"
    end
    ngx.sleep(math_min(step, left))
    step = math_min(step * 2, MAX_STEP)
  end
end

return M
