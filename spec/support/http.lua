--- HTTP for specs and the test bench, without assesskit's client (Lua 5.4 and LuaJIT): one
-- exchange (`request`: http:// through LuaSocket, https:// through the curl command), and a
-- request sent on a raw socket whose answer is read later (`send`, `receive`), for specs that
-- watch when an answer comes or how a connection ends.
-- @module support.http
-- @usage
-- local http = require("support.http")
-- local status, headers, body = http.request("GET", srv:url("/json"))
-- local s2 = http.request("POST", url, { body = "{}", headers = { ["content-type"] = "application/json" },
--   ca_file = ca, timeout = 5 })
-- local c = http.send(port, "/slow")          -- sent, nothing read yet
-- local status3, headers3, body3 = http.receive(c)

local socket = require("socket")
local socket_http = require("socket.http")
local ltn12 = require("ltn12")
local sys = require("support.sys")

local pairs, tostring, tonumber, assert = pairs, tostring, tonumber, assert
local concat = table.concat
local q = sys.quote

local M = {}

-- https:// through curl: status, headers, body or nil, message.
local function with_curl(method, url, headers, body, timeout, ca_file)
  local hfile, bfile, infile = os.tmpname(), os.tmpname(), nil
  local cmd = { "curl -sS -o", q(bfile), "-D", q(hfile), "-X", q(method), "--max-time", tostring(timeout) }
  if ca_file then cmd[#cmd + 1] = "--cacert " .. q(ca_file) end
  for k, v in pairs(headers) do cmd[#cmd + 1] = "-H " .. q(k .. ": " .. v) end
  if body then
    infile = os.tmpname()
    sys.write(infile, body)
    cmd[#cmd + 1] = "--data-binary @" .. q(infile)
  end
  cmd[#cmd + 1] = q(url)
  local ok = sys.run(concat(cmd, " ") .. " 2>/dev/null")
  local head, rbody = sys.read(hfile) or "", sys.read(bfile) or ""
  os.remove(hfile)
  os.remove(bfile)
  if infile then os.remove(infile) end
  if not ok and head == "" then return nil, "curl failed: " .. url end
  local status, hdrs = nil, {}
  for line in head:gmatch("[^\r\n]+") do
    local code = line:match("^HTTP/%S+%s+(%d+)")
    if code then
      status, hdrs = tonumber(code), {}
    else
      local k, v = line:match("^([^:]+):%s*(.*)$")
      if k then
        k = k:lower()
        hdrs[k] = hdrs[k] and (hdrs[k] .. ", " .. v) or v
      end
    end
  end
  return status, hdrs, rbody
end

--- Make one request.
-- @string method
-- @string url http:// or https://
-- @tparam[opt] table opts `headers` (name -> value), `body` (string; sent with its
--   Content-Length), `timeout` (seconds, default 30), `ca_file` (the CA to trust for https)
-- @treturn[1] int status
-- @treturn[1] table headers (lower-case names; a repeated header joined with ", ")
-- @treturn[1] string body
-- @treturn[2] nil
-- @treturn[2] string what went wrong (refused, reset, timeout...)
function M.request(method, url, opts)
  opts = opts or {}
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local timeout = opts.timeout or 30
  if url:sub(1, 8) == "https://" then
    return with_curl(method, url, headers, opts.body, timeout, opts.ca_file)
  end
  local chunks = {}
  local req = { url = url, method = method, headers = headers, sink = ltn12.sink.table(chunks) }
  if opts.body then
    req.source = ltn12.source.string(opts.body)
    headers["content-length"] = tostring(#opts.body)
  end
  local old = socket_http.TIMEOUT
  socket_http.TIMEOUT = timeout
  local ok, status, hdrs = socket_http.request(req)
  socket_http.TIMEOUT = old
  if not ok then return nil, tostring(status) end
  return status, hdrs, concat(chunks)
end

--- Send a request (HTTP/1.1, `Connection: close`) to 127.0.0.1 on a new connection, and read
-- nothing: the answer is for `receive` (or for the spec to peek at).
-- @int port
-- @string path
-- @tparam[opt] table opts `method` (default GET), `host` (the Host header; default
--   127.0.0.1:port), `headers` (more headers), `timeout` (seconds, for the socket's later reads;
--   default 30)
-- @treturn userdata the connected LuaSocket TCP socket
-- @raise when the connection or the send fails
function M.send(port, path, opts)
  opts = opts or {}
  local c = assert(socket.tcp())
  c:settimeout(opts.timeout or 30)
  assert(c:connect("127.0.0.1", tonumber(port)))
  local lines = { (opts.method or "GET") .. " " .. path .. " HTTP/1.1",
    "Host: " .. (opts.host or ("127.0.0.1:" .. port)), "Connection: close" }
  for k, v in pairs(opts.headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  assert(c:send(concat(lines, "\r\n") .. "\r\n\r\n"))
  return c
end

-- The body of a chunked message, decoded (chunk extensions and trailers dropped).
local function dechunk(body)
  local out, pos = {}, 1
  while true do
    local size, data_start = body:match("^(%x+)[^\r\n]*\r\n()", pos)
    size = tonumber(size, 16)
    if not size or size == 0 then break end
    out[#out + 1] = body:sub(data_start, data_start + size - 1)
    pos = data_start + size + 2
  end
  return concat(out)
end

--- Read a whole answer from a socket `send` returned, until the server closes, and close it.
-- @tparam userdata c
-- @treturn int|nil status (nil when not even a status line came)
-- @treturn table|nil headers (lower-case names; the last of a repeated one)
-- @treturn string|nil body (decoded when chunked; what came, when the connection broke)
-- @treturn string|nil the socket's error ("closed" when it ended early, "timeout")
function M.receive(c)
  local status_line, err = c:receive("*l")
  if not status_line then c:close(); return nil, nil, nil, err end
  local headers = {}
  while true do
    local line = c:receive("*l")
    if not line or line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then headers[k:lower()] = v end
  end
  local body, rerr, partial = c:receive("*a")
  c:close()
  body = body or partial
  if body and (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    body = dechunk(body)
  end
  return tonumber(status_line:match("^HTTP/%S+ (%d+)")), headers, body, rerr
end

return M
