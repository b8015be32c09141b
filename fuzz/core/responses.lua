-- make fuzz target: raw HTTP responses, as any server could send them, through a real
-- core.loop transfer over a loopback socket (the header and body callbacks, the checks on
-- them, the result). The first byte picks the request: bit 0 a first exchange on the same
-- keep-alive connection (a reused connection), bit 1 a POST, bit 2 HEAD, bit 3 a 100-byte
-- max_response_size, bit 4 an on_progress. The rest is the response; the server closes after
-- it. Every result must be of the documented shape.
local core = require "assesskit.core"
local socket = require "socket"

local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(0)
local _, port = server:getsockname()
local URL = "http://127.0.0.1:" .. port .. "/fuzz"
local KEEP = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
local KINDS = { timeout = true, network = true, too_large = true, aborted = true }

-- Serves `answer` to the next request on `conn` (or a new connection), while driving x.
local function exchange(loop, x, conn, answer, close)
  local buf, answered = "", false
  local deadline = socket.gettime() + 3
  while not x:done() do
    loop:run(0.002)
    local fresh = server:accept()
    if fresh then
      if conn then conn:close() end
      conn, buf = fresh, ""
      conn:settimeout(0)
    end
    if conn and not answered then
      local data, _, partial = conn:receive(65536)
      buf = buf .. (data or partial or "")
      local head_end = buf:find("\r\n\r\n", 1, true)
      local length = tonumber(buf:lower():match("content%-length:%s*(%d+)")) or 0
      if head_end and #buf >= head_end + 3 + length then
        conn:send(answer)
        answered = true
        if close then conn:close() conn = nil end
      end
    end
    if socket.gettime() > deadline then x:cancel() end
  end
  return conn
end

local function check(status, headers, body, sent)
  if status == nil then
    assert(type(headers) == "string" and KINDS[body] and type(sent) == "boolean",
      "failure shape: " .. tostring(headers) .. " " .. tostring(body))
  else
    assert(math.type(status) == "integer" and status >= 100 and status <= 999, "status")
    assert(type(headers) == "table" and type(body) == "string", "success shape")
    for k, v in pairs(headers) do
      assert(type(k) == "string" and not k:find("[A-Z]"), "header name")
      assert(type(v) == "string" or type(v) == "table", "header value")
    end
  end
end

return function(input)
  local mode = input:byte(1) or 0
  local answer = input:sub(2)
  local s = core.session { max_response_size = mode & 8 ~= 0 and 100 or nil }
  local loop = core.loop()
  local req = { url = URL, timeout = 1 }
  if mode & 2 ~= 0 then req.method, req.body = "POST", "x" end
  if mode & 4 ~= 0 then req.method = "HEAD" end
  if mode & 16 ~= 0 then req.on_progress = function() end end
  local conn
  if mode & 1 ~= 0 then
    local first = assert(loop:start(s, { url = URL, timeout = 1 }))
    conn = exchange(loop, first, nil, KEEP, false)
    check(first:result())
  end
  local x = assert(loop:start(s, req))
  conn = exchange(loop, x, conn, answer, true)
  if conn then conn:close() end
  check(x:result())
  loop:close()
  s:close()
end
