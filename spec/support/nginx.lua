--- The test bench: a real nginx (with the Lua module) on free 127.0.0.1 ports, configured in a
-- fresh temporary directory, stopped by its own pid. The one nginx launcher of the specs, the
-- memcheck driver and the benchmarks.
--
-- `core_locations` are the locations the C core's specs, memcheck and bench talk to. Specs that
-- lay out their own servers give them whole (`servers`, with named `ports` as `@NAME@`
-- placeholders), or a complete configuration (`conf`).
-- @module support.nginx
-- @usage
-- local nginx = require "support.nginx"
-- local srv = nginx.start{ locations = nginx.core_locations, tls = { { cert = c, key = k } } }
-- local url = srv:url("/json")            -- http://127.0.0.1:<port>/json
-- local surl = srv:tls_url(1, "/json")    -- https://127.0.0.1:<tls port>/json
-- for _, e in ipairs(srv:log()) do print(e.connection, e.requests, e.uri) end
-- srv:stop()
--
-- local api = nginx.start{ ports = { "P" }, certs = true, workers = 2,
--   servers = "server { listen 127.0.0.1:@P@; location / { return 200 'hi'; } }" }
-- local status, body = api:http("GET", "/", nil, api.ports.P)

local sys = require "support.sys"
local pki_lib = require "support.pki"
local http = require "support.http"

local setmetatable, ipairs, pairs, tonumber, tostring, error, assert, next =
  setmetatable, ipairs, pairs, tonumber, tostring, error, assert, next
local concat, sort = table.concat, table.sort
local q = sys.quote

local M = {}

local MODULES = "/usr/lib/nginx/modules"

--- Absolute path of the repository (holds lua/ and build/).
M.repo = sys.repo

--- The locations the core's specs, memcheck and bench use.
--
-- * `/json`: a small JSON document.
-- * `/bytes?n=N[&chunked=1]`: N bytes of "0123456789abcdef" repeated, with Content-Length
--   (or chunked), written in 64 KiB blocks, stopping when the client goes away.
-- * `/slow?s=S`: answers after S seconds. `/trickle?n=N&s=S`: N bytes, one per S seconds.
-- * `/echo[?raw=1]`: JSON `{method, uri, headers, body_hex, body_length}` of the request;
--   with raw=1 the request body itself, method and content type in X-Echo-* headers.
-- * `/headers`: repeated response headers (X-Multi three times, two Set-Cookie).
-- * `/status?code=C`: that status with a short body.
-- * `/drop`: closes the connection without answering. `/truncated`: announces 1000 bytes,
--   sends 7, closes. `/early_hints`: a 103 response (X-Interim) before the 200 (X-Final).
-- * `/raw?script=S&tag=T`: raw bytes, several responses on one keep-alive connection
--   (`Server:raw_url`, `Server:raw_requests`).
M.core_locations = [[
    location = /json {
      default_type application/json;
      return 200 '{"id":42,"name":"Ada Lovelace","tags":["math","engines"]}';
    }
    location = /bytes {
      content_by_lua_block {
        local n = tonumber(ngx.var.arg_n) or 0
        ngx.header["Content-Type"] = "application/octet-stream"
        if not ngx.var.arg_chunked then ngx.header["Content-Length"] = n end
        local block = string.rep("0123456789abcdef", 4096)
        local sent = 0
        while sent < n do
          local take = math.min(#block, n - sent)
          if not ngx.print(take == #block and block or block:sub(1, take)) then return end
          if not ngx.flush(true) then return end
          sent = sent + take
        end
      }
    }
    location = /slow {
      content_by_lua_block {
        ngx.sleep(tonumber(ngx.var.arg_s) or 1)
        ngx.say("late")
      }
    }
    location = /trickle {
      content_by_lua_block {
        local n = tonumber(ngx.var.arg_n) or 5
        ngx.header["Content-Length"] = n
        for _ = 1, n do
          ngx.print("x")
          if not ngx.flush(true) then return end
          ngx.sleep(tonumber(ngx.var.arg_s) or 0.1)
        end
      }
    }
    location = /echo {
      content_by_lua_block {
        ngx.req.read_body()
        local body = ngx.req.get_body_data()
        if not body then
          local path = ngx.req.get_body_file()
          if path then
            local f = assert(io.open(path, "rb"))
            body = f:read("*a")
            f:close()
          end
        end
        body = body or ""
        if ngx.var.arg_raw then
          ngx.header["X-Echo-Method"] = ngx.req.get_method()
          ngx.header["X-Echo-Content-Type"] = ngx.var.content_type or ""
          ngx.header["Content-Type"] = "application/octet-stream"
          ngx.print(body)
          return
        end
        local hex = body:gsub(".", function(c) return string.format("%02x", c:byte()) end)
        ngx.header["Content-Type"] = "application/json"
        ngx.print(require("cjson").encode({ method = ngx.req.get_method(),
          uri = ngx.var.request_uri, headers = ngx.req.get_headers(200),
          body_hex = hex, body_length = #body }))
      }
    }
    location = /headers {
      content_by_lua_block {
        ngx.header["X-Multi"] = { "one", "two", "three" }
        ngx.header["Set-Cookie"] = { "a=1; Path=/", "b=2; Path=/" }
        ngx.header["X-Single"] = "only"
        ngx.say("ok")
      }
    }
    location = /status {
      content_by_lua_block {
        ngx.status = tonumber(ngx.var.arg_code) or 200
        ngx.header["Content-Type"] = "application/json"
        ngx.say('{"status":', ngx.status, '}')
      }
    }
    location = /drop {
      return 444;
    }
    location = /early_hints {
      content_by_lua_block {
        local sock = assert(ngx.req.socket(true))
        sock:send("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nX-Interim: yes\r\n\r\n"
          .. "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: yes\r\nConnection: close\r\n\r\nok")
        ngx.exit(444)
      }
    }
    location = /raw {
      content_by_lua_block {
        -- script: a Lua chunk returning an array of responses, the i-th sent for the i-th
        -- request of this connection (the last one repeats); false closes without answering,
        -- {bytes} sends them and closes.
        local script = assert(loadstring(ngx.unescape_uri(ngx.var.arg_script or "")))()
        local sock = assert(ngx.req.socket(true))
        local i, length = 1, tonumber(ngx.var.http_content_length)
        while true do
          if length and length > 0 then sock:receive(length) end
          ngx.log(ngx.WARN, "raw request ", i, " tag=", ngx.var.arg_tag or "",
                  " connection=", ngx.var.connection, ";")
          local answer = script[i]
          if answer == nil then answer = script[#script] end
          if not answer then return ngx.exit(444) end
          if type(answer) == "table" then
            sock:send(answer[1])
            return ngx.exit(444)
          end
          if not sock:send(answer) then return ngx.exit(444) end
          local line = sock:receive("*l")
          if not line or line == "" then return ngx.exit(444) end
          length = nil
          repeat
            line = sock:receive("*l")
            if not line then return ngx.exit(444) end
            length = tonumber(line:lower():match("^content%-length:%s*(%d+)")) or length
          until line == ""
          i = i + 1
        end
      }
    }
    location = /truncated {
      content_by_lua_block {
        local sock = assert(ngx.req.socket(true))
        sock:send("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/plain\r\n\r\npartial")
        ngx.exit(444)
      }
    }
]]


local LOG_FORMAT = "$connection $connection_requests $request_method $request_uri $status "
  .. "$bytes_sent $request_length $ssl_session_reused $ssl_protocol $server_protocol"

-- The certificate files `certs = true` writes into the server's directory, from support.pki.
local CERT_FILES = {
  { "ca", "ca.crt" },
  { "server_cert", "localhost.crt" }, { "server_key", "localhost.key" },
  { "wrong_cert", "wrongname.crt" }, { "wrong_key", "wrongname.key" },
  { "untrusted_cert", "untrusted.crt" }, { "untrusted_key", "untrusted.key" },
  { "expired_cert", "expired.crt" }, { "expired_key", "expired.key" },
  { "self_signed_cert", "selfsigned.crt" }, { "self_signed_key", "selfsigned.key" },
}

-- Where the Lua 5.1 C modules nginx's LuaJIT loads (cjson) live: Debian's multiarch directory,
-- whatever the architecture, then /usr/local.
local function lua51_cpath()
  local _, out = sys.run("ls -d /usr/lib/*/lua/5.1 /usr/lib/lua/5.1 /usr/local/lib/lua/5.1 2>/dev/null")
  local dirs = {}
  for d in out:gmatch("[^\n]+") do dirs[#dirs + 1] = d .. "/?.so" end
  return #dirs > 0 and concat(dirs, ";") or "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so"
end

--- The line that keeps nginx's workers as the user running the spec when that is root (else
-- they run as nobody and cannot use the private temporary directory); empty otherwise. The
-- generated configuration has it; a complete `conf` given to `start` needs it too.
-- @treturn string
function M.user_line()
  return sys.is_root() and "user root root;" or ""
end

--- Fill `@NAME@` placeholders from `vars`; an unknown placeholder is an error.
-- @string template
-- @tparam table vars name -> value
-- @treturn string
function M.fill(template, vars)
  return (template:gsub("@([%w_]+)@", function(name)
    local v = vars[name]
    if v == nil then error("no value for @" .. name .. "@ in the nginx configuration", 0) end
    return tostring(v)
  end))
end

local Server = {}
Server.__index = Server

local function build_conf(opts, dir, port, tls_ports)
  local lines = {
    M.user_line(),
    "worker_processes " .. (opts.workers or 1) .. ";",
    "pid " .. dir .. "/nginx.pid;",
    "error_log " .. dir .. "/error.log warn;",
  }
  if opts.lua ~= false then
    lines[#lines + 1] = "load_module " .. MODULES .. "/ndk_http_module.so;"
    lines[#lines + 1] = "load_module " .. MODULES .. "/ngx_http_lua_module.so;"
  end
  for _, name in ipairs(opts.env or {}) do lines[#lines + 1] = "env " .. name .. ";" end
  lines[#lines + 1] = "events { worker_connections 1024; }"
  lines[#lines + 1] = "http {"
  lines[#lines + 1] = "  log_format ak '" .. LOG_FORMAT .. "';"
  lines[#lines + 1] = "  access_log off;" -- the plain and TLS servers log (below); `servers` do not
  for _, t in ipairs({ "client_body", "proxy", "fastcgi", "uwsgi", "scgi" }) do
    lines[#lines + 1] = "  " .. t .. "_temp_path " .. dir .. "/tmp/" .. t .. ";"
  end
  lines[#lines + 1] = "  client_max_body_size 64m; client_body_buffer_size 1m;"
  lines[#lines + 1] = "  keepalive_requests 100000; keepalive_timeout 60s;"
  if opts.lua ~= false then
    lines[#lines + 1] = "  lua_package_path '" .. M.repo .. "/lua/?.lua;" .. M.repo
      .. "/lua/?/init.lua;;';"
    lines[#lines + 1] = "  lua_package_cpath '" .. M.repo .. "/build/luajit/?.so;" .. lua51_cpath() .. ";;';"
    lines[#lines + 1] = "  lua_socket_log_errors off;"
    if opts.certs then
      lines[#lines + 1] = "  lua_ssl_trusted_certificate " .. dir .. "/ca.crt; lua_ssl_verify_depth 2;"
    end
  end
  lines[#lines + 1] = opts.http or ""
  lines[#lines + 1] = "  server {"
  lines[#lines + 1] = "    listen 127.0.0.1:" .. port .. ";"
  lines[#lines + 1] = "    access_log " .. dir .. "/access.log ak;"
  lines[#lines + 1] = opts.server or ""
  lines[#lines + 1] = opts.locations or ""
  lines[#lines + 1] = "  }"
  for i, t in ipairs(opts.tls or {}) do
    lines[#lines + 1] = "  server {"
    lines[#lines + 1] = "    listen 127.0.0.1:" .. tls_ports[i] .. " ssl"
      .. (t.http2 == false and "" or " http2") .. ";"
    lines[#lines + 1] = "    ssl_certificate " .. t.cert .. "; ssl_certificate_key " .. t.key .. ";"
    lines[#lines + 1] = "    ssl_session_cache shared:AK" .. i .. ":1m; ssl_session_tickets on;"
      .. " ssl_protocols TLSv1.2 TLSv1.3;"
    lines[#lines + 1] = "    access_log " .. dir .. "/access.log ak;"
    lines[#lines + 1] = t.server or opts.server or ""
    lines[#lines + 1] = opts.locations or ""
    lines[#lines + 1] = "  }"
  end
  lines[#lines + 1] = opts.servers or ""
  lines[#lines + 1] = "}"
  return concat(lines, "\n") .. "\n"
end

local function try_start(opts)
  local dir = sys.tmpdir("nginx")
  sys.must("mkdir -p " .. q(dir .. "/tmp") .. " " .. q(dir .. "/logs"))
  local srv = setmetatable({ dir = dir, ports = {}, tls_ports = {} }, Server)
  local vars = { DIR = dir, REPO = M.repo }
  for _, name in ipairs(opts.ports or {}) do
    srv.ports[name] = sys.free_port()
    vars[name] = srv.ports[name]
  end
  for k, v in pairs(opts.vars or {}) do vars[k] = v end
  local conf = opts.conf
  if not conf then
    srv.port = sys.free_port()
    vars.PORT = srv.port
    for i = 1, #(opts.tls or {}) do srv.tls_ports[i] = sys.free_port() end
    conf = build_conf(opts, dir, srv.port, srv.tls_ports)
  end
  local ok, filled = pcall(M.fill, conf, vars)
  if not ok then
    sys.rmdir(dir)
    error(filled, 0) -- a mistake in the spec: no point trying again
  end
  srv.conf = filled
  sys.write(dir .. "/nginx.conf", filled)
  if opts.certs then
    local pki = pki_lib.new()
    local copies = {}
    for _, f in ipairs(CERT_FILES) do
      copies[#copies + 1] = "cp " .. q(pki[f[1]]) .. " " .. q(dir .. "/" .. f[2])
    end
    local copied, out = sys.run(concat(copies, " && "))
    pki:cleanup()
    if not copied then
      sys.rmdir(dir)
      return nil, "cannot copy the test certificates: " .. out
    end
  end
  local environ = {}
  for k, v in pairs(opts.environ or {}) do environ[#environ + 1] = k .. "=" .. q(tostring(v)) end
  sort(environ)
  local started, out = sys.run((#environ > 0 and ("env " .. concat(environ, " ") .. " ") or "")
    .. "nginx -p " .. q(dir .. "/") .. " -c " .. q(dir .. "/nginx.conf")
    .. " -e " .. q(dir .. "/error.log") .. " -g " .. q("daemon on; master_process on;"))
  if not started then
    local why = out .. srv:error_log()
    srv:stop() -- a master may be up even so
    return nil, why
  end
  local pid_file = dir .. "/" .. (opts.pid or "nginx.pid")
  for _ = 1, 250 do
    local pid = tonumber((sys.read(pid_file) or ""):match("%d+"))
    if pid then srv.pid = pid break end
    sys.sleep(0.02)
  end
  if not srv.pid then
    srv:stop()
    return nil, "nginx wrote no pid file " .. pid_file
  end
  local ports = { srv.port }
  for _, p in ipairs(srv.tls_ports) do ports[#ports + 1] = p end
  for _, p in pairs(srv.ports) do ports[#ports + 1] = p end
  for _, p in ipairs(ports) do
    local up = false
    for _ = 1, 250 do
      if sys.accepts(p) then up = true break end
      sys.sleep(0.02)
    end
    if not up then
      local why = srv:error_log()
      srv:stop()
      return nil, "nginx does not accept on port " .. p .. ": " .. why
    end
  end
  return srv
end

--- Start nginx.
-- @tparam table opts
--
-- * `locations` (location blocks, in the plain server and every TLS server), `server` (more
--   server-level lines for them), `http` (http-level lines), `tls` (array of `{cert=, key=,
--   server=, http2=}`: one TLS server each, on its own port), `lua` (false: do not load the
--   Lua module);
-- * `servers` (whole server blocks, added to the http block), `ports` (names of more free
--   ports: `srv.ports[name]`, and `@NAME@` in the configuration), `vars` (more `@NAME@`
--   values; `@DIR@` is the server's directory, `@REPO@` the repository, `@PORT@` the plain
--   port), `certs` (true: write `ca.crt`, `localhost.crt`/`.key` (127.0.0.1, ::1, localhost),
--   `wrongname.crt`/`.key` (another name), `untrusted.crt`/`.key` (localhost, from another
--   CA), `expired.crt`/`.key` (expired) and `selfsigned.crt`/`.key` into the directory, from
--   support.pki, and trust `ca.crt` in nginx's own Lua cosockets: `lua_ssl_trusted_certificate`);
-- * `workers` (default 1), `env` (names for nginx's `env` directive), `environ` (name ->
--   value: added to the environment nginx starts with);
-- * `conf` (a complete configuration instead of all the above but `ports`, `vars`, `certs`
--   and `environ`; its `@NAME@` placeholders are filled, and it needs `user_line()`), `pid`
--   (where `conf` puts the pid file, relative to the directory; default nginx.pid).
-- @treturn table the server: `dir`, `port` (not with `conf`), `tls_ports`, `ports`, `pid`,
--   `conf`, methods below
-- @raise when nginx does not start (after three tries on fresh ports), or on an unknown
--   placeholder
function M.start(opts)
  opts = opts or {}
  local err
  for _ = 1, 3 do  -- a port handed out by the kernel may be taken again before nginx binds it
    local srv
    srv, err = try_start(opts)
    if srv then return srv end
  end
  error("nginx did not start: " .. tostring(err), 2)
end

--- URL on the plain HTTP port.
-- @string path
-- @string[opt="127.0.0.1"] host
function Server:url(path, host)
  return "http://" .. (host or "127.0.0.1") .. ":" .. self.port .. (path or "/")
end

--- URL on the i-th TLS port.
-- @int i
-- @string path
-- @string[opt="127.0.0.1"] host
function Server:tls_url(i, path, host)
  return "https://" .. (host or "127.0.0.1") .. ":" .. assert(self.tls_ports[i]) .. (path or "/")
end

--- The access log of the plain and TLS servers (not of `servers`), parsed: array of
-- `{connection, requests, method, uri, status, bytes_sent, request_length, ssl_reused,
-- ssl_protocol, protocol}`.
-- @string[opt] pattern only entries whose uri contains this plain string
function Server:log(pattern)
  local entries = {}
  for line in (sys.read(self.dir .. "/access.log") or ""):gmatch("[^\n]+") do
    local f = {}
    for w in line:gmatch("%S+") do f[#f + 1] = w end
    local e = { connection = tonumber(f[1]), requests = tonumber(f[2]), method = f[3], uri = f[4],
      status = tonumber(f[5]), bytes_sent = tonumber(f[6]), request_length = tonumber(f[7]),
      ssl_reused = f[8], ssl_protocol = f[9], protocol = f[10] }
    if not pattern or e.uri:find(pattern, 1, true) then entries[#entries + 1] = e end
  end
  return entries
end

--- Wait until the access log holds `n` entries matching `pattern` (nginx logs a request when
-- it finishes it, which may be after the client has gone).
-- @int n
-- @string[opt] pattern
-- @number[opt=5] timeout seconds
-- @treturn table the entries
function Server:wait_log(n, pattern, timeout)
  local deadline = sys.now() + (timeout or 5)
  local entries = self:log(pattern)
  while #entries < n and sys.now() < deadline do
    sys.sleep(0.02)
    entries = self:log(pattern)
  end
  return entries
end

--- URL of `/raw` serving `script` (Lua source returning an array of raw responses, one per
-- request on a connection, the last repeated; `false` closes without answering, `{bytes}`
-- sends bytes and closes).
-- @string script
-- @string[opt] tag names the requests in the error log, for `raw_requests`
function Server:raw_url(script, tag)
  local esc = script:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)
  return self:url("/raw?tag=" .. (tag or "") .. "&script=" .. esc)
end

--- The requests `/raw` received with this tag: an array of `{n =, connection =}` (n: the
-- request's rank on its connection).
function Server:raw_requests(tag)
  local out = {}
  for n, c in self:error_log():gmatch("raw request (%d+) tag=" .. tag:gsub("%p", "%%%0") .. " connection=(%d+);") do
    out[#out + 1] = { n = tonumber(n), connection = tonumber(c) }
  end
  return out
end

--- The error log's text (`error.log`, then `logs/error.log` where a `conf` puts it).
function Server:error_log()
  return (sys.read(self.dir .. "/error.log") or "") .. (sys.read(self.dir .. "/logs/error.log") or "")
end

--- One HTTP request to this nginx (support.http, LuaSocket).
-- @string method
-- @string path
-- @string[opt] body
-- @int[opt] port default: the plain port, else a named one
-- @tparam[opt] table headers
-- @treturn[1] int status
-- @treturn[1] string body
-- @treturn[1] table headers (lower-case names)
-- @treturn[2] nil
-- @treturn[2] string what went wrong
function Server:http(method, path, body, port, headers)
  local status, rheaders, rbody = http.request(method, "http://127.0.0.1:"
    .. (port or self.port or select(2, next(self.ports))) .. path,
    { headers = headers, body = body, timeout = 60 })
  if not status then return nil, rheaders end
  return status, rbody, rheaders
end

-- The nginx masters started with this directory as prefix (unique to one server: ours).
local function masters_of(dir)
  local pids = {}
  local _, out = sys.run("ls /proc")
  for entry in out:gmatch("%d+") do
    local cmd = sys.read("/proc/" .. entry .. "/cmdline")
    if cmd and cmd:find("nginx: master process", 1, true) and cmd:find(dir .. "/", 1, true) then
      pids[#pids + 1] = tonumber(entry)
    end
  end
  return pids
end

--- Stop nginx (by its own pid; when it wrote none, the master started with this directory)
-- and remove its directory (kept when ASSESSKIT_KEEP_TMP is set, for a look after a failure).
-- Idempotent.
function Server:stop()
  local pid = self.pid or (self.dir and masters_of(self.dir)[1])
  self.pid = nil
  if pid then
    sys.run("kill -TERM " .. pid)
    for _ = 1, 250 do
      if not sys.alive(pid) then break end
      sys.sleep(0.02)
    end
    if sys.alive(pid) then
      sys.run("pkill -KILL -P " .. pid .. "; kill -KILL " .. pid)
    end
  end
  if self.dir then
    if not os.getenv("ASSESSKIT_KEEP_TMP") then sys.rmdir(self.dir) end
    self.dir = nil
  end
end

return M
