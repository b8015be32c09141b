--- The hostile server's process (run by `support.hostile`, never required): plays scripted raw
-- bytes to every connection it accepts on 127.0.0.1 and records what it receives.
--
-- Usage: `lua5.4 spec/support/hostile_server.lua DIR` where `DIR/script.lua` returns the script
-- (see support.hostile). The server binds 127.0.0.1 on a free port, writes it to `DIR/port`,
-- then appends one record per line to `DIR/log` (flushed as it goes):
--
--     A <conn> <time>                         connection accepted
--     R <conn> <n> <time> <hex>               request n of connection conn, raw bytes in hex
--     P <conn> <time> <hex>                   an incomplete request the peer gave up on
--     X <conn> <time> <bytes sent> <how>      connection ended: closed, reset, peer-closed,
--                                             send-failed, timeout, error
--
-- Connections are served concurrently (coroutines over socket.select), so a client that opens
-- a second connection while the first is still held gets its answer. The process exits on
-- SIGTERM, or after `lifetime` seconds (default 600) whatever happens.
-- @script hostile_server

local socket = require("socket")

local dir = assert(arg[1], "usage: hostile_server.lua DIR")

local gettime, select = socket.gettime, socket.select
local co_create, co_resume, co_yield, co_status = coroutine.create, coroutine.resume,
  coroutine.yield, coroutine.status
local concat, remove = table.concat, table.remove
local floor, huge, min = math.floor, math.huge, math.min
local str_rep, str_sub, str_find, str_format, str_byte = string.rep, string.sub, string.find,
  string.format, string.byte

local script
do
  local f = assert(io.open(dir .. "/script.lua", "rb"))
  local text = f:read("a")
  f:close()
  script = assert(load(text, "=script", "t", {}))()
end

local log = assert(io.open(dir .. "/log", "ab"))
local function record(...)
  log:write(concat({ ... }, " "), "\n")
  log:flush()
end

local function hex(s)
  return (s:gsub(".", function(c) return str_format("%02x", str_byte(c)) end))
end

local function stamp()
  return str_format("%.6f", gettime())
end

-- Scheduler ---------------------------------------------------------------------------------

local waiting = {}   -- coroutine -> { what = "read"|"write"|"sleep", sock =, until_ = }
local tasks = {}     -- array of coroutines

local function wait(what, sock, timeout)
  local until_ = timeout and (gettime() + timeout) or huge
  return co_yield(what, sock, until_)
end

local function sleep(seconds)
  if seconds > 0 then
    wait("sleep", nil, seconds)
  end
end

local function spawn(fn, ...)
  local co = co_create(fn)
  tasks[#tasks + 1] = co
  local ok, what, sock, until_ = co_resume(co, ...)
  if not ok then
    io.stderr:write("hostile_server: ", tostring(what), "\n")
  elseif co_status(co) ~= "dead" then
    waiting[co] = { what = what, sock = sock, until_ = until_ }
  end
end

-- Connection I/O ----------------------------------------------------------------------------

local Conn = {}
Conn.__index = Conn

-- Receives what is available (waiting for some); returns data, or nil and "closed"/"timeout".
function Conn:recv(timeout)
  local deadline = timeout and (gettime() + timeout) or huge
  while true do
    local data, err, partial = self.sock:receive(65536)
    data = data or partial
    if data and #data > 0 then
      return data
    end
    if err == "closed" then
      return nil, "closed"
    end
    if err ~= "timeout" then
      return nil, err
    end
    local left = deadline - gettime()
    if left <= 0 then
      return nil, "timeout"
    end
    local woke = wait("read", self.sock, left)
    if woke == "timeout" and gettime() >= deadline then
      return nil, "timeout"
    end
  end
end

-- Sends all of `data`; true, or nil and why.
function Conn:send(data)
  local i = 1
  while i <= #data do
    local last, err, partial = self.sock:send(data, i)
    last = last or partial
    if last and last >= i then
      self.sent = self.sent + (last - i + 1)
      i = last + 1
    end
    if i <= #data then
      if err and err ~= "timeout" then
        return nil, err
      end
      wait("write", self.sock, 30)
    end
  end
  return true
end

-- Reads one request (head, then a body by Content-Length or chunked; with `head_only`, the head
-- alone: the body is left unread and what arrived with the head is dropped). Returns the raw
-- bytes, or nil and why ("closed", "timeout", "too large"), recording an incomplete request.
function Conn:read_request(timeout, head_only)
  local buf = self.buf
  local head_end
  while true do
    local _, e = str_find(buf, "\r\n\r\n", 1, true)
    if not e then
      local _, e2 = str_find(buf, "\n\n", 1, true)
      e = e2
    end
    if e then
      head_end = e
      break
    end
    if #buf > 1024 * 1024 then
      return nil, "too large"
    end
    local data, err = self:recv(timeout)
    if not data then
      if #buf > 0 then
        record("P", self.id, stamp(), hex(buf))
      end
      self.buf = ""
      return nil, err
    end
    buf = buf .. data
  end
  local head = str_sub(buf, 1, head_end)
  local lower = head:lower()
  local length = tonumber(lower:match("\ncontent%-length:%s*(%d+)"))
  local chunked = lower:match("\ntransfer%-encoding:[^\n]*chunked") ~= nil
  local total = head_end + (length or 0)
  if head_only then
    self.buf = ""
    self.nreq = self.nreq + 1
    local raw = str_sub(buf, 1, head_end)
    record("R", self.id, self.nreq, stamp(), hex(raw))
    return raw
  end
  if chunked then
    -- the end of a chunked body: walk the chunk sizes up to the last chunk and its trailers
    local pos = head_end + 1
    while true do
      local line_end = str_find(buf, "\r\n", pos, true)
      local size = line_end and (tonumber(str_sub(buf, pos, line_end - 1):match("^%x+"), 16) or 0)
      local advanced = false
      if size == 0 then
        local _, e = str_find(buf, "\r\n\r\n", line_end, true)
        if e then
          total = e
          break
        end
      elseif size and #buf >= line_end + 3 + size then
        pos, advanced = line_end + 4 + size, true
      end
      if not advanced then
        local data, err = self:recv(timeout)
        if not data then
          record("P", self.id, stamp(), hex(buf))
          self.buf = ""
          return nil, err
        end
        buf = buf .. data
      end
    end
  end
  while #buf < total do
    local data, err = self:recv(timeout)
    if not data then
      record("P", self.id, stamp(), hex(buf))
      self.buf = ""
      return nil, err
    end
    buf = buf .. data
  end
  self.buf = str_sub(buf, total + 1)
  self.nreq = self.nreq + 1
  self.client_closes = lower:match("\nconnection:[^\n]*close") ~= nil
  local raw = str_sub(buf, 1, total)
  record("R", self.id, self.nreq, stamp(), hex(raw))
  return raw
end

-- Steps ---------------------------------------------------------------------------------------

local play

-- The request target's path of a raw request ("/a/b" of "GET /a/b?x HTTP/1.1").
local function path_of(raw)
  return raw:match("^%S+%s+(%S+)") or ""
end

-- The longest key of `routes` that prefixes the request line's target or "METHOD target".
local function choose(routes, raw)
  local method = raw:match("^(%S+)") or ""
  local target = path_of(raw)
  local best, best_len
  for key, steps in pairs(routes) do
    if key ~= "*" then
      local subject = str_find(key, "^/") and target or (method .. " " .. target)
      if str_sub(subject, 1, #key) == key and (not best_len or #key > best_len) then
        best, best_len = steps, #key
      end
    end
  end
  return best or routes["*"]
end

-- Runs one step; returns true to go on, or nil and how the connection ended.
local function step(c, s)
  if s == "request" then
    s = { expect = "request" }
  end
  if s.expect == "request" or s.expect == "head" or s.route then
    local raw, err = c:read_request(s.timeout or 30, s.expect == "head")
    if not raw then
      return nil, err == "closed" and "peer-closed" or err
    end
    if s.route then
      local steps = choose(s.route, raw)
      if steps then
        return play(c, steps)
      end
    end
    return true
  elseif s.send then
    local rep = s.rep or 1
    if s.forever then
      local cap = s.cap or (256 * 1024 * 1024)
      local stop = gettime() + (s.seconds or 10)
      local block = str_rep(s.send, math.max(1, floor(65536 / #s.send)))
      if s.prefix then
        local ok, err = c:send(s.prefix)
        if not ok then return nil, "send-failed:" .. tostring(err) end
      end
      local sent = 0
      while sent < cap and gettime() < stop do
        local ok, err = c:send(block)
        if not ok then return nil, "send-failed:" .. tostring(err) end
        sent = sent + #block
      end
      return true
    end
    local per = math.max(1, floor(65536 / math.max(1, #s.send)))
    while rep > 0 do
      local n = min(rep, per)
      local ok, err = c:send(n == 1 and s.send or str_rep(s.send, n))
      if not ok then return nil, "send-failed:" .. tostring(err) end
      rep = rep - n
    end
    return true
  elseif s.drip then
    local size, every = s.size or 1, s.every or 0.05
    for i = 1, #s.drip, size do
      local ok, err = c:send(str_sub(s.drip, i, i + size - 1))
      if not ok then return nil, "send-failed:" .. tostring(err) end
      sleep(every)
    end
    return true
  elseif s.pause then
    sleep(s.pause)
    return true
  elseif s.wait_close then
    local stop = gettime() + s.wait_close
    while true do
      local left = stop - gettime()
      if left <= 0 then return nil, "timeout" end
      local data, err = c:recv(left)
      if not data then
        return nil, err == "closed" and "peer-closed" or err
      end
    end
  elseif s.close then
    return nil, "closed"
  elseif s.reset then
    c.sock:setoption("linger", { on = true, timeout = 0 })
    return nil, "reset"
  end
  error("hostile_server: unknown step " .. tostring(next(s)))
end

function play(c, steps)
  repeat
    for _, s in ipairs(steps) do
      local ok, how = step(c, s)
      if not ok then
        return nil, how
      end
    end
  until not steps.loop or c.client_closes
  return true
end

local nconn = 0

local function serve(sock)
  nconn = nconn + 1
  local c = setmetatable({ sock = sock, id = nconn, buf = "", nreq = 0, sent = 0 }, Conn)
  sock:settimeout(0)
  sock:setoption("tcp-nodelay", true)
  record("A", c.id, stamp())
  local steps = script.connections and (script.connections[c.id]
    or script.connections[#script.connections]) or script
  local ok, done, how = pcall(play, c, steps)
  if not ok then
    io.stderr:write("hostile_server: ", tostring(done), "\n")
    how = "error"
  elseif done then
    how = "closed" -- the steps ran out
  end
  sock:close()
  record("X", c.id, stamp(), str_format("%d", c.sent), how)
end

-- Main loop ------------------------------------------------------------------------------------

local server = assert(socket.bind("127.0.0.1", 0, 128))
server:settimeout(0)
do
  local _, port = server:getsockname()
  local f = assert(io.open(dir .. "/port.tmp", "wb"))
  f:write(port)
  f:close()
  assert(os.rename(dir .. "/port.tmp", dir .. "/port"))
end

local lifetime_end = gettime() + (script.lifetime or 600)
while gettime() < lifetime_end do
  local readers, writers, next_wake = { server }, {}, lifetime_end
  for _, w in pairs(waiting) do
    if w.what == "read" then
      readers[#readers + 1] = w.sock
    elseif w.what == "write" then
      writers[#writers + 1] = w.sock
    end
    if w.until_ < next_wake then
      next_wake = w.until_
    end
  end
  local timeout = next_wake - gettime()
  if timeout < 0 then timeout = 0 end
  local readable, writable = select(readers, writers, min(timeout, 1))
  if readable[server] then
    while true do
      local client = server:accept()
      if not client then break end
      spawn(serve, client)
    end
  end
  local now = gettime()
  local i = 1
  while i <= #tasks do
    local co = tasks[i]
    local w = waiting[co]
    if not w then
      remove(tasks, i)
    else
      local ready = (w.what == "read" and readable[w.sock]) or (w.what == "write" and writable[w.sock])
      if ready or now >= w.until_ then
        waiting[co] = nil
        local ok, what, sock, until_ = co_resume(co, ready and "ready" or "timeout")
        if not ok then
          io.stderr:write("hostile_server: ", tostring(what), "\n")
        elseif co_status(co) ~= "dead" then
          waiting[co] = { what = what, sock = sock, until_ = until_ }
        end
      end
      i = i + 1
    end
  end
end
