--- Bounded-time mutation fuzzing of the nginx transport's response parser (status line,
-- headers, 1xx, Content-Length, chunked framing, trailers, keep-alive decision), outside
-- nginx: `ngx` is a stand-in whose cosocket reads a fuzzed response from memory, so the real
-- `assesskit.ngx.transport` code runs, request to result.
--
-- Usage: `luajit fuzz/ngx_parser.lua [--seconds N] [--seed S] [--verbose]` (default 10 s; the
-- seed defaults to the clock and is printed). Exits 0 when every input held, 1 at the first
-- one that did not (the input is saved under build/fuzz/ and printed).
--
-- What must hold, whatever the bytes:
-- * no Lua error escapes `request`;
-- * the result is `status, headers, body` (status 100..999 but not 101, names lower-case,
--   values strings or arrays of strings without NUL or CR, body a string no longer than
--   max_response_size) or `nil, message, kind, sent` (kind one of network, too_large; sent
--   true: the request went out);
-- * the outcome does not depend on how the bytes were split between reads (each input is
--   run with two random splittings, one of them byte by byte for small inputs);
-- * a Content-Length response's body has that length;
-- * memory stays bounded: the Lua heap never grows past 32 MiB + 32 bytes per input byte.
-- @script fuzz/ngx_parser

local root = (debug.getinfo(1, "S").source:sub(2):match("^(.*)/fuzz/[^/]*$")) or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/luajit/?.so;" .. package.cpath

local seconds, seed, verbose = 10, nil, false
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--seconds" then seconds = assert(tonumber(arg[i + 1]), "--seconds N"); i = i + 1
    elseif a == "--seed" then seed = assert(tonumber(arg[i + 1]), "--seed S"); i = i + 1
    elseif a == "--verbose" then verbose = true
    else error("usage: luajit fuzz/ngx_parser.lua [--seconds N] [--seed S] [--verbose]", 0) end
    i = i + 1
  end
end
seed = seed or (os.time() % 1000000)
math.randomseed(seed)
local random = math.random

-- The stand-in for nginx -------------------------------------------------------------------

local clock = 0
local feed -- the current input: { pieces = {...}, next = 1, sent = {} }

local Sock = {}
Sock.__index = Sock
function Sock.settimeout() end
function Sock.settimeouts() end
function Sock.connect() return 1 end
function Sock.getreusedtimes() return 0 end
function Sock.sslhandshake() return true end
function Sock.send(_, data)
  feed.sent[#feed.sent + 1] = data
  return #data
end
function Sock.receiveany(_, max)
  assert(type(max) == "number" and max > 0, "receiveany: bad size")
  local kb = collectgarbage("count")
  if kb > feed.peak_kb then feed.peak_kb = kb end
  local piece = feed.pieces[feed.next]
  if not piece then
    return nil, "closed"
  end
  if #piece > max then
    feed.pieces[feed.next] = piece:sub(max + 1)
    return piece:sub(1, max)
  end
  feed.next = feed.next + 1
  return piece
end
function Sock:close() self.closed = true end
function Sock:setkeepalive() self.kept = true end

_G.ngx = { -- luacheck: ignore (the stand-in must be the global the transport reads)
  socket = { tcp = function() return setmetatable({}, Sock) end },
  get_phase = function() return "content" end,
  now = function() return clock end,
  update_time = function() clock = clock + 0.001 end,
  md5 = function(s) return ("%032x"):format(#s) end,
  worker = { pid = function() return 1 end },
}

local ok_core, T = pcall(require, "assesskit.ngx.transport")
if not ok_core then
  io.stderr:write("fuzz/ngx_parser.lua: cannot load the transport (run `make LUA=luajit` first): ",
    tostring(T), "\n")
  os.exit(2)
end

local MAX = 64 * 1024

-- Seeds -------------------------------------------------------------------------------------

local CRLF = "\r\n"
local seeds = {
  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: t\r\n\r\n",
  "HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nbody until close",
  "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\nHTTP/1.1 204 No Content\r\nX-Final: yes\r\n\r\n",
  "HTTP/1.1 200 OK\r\nX-Fold: first\r\n  second\r\n\tthird\r\nContent-Length: 0\r\n\r\n",
  "HTTP/1.1 304 Not Modified\r\nContent-Length: 5000\r\nConnection: keep-alive\r\n\r\n",
  "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nno",
  "HTTP/1.1 200 OK\nContent-Length: 2\nX-Lf: only\n\nok",
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc",
  "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n1\nb\n0\n\n",
  "HTTP/2 200\r\ncontent-length: 2\r\n\r\nok",
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
  "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" .. string.rep("1\r\nx\r\n", 300) .. "0\r\n\r\n",
}

-- Pieces the mutator inserts: framing bytes and the numbers that sit on the edges.
local TOKENS = { "\r", "\n", "\r\n", "\r\n\r\n", ":", " ", "\t", "\0", ";", ",", "0", "1", "f", "-", "+",
  "HTTP/1.1 ", "HTTP/1.0 ", "100 Continue\r\n\r\n", "Content-Length: ", "Transfer-Encoding: chunked",
  "Connection: close", "chunked", "ffffffffffffffff", "10000000000000000", "99999999999999999999",
  "9007199254740993", "65536", "0\r\n\r\n", "X: " }

local function pick(t) return t[random(#t)] end

local function mutate(s)
  local n = random(1, 4)
  for _ = 1, n do
    local op = random(9)
    local len = #s
    local p = random(0, len)
    if op == 1 and len > 0 then -- flip a byte
      local i = random(len)
      s = s:sub(1, i - 1) .. string.char(random(0, 255)) .. s:sub(i + 1)
    elseif op == 2 then -- insert a token
      s = s:sub(1, p) .. pick(TOKENS) .. s:sub(p + 1)
    elseif op == 3 and len > 0 then -- delete a range
      local e = math.min(len, p + random(0, 16))
      s = s:sub(1, p) .. s:sub(e + 1)
    elseif op == 4 and len > 0 then -- duplicate a range, sometimes many times (caps)
      local e = math.min(len, p + random(1, 64))
      local times = random(10) == 1 and random(100, 40000) or random(1, 4)
      s = s:sub(1, p) .. string.rep(s:sub(p + 1, e), times) .. s:sub(p + 1)
    elseif op == 5 then -- splice with another seed
      local o = pick(seeds)
      s = s:sub(1, p) .. o:sub(random(1, #o))
    elseif op == 6 then -- a line repeated (header or trailer floods)
      local line = pick({ "a:" .. CRLF, "X-T: " .. string.rep("t", random(1, 5000)) .. CRLF, " fold" .. CRLF,
        "HTTP/1.1 100 Continue\r\n\r\n", "1\r\nx\r\n" })
      s = s:sub(1, p) .. string.rep(line, random(1, 3000)) .. s:sub(p + 1)
    elseif op == 7 and len > 0 then -- truncate
      s = s:sub(1, p)
    elseif op == 8 then -- a long run of one byte (long lines, whitespace runs)
      s = s:sub(1, p) .. string.rep(pick({ " ", "a", "\r", "0" }), random(1, 120000)) .. s:sub(p + 1)
    else -- replace a number
      s = s:gsub("%d+", function(d) if random(3) == 1 then return pick(TOKENS) end return d end, 1)
    end
  end
  if #s > 4 * 1024 * 1024 then s = s:sub(1, 4 * 1024 * 1024) end
  return s
end

-- One run -----------------------------------------------------------------------------------

local function split(s, bytewise)
  local pieces = {}
  if bytewise then
    for i = 1, #s do pieces[i] = s:sub(i, i) end
    return pieces
  end
  local i = 1
  while i <= #s do
    local n = random(3) == 1 and random(1, 8) or random(1, 70000)
    pieces[#pieces + 1] = s:sub(i, i + n - 1)
    i = i + n
  end
  return pieces
end

local KINDS = { network = true, too_large = true }

-- Runs the transport on `input` split into `pieces`; returns a comparable outcome string, or
-- raises with what did not hold.
local function run(input, pieces, method)
  feed = { pieces = pieces, next = 1, sent = {}, peak_kb = collectgarbage("count") }
  local base_kb = feed.peak_kb
  local t = T.new({ max_response_size = MAX })
  local ok, status, headers, body, sent = pcall(t.request, t,
    { method = method, url = "http://127.0.0.1:8080/x" })
  if not ok then
    error("a Lua error escaped: " .. tostring(status), 0)
  end
  local budget = 32 * 1024 + #input * 32 / 1024
  if feed.peak_kb - base_kb > budget then
    error(("memory: the heap grew by %.0f kB for a %d-byte input"):format(feed.peak_kb - base_kb, #input), 0)
  end
  if status == nil then
    assert(type(headers) == "string", "the failure message is not a string")
    if not KINDS[body] then error("unexpected kind " .. tostring(body) .. ": " .. tostring(headers), 0) end
    if sent ~= true then error("sent is " .. tostring(sent) .. " after the request went out", 0) end
    return "fail " .. body .. " " .. headers
  end
  if math.type and math.type(status) ~= "integer" then error("status is not an integer", 0) end
  if status < 100 or status > 999 or status == 101 or status ~= math.floor(status) then
    error("status " .. tostring(status), 0)
  end
  if type(body) ~= "string" then error("body is a " .. type(body), 0) end
  if #body > MAX then error("a body over max_response_size came back: " .. #body, 0) end
  local names = {}
  for k, v in pairs(headers) do
    if type(k) ~= "string" or k ~= k:lower() or k == "" then error("header name " .. ("%q"):format(k), 0) end
    local values = type(v) == "table" and v or { v }
    for _, x in ipairs(values) do
      if type(x) ~= "string" then error("header " .. k .. " has a " .. type(x) .. " value", 0) end
      if x:find("[%z\r]") then error("header " .. k .. " kept a NUL or CR", 0) end
    end
    names[#names + 1] = k .. "=" .. table.concat(values, "\1")
  end
  table.sort(names)
  local cl = headers["content-length"]
  if type(cl) == "string" and cl:match("^%d+$") and not headers["transfer-encoding"] and method ~= "HEAD"
    and status ~= 204 and status ~= 304 and #body ~= tonumber(cl) then
    error(("Content-Length %s but a body of %d bytes"):format(cl, #body), 0)
  end
  -- (whether the connection went back to the pool may depend on the splitting: bytes past the
  -- body that arrive with it forbid it, those that come later make nginx close the idle
  -- connection; so it is not part of the outcome)
  return "ok " .. status .. " " .. table.concat(names, "\2") .. " " .. body
end

-- The loop ----------------------------------------------------------------------------------

local function save(input)
  os.execute("mkdir -p '" .. root .. "/build/fuzz'")
  local path = root .. "/build/fuzz/ngx_parser-" .. seed .. ".bin"
  local f = io.open(path, "wb")
  if f then f:write(input); f:close() end
  return path
end

local started = os.clock()
local deadline = os.time() + seconds
local iterations, outcomes = 0, {}
local corpus = {}
for i, s in ipairs(seeds) do corpus[i] = s end

while os.time() < deadline do
  iterations = iterations + 1
  local input = iterations <= #seeds and seeds[iterations] or mutate(pick(corpus))
  local method = random(8) == 1 and "HEAD" or "GET"
  local ok, err = pcall(function()
    local a = run(input, split(input, #input <= 4096 and random(2) == 1), method)
    local b = run(input, split(input, false), method)
    if a ~= b then
      error("the outcome depends on how the bytes arrived:\n  " .. a:sub(1, 300) .. "\n  " .. b:sub(1, 300), 0)
    end
    local key = a:match("^(%S+ %S+)")
    if not outcomes[key] then
      outcomes[key] = 0
      if #corpus < 500 then corpus[#corpus + 1] = input end -- a new kind of outcome: keep it
    end
    outcomes[key] = outcomes[key] + 1
  end)
  if not ok then
    local path = save(input)
    print(("fuzz/ngx_parser.lua: FAILED after %d inputs (seed %d): %s"):format(iterations, seed, tostring(err)))
    print(("input (%d bytes, saved to %s): %q"):format(#input, path, input:sub(1, 600)))
    os.exit(1)
  end
  if iterations % 200 == 0 then collectgarbage() end
end

local kinds = {}
for k, n in pairs(outcomes) do kinds[#kinds + 1] = ("%s=%d"):format(k, n) end
table.sort(kinds)
print(("fuzz/ngx_parser.lua: %d inputs in %ds (seed %d, cpu %.1fs), no failure; %d outcomes%s"):format(
  iterations, seconds, seed, os.clock() - started, #kinds, verbose and (":\n  " .. table.concat(kinds, "\n  ")) or ""))
