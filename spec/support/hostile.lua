--- A hostile HTTP server for specs (Lua 5.4 and LuaJIT): raw bytes, exactly as a spec scripts
-- them, on 127.0.0.1, in a separate process (so the client under test may block), recording
-- what every connection received.
--
-- A **script** is an array of steps, played on every accepted connection (or, with
-- `connections = { script1, script2, ... }`, the n-th connection plays the n-th script and the
-- last one plays on for the connections after). Connections are served concurrently. Steps:
--
-- * `"request"` (or `{ expect = "request", timeout = s }`): read one request (head, then its
--   body by Content-Length or chunked) and record it; the peer closing first ends the connection.
-- * `{ expect = "head" [, timeout = s] }`: read one request's head only and record it (as a
--   request without its body); the body is left unread (what came with the head is dropped),
--   as a server that answers before the upload ends.
-- * `{ send = bytes [, rep = n] }`: send the bytes (n times: `rep` makes big bodies cheap).
-- * `{ send = bytes, forever = true [, prefix = bytes] [, cap = bytes] [, seconds = s] }`: send
--   `prefix`, then the bytes over and over until `cap` bytes (default 256 MiB) or `seconds`
--   (default 10) or until the peer goes away: an endless header or trailer stream.
-- * `{ drip = bytes [, size = n] [, every = s] }`: send `size` bytes (default 1) every `s`
--   seconds (default 0.05).
-- * `{ pause = s }`: wait (the connection stays open, nothing is read).
-- * `{ wait_close = s }`: read and drop whatever comes until the peer closes (or `s` passes).
-- * `{ close = true }`: close (FIN). `{ reset = true }`: reset (RST: SO_LINGER 0, then close).
-- * `{ route = { ["/path/prefix"] = steps, ["POST /path"] = steps, ["*"] = steps } }`: read one
--   request, then play the steps of the longest key that prefixes its target (or its
--   "METHOD target"), else those of `"*"`.
--
-- A script (or the steps of a route) with `loop = true` plays again and again while the
-- connection lasts (keep-alive: every request gets the same answer), until a request it read
-- says `Connection: close`. When the steps run out the connection is closed. The script may
-- set `lifetime` (seconds the server lives at most, default 600).
-- @module support.hostile
-- @usage
-- local hostile = require("support.hostile")
-- local h = hostile.start{ "request", { send = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" } }
-- local status = core.session():request({ url = h:url("/x") })
-- assert.equal(1, #h:requests())
-- h:stop()
--
-- -- keep-alive: answer the first request, read the second and hang up without an answer
-- local h2 = hostile.start{ connections = {
--   { "request", { send = hostile.response{ body = "ok" } }, "request", { close = true } },
--   { loop = true, "request", { send = hostile.response{ body = "second connection" } } } } }
-- -- every request as the server saw it: h2:requests()[i].method, .target, .headers, .body, .conn

local sys = require("support.sys")

local setmetatable, type, pairs, ipairs, tostring, tonumber, error, assert =
  setmetatable, type, pairs, ipairs, tostring, tonumber, error, assert
local concat, sort = table.concat, table.sort
local str_format, str_byte, str_char = string.format, string.byte, string.char
local q = sys.quote

local M = {}

local SERVER = sys.repo .. "/spec/support/hostile_server.lua"

-- Lua source for a value (strings escaped byte by byte, readable by Lua 5.1 to 5.4).
local function serialize(v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = '"' .. v:gsub('[^%w %-_.,:/;=*+()<>!?@#$&|~%[%]{}^`]', function(c)
      return str_format("\\%03d", str_byte(c))
    end) .. '"'
  elseif t == "number" then
    assert(v == v and v ~= math.huge and v ~= -math.huge, "hostile: a script number must be finite")
    out[#out + 1] = str_format("%.17g", v)
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "table" then
    out[#out + 1] = "{"
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    sort(keys, function(a, b)
      if type(a) == type(b) then return a < b end
      return type(a) == "number"
    end)
    for _, k in ipairs(keys) do
      out[#out + 1] = "["
      serialize(k, out)
      out[#out + 1] = "]="
      serialize(v[k], out)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
  else
    error("hostile: a script holds strings, numbers, booleans and tables, not " .. t, 3)
  end
  return out
end

local function unhex(s)
  return (s:gsub("%x%x", function(h) return str_char(tonumber(h, 16)) end))
end

-- A raw request split: method, target, path, version, headers (lower-cased; repeated -> array),
-- body (chunked bodies decoded).
local function parse_request(raw)
  local head_end = raw:find("\r\n\r\n", 1, true)
  local head = raw:sub(1, head_end and head_end - 1 or #raw)
  local body = head_end and raw:sub(head_end + 4) or ""
  local r = { raw = raw, headers = {} }
  local first = true
  for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
    if first then
      r.method, r.target, r.version = line:match("^(%S+)%s+(%S+)%s*(%S*)")
      first = false
    else
      local k, v = line:match("^([^:]+):%s*(.-)%s*$")
      if k then
        k = k:lower()
        local old = r.headers[k]
        if old == nil then r.headers[k] = v
        elseif type(old) == "table" then old[#old + 1] = v
        else r.headers[k] = { old, v } end
      end
    end
  end
  r.path = r.target and r.target:match("^[^?]*")
  local te = r.headers["transfer-encoding"]
  if type(te) == "string" and te:lower():find("chunked", 1, true) then
    local parts, pos = {}, 1
    while true do
      local size, data = body:match("^(%x+)[^\r\n]*\r\n()", pos)
      size = tonumber(size or "", 16)
      if not size or size == 0 then break end
      parts[#parts + 1] = body:sub(data, data + size - 1)
      pos = data + size + 2
    end
    body = concat(parts)
  end
  r.body = body
  return r
end

local Server = {}
Server.__index = Server

-- Whether process `pid` still runs (a zombie left for a parent that does not reap does not).
local function running(pid)
  local stat = sys.read("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

--- Start a hostile server.
-- @tparam table script the steps (see the module's description), or `{ connections = {...} }`
-- @treturn table the server: `port`, `dir`, `pid`, methods below
-- @raise when the server does not come up within 10 seconds
function M.start(script)
  if type(script) ~= "table" then
    error("hostile.start: script must be a table", 2)
  end
  local dir = sys.tmpdir("hostile")
  sys.write(dir .. "/script.lua", "return " .. concat(serialize(script, {})) .. "\n")
  local _, out = sys.run("lua5.4 " .. q(SERVER) .. " " .. q(dir) .. " >" .. q(dir .. "/stderr")
    .. " 2>&1 </dev/null & echo $!")
  local self = setmetatable({ dir = dir, pid = tonumber(out:match("(%d+)%s*$")) }, Server)
  local deadline = sys.now() + 10
  while sys.now() < deadline do
    local port = tonumber(sys.read(dir .. "/port") or "")
    if port then
      self.port = port
      return self
    end
    if self.pid and not running(self.pid) then break end
    sys.sleep(0.01)
  end
  local why = sys.read(dir .. "/stderr") or ""
  self:stop()
  error("hostile.start: the server did not come up: " .. why, 2)
end

--- URL on this server.
-- @string[opt="/"] path
-- @string[opt="127.0.0.1"] host
-- @treturn string
function Server:url(path, host)
  return "http://" .. (host or "127.0.0.1") .. ":" .. self.port .. (path or "/")
end

-- The log's records, parsed.
function Server:records()
  local recs = {}
  for line in (sys.read(self.dir .. "/log") or ""):gmatch("[^\n]+") do
    local f = {}
    for w in line:gmatch("%S+") do f[#f + 1] = w end
    recs[#recs + 1] = f
  end
  return recs
end

--- Every complete request the server read, in arrival order.
-- @treturn table array of `{conn =, n =, at =, method =, target =, path =, version =,
--   headers =, body =, raw =}`: `conn` the connection's number (1 = the first accepted), `n`
--   the request's number on its connection, `at` the time it was read (epoch seconds),
--   `headers` lower-cased names (a repeated one an array), `raw` the bytes as received
function Server:requests()
  local out = {}
  for _, f in ipairs(self:records()) do
    if f[1] == "R" then
      local r = parse_request(unhex(f[5] or ""))
      r.conn, r.n, r.at = tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
      out[#out + 1] = r
    end
  end
  return out
end

--- Every accepted connection, in order.
-- @treturn table array of `{conn =, accepted =, ended =, sent =, how =, requests =, partial =}`:
--   `ended` (time) and `how` (`closed`, `reset`, `peer-closed`, `send-failed:<why>`,
--   `timeout`, `error`) once it ended; `sent` bytes the server wrote; `requests` how many
--   complete requests it read; `partial` the raw bytes of a request left incomplete
function Server:connections()
  local conns = {}
  for _, f in ipairs(self:records()) do
    local id = tonumber(f[2])
    if f[1] == "A" then
      conns[id] = { conn = id, accepted = tonumber(f[3]), requests = 0 }
    elseif f[1] == "R" and conns[id] then
      conns[id].requests = conns[id].requests + 1
    elseif f[1] == "P" and conns[id] then
      conns[id].partial = unhex(f[4] or "")
    elseif f[1] == "X" and conns[id] then
      conns[id].ended, conns[id].sent, conns[id].how = tonumber(f[3]), tonumber(f[4]), f[5]
    end
  end
  return conns
end

--- Wait until the server has read `n` requests (or `timeout` seconds, default 5, passed).
-- @int n
-- @number[opt=5] timeout
-- @treturn table `requests()`
function Server:wait_requests(n, timeout)
  local deadline = sys.now() + (timeout or 5)
  local reqs = self:requests()
  while #reqs < n and sys.now() < deadline do
    sys.sleep(0.01)
    reqs = self:requests()
  end
  return reqs
end

--- Wait until `n` connections have ended (or `timeout` seconds, default 5, passed).
-- @int n
-- @number[opt=5] timeout
-- @treturn table `connections()`
function Server:wait_ended(n, timeout)
  local deadline = sys.now() + (timeout or 5)
  while true do
    local conns, ended = self:connections(), 0
    for _, c in ipairs(conns) do
      if c.ended then ended = ended + 1 end
    end
    if ended >= n or sys.now() >= deadline then return conns end
    sys.sleep(0.01)
  end
end

--- Stop the server (by its pid) and remove its directory (kept when ASSESSKIT_KEEP_TMP is
-- set). Idempotent.
function Server:stop()
  local pid = self.pid
  self.pid = nil
  if pid then
    sys.run("kill -TERM " .. pid .. " 2>/dev/null")
    for _ = 1, 250 do
      if not running(pid) then break end
      sys.sleep(0.01)
    end
    if running(pid) then sys.run("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  if self.dir and not os.getenv("ASSESSKIT_KEEP_TMP") then
    sys.rmdir(self.dir)
    self.dir = nil
  end
end

--- The raw bytes of an HTTP/1.1 response with a Content-Length (unless `headers` sets
-- Content-Length or Transfer-Encoding, or `length = false`).
-- @tparam[opt] table r `status` (default 200), `reason` (default "OK" or "Status"),
--   `headers` (an array of "Name: value" lines, or a map name -> value), `body` (default "")
-- @treturn string
function M.response(r)
  r = r or {}
  local status = r.status or 200
  local lines = { "HTTP/1.1 " .. status .. " " .. (r.reason or (status == 200 and "OK" or "Status")) }
  local framed = r.length == false
  local headers = r.headers or {}
  local names = {}
  for k, v in pairs(headers) do
    if type(k) == "number" then
      names[#names + 1] = { k, v }
    else
      names[#names + 1] = { 1e9, k .. ": " .. v }
    end
  end
  sort(names, function(a, b) if a[1] ~= b[1] then return a[1] < b[1] end return a[2] < b[2] end)
  for _, e in ipairs(names) do
    lines[#lines + 1] = e[2]
    local lname = e[2]:lower()
    if lname:find("^content%-length:") or lname:find("^transfer%-encoding:") then framed = true end
  end
  local body = r.body or ""
  if not framed then lines[#lines + 1] = "Content-Length: " .. #body end
  return concat(lines, "\r\n") .. "\r\n\r\n" .. body
end

--- A script that reads each request on a connection and answers it with `raw`, keeping the
-- connection open for the next (a keep-alive server that always says the same).
-- @string raw
-- @treturn table the script
function M.always(raw)
  return { loop = true, "request", { send = raw } }
end

--- A script that reads one request, answers it with `raw` and closes.
-- @string raw
-- @treturn table the script
function M.once(raw)
  return { "request", { send = raw }, { close = true } }
end

return M
