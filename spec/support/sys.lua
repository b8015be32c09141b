--- Small system helpers for the test bench (Lua 5.4 and LuaJIT): shell commands, temporary
-- directories, files, free loopback ports.
-- @module support.sys

local socket = require "socket"

local io, type, assert, tostring = io, type, assert, tostring

local M = {}

local TMP_PREFIX = "/tmp/assesskit-"

--- Quote a string for /bin/sh.
-- @string s
-- @treturn string
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Run a shell command.
-- @string cmd
-- @treturn boolean true when it exited with status 0
-- @treturn string its standard output and error
function M.run(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"=exit:$?\""))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.*)=exit:(%d+)%s*$")
  return code == "0", body or out
end

--- Run a shell command that must succeed (raises with its output otherwise).
-- @string cmd
-- @treturn string its output
function M.must(cmd)
  local ok, out = M.run(cmd)
  if not ok then error("command failed: " .. cmd .. "\n" .. out, 2) end
  return out
end

--- A fresh private temporary directory.
-- @string[opt] what a word for the directory name
-- @treturn string its absolute path
function M.tmpdir(what)
  local out = M.must("mktemp -d " .. TMP_PREFIX .. (what or "tmp") .. ".XXXXXX")
  return (out:gsub("%s+$", ""))
end

--- Remove a directory made by `tmpdir` (refuses anything else).
-- @string dir
function M.rmdir(dir)
  if type(dir) == "string" and dir:sub(1, #TMP_PREFIX) == TMP_PREFIX and not dir:find("%.%.") then
    M.run("rm -rf " .. M.quote(dir))
  end
end

--- Read a whole file.
-- @string path
-- @treturn string|nil its content
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")
  f:close()
  return data
end

--- Write a whole file.
-- @string path
-- @string data
function M.write(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end

--- A free TCP port on 127.0.0.1, as the kernel hands it out (bound to port 0, then released).
-- @treturn integer
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return assert(tonumber(port))
end

--- Whether something accepts TCP connections on 127.0.0.1:port.
-- @int port
-- @treturn boolean
function M.accepts(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok and true or false
end

--- Whether process `pid` is alive.
-- @int pid
-- @treturn boolean
function M.alive(pid)
  return (M.run("kill -0 " .. tonumber(pid)))
end

--- Sleep.
-- @number seconds
M.sleep = socket.sleep

--- Wall-clock seconds (sub-second precision).
-- @treturn number
M.now = socket.gettime

--- Whether we run as root.
-- @treturn boolean
function M.is_root()
  local _, out = M.run("id -u")
  return out:match("^%s*0%s*$") ~= nil
end

return M
