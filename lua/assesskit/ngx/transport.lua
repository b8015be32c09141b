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
local str_gmatch = string.gmatch
local str_upper = string.upper
local str_sub = string.sub
local tbl_concat = table.concat

local url_mod = require("assesskit.url")
local options = require("assesskit.options")

local M = {}
local mt = { __index = M }

local DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024
-- Caps on what a response can make the transport hold (past one: kind too_large). The first
-- three are libcurl's, so that both transports refuse the same responses.
local MAX_HEADER_BYTES = 300 * 1024     -- every head of one response together, 1xx included
local MAX_HEADER_LINE = 100 * 1024      -- the status line, one header line
local MAX_TRAILER_LINE = 4096           -- one trailer line
local MAX_HEAD_AND_TRAILERS = 1024 * 1024 -- the final head and the trailers together (the core's)
local MAX_FIELDS = 100000               -- header and trailer fields of one response
local MAX_CHUNK_LINE = 1024 * 1024      -- a chunk-size line, extensions included
local CHUNK = 64 * 1024                 -- read and file-write granularity
local SMALL_PART = 4096                 -- body pieces below this are joined ...
local SMALL_PIECES = 256                -- ... once they add up to it, or are this many
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
  options.check(opts, KNOWN_OPTIONS, "assesskit.ngx.transport.new", 2)
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

-- A transfer holds the socket, the deadline, the receive buffer and the result of the failure,
-- if any. What arrives is kept in `buf` (the last piece received) from `pos` on; a line that
-- spans pieces collects in `pending`. Every read costs in proportion to the bytes it consumes,
-- whatever the framing (a body of 1-byte chunks costs about what one big chunk costs).
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
-- some progress is made, so one big send could outlive the deadline). From the first send on,
-- the request may have reached the server: `sent` is true.
function Transfer:send(data)
  if type(data) == "table" then
    data = tbl_concat(data)
  end
  self.sent = true
  local pos, n = 1, #data
  repeat
    if not self:arm() then
      return self:timed_out()
    end
    local piece = (pos == 1 and n <= CHUNK) and data or str_sub(data, pos, pos + CHUNK - 1)
    local ok, err = self.sock:send(piece)
    if not ok then
      if err ~= "timeout" and err ~= "closed" then
        -- The server stopped reading (it closed or reset the connection): it may have answered
        -- already, as servers do when they refuse an upload (413, 401). nginx shut down only
        -- the writing side of the socket, so the caller can still read that answer.
        self.send_failed = "send failed: " .. tostring(err)
        return nil
      end
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
  return data
end

-- Replaces the buffer with the next piece of a response that is not complete yet (the end of
-- the stream here is a failure); the caller took what it needed from the old one. True, or
-- nil after fail().
function Transfer:fill()
  local data, eof = self:recv(CHUNK)
  if not data then
    if eof then
      return self:fail("connection closed before the response was complete", "network")
    end
    return nil
  end
  self.buf, self.pos = data, 1
  return true
end

-- Reads one line (up to LF; a CR before the LF dropped) of at most `max` bytes without its
-- line end; past `max` bytes without a line end, the transfer ends too_large, naming `what`.
-- Returns the line and the number of bytes it took from the stream, or nil after fail().
function Transfer:read_line(max, what)
  local pending, plen = nil, 0
  while true do
    local buf, pos = self.buf, self.pos
    local lf = str_find(buf, "\n", pos, true)
    if lf then
      local line = str_sub(buf, pos, lf - 1)
      self.pos = lf + 1
      if pending then
        pending[#pending + 1] = line
        line = tbl_concat(pending)
      end
      local took = plen + lf - pos + 1
      if str_byte(line, -1) == 13 then
        line = str_sub(line, 1, -2)
      end
      if #line > max then
        return self:fail(what .. " longer than " .. max .. " bytes", "too_large")
      end
      return line, took
    end
    if pos <= #buf then
      pending = pending or {}
      pending[#pending + 1] = pos == 1 and buf or str_sub(buf, pos)
      plen = plen + #buf - pos + 1
      if plen > max + 1 then -- (+1: a CR may end it)
        return self:fail(what .. " longer than " .. max .. " bytes", "too_large")
      end
    end
    if not self:fill() then
      return nil
    end
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

-- Adds one "Name: value" line to headers (lower-cased name, whitespace before the colon
-- dropped as libcurl does; repeated -> array); returns the name, or nil when the line is
-- malformed.
local function add_header(headers, line)
  local _, colon = str_find(line, "^[^:%s]+[ \t]*:")
  if not colon then
    return nil
  end
  local name = str_lower(str_match(line, "^[^:%s]+"))
  local value = trim(line, colon + 1)
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

-- Why a line of a response head cannot be taken: a NUL or a CR that does not end the line
-- (RFC 9112 section 2.2: a bare CR is invalid; a NUL could cut a value short downstream).
local function bad_bytes(line)
  if str_find(line, "%z") then
    return "a NUL byte"
  end
  if str_find(line, "\r", 1, true) then
    return "a bare CR"
  end
  return nil
end

-- The status line: status and version (10, 11 or 20), or nil. As the core: "HTTP/" in any case,
-- version 1.0, 1.1 or 2 (also "2.0"), one space (RFC 9112 section 4), a three-digit code from
-- 100 on, then the end of the line or a space.
local function parse_status_line(line)
  local name, ver, code, rest = str_match(line, "^(%a%a%a%a)/([%d.]+) (%d%d%d)(.*)$")
  if not name or str_upper(name) ~= "HTTP" then
    return nil
  end
  local version = (ver == "1.1" and 11) or (ver == "1.0" and 10) or ((ver == "2" or ver == "2.0") and 20)
  if not version or (rest ~= "" and str_byte(rest, 1) ~= 32) then
    return nil
  end
  local status = tonumber(code)
  if status < 100 then
    return nil
  end
  return status, version
end

-- Reads one response head (status line and header lines, up to the empty line) under the
-- caps: each line, every head of the response together (1xx included), the field count.
-- Returns status, version, headers, or nil after fail(). An obsolete folded line continues
-- the previous header's value after one space (RFC 9112 section 5.2), as in the core.
function Transfer:read_head()
  local line, took = self:read_line(MAX_HEADER_LINE, "response status line")
  if not line then
    return nil
  end
  self.head_bytes = self.head_bytes + took
  local status, version = parse_status_line(line)
  if not status then
    return self:fail("malformed response status line", "network")
  end
  local bad = bad_bytes(line)
  if bad then
    return self:fail("response status line with " .. bad, "network")
  end
  local headers, last, folded = {}, nil, nil
  local block_bytes = took
  while true do
    line, took = self:read_line(MAX_HEADER_LINE, "response header line")
    if not line then
      return nil
    end
    self.head_bytes = self.head_bytes + took
    block_bytes = block_bytes + took
    if self.head_bytes > MAX_HEADER_BYTES then
      return self:fail("response headers larger than " .. MAX_HEADER_BYTES .. " bytes", "too_large")
    end
    local c = str_byte(line, 1)
    if (c == 32 or c == 9) and last then
      local cont = trim(line, 1)
      if cont ~= "" then
        bad = bad_bytes(cont)
        if bad then
          return self:fail("response header line with " .. bad, "network")
        end
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
      if line == "" then
        break
      end
      bad = bad_bytes(line)
      if bad then
        return self:fail("response header line with " .. bad, "network")
      end
      self.fields = self.fields + 1
      if self.fields > MAX_FIELDS then
        return self:fail("more than " .. MAX_FIELDS .. " response header fields", "too_large")
      end
      last = add_header(headers, line)
      if not last then
        return self:fail("malformed response header line", "network")
      end
    end
  end
  self.block_bytes = block_bytes
  return status, version, headers
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

-- The body length a Content-Length header (a string, or the array of a repeated one) gives:
-- every value (comma lists too) must be digits and all must agree (RFC 9110 section 8.6).
-- Returns the length (a float past 2^53: above any max_response_size), or nil and why.
local function content_length(cl)
  local values = type(cl) == "table" and cl or { cl }
  local length
  for _, v in ipairs(values) do
    for item in str_gmatch(v .. ",", "([^,]*),") do
      item = trim(item, 1)
      if not str_find(item, "^%d+$") then
        return nil, "malformed Content-Length header"
      end
      local n = tonumber(item)
      if length and n ~= length then
        return nil, "conflicting Content-Length headers"
      end
      length = n
    end
  end
  return length
end

-- The body sink: memory or an output file; enforces max size and reports progress.
function Transfer:open_sink(total)
  self.received = 0
  self.total = total -- nil while unknown, as the core
  if self.out then
    self.file = self.out
  else
    self.parts, self.small, self.small_bytes = {}, {}, 0
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
    self:keep(data)
  end
  return self:progress()
end

-- Joins the small pieces kept so far into one part.
function Transfer:join_small()
  local small = self.small
  if #small > 0 then
    local parts = self.parts
    parts[#parts + 1] = tbl_concat(small)
    self.small, self.small_bytes = {}, 0
  end
end

-- Keeps a piece of a body held in memory. A peer that sends a byte at a time makes pieces of a
-- few bytes, each of which would cost tens of bytes kept apart (a string and a table slot):
-- small pieces are joined into parts of SMALL_PART bytes (or SMALL_PIECES pieces), so what
-- the body holds stays about its own size.
function Transfer:keep(data)
  local n = #data
  if n >= SMALL_PART then
    self:join_small()
    local parts = self.parts
    parts[#parts + 1] = data
    return
  end
  local small = self.small
  small[#small + 1] = data
  self.small_bytes = self.small_bytes + n
  if self.small_bytes >= SMALL_PART or #small >= SMALL_PIECES then
    self:join_small()
  end
end

function Transfer:close_sink()
  if self.parts then
    self:join_small()
  end
  if self.file then
    local ok, err = self.file:close()
    self.file = nil
    if not ok and not self.err then
      return self:fail("cannot write output: " .. tostring(err), "io")
    end
  end
  return true
end

-- Reads exactly n body bytes into the sink.
function Transfer:read_fixed(n)
  while true do
    local buf, pos = self.buf, self.pos
    local avail = #buf - pos + 1
    if avail > 0 then
      local take = avail < n and avail or n
      if not self:sink((pos == 1 and take == #buf) and buf or str_sub(buf, pos, pos + take - 1)) then
        return nil
      end
      self.pos = pos + take
      n = n - take
    end
    if n <= 0 then
      return true
    end
    if not self:fill() then
      return nil
    end
  end
end

-- Reads the trailer section (after the last chunk) into `headers`, as libcurl reports
-- trailers: each line, the head and trailers together, and the field count are capped. An
-- obsolete folded line continues the previous trailer's value after one space, as in the head
-- (and in the core); one with no trailer before it continues nothing kept and is dropped.
function Transfer:read_trailers(headers)
  local bytes = self.block_bytes
  local last, folded
  while true do
    local line, took = self:read_line(MAX_TRAILER_LINE, "trailer line")
    if not line then
      return nil
    end
    local c = str_byte(line, 1)
    if folded and c ~= 32 and c ~= 9 then
      set_newest(headers, last, tbl_concat(folded, " "))
      folded = nil
    end
    if line == "" then
      return true
    end
    bytes = bytes + took
    if bytes > MAX_HEAD_AND_TRAILERS then
      return self:fail("response headers and trailers larger than " .. MAX_HEAD_AND_TRAILERS
        .. " bytes", "too_large")
    end
    local bad = bad_bytes(line)
    if bad then
      return self:fail("trailer line with " .. bad, "network")
    end
    if c == 32 or c == 9 then
      local cont = trim(line, 1)
      if last and cont ~= "" then
        if not folded then
          local v = headers[last]
          v = type(v) == "table" and v[#v] or v
          folded = v ~= "" and { v } or {}
        end
        folded[#folded + 1] = cont
      end
    else
      self.fields = self.fields + 1
      if self.fields > MAX_FIELDS then
        return self:fail("more than " .. MAX_FIELDS .. " response header fields", "too_large")
      end
      last = add_header(headers, line)
      if not last then
        return self:fail("malformed trailer line", "network")
      end
    end
  end
end

local HEX_DIGITS = {}
for i = 0, 9 do
  HEX_DIGITS[48 + i] = i
end
for i = 0, 5 do
  HEX_DIGITS[65 + i], HEX_DIGITS[97 + i] = 10 + i, 10 + i
end

-- The number written in hex digits from `pos` of `s` (0 when there are none; a float, exact
-- up to 2^53 and above any cap past it), and the index after the digits.
local function hex_at(s, pos)
  local size, i = 0.0, pos
  local d = HEX_DIGITS[str_byte(s, i)]
  while d do
    size = size * 16 + d
    i = i + 1
    d = HEX_DIGITS[str_byte(s, i)]
  end
  return size, i
end

-- Reads a chunked body (RFC 9112 section 7.1) into the sink, then its trailers into
-- `headers`. The chunks found whole in the buffer are parsed in place and handed to the sink
-- together; a chunk-size line is hex digits (16 at most, as libcurl) and whatever follows
-- them on the line (extensions) is skipped.
function Transfer:read_chunked(headers)
  local acc, accn, accb = {}, 0, 0
  while true do
    local buf, pos = self.buf, self.pos
    local len = #buf
    -- whole chunks in the buffer
    while true do
      -- a size line is judged whole, as read_chunk does (the outcome must not depend on where
      -- the stream was split)
      local lf = str_find(buf, "\n", pos, true)
      if not lf then
        break -- the size line goes on in the next piece
      end
      local size, i = hex_at(buf, pos) -- what follows the digits up to LF (extensions): skipped
      if i == pos or i - pos > 16 then
        if accn > 0 and not self:sink(tbl_concat(acc, "", 1, accn)) then
          return nil
        end
        return self:fail("malformed chunked encoding (chunk size)", "network")
      end
      if size == 0 then
        self.pos = lf + 1
        if accn > 0 and not self:sink(tbl_concat(acc, "", 1, accn)) then
          return nil
        end
        return self:read_trailers(headers)
      end
      if lf + size >= len then
        break -- the chunk goes on in the next piece
      end
      local data_end = lf + size
      local after = str_byte(buf, data_end + 1)
      if after == 13 then
        after = str_byte(buf, data_end + 2)
        if after ~= nil and after ~= 10 then
          after = false
        end
        data_end = data_end + 1
      end
      if after == nil then
        break
      end
      if after ~= 10 then
        return self:fail("malformed chunked encoding (no line end after a chunk)", "network")
      end
      accn, accb = accn + 1, accb + size
      if self.received + accb > self.max then
        return self:too_large()
      end
      acc[accn] = str_sub(buf, lf + 1, lf + size)
      pos = data_end + 2
      if pos > len then
        break
      end
    end
    self.pos = pos
    if accn > 0 then
      if not self:sink(tbl_concat(acc, "", 1, accn)) then
        return nil
      end
      accn, accb = 0, 0
    end
    if pos > len then
      if not self:fill() then
        return nil
      end
    else
      -- a chunk that spans pieces: its size line, its data, its line end, one by one
      if not self:read_chunk() then
        return nil
      end
      if self.chunk_done then
        return self:read_trailers(headers)
      end
    end
  end
end

-- Reads one chunk the slow way (when it spans pieces of the stream).
function Transfer:read_chunk()
  local line = self:read_line(MAX_CHUNK_LINE, "chunk size line")
  if not line then
    return nil
  end
  local size, i = hex_at(line, 1)
  if i == 1 or i > 17 then
    return self:fail("malformed chunked encoding (chunk size)", "network")
  end
  if size == 0 then
    self.chunk_done = true
    return true
  end
  if not self:read_fixed(size) then
    return nil
  end
  -- the line end after the data: LF, or CR LF
  local c = self:next_byte()
  if c == 13 then
    c = self:next_byte()
  end
  if c ~= 10 then
    if c then
      return self:fail("malformed chunked encoding (no line end after a chunk)", "network")
    end
    return nil
  end
  return true
end

-- Takes the next byte of the response (waiting for it); nil after fail().
function Transfer:next_byte()
  if self.pos > #self.buf and not self:fill() then
    return nil
  end
  local pos = self.pos
  self.pos = pos + 1
  return str_byte(self.buf, pos)
end

-- Reads a body that ends when the server closes the connection.
function Transfer:read_to_close()
  local buf, pos = self.buf, self.pos
  if pos <= #buf and not self:sink(pos == 1 and buf or str_sub(buf, pos)) then
    return nil
  end
  self.buf, self.pos = "", 1
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

-- Whether the URL's host is an IP address literal (assesskit.url gives IPv4 as a dotted quad).
local function is_ip_literal(u)
  return u.ipv6 or str_find(u.host, "^%d+%.%d+%.%d+%.%d+$") ~= nil
end

-- OpenSSL through LuaJIT's FFI, for what cosockets do not do: match a certificate's IP
-- addresses (nginx checks host names only). nil, why when unavailable.
local openssl_ip_check
local function ip_checker()
  if openssl_ip_check ~= nil then
    return openssl_ip_check or nil, "LuaJIT's FFI or OpenSSL's X509_check_ip_asc is not available"
  end
  openssl_ip_check = false
  local ok, ffi = pcall(require, "ffi")
  if not ok then
    return nil, "LuaJIT's FFI is not available"
  end
  pcall(ffi.cdef, [[
    void *SSL_SESSION_get0_peer(void *session);
    int X509_check_ip_asc(void *cert, const char *address, unsigned int flags);
  ]])
  local found = pcall(function() return ffi.C.SSL_SESSION_get0_peer and ffi.C.X509_check_ip_asc end)
  if not found then
    return nil, "OpenSSL's X509_check_ip_asc is not available to LuaJIT's FFI"
  end
  openssl_ip_check = function(session, address)
    local cert = ffi.C.SSL_SESSION_get0_peer(session)
    return cert ~= nil and ffi.C.X509_check_ip_asc(cert, address, 0) == 1
  end
  return openssl_ip_check
end

-- The TLS handshake on a new connection: verification always on; a host name is sent as SNI
-- and checked by nginx; an IP literal is sent without SNI (RFC 6066) and matched against the
-- certificate's IP addresses here, as libcurl does.
function Transfer:handshake(u)
  local ip = is_ip_literal(u)
  local session, err
  if ip then
    session, err = self.sock:sslhandshake(nil, nil, true) -- the session: to read the certificate
  else
    session, err = self.sock:sslhandshake(false, u.host, true)
  end
  if not session and err then
    if err == "timeout" then
      return self:fail("TLS handshake timed out", "timeout")
    end
    return self:fail("TLS handshake with " .. u.host_header .. " failed: " .. tostring(err)
      .. " (peers are verified against lua_ssl_trusted_certificate)", "tls")
  end
  if ip then
    local check, why = ip_checker()
    if not check then
      return self:fail("cannot verify the certificate of " .. u.host_header .. ": " .. why, "tls")
    end
    if type(session) ~= "cdata" or not check(session, u.host) then
      return self:fail("TLS handshake with " .. u.host_header .. " failed: the certificate does "
        .. "not name " .. u.host, "tls")
    end
  end
  return true
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
    return self:handshake(u)
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

-- How the body of a final response is delimited: "none", "chunked", "length" (and the
-- length) or "close"; whether the connection may be kept afterwards; or nil after fail().
function Transfer:framing(method, status, headers)
  local te = header_tokens(headers["transfer-encoding"])
  local codings = {}
  for _, tok in ipairs(te) do
    if tok ~= "identity" then -- as libcurl: identity is no coding at all
      codings[#codings + 1] = tok
    end
  end
  local cl = headers["content-length"]
  local no_body = method == "HEAD" or status == 204 or status == 304
  if no_body then
    -- a 204/304 that announces a body may be followed by it: do not reuse that connection
    local announced = #codings > 0 or (cl ~= nil and content_length(cl) ~= 0 and method ~= "HEAD")
    return "none", nil, not announced
  end
  if #codings > 0 then
    for i = 1, #codings - 1 do
      if codings[i] ~= "chunked" then
        return self:fail("unsupported transfer coding '" .. codings[i] .. "'", "network")
      end
    end
    if codings[#codings] ~= "chunked" then
      return self:fail("unsupported transfer coding '" .. codings[#codings] .. "'", "network")
    end
    -- with Content-Length too, the length is ignored and the connection closed afterwards
    -- (RFC 9112 section 6.1)
    return "chunked", nil, cl == nil
  end
  if cl ~= nil then
    local length, why = content_length(cl)
    if not length then
      return self:fail(why, "network")
    end
    return "length", length, true
  end
  return "close", nil, false
end

-- Whether the server lets the connection live on (Connection header and HTTP version).
local function server_keeps(version, headers)
  local conn = header_tokens(headers["connection"])
  local keep = version >= 11
  for _, tok in ipairs(conn) do
    if tok == "close" then
      return false
    elseif tok == "keep-alive" then
      keep = true
    end
  end
  return keep
end

-- Reads the response after the request went out; returns status, headers, body.
function Transfer:receive_response(req, method, transport)
  self.buf, self.pos, self.head_bytes, self.fields = "", 1, 0, 0
  local status, version, headers
  repeat
    status, version, headers = self:read_head()
    if not status then
      return nil
    end
  until status >= 200 or status == 101
  if status == 101 then
    return self:fail("unexpected 101 Switching Protocols (no protocol upgrade was asked for)",
      "network")
  end

  local framing, length, reusable = self:framing(method, status, headers)
  if not framing then
    return nil
  end
  if framing == "length" and length > self.max then
    return self:fail(str_format("response body of %.0f bytes announced, over "
      .. "max_response_size (%d bytes)", length, self.max), "too_large")
  end
  if not self:open_sink(framing == "length" and length or nil) then
    return nil
  end
  local ok = true
  if framing == "chunked" then
    ok = self:read_chunked(headers)
  elseif framing == "length" then
    ok = length == 0 or self:read_fixed(length)
  elseif framing == "close" then
    ok = self:read_to_close()
  end
  if not ok or not self:close_sink() then
    return nil
  end

  -- keep the connection only when the body was read to its end, nothing more came, and
  -- both sides agree
  local keep = reusable and not self.send_failed and self.pos > #self.buf
    and server_keeps(version, headers)
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
-- Redirects are not followed. A request is sent once: when a pooled keep-alive connection
-- turns out to be dead after the request went out, it is not sent again on another one (the
-- caller's retry policy decides). An answer the server sent before it stopped reading the
-- request (a 413 to an upload, then a close or a reset) is returned, as libcurl does. A
-- response is untrusted: its status line and each header
-- line are capped at 100 KiB, all its heads together (1xx included) at 300 KiB (as libcurl),
-- a trailer line at 4 KiB, the final head and trailers together at 1 MiB, header and trailer
-- fields at 100000, a chunk-size line at 1 MiB: past a cap the request ends `too_large`. A NUL
-- or a bare CR in the head, an unsolicited `101 Switching Protocols`, a transfer coding other
-- than chunked, and conflicting Content-Length values end it as `network`.
-- @tparam table req
-- @treturn[1] integer status
-- @treturn[1] table headers, lower-cased names; a repeated header is an array
-- @treturn[1] string|integer body, or the number of bytes written to `req.output`
-- @treturn[2] nil
-- @treturn[2] string message
-- @treturn[2] string kind: timeout, network, tls, too_large, insecure, io, aborted, closed
-- @treturn[2] boolean sent: false when nothing of the request can have reached the server
--   (insecure, closed, a local io failure before sending, connect, DNS or TLS handshake
--   failure, a timeout before the connection was up), true otherwise
-- @usage local status, headers, body = t:request({ method = "POST", url = url,
--   headers = { ["content-type"] = "application/json" }, body = "{}", timeout = 10 })
function M:request(req)
  if type(self) ~= "table" or getmetatable(self) ~= mt then
    error("assesskit.ngx.transport: use transport:request(req)", 2)
  end
  if self.closed then
    return nil, "session is closed", "closed", false
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
      "insecure", false
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
      return nil, perr, pkind, false
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
      return nil, "cannot open output '" .. req.output .. "': " .. io_reason(req.output, oerr), "io",
        false
    end
  end

  local start = now()
  local deadline = req.timeout and req.timeout > 0 and (start + req.timeout) or nil
  local connect_ms = req.connect_timeout and req.connect_timeout > 0 and req.connect_timeout * 1000 or nil

  -- One attempt, never more: when a pooled connection turns out dead after the request went
  -- out, the request is not sent again here (it may have been acted upon); the caller's retry
  -- policy decides, knowing from `sent` that it may have reached the server.
  local t = setmetatable({
    -- as the core: max_response_size caps a body held in memory, not one streamed to a file
    deadline = deadline, connect_ms = connect_ms, max = out and math_huge or self.max_response_size,
    on_progress = req.on_progress, out = out, sent = false,
  }, Transfer)
  self.requests = self.requests + 1
  local status, headers, rbody
  if t:connect(u, self) then
    if t:send_request(head, body, plan) then
      status, headers, rbody = t:receive_response(req, method, self)
    elseif t.send_failed and t.sock then
      -- an answer that came before the request was sent whole (libcurl gives it too);
      -- without one, the failure is the send's
      status, headers, rbody = t:receive_response(req, method, self)
      if not status then
        t.err, t.kind = t.send_failed, "network"
      end
    end
    if not status and t.sock then
      t.sock:close()
      t.sock = nil
    end
  end
  if status then
    return status, headers, rbody
  end
  if out and io_type(out) == "file" then
    out:close()
  end
  return nil, t.err, t.kind, t.sent
end

return M
