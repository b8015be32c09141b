--- One HTTP exchange for specs and the test bench, without assesskit's client (Lua 5.4 and
-- LuaJIT): http:// through LuaSocket, https:// through the curl command.
-- @module support.http
-- @usage
-- local http = require("support.http")
-- local status, headers, body = http.request("GET", srv:url("/json"))
-- local s2 = http.request("POST", url, { body = "{}", headers = { ["content-type"] = "application/json" },
--   ca_file = ca, timeout = 5 })

local socket_http = require("socket.http")
local ltn12 = require("ltn12")
local sys = require("support.sys")

local pairs, tostring, tonumber = pairs, tostring, tonumber
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

return M
