--- Test harness for the OpenResty specs (spec/ngx_*_spec.lua): a real nginx with the Lua module,
-- configured from the spec's own http-level lines and server blocks, on free loopback ports in a
-- temporary directory, stopped by its own pid.
--
-- @usage
-- local srv = bench.start({ ports = { "P" }, servers = "server { listen 127.0.0.1:@P@; ... }" })
-- local status, body, headers = srv:http("GET", "/x", nil, srv.ports.P)
-- srv:stop()
-- @module spec.support.ngx_bench

local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")

local M = {}

local MODULES = "/usr/lib/nginx/modules"

--- Absolute path of the repository (the directory holding lua/ and build/).
M.repo = (function()
  local src = debug.getinfo(1, "S").source:sub(2)
  local dir = src:match("^(.*)/spec/support/[^/]+$")
  if not dir or dir:sub(1, 1) ~= "/" then
    local pwd = io.popen("pwd"):read("*l")
    dir = dir and (pwd .. "/" .. dir) or pwd
  end
  return dir
end)()

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- A free TCP port on 127.0.0.1 (bound, read and released).
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

--- A fresh temporary directory.
function M.tmpdir(prefix)
  local p = io.popen("mktemp -d /tmp/" .. (prefix or "assesskit-ngx") .. ".XXXXXX")
  local dir = p:read("*l")
  p:close()
  assert(dir and dir ~= "", "mktemp failed")
  return dir
end

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end
M.read = read

--- Makes a CA (trusted by the nginx under test: ca.crt), a server certificate for localhost
-- signed by it, one for another name signed by it, and a self-signed one for localhost.
function M.make_certs(dir)
  local q = shell_quote(dir)
  local cmds = {
    "openssl req -x509 -newkey rsa:2048 -nodes -keyout " .. q .. "/ca.key -out " .. q
      .. "/ca.crt -days 2 -subj /CN=assesskit-test-ca",
  }
  local function leaf(name, cn, ca)
    cmds[#cmds + 1] = "openssl req -newkey rsa:2048 -nodes -keyout " .. q .. "/" .. name
      .. ".key -out " .. q .. "/" .. name .. ".csr -subj /CN=" .. cn
    cmds[#cmds + 1] = "printf 'subjectAltName=DNS:" .. cn .. "\\n' > " .. q .. "/" .. name .. ".ext"
    if ca then
      cmds[#cmds + 1] = "openssl x509 -req -in " .. q .. "/" .. name .. ".csr -CA " .. q
        .. "/ca.crt -CAkey " .. q .. "/ca.key -CAcreateserial -days 2 -extfile " .. q .. "/"
        .. name .. ".ext -out " .. q .. "/" .. name .. ".crt"
    else
      cmds[#cmds + 1] = "openssl x509 -req -in " .. q .. "/" .. name .. ".csr -signkey " .. q
        .. "/" .. name .. ".key -days 2 -extfile " .. q .. "/" .. name .. ".ext -out " .. q
        .. "/" .. name .. ".crt"
    end
  end
  leaf("localhost", "localhost", true)
  leaf("wrongname", "wrong.example", true)
  leaf("untrusted", "localhost", false)
  for _, c in ipairs(cmds) do
    assert(sh(c .. " >/dev/null 2>&1"), "openssl failed: " .. c)
  end
end

--- Fills @NAME@ placeholders from `vars`; an unknown placeholder is an error.
function M.fill(template, vars)
  return (template:gsub("@([%w_]+)@", function(name)
    local v = vars[name]
    assert(v ~= nil, "no value for @" .. name .. "@")
    return tostring(v)
  end))
end

--- The line that keeps nginx's workers as the user running the spec when that is root (else
-- they run as nobody and cannot use the private temporary directory); empty otherwise.
function M.user_line()
  local p = io.popen("id -u")
  local uid = p:read("*l")
  p:close()
  return uid == "0" and "user root root;" or ""
end

local Server = {}
Server.__index = Server

--- Starts nginx. `opts`: `ports` (names of ports to allocate, usable as @NAME@), `vars` (more
-- @NAME@ values), `http` (lines for the http block), `servers` (server blocks), `workers`
-- (default 1), `env` (names for nginx's env directive), `environ` (name -> value: the
-- environment nginx starts with), `certs` (make test certificates and trust ca.crt), `conf` (a
-- complete configuration instead of http/servers; @NAME@ placeholders are filled in it too),
-- `pid` (where `conf` puts the pid file, relative to the directory; default nginx.pid).
-- @treturn table server: `dir`, `ports`, `pid`, `:http()`, `:log()`, `:stop()`
function M.start(opts)
  local dir = M.tmpdir()
  assert(sh("mkdir -p " .. shell_quote(dir) .. "/logs " .. shell_quote(dir) .. "/tmp"))
  local ports = {}
  for _, name in ipairs(opts.ports or {}) do
    ports[name] = M.free_port()
  end
  local vars = { DIR = dir, REPO = M.repo }
  for k, v in pairs(ports) do vars[k] = v end
  for k, v in pairs(opts.vars or {}) do vars[k] = v end
  if opts.certs then
    M.make_certs(dir)
  end
  local conf = opts.conf
  if not conf then
    local env_lines = {}
    for _, name in ipairs(opts.env or {}) do
      env_lines[#env_lines + 1] = "env " .. name .. ";"
    end
    conf = table.concat({
      "load_module " .. MODULES .. "/ndk_http_module.so;",
      "load_module " .. MODULES .. "/ngx_http_lua_module.so;",
      M.user_line(),
      table.concat(env_lines, "\n"),
      "worker_processes " .. (opts.workers or 1) .. ";",
      "pid @DIR@/nginx.pid;",
      "error_log @DIR@/logs/error.log info;",
      "events { worker_connections 256; }",
      "http {",
      "  access_log off;",
      "  client_body_temp_path @DIR@/tmp/body; proxy_temp_path @DIR@/tmp/proxy;",
      "  fastcgi_temp_path @DIR@/tmp/fastcgi; uwsgi_temp_path @DIR@/tmp/uwsgi;",
      "  scgi_temp_path @DIR@/tmp/scgi;",
      "  client_max_body_size 16m; client_body_buffer_size 1m;",
      "  lua_package_path \"@REPO@/lua/?.lua;@REPO@/lua/?/init.lua;;\";",
      "  lua_package_cpath \"@REPO@/build/luajit/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;\";",
      "  lua_socket_log_errors off;",
      opts.certs and "  lua_ssl_trusted_certificate @DIR@/ca.crt; lua_ssl_verify_depth 2;" or "",
      opts.http or "",
      opts.servers or "",
      "}",
    }, "\n")
  end
  conf = M.fill(conf, vars)
  write(dir .. "/nginx.conf", conf)
  local environ = {}
  for k, v in pairs(opts.environ or {}) do
    environ[#environ + 1] = k .. "=" .. shell_quote(tostring(v))
  end
  table.sort(environ)
  local cmd = (#environ > 0 and ("env " .. table.concat(environ, " ") .. " ") or "")
    .. "nginx -p " .. shell_quote(dir .. "/") .. " -c " .. shell_quote(dir .. "/nginx.conf")
    .. " -g 'daemon on; master_process on;' >" .. shell_quote(dir .. "/logs/start.log") .. " 2>&1"
  local started = sh(cmd)
  local srv = setmetatable({ dir = dir, ports = ports, conf = conf }, Server)
  if not started then
    error("nginx did not start: " .. (read(dir .. "/logs/start.log") or "")
      .. (read(dir .. "/logs/error.log") or ""))
  end
  for _ = 1, 200 do
    local pid = read(dir .. "/" .. (opts.pid or "nginx.pid"))
    if pid and tonumber(pid:match("%d+")) then
      srv.pid = tonumber(pid:match("%d+"))
      break
    end
    socket.sleep(0.02)
  end
  if not srv.pid then
    srv:stop()
    error("nginx wrote no pid file")
  end
  -- wait until every port accepts
  for _, port in pairs(ports) do
    local ok = false
    for _ = 1, 250 do
      local c = socket.tcp()
      c:settimeout(0.2)
      if c:connect("127.0.0.1", port) then
        c:close()
        ok = true
        break
      end
      c:close()
      socket.sleep(0.02)
    end
    if not ok then
      local log = srv:log()
      srv:stop()
      error("nginx is not listening on " .. port .. ": " .. log)
    end
  end
  return srv
end

--- One HTTP request to this nginx. Returns status, body, headers (lower-cased names).
function Server:http(method, path, body, port, headers)
  local chunks = {}
  local hdrs = {}
  for k, v in pairs(headers or {}) do hdrs[k] = v end
  if body then
    hdrs["content-length"] = tostring(#body)
  end
  local _, status, rheaders = http.request({
    method = method,
    url = "http://127.0.0.1:" .. (port or next(self.ports) and select(2, next(self.ports))) .. path,
    headers = hdrs,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
  })
  return status, table.concat(chunks), rheaders
end

--- The error log so far.
function Server:log()
  return read(self.dir .. "/logs/error.log") or ""
end

-- The nginx masters started with this server's own (unique) directory as prefix: they are ours.
local function masters_of(dir)
  local pids = {}
  local p = io.popen("ls /proc 2>/dev/null")
  for entry in p:read("a"):gmatch("%d+") do
    local cmd = read("/proc/" .. entry .. "/cmdline")
    if cmd and cmd:find("nginx: master process", 1, true) and cmd:find(dir .. "/", 1, true) then
      pids[#pids + 1] = tonumber(entry)
    end
  end
  p:close()
  return pids
end

--- Stops nginx (by its pid; when it wrote none, the master started with this directory) and
-- removes the directory.
function Server:stop()
  if not self.pid and self.dir then
    self.pid = masters_of(self.dir)[1]
  end
  if self.pid then
    sh("kill -TERM " .. self.pid .. " 2>/dev/null")
    for _ = 1, 250 do
      if not sh("kill -0 " .. self.pid .. " 2>/dev/null") then
        self.pid = nil
        break
      end
      socket.sleep(0.02)
    end
    if self.pid then
      sh("kill -KILL " .. self.pid .. " 2>/dev/null")
      self.pid = nil
    end
  end
  if self.dir and not os.getenv("ASSESSKIT_KEEP_TMP") then
    sh("rm -rf " .. shell_quote(self.dir))
  end
end

return M
