--- Small system helpers for the specs and the test bench (Lua 5.4 and LuaJIT): the repository
-- root, shell commands, subprocesses with separate output and error, temporary directories and
-- files, free loopback ports.
-- @module support.sys

local socket = require "socket"

local io, type, assert, tostring, tonumber, pairs, ipairs = io, type, assert, tostring, tonumber,
  pairs, ipairs
local concat, sort = table.concat, table.sort

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
-- @treturn integer its exit status (128 + n when killed by signal n)
function M.run(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"=exit:$?\""))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.*)=exit:(%d+)%s*$")
  return code == "0", body or out, tonumber(code)
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
-- @string[opt] mode permissions for chmod, e.g. "600"
function M.write(path, data, mode)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
  if mode then M.must("chmod " .. M.quote(mode) .. " " .. M.quote(path)) end
end

--- Write `data` to a new temporary file (remove it with os.remove).
-- @string data
-- @treturn string its path
function M.tmpfile(data)
  local path = os.tmpname()
  M.write(path, data)
  return path
end

--- The names in a directory (dot files too, but not `.` and `..`), sorted.
-- @string dir
-- @treturn table array of names
function M.ls(dir)
  local out = {}
  for name in M.must("ls -A " .. M.quote(dir)):gmatch("[^\n]+") do out[#out + 1] = name end
  sort(out)
  return out
end

--- Run a command with its standard input given and its standard output and error kept apart.
-- @string cmd a shell command
-- @tparam[opt] table opts `cwd` (the directory to run it in), `env` (name -> value: its whole
--   environment, nothing inherited), `stdin` (a string; default empty), `tty` (run it under
--   script(1): standard output and error are a terminal and come back together as the output;
--   a redirection inside `cmd` can still send one of them elsewhere)
-- @treturn integer its exit status
-- @treturn string its standard output
-- @treturn string its standard error
function M.exec(cmd, opts)
  opts = opts or {}
  if opts.env then
    local names, vars = {}, {}
    for name in pairs(opts.env) do names[#names + 1] = name end
    sort(names)
    for i, name in ipairs(names) do vars[i] = name .. "=" .. M.quote(opts.env[name]) end
    cmd = "env -i " .. concat(vars, " ") .. " " .. cmd
  end
  if opts.cwd then cmd = "cd " .. M.quote(opts.cwd) .. " && " .. cmd end
  if opts.tty then cmd = "script -qec " .. M.quote(cmd) .. " /dev/null" end
  local dir = M.tmpdir("exec")
  local inp, out, err = dir .. "/in", dir .. "/out", dir .. "/err"
  M.write(inp, opts.stdin or "")
  local _, _, code = M.run(cmd .. " <" .. M.quote(inp) .. " >" .. M.quote(out) .. " 2>" .. M.quote(err))
  local stdout, stderr = M.read(out) or "", M.read(err) or ""
  M.rmdir(dir)
  return code, stdout, stderr
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

--- Absolute path of the repository (the directory holding lua/, bin/, build/ and spec/).
M.repo = (function()
  local src = debug.getinfo(1, "S").source
  local path = src:sub(1, 1) == "@" and src:sub(2) or ""
  local dir = path:match("^(.*)/spec/support/[^/]+$") or "."
  local ok, out = M.run("cd " .. M.quote(dir) .. " && pwd")
  return ok and (out:gsub("%s+$", "")) or dir
end)()

return M
