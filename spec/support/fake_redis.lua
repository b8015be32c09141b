--- A fake Redis for specs: answers every command with raw bytes of the spec's choosing, so that
-- the store meets replies a real Redis never gives (wrong types, wrong shapes, garbage).
--
--     local fake = require("support.fake_redis").start { EVALSHA = ":1\r\n", default = "+OK\r\n" }
--     ... fake:url() ...
--     fake:set { EVALSHA = "*0\r\n" }   -- other answers from the next command on
--     fake:stop()
--
-- A reply is chosen by the command's name in capitals (`SCRIPT` for SCRIPT LOAD, `EVALSHA`,
-- `GET`, ...), else `default`. `SCRIPT` answers a made-up SHA1 unless given. The process (the
-- same file run as a script) serves several connections at once, reads its replies again
-- from its directory before each answer, and is stopped by its pid.
-- @module support.fake_redis

local socket = require("socket")

local function serve(dir)
  local function replies()
    local f = io.open(dir .. "/replies.lua", "rb")
    if not f then return {} end
    local text = f:read("a")
    f:close()
    local chunk = load(text, "=replies", "t", {})
    return chunk and chunk() or {}
  end
  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, port = srv:getsockname()
  local pf = assert(io.open(dir .. "/port.tmp", "wb"))
  pf:write(port)
  pf:close()
  os.rename(dir .. "/port.tmp", dir .. "/port")
  srv:settimeout(0)
  local conns = {} -- socket -> buffered input
  local deadline = socket.gettime() + 600
  -- One RESP command (an array of bulk strings) from the front of buf: its words and the rest.
  local function parse(buf)
    local n, pos = buf:match("^%*(%d+)\r\n()")
    if not n then return nil end
    local words = {}
    for _ = 1, tonumber(n) do
      local len, p2 = buf:match("^%$(%d+)\r\n()", pos)
      if not len then return nil end
      len = tonumber(len)
      if #buf < p2 + len + 1 then return nil end
      words[#words + 1] = buf:sub(p2, p2 + len - 1)
      pos = p2 + len + 2
    end
    return words, buf:sub(pos)
  end
  while socket.gettime() < deadline do
    local list = { srv }
    for c in pairs(conns) do list[#list + 1] = c end
    local ready = socket.select(list, nil, 0.5)
    for _, s in ipairs(ready) do
      if s == srv then
        local c = srv:accept()
        if c then c:settimeout(0) conns[c] = "" end
      else
        local data, err, partial = s:receive(65536)
        data = data or partial
        if data and #data > 0 then conns[s] = conns[s] .. data end
        while true do
          local words, rest = parse(conns[s])
          if not words then break end
          conns[s] = rest
          local r = replies()
          local name = string.upper(words[1] or "")
          local out = r[name]
          if out == nil and name == "SCRIPT" then out = "$40\r\n" .. string.rep("f", 40) .. "\r\n" end
          if out == nil then out = r.default or "+OK\r\n" end
          if out == "close" then
            s:close()
            conns[s] = nil
            break
          end
          s:settimeout(2)
          s:send(out)
          s:settimeout(0)
        end
        if err == "closed" and conns[s] then s:close() conns[s] = nil end
      end
    end
  end
end

if arg and arg[0] and arg[0]:match("fake_redis%.lua$") and arg[1] then
  serve(arg[1])
  os.exit(0)
end

local sys = require("support.sys")

local M = {}
local Fake = {}
Fake.__index = Fake

local function write_replies(dir, replies)
  local parts = { "return {" }
  for k, v in pairs(replies) do
    parts[#parts + 1] = ("[%q] = %q,"):format(k, v)
  end
  parts[#parts + 1] = "}"
  sys.write(dir .. "/replies.tmp", table.concat(parts, "\n"))
  os.rename(dir .. "/replies.tmp", dir .. "/replies.lua")
end

--- Start a fake Redis answering with `replies` (see the module doc).
-- @tparam table replies
-- @treturn table `port`, `url()`, `set(replies)`, `stop()`
function M.start(replies)
  local dir = sys.tmpdir("fake-redis")
  write_replies(dir, replies or {})
  local p = assert(io.popen("cd " .. sys.quote(sys.repo) .. " && lua5.4 spec/support/fake_redis.lua "
    .. sys.quote(dir) .. " >" .. sys.quote(dir .. "/log") .. " 2>&1 & echo $!"))
  local pid = tonumber(p:read("*a"):match("%d+"))
  p:close()
  local port
  for _ = 1, 500 do
    port = tonumber(sys.read(dir .. "/port") or "")
    if port then break end
    sys.sleep(0.01)
  end
  assert(port, "the fake Redis did not start: " .. (sys.read(dir .. "/log") or ""))
  return setmetatable({ dir = dir, pid = pid, port = port }, Fake)
end

function Fake:url()
  return "redis://127.0.0.1:" .. self.port
end

function Fake:set(replies)
  write_replies(self.dir, replies)
end

function Fake:stop()
  if self.pid then sys.run("kill " .. self.pid) self.pid = nil end
  if self.dir then sys.rmdir(self.dir) self.dir = nil end
end

return M
