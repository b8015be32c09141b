-- make fuzz target: raw Redis replies, as any server could send them, through a real
-- core.redis_connect connection over a loopback socket (hiredis's reader fed by the core, the
-- conversion to Lua values, the reply cap). The first byte picks the call: bit 0 a pipeline of
-- three commands instead of one command, bit 1 a 64-byte max_reply_size. The rest is what the
-- server sends before it closes. Every result must be of the documented shape.
local core = require "assesskit.core"
local socket = require "socket"

local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(1)
local _, port = server:getsockname()
port = tonumber(port)
local KINDS = { network = true, timeout = true, protocol = true, too_large = true }

local function value(v, depth)
  assert(depth < 12, "nested too deep")
  local t = type(v)
  if t == "string" or t == "number" or v == false then return end
  assert(t == "table", "reply of type " .. t)
  if v.err ~= nil then
    assert(type(v.err) == "string" and next(v, nil) ~= nil, "error element")
    return
  end
  local n = #v
  for k, x in pairs(v) do
    assert(math.type(k) == "integer" and k >= 1 and k <= n, "array key")
    value(x, depth + 1)
  end
end

return function(input)
  local mode = input:byte(1) or 0
  local c = assert(core.redis_connect { host = "127.0.0.1", port = port, timeout = 0.5,
    max_reply_size = (mode & 2) ~= 0 and 64 or nil })
  local peer = assert(server:accept())
  peer:send(input:sub(2))
  peer:close()
  local res, msg, kind
  if (mode & 1) ~= 0 then
    res, msg, kind = c:pipeline { { "GET", "a" }, { "PING" }, { "MGET", "a", "b" } }
  else
    res, msg, kind = c:command("GET", "a")
  end
  if res == nil then
    assert(type(msg) == "string", "message")
    assert(KINDS[kind] or kind == "redis", "kind " .. tostring(kind))
    if kind ~= "redis" then assert(c:is_closed(), "a failed connection is closed") end
  else
    assert(msg == nil, "one value")
    value(res, 0)
    if (mode & 1) ~= 0 then assert(type(res) == "table" and #res == 3, "three replies") end
  end
  c:close()
end
