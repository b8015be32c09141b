--- Non-blocking HTTP/1.1 transport over nginx cosockets.
--
-- Inside nginx (OpenResty, or nginx with its Lua module) a libcurl transfer would block the
-- worker's event loop for the whole request. This transport speaks HTTP/1.1 over
-- `ngx.socket.tcp` instead, so the worker keeps serving other clients while it waits. It follows
-- the transport contract of docs/DESIGN.md ("Transport contract", `session:request`): same
-- request fields, same results, same error kinds, so nothing above it changes.
--
-- nginx settings it relies on: `lua_ssl_trusted_certificate` (the CA bundle TLS peers are
-- verified against; verification is always on), `lua_ssl_verify_depth` (raise it above the
-- default 1 for real certificate chains), and `resolver` for host names other than `localhost`.
--
-- Cosockets exist only in the rewrite, access and content phases, in `ngx.timer.at` callbacks
-- and in the SSL certificate/session/client-hello phases. Calling `request` anywhere else (init,
-- init_worker, set, header and body filters, log, balancer) raises an error that names the
-- `ngx.timer.at` way around.
-- @module assesskit.ngx.transport

-- luacheck: read globals ngx

local ngx = ngx
local io_open = io.open
local io_type = io.type
local math_ceil = math.ceil
local math_floor = math.floor
local math_huge = math.huge
local math_min = math.min
local pcall = pcall
local error = error
local type = type
local tostring = tostring
local tonumber = tonumber
local ipairs = ipairs
local pairs = pairs
local setmetatable = setmetatable
local getmetatable = getmetatable
local str_byte = string.byte
local str_find = string.find
local str_format = string.format
local str_lower = string.lower
local str_match = string.match
local str_sub = string.sub
local tbl_concat = table.concat

local url_mod = require("assesskit.url")

local M = {}
local mt = { __index = M }

local DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024
local MAX_HEADER_BYTES = 300 * 1024     -- whole response header block (libcurl's limit)
local MAX_HEADER_LINE = 100 * 1024      -- one header line (libcurl's limit)
local MAX_LINE_BYTES = 4096             -- a chunk-size or trailer line
local CHUNK = 64 * 1024                 -- read and file-write granularity
local DEFAULT_POOL_SIZE = 30
local DEFAULT_KEEPALIVE_MS = 60 * 1000
local MAX_TIMEOUT_MS = 2147483647       -- cosockets refuse more; ~24 days, as the core's cap
local DEFAULT_USER_AGENT = "assesskit/" .. require("assesskit")._VERSION .. " ngx_lua"
local KNOWN_OPTIONS = {
  ca_file = true, ca_path = true, proxy = true, user_agent = true, max_response_size = true,
  http2 = true, allow_http = true, pool_size = true, keepalive_timeout = true,
}

--- Phases in which nginx lets Lua use cosockets.
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

local boundary_seq = 0

local function has_ngx()
  return type(ngx) == "table" and type(ngx.socket) == "table" and type(ngx.socket.tcp) == "function"
    and type(ngx.get_phase) == "function"
end

--- Whether the ngx transport can do I/O here and now.
-- @treturn boolean true when running inside nginx in a phase that allows cosockets
-- @treturn ?string when false, why not
-- @usage if ngx_transport.available() then ... end
function M.available()
  if not has_ngx() then
    return false, "not running inside nginx's Lua module"
  end
  local phase = ngx.get_phase()
  if not COSOCKET_PHASES[phase] then
    return false, "cosockets are not available in the '" .. tostring(phase) .. "' phase"
  end
  return true
end

--- Whether this Lua state runs inside nginx's Lua module (whatever the phase).
-- @treturn boolean
function M.inside_nginx()
  return has_ngx()
end

local function check_phase()
  if not has_ngx() then
    error("assesskit.ngx.transport: not running inside nginx's Lua module (no ngx.socket.tcp)", 3)
  end
  local phase = ngx.get_phase()
  if not COSOCKET_PHASES[phase] then
    error("assesskit.ngx.transport: nginx does not allow network I/O (cosockets) in the '"
      .. tostring(phase) .. "' phase; only in rewrite, access, content and timer contexts. "
      .. "Run the call from a timer instead: ngx.timer.at(0, function(premature) ... end)", 3)
  end
end

local function now()
  ngx.update_time()
  return ngx.now()
end

--- Creates a transport.
-- Options mirror `core.session`: `max_response_size` (bytes held in memory, default 64 MiB), `allow_http`
-- (default false: plain `http://` only to loopback hosts), `user_agent`. Specific to nginx:
-- `pool_size` (keep-alive connections per host, default 30) and `keepalive_timeout`
-- (milliseconds an idle pooled connection is kept, default 60000). The CA store is nginx's
-- `lua_ssl_trusted_certificate`; `ca_file`, `ca_path` and `proxy` cannot be honoured per
-- request by cosockets and are refused. `http2` is accepted and ignored (HTTP/1.1 only).
-- @tparam[opt] table opts
-- @treturn table transport
-- @usage local t = require("assesskit.ngx.transport").new({ max_response_size = 1e6 })
-- local status, headers, body = t:request({ url = "https://apiv4.talview.com/user/me" })
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("assesskit.ngx.transport.new: opts must be a table", 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not KNOWN_OPTIONS[k] then
      error("assesskit.ngx.transport.new: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  for _, k in ipairs({ "ca_file", "ca_path", "proxy" }) do
    if opts[k] ~= nil then
      error("assesskit.ngx.transport.new: '" .. k .. "' is not supported inside nginx "
        .. "(cosockets use lua_ssl_trusted_certificate and connect directly)", 2)
    end
  end
  local max = opts.max_response_size
  if max ~= nil and (type(max) ~= "number" or max < 0 or max ~= math_floor(max)) then
    error("assesskit.ngx.transport.new: max_response_size must be an integer >= 0", 2)
  end
  local pool_size = opts.pool_size
  if pool_size ~= nil and (type(pool_size) ~= "number" or pool_size < 1) then
    error("assesskit.ngx.transport.new: pool_size must be a positive number", 2)
  end
  local keepalive = opts.keepalive_timeout
  if keepalive ~= nil and (type(keepalive) ~= "number" or keepalive < 0) then
    error("assesskit.ngx.transport.new: keepalive_timeout must be a non-negative number", 2)
  end
  local ua = opts.user_agent
  if ua ~= nil and (type(ua) ~= "string" or str_find(ua, "[\r\n%z]")) then
    error("assesskit.ngx.transport.new: user_agent must be a one-line string", 2)
  end
  return setmetatable({
    max_response_size = max or DEFAULT_MAX_RESPONSE,
    allow_http = opts.allow_http and true or false,
    user_agent = ua or DEFAULT_USER_AGENT,
    pool_size = pool_size and math_floor(pool_size) or DEFAULT_POOL_SIZE,
    keepalive_timeout = keepalive and math_floor(keepalive) or DEFAULT_KEEPALIVE_MS,
    closed = false,
    requests = 0,
    connects = 0,
  }, mt)
end

--- Closes the transport: later requests return `nil, "session is closed", "closed"`.
-- Idempotent. Pooled connections belong to the nginx worker and are left to its keep-alive
-- timeout.
function M:close()
  self.closed = true
end

mt.__close = M.close

--- Counters for tests and diagnostics, as the core session's.
-- @treturn table `{requests=, connects=}`: requests performed, new connections opened
function M:stats()
  return { requests = self.requests, connects = self.connects }
end

function mt.__tostring(self)
  return str_format("assesskit.ngx.transport (%s)", self.closed and "closed" or "open")
end

-- URL ------------------------------------------------------------------------------------

-- Returns a table {scheme=, host=, port=, target=, host_header=, connect_host=, ipv6=,
-- userinfo=} or nil, message. URLs are read by assesskit.url (the one reading of hosts, ports
-- and the plain-HTTP rule for every client and both transports).
local function parse_url(url)
  local u, err = url_mod.parse(url)
  if not u then return nil, err end
  local target = u.path
  if target == "" then target = "/" end
  if u.query then target = target .. "?" .. u.query end
  local default_port = u.scheme == "https" and 443 or 80
  local nport = u.port or default_port
  if nport < 1 then
    return nil, "malformed URL (bad port)"
  end
  local host = u.host
  local host_header = u.ipv6 and ("[" .. host .. "]") or host
  if nport ~= default_port then
    host_header = host_header .. ":" .. nport
  end
  local connect_host = host
  if u.ipv6 then
    connect_host = "[" .. host .. "]"
  elseif host == "localhost" or host == "localhost." then
    connect_host = "127.0.0.1" -- no resolver needed for the loopback name
  end
  return {
    scheme = u.scheme, host = host, port = nport, target = target,
    host_header = host_header, connect_host = connect_host, ipv6 = u.ipv6, url = u,
    userinfo = u.userinfo,
  }
end

-- Request building -----------------------------------------------------------------------

local function check_header_name(name)
  if type(name) ~= "string" or not str_find(name, "^[!#$%%&'*+.^_`|~%w-]+$") then
    error("assesskit.ngx.transport: invalid header name " .. str_format("%q", tostring(name)), 4)
  end
end

local function check_header_value(name, value)
  local tv = type(value)
  if tv == "number" then
    return tostring(value)
  end
  if tv ~= "string" then
    error("assesskit.ngx.transport: header '" .. name .. "' must be a string or an array of strings", 4)
  end
  if str_find(value, "[\r\n%z]") then
    -- the value itself is not quoted: it may be a credential
    error("assesskit.ngx.transport: header '" .. name .. "' contains CR, LF or NUL", 4)
  end
  return value
end

-- Appends "Name: value\r\n" lines for req.headers to `out`; returns the set of lower-cased
-- names given.
local function add_user_headers(out, headers)
  local seen = {}
  if headers == nil then
    return seen
  end
  if type(headers) ~= "table" then
    error("assesskit.ngx.transport: req.headers must be a table", 3)
  end
  for name, value in pairs(headers) do
    check_header_name(name)
    local lname = str_lower(name)
    -- framing is ours to decide
    if lname ~= "content-length" and lname ~= "transfer-encoding" and lname ~= "connection" then
      seen[lname] = true
      if type(value) == "table" then
        for _, v in ipairs(value) do
          out[#out + 1] = name .. ": " .. check_header_value(name, v) .. "\r\n"
        end
      else
        out[#out + 1] = name .. ": " .. check_header_value(name, value) .. "\r\n"
      end
    end
  end
  return seen
end

-- io.open's message without the path it starts with.
local function io_reason(path, err)
  err = tostring(err)
  if str_sub(err, 1, #path + 2) == path .. ": " then
    return str_sub(err, #path + 3)
  end
  return err
end

local function basename(path)
  return str_match(path, "([^/]+)$") or path
end

-- The content types libcurl guesses from a file name's extension (others: octet-stream).
local CONTENT_TYPES = {
  gif = "image/gif", jpg = "image/jpeg", jpeg = "image/jpeg", png = "image/png",
  svg = "image/svg+xml", txt = "text/plain", htm = "text/html", html = "text/html",
  pdf = "application/pdf", xml = "application/xml",
}

local function guess_content_type(filename)
  local ext = str_match(filename, "%.([%w]+)$")
  return ext and CONTENT_TYPES[str_lower(ext)] or "application/octet-stream"
end

local function new_boundary()
  boundary_seq = boundary_seq + 1
  local seed = tbl_concat({ tostring(ngx.now()), tostring(ngx.worker.pid()),
    tostring(boundary_seq), tostring({}) }, "|")
  return "------------------------" .. str_sub(ngx.md5(seed), 1, 24)
end

local function part_string(part, i, field)
  local v = part[field]
  if v ~= nil and type(v) ~= "string" then
    error(str_format("assesskit.ngx.transport: multipart[%d].%s: string expected, got %s",
      i, field, type(v)), 4)
  end
  return v
end

-- Validates req.multipart (raising on misuse, as the core does) and plans the body:
-- { boundary=, pieces = { string | {path=, size=} }, length = }. File parts are opened here to
-- learn their size; an unreadable file is nil, message, "io".
local function plan_multipart(parts)
  if type(parts) ~= "table" then
    error("assesskit.ngx.transport: req.multipart must be an array of parts", 3)
  end
  local boundary = new_boundary()
  local pieces, length = {}, 0
  local function add(str)
    pieces[#pieces + 1] = str
    length = length + #str
  end
  local checked = {}
  for i = 1, #parts do
    local part = parts[i]
    if type(part) ~= "table" then
      error(str_format("assesskit.ngx.transport: multipart[%d]: table expected, got %s",
        i, type(part)), 3)
    end
    local c = {
      name = part_string(part, i, "name"), value = part_string(part, i, "value"),
      file = part_string(part, i, "file"), filename = part_string(part, i, "filename"),
      content_type = part_string(part, i, "content_type"),
    }
    if c.name == nil then
      error(str_format("assesskit.ngx.transport: multipart[%d].name is required", i), 3)
    end
    if (c.value == nil) == (c.file == nil) then
      error(str_format("assesskit.ngx.transport: multipart[%d] needs exactly one of value, file",
        i), 3)
    end
    if str_find(c.name, '[%z\r\n"]') or (c.filename and str_find(c.filename, '[%z\r\n"]'))
      or (c.file and str_find(c.file, "%z")) or (c.content_type and str_find(c.content_type, "[%z\r\n]")) then
      error(str_format("assesskit.ngx.transport: multipart[%d]: NUL, CR, LF or quote in a name",
        i), 3)
    end
    checked[i] = c
  end
  for _, c in ipairs(checked) do
    local head = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"" .. c.name .. "\""
    if c.file then
      local f, ferr = io_open(c.file, "rb")
      if not f then
        return nil, "cannot read multipart file '" .. c.file .. "': " .. io_reason(c.file, ferr), "io"
      end
      local size = f:seek("end")
      f:close()
      if not size then
        return nil, "cannot read multipart file '" .. c.file .. "'", "io"
      end
      local fname = c.filename or basename(c.file)
      add(head .. "; filename=\"" .. fname .. "\"\r\nContent-Type: "
        .. (c.content_type or guess_content_type(fname)) .. "\r\n\r\n")
      pieces[#pieces + 1] = { path = c.file, size = size }
      length = length + size
      add("\r\n")
    else
      local ct = c.content_type and ("\r\nContent-Type: " .. c.content_type) or ""
      add(head .. ct .. "\r\n\r\n" .. c.value .. "\r\n")
    end
  end
  add("--" .. boundary .. "--\r\n")
  return { boundary = boundary, pieces = pieces, length = length }
end

-- One transfer -----------------------------------------------------------------------------

-- A transfer holds the socket, the deadline and the result of the failure, if any.
local Transfer = {}
Transfer.__index = Transfer

local function classify(err)
  if err == "timeout" then
    return "timeout"
  end
  return "network"
end

-- Sets the socket timeout for the next operation from the deadline; false when it passed.
function Transfer:arm(cap_ms)
  local ms
  if self.deadline then
    ms = (self.deadline - now()) * 1000
    if ms <= 0 then
      return false
    end
  end
  if cap_ms and (not ms or cap_ms < ms) then
    ms = cap_ms
  end
  if ms and ms > MAX_TIMEOUT_MS then
    ms = MAX_TIMEOUT_MS
  end
  if ms then
    self.sock:settimeout(math_ceil(ms))
  elseif self.armed then
    -- back to nginx's lua_socket_*_timeout defaults (0 means "the configured default")
    self.sock:settimeouts(0, 0, 0)
  end
  self.armed = ms ~= nil
  return true
end

function Transfer:fail(message, kind)
  self.err, self.kind = message, kind
  if self.sock then
    self.sock:close()
    self.sock = nil
  end
  return nil
end

function Transfer:too_large()
  return self:fail(str_format("response body larger than max_response_size (%d bytes)", self.max),
    "too_large")
end

function Transfer:timed_out()
  return self:fail("operation timed out (whole transfer)", "timeout")
end

-- Sends a string or an array of strings, in pieces of at most CHUNK bytes so that the
-- whole-transfer deadline is checked between pieces (nginx re-arms a socket timeout whenever
-- some progress is made, so one big send could outlive the deadline).
function Transfer:send(data)
  if type(data) == "table" then
    data = tbl_concat(data)
  end
  local pos, n = 1, #data
  repeat
    if not self:arm() then
      return self:timed_out()
    end
    local piece = (pos == 1 and n <= CHUNK) and data or str_sub(data, pos, pos + CHUNK - 1)
    local ok, err = self.sock:send(piece)
    if not ok then
      return self:fail("send failed: " .. tostring(err), classify(err))
    end
    pos = pos + CHUNK
  until pos > n
  return true
end

-- Receives whatever arrives next (at most `max` bytes), under the deadline. Reads are done
-- with receiveany, piece by piece, so that a peer trickling bytes cannot stretch the
-- transfer past its deadline. Returns data, or nil and "closed" at end of stream, or nil
-- after fail().
function Transfer:recv(max)
  if not self:arm() then
    return self:timed_out()
  end
  local data, err = self.sock:receiveany(max)
  if not data then
    if err == "closed" then
      return nil, "closed"
    end
    return self:fail("receive failed: " .. tostring(err), classify(err))
  end
  self.received_any = true
  return data
end

-- Receives the next piece of a response that is not complete yet: the end of the stream
-- here is a failure. Returns data, or nil after fail().
function Transfer:recv_more(max)
  local data, eof = self:recv(max)
  if not data and eof then
    return self:fail("connection closed before the response was complete", "network")
  end
  return data
end

-- Reads exactly n bytes (n small: chunk framing).
function Transfer:read(n)
  local buf = self.buf
  while #buf < n do
    local data = self:recv_more(CHUNK)
    if not data then
      return nil
    end
    buf = buf .. data
  end
  self.buf = str_sub(buf, n + 1)
  return str_sub(buf, 1, n)
end

-- Reads up to (not including) `pattern`, consuming the pattern; fails when more than `max`
-- bytes arrive without it.
function Transfer:read_until(pattern, max, what)
  local buf, from = self.buf, 1
  while true do
    local s, e = str_find(buf, pattern, from, true)
    if s then
      self.buf = str_sub(buf, e + 1)
      return str_sub(buf, 1, s - 1)
    end
    if #buf > max then
      return self:fail(what .. " too large", "network")
    end
    from = #buf - #pattern + 2
    if from < 1 then
      from = 1
    end
    local data = self:recv_more(CHUNK)
    if not data then
      return nil
    end
    buf = buf .. data
  end
end

-- `s` from `init` on, without the whitespace around it. Linear in #s, unlike a
-- "^%s*(.-)%s*$" match, which backtracks quadratically over a long run of inner whitespace
-- (seconds of CPU for a 100 KiB header line a peer sends, blocking the whole worker).
local function trim(s, init)
  local from = str_find(s, "%S", init)
  if not from then
    return ""
  end
  return str_match(s, "^.*%S", from)
end

-- Adds one "Name: value" line to headers (lower-cased name; repeated -> array); returns the
-- name, or nil when the line is malformed.
local function add_header(headers, line)
  local _, colon = str_find(line, "^[^:%s]+:")
  if not colon then
    return nil
  end
  local name, value = str_lower(str_sub(line, 1, colon - 1)), trim(line, colon + 1)
  local old = headers[name]
  if old == nil then
    headers[name] = value
  elseif type(old) == "table" then
    old[#old + 1] = value
  else
    headers[name] = { old, value }
  end
  return name
end

-- Replaces the newest value of header `name` (a string, or the last of an array).
local function set_newest(headers, name, value)
  local old = headers[name]
  if type(old) == "table" then
    old[#old] = value
  else
    headers[name] = value
  end
end

-- Parses one header block (the status line and header lines, without the empty line ending
-- them); returns status, version, headers (or nil after fail()). Lines end at LF, a CR before
-- it dropped (a lone CR stays in its line, as libcurl keeps it). An obsolete folded line
-- continues the previous header's value after one space (RFC 9112 section 5.2), as in the
-- core. The block is what the peer sent: the work stays linear in its size.
local function parse_head(t, block)
  local status, major, minor
  local headers, last, folded = {}, nil, nil
  local pos, len = 1, #block
  while pos <= len do
    local eol = str_find(block, "\n", pos, true) or len + 1
    local stop = eol - 1
    if stop >= pos and str_byte(block, stop) == 13 then
      stop = stop - 1
    end
    if stop - pos + 1 > MAX_HEADER_LINE then
      return t:fail("response header line longer than 100 KiB", "network")
    end
    local line = str_sub(block, pos, stop)
    pos = eol + 1
    local c = str_byte(line, 1)
    if not status then
      major, minor, status = str_match(line, "^HTTP/(%d)%.(%d) (%d%d%d)")
      if not major then
        return t:fail("malformed response status line", "network")
      end
    elseif (c == 32 or c == 9) and last then
      local cont = trim(line, 1)
      if cont ~= "" then
        if not folded then
          local v = headers[last]
          v = type(v) == "table" and v[#v] or v
          folded = v ~= "" and { v } or {}
        end
        folded[#folded + 1] = cont
      end
    else
      if folded then
        set_newest(headers, last, tbl_concat(folded, " "))
        folded = nil
      end
      if line ~= "" then
        last = add_header(headers, line)
        if not last then
          return t:fail("malformed response header line", "network")
        end
      end
    end
  end
  if not status then
    return t:fail("malformed response status line", "network")
  end
  if folded then
    set_newest(headers, last, tbl_concat(folded, " "))
  end
  return tonumber(status), tonumber(major) * 10 + tonumber(minor), headers
end

local function header_tokens(v)
  if v == nil then
    return {}
  end
  if type(v) == "table" then
    v = tbl_concat(v, ",")
  end
  local out = {}
  for tok in str_lower(v):gmatch("[^,%s]+") do
    out[#out + 1] = tok
  end
  return out
end

-- The body sink: memory or an output file; enforces max size and reports progress.
function Transfer:open_sink(total)
  self.received = 0
  self.total = total -- nil while unknown, as the core
  if self.out then
    self.file = self.out
  else
    self.parts = {}
  end
  return self:progress()
end

function Transfer:progress()
  local cb = self.on_progress
  if cb then
    local ok, err = pcall(cb, self.received, self.total)
    if not ok then
      local te = type(err)
      if te ~= "string" and te ~= "number" then
        err = "on_progress raised a " .. te .. " value"
      end
      return self:fail(tostring(err), "aborted")
    end
  end
  return true
end

function Transfer:sink(data)
  local n = #data
  if n == 0 then
    return true
  end
  self.received = self.received + n
  if self.received > self.max then
    return self:too_large()
  end
  if self.file then
    local ok, err = self.file:write(data)
    if not ok then
      return self:fail("cannot write output: " .. tostring(err), "io")
    end
  else
    self.parts[#self.parts + 1] = data
  end
  return self:progress()
end

function Transfer:close_sink()
  if self.file then
    local ok, err = self.file:close()
    self.file = nil
    if not ok and not self.err then
      return self:fail("cannot write output: " .. tostring(err), "io")
    end
  end
  return true
end

function Transfer:read_fixed(n)
  local buf = self.buf
  if #buf > 0 then
    local take = str_sub(buf, 1, n)
    self.buf = str_sub(buf, n + 1)
    n = n - #take
    if not self:sink(take) then
      return nil
    end
  end
  while n > 0 do
    local data = self:recv_more(math_min(n, CHUNK))
    if not data then
      return nil
    end
    n = n - #data
    if not self:sink(data) then
      return nil
    end
  end
  return true
end

-- Trailer fields join the response headers, as libcurl reports them.
function Transfer:read_chunked(headers)
  while true do
    local line = self:read_until("\r\n", MAX_LINE_BYTES, "chunk size line")
    if not line then
      return nil
    end
    local hex = str_match(line, "^%s*0*(%x+)%s*[;]?") -- leading zeros do not count
    local size = hex and #hex <= 15 and tonumber(hex, 16)
    if not size then
      return self:fail("malformed chunked encoding", "network")
    end
    if size == 0 then
      -- trailer fields, then the empty line
      while true do
        local trailer = self:read_until("\r\n", MAX_LINE_BYTES, "trailer line")
        if not trailer then
          return nil
        end
        if trailer == "" then
          return true
        end
        if not add_header(headers, trailer) then
          return self:fail("malformed trailer line", "network")
        end
      end
    end
    if self.received + size > self.max then
      return self:too_large()
    end
    if not self:read_fixed(size) then
      return nil
    end
    local crlf = self:read(2)
    if not crlf then
      return nil
    end
    if crlf ~= "\r\n" then
      return self:fail("malformed chunked encoding", "network")
    end
  end
end

function Transfer:read_to_close()
  local buf = self.buf
  self.buf = ""
  if not self:sink(buf) then
    return nil
  end
  while true do
    local data, eof = self:recv(CHUNK)
    if not data then
      return eof and true or nil
    end
    if not self:sink(data) then
      return nil
    end
  end
end

-- Connects (or takes a pooled connection) and does the TLS handshake on new connections.
function Transfer:connect(u, transport)
  local sock, err = ngx.socket.tcp()
  if not sock then
    return self:fail("cannot create socket: " .. tostring(err), "network")
  end
  self.sock = sock
  self.armed = false
  if not self:arm(self.connect_ms) then
    return self:timed_out()
  end
  local ok
  ok, err = sock:connect(u.connect_host, u.port, {
    pool = u.scheme .. "://" .. str_lower(u.host) .. ":" .. u.port,
    pool_size = transport.pool_size,
  })
  if not ok then
    local msg = "cannot connect to " .. u.host_header .. ": " .. tostring(err)
    if str_find(tostring(err), "resolver", 1, true) then
      msg = msg .. " (set nginx's resolver directive)"
    end
    return self:fail(msg, classify(err))
  end
  self.reused = (sock:getreusedtimes() or 0) > 0
  if not self.reused then
    transport.connects = transport.connects + 1
  end
  if u.scheme == "https" and not self.reused then
    if not self:arm(self.connect_ms) then
      return self:timed_out()
    end
    ok, err = sock:sslhandshake(false, u.host, true)
    if not ok then
      if err == "timeout" then
        return self:fail("TLS handshake timed out", "timeout")
      end
      return self:fail("TLS handshake with " .. u.host_header .. " failed: " .. tostring(err)
        .. " (peers are verified against lua_ssl_trusted_certificate)", "tls")
    end
  end
  return true
end

-- Sends the request head and body (streaming multipart files).
function Transfer:send_request(head, body, plan)
  if plan then
    local buf = { head }
    for _, piece in ipairs(plan.pieces) do
      if type(piece) == "string" then
        buf[#buf + 1] = piece
      else
        if not self:send(buf) then
          return nil
        end
        buf = {}
        local f, err = io_open(piece.path, "rb")
        if not f then
          return self:fail("cannot read multipart file '" .. piece.path .. "': "
            .. io_reason(piece.path, err), "io")
        end
        local left = piece.size
        while left > 0 do
          local data = f:read(math_min(left, CHUNK))
          if not data then
            f:close()
            return self:fail("cannot read multipart file '" .. piece.path .. "': it changed size", "io")
          end
          left = left - #data
          if not self:send(data) then
            f:close()
            return nil
          end
        end
        f:close()
      end
    end
    return self:send(buf)
  end
  if body and #body > 0 then
    return self:send({ head, body })
  end
  return self:send(head)
end

-- Reads the response after the request went out; returns status, headers, body.
function Transfer:receive_response(req, method, transport)
  local status, version, headers
  repeat
    local block = self:read_until("\r\n\r\n", MAX_HEADER_BYTES, "response headers")
    if not block then
      return nil
    end
    status, version, headers = parse_head(self, block)
    if not status then
      return nil
    end
  until status >= 200 or status == 101

  local te = header_tokens(headers["transfer-encoding"])
  local chunked = te[#te] == "chunked"
  local length
  local cl = headers["content-length"]
  if cl ~= nil and #te == 0 then
    if type(cl) == "table" then
      for i = 2, #cl do
        if cl[i] ~= cl[1] then
          return self:fail("conflicting Content-Length headers", "network")
        end
      end
      cl = cl[1]
    end
    if not str_find(cl, "^%d+$") then
      return self:fail("malformed Content-Length header", "network")
    end
    length = tonumber(cl) -- past 2^53 inexact, and above any max_response_size
  end

  local no_body = method == "HEAD" or status == 204 or status == 304 or status < 200
  if not self:open_sink((not no_body) and length or nil) then
    return nil
  end

  local ok, to_close = true, false
  if not no_body then
    if chunked then
      ok = self:read_chunked(headers)
    elseif length then
      if length > self.max then
        return self:fail(str_format("response body of %.0f bytes announced, over "
          .. "max_response_size (%d bytes)", length, self.max), "too_large")
      end
      ok = self:read_fixed(length)
    else
      to_close = true
      ok = self:read_to_close()
    end
  end
  if not ok or not self:close_sink() then
    return nil
  end

  -- keep the connection only when the body was fully read and both sides agree
  local conn = header_tokens(headers["connection"])
  local keep = not to_close and status ~= 101 and self.buf == ""
  for _, tok in ipairs(conn) do
    if tok == "close" then
      keep = false
    end
  end
  if version < 11 then
    keep = false
    for _, tok in ipairs(conn) do
      if tok == "keep-alive" then
        keep = not to_close
      end
    end
  end
  local sock = self.sock
  self.sock = nil
  if keep then
    sock:setkeepalive(transport.keepalive_timeout, transport.pool_size)
  else
    sock:close()
  end

  local body
  if req.output ~= nil then
    body = self.received
  else
    body = tbl_concat(self.parts)
  end
  return status, headers, body
end

local function check_timeout(v, name)
  if v ~= nil and (type(v) ~= "number" or v ~= v or v < 0) then
    error("assesskit.ngx.transport: req." .. name .. " must be a non-negative number of seconds", 3)
  end
end

--- Performs one HTTP request without blocking the nginx worker.
-- Same contract as `core.session:request` (docs/DESIGN.md): `req.method` (default GET),
-- `req.url`, `req.headers` (name -> string or array), `req.body` or `req.multipart`,
-- `req.timeout` (seconds, whole transfer), `req.connect_timeout` (seconds; also bounds the TLS
-- handshake), `req.output` (stream the body to this file; `body` is then the byte count),
-- `req.on_progress` (function(received, total); an error in it aborts the transfer).
-- Without timeouts, nginx's `lua_socket_*_timeout` settings apply to each socket operation.
-- Redirects are not followed.
-- @tparam table req
-- @treturn[1] integer status
-- @treturn[1] table headers, lower-cased names; a repeated header is an array
-- @treturn[1] string|integer body, or the number of bytes written to `req.output`
-- @treturn[2] nil
-- @treturn[2] string message
-- @treturn[2] string kind: timeout, network, tls, too_large, insecure, io, aborted, closed
-- @usage local status, headers, body = t:request({ method = "POST", url = url,
--   headers = { ["content-type"] = "application/json" }, body = "{}", timeout = 10 })
function M:request(req)
  if type(self) ~= "table" or getmetatable(self) ~= mt then
    error("assesskit.ngx.transport: use transport:request(req)", 2)
  end
  if self.closed then
    return nil, "session is closed", "closed"
  end
  if type(req) ~= "table" then
    error("assesskit.ngx.transport: request expects a table", 2)
  end
  if type(req.url) ~= "string" then
    error("assesskit.ngx.transport: req.url must be a string", 2)
  end
  local method = req.method or "GET"
  if type(method) ~= "string" or not str_find(method, "^[!#$%%&'*+.^_`|~%w-]+$") then
    error("assesskit.ngx.transport: req.method must be an HTTP method token", 2)
  end
  method = method:upper()
  if req.body ~= nil and type(req.body) ~= "string" then
    error("assesskit.ngx.transport: req.body must be a string", 2)
  end
  if req.body ~= nil and req.multipart ~= nil then
    error("assesskit.ngx.transport: req.body and req.multipart are mutually exclusive", 2)
  end
  if req.output ~= nil and (type(req.output) ~= "string" or str_find(req.output, "%z")) then
    -- (io.open would write to the path cut short at a NUL)
    error("assesskit.ngx.transport: req.output must be a file path (a string without NUL)", 2)
  end
  if req.on_progress ~= nil and type(req.on_progress) ~= "function" then
    error("assesskit.ngx.transport: req.on_progress must be a function", 2)
  end
  check_timeout(req.timeout, "timeout")
  check_timeout(req.connect_timeout, "connect_timeout")
  check_phase()

  local u, uerr = parse_url(req.url)
  if not u then
    error("assesskit.ngx.transport: bad req.url: " .. uerr, 2)
  end
  if not url_mod.allowed(u.url, self.allow_http) then
    return nil, "plain http to a non-loopback host is refused (use https, or allow_http = true)",
      "insecure"
  end

  -- request head
  local lines = { method .. " " .. u.target .. " HTTP/1.1\r\n" }
  local seen = add_user_headers(lines, req.headers)
  if u.userinfo and not seen["authorization"] then -- as libcurl does with credentials in a URL
    lines[#lines + 1] = "Authorization: Basic " .. ngx.encode_base64(url_mod.decode(u.userinfo))
      .. "\r\n"
  end
  if not seen["host"] then
    lines[#lines + 1] = "Host: " .. u.host_header .. "\r\n"
  end
  if not seen["user-agent"] then
    lines[#lines + 1] = "User-Agent: " .. self.user_agent .. "\r\n"
  end
  if not seen["accept"] then
    lines[#lines + 1] = "Accept: */*\r\n"
  end
  local plan, body = nil, req.body
  if req.multipart ~= nil then
    local perr, pkind
    plan, perr, pkind = plan_multipart(req.multipart)
    if not plan then
      return nil, perr, pkind
    end
    if not seen["content-type"] then
      lines[#lines + 1] = "Content-Type: multipart/form-data; boundary=" .. plan.boundary .. "\r\n"
    end
    lines[#lines + 1] = "Content-Length: " .. plan.length .. "\r\n"
  elseif body ~= nil then
    lines[#lines + 1] = "Content-Length: " .. #body .. "\r\n"
  elseif method == "POST" or method == "PUT" or method == "PATCH" then
    lines[#lines + 1] = "Content-Length: 0\r\n"
  end
  lines[#lines + 1] = "\r\n"
  local head = tbl_concat(lines)

  local out
  if req.output ~= nil then
    local oerr
    out, oerr = io_open(req.output, "wb")
    if not out then
      return nil, "cannot open output '" .. req.output .. "': " .. io_reason(req.output, oerr), "io"
    end
  end

  local start = now()
  local deadline = req.timeout and req.timeout > 0 and (start + req.timeout) or nil
  local connect_ms = req.connect_timeout and req.connect_timeout > 0 and req.connect_timeout * 1000 or nil

  -- A pooled keep-alive connection may have been closed by the peer meanwhile: when a reused
  -- connection fails before any response byte arrived, try again (at most pool_size + 1 times).
  local attempts = 0
  while true do
    attempts = attempts + 1
    local t = setmetatable({
      -- as the core: max_response_size caps a body held in memory, not one streamed to a file
      deadline = deadline, connect_ms = connect_ms, max = out and math_huge or self.max_response_size,
      on_progress = req.on_progress, buf = "", out = out,
    }, Transfer)
    local status, headers, rbody
    if t:connect(u, self) and t:send_request(head, body, plan) then
      status, headers, rbody = t:receive_response(req, method, self)
    end
    if status then
      self.requests = self.requests + 1
      return status, headers, rbody
    end
    local stale = t.reused and not t.received_any and t.kind == "network"
    if not stale or attempts > self.pool_size then
      if out and io_type(out) == "file" then
        out:close()
      end
      self.requests = self.requests + 1
      return nil, t.err, t.kind
    end
  end
end

return M
