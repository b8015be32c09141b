--- A `redis-server` of its own for a spec: a free loopback port, a temporary directory, no
-- persistence (no save schedule, no append-only file), stopped by its pid.
--
--     local redis = require "support.redis"
--     local r = redis.start()              -- or start{ password = "pw", user = "app" }
--     ... r:url() ... r:cli("KEYS", "*") ...
--     r:stop()                             -- or r:pause(): stopped, r:resume(): same port again
--
-- `r:cli(...)` runs one command through `redis-cli` (not through assesskit) and returns its
-- raw output; `r:dump()` has the server write every key and value, uncompressed, to an RDB
-- file and returns its bytes (to look for a plaintext anywhere in Redis).
-- @module support.redis
local sys = require "support.sys"

local q = sys.quote
local concat = table.concat

local M = {}

local Redis = {}
Redis.__index = Redis

local function conf_text(self)
  local lines = {
    "bind 127.0.0.1",
    "port " .. self.port,
    "daemonize yes",
    "pidfile " .. self.dir .. "/redis.pid",
    "logfile " .. self.dir .. "/redis.log",
    "dir " .. self.dir,
    'save ""',
    "appendonly no",
    "rdbcompression no",
    "protected-mode no",
    "databases 16",
  }
  if self.user then
    lines[#lines + 1] = "user default off"
    lines[#lines + 1] = "user " .. self.user .. " on >" .. self.password .. " ~* &* +@all"
  elseif self.password then
    lines[#lines + 1] = "requirepass " .. self.password
  end
  return concat(lines, "\n") .. "\n"
end

local function launch(self)
  sys.write(self.dir .. "/redis.conf", conf_text(self))
  os.remove(self.dir .. "/redis.pid")
  os.remove(self.dir .. "/dump.rdb") -- starts empty, even after a dump
  local ok, out = sys.run("redis-server " .. q(self.dir .. "/redis.conf"))
  if not ok then return nil, "redis-server did not start: " .. out end
  for _ = 1, 500 do
    local pid = tonumber(sys.read(self.dir .. "/redis.pid") or "")
    if pid and sys.accepts(self.port) then
      self.pid = pid
      return true
    end
    sys.sleep(0.01)
  end
  local pid = tonumber(sys.read(self.dir .. "/redis.pid") or "")
  if pid then sys.run("kill -9 " .. pid) end
  return nil, "redis-server did not listen on port " .. self.port .. ": "
    .. (sys.read(self.dir .. "/redis.log") or "")
end

--- Start a server.
-- @tparam[opt] table opts `password` (requirepass, or the password of `user`), `user` (an
--   ACL user with every right; the default user is then off)
-- @treturn table the server: `port`, `pid`, `dir`, `url`, `cli`, `dump`, `pause`, `resume`,
--   `stop`
function M.start(opts)
  opts = opts or {}
  local err
  for _ = 1, 3 do -- a free port may be taken by someone else before the server binds it
    local self = setmetatable({ dir = sys.tmpdir("redis"), port = sys.free_port(),
      password = opts.password, user = opts.user }, Redis)
    local ok
    ok, err = launch(self)
    if ok then return self end
    sys.rmdir(self.dir)
  end
  error(err, 2)
end

--- The server's URL (with its credentials when it has some).
-- @tparam[opt] number db
-- @treturn string
function Redis:url(db)
  local auth = ""
  if self.user then auth = self.user .. ":" .. self.password .. "@"
  elseif self.password then auth = ":" .. self.password .. "@" end
  return "redis://" .. auth .. "127.0.0.1:" .. self.port .. (db and ("/" .. db) or "")
end

--- Run one command with redis-cli; its raw output.
-- @param ... the command's words
-- @treturn string
function Redis:cli(...)
  local words = {}
  for i, w in ipairs({ ... }) do words[i] = q(tostring(w)) end
  local auth = ""
  if self.user then auth = " --user " .. q(self.user) .. " --pass " .. q(self.password)
  elseif self.password then auth = " -a " .. q(self.password) end
  local _, out = sys.run("redis-cli --no-auth-warning --raw -h 127.0.0.1 -p " .. self.port
    .. auth .. " " .. concat(words, " "))
  return out
end

--- Every key and value of every database, as the bytes of an uncompressed RDB file.
-- @treturn string
function Redis:dump()
  os.remove(self.dir .. "/dump.rdb")
  self:cli("SAVE")
  return sys.read(self.dir .. "/dump.rdb") or ""
end

-- Whether the process has ended: gone, or a zombie its new parent (init) has not reaped yet
-- (redis-server daemonizes, so it is not our child).
local function ended(pid)
  local stat = sys.read("/proc/" .. pid .. "/stat")
  if not stat then return true end
  return stat:match("^%d+ %b() (%a)") == "Z"
end

local function wait_gone(pid)
  for _ = 1, 500 do
    if ended(pid) then return true end
    sys.sleep(0.01)
  end
  return false
end

--- Stop the server (by its pid) but keep its directory and port for `resume`.
-- @tparam[opt] boolean hard SIGKILL instead of SIGTERM
function Redis:pause(hard)
  if self.pid then
    sys.run("kill " .. (hard and "-9 " or "") .. self.pid)
    if not wait_gone(self.pid) then sys.run("kill -9 " .. self.pid) wait_gone(self.pid) end
    self.pid = nil
  end
end

--- Start the server again on the same port, empty (nothing was persisted).
function Redis:resume()
  assert(not self.pid, "the server is running")
  assert(launch(self))
end

--- Stop the server and remove its directory.
function Redis:stop()
  self:pause()
  if self.dir then sys.rmdir(self.dir) self.dir = nil end
end

return M
