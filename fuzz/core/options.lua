-- make fuzz target: core.session option tables and request tables (session:request and
-- loop:start) built from the input bytes: misuse raises a Lua error (caught here), anything
-- else returns a result of the documented shape. Nothing leaves 127.0.0.1: requests that
-- would be sent go to port 1 (refused), loop transfers are cancelled before any run; an
-- `output` file is only ever written inside a temporary directory.
local core = require "assesskit.core"

local TMP = os.getenv("AK_FUZZ_TMP")  -- .ci/fuzz.sh gives one and removes it afterwards
if not TMP then
  TMP = os.tmpname()
  os.remove(TMP)
end
assert(os.execute("mkdir -p '" .. TMP .. "'"))
local EXISTS = TMP .. "/exists"
do
  local f = assert(io.open(EXISTS, "wb"))
  f:write("part")
  f:close()
end

local SESSION_KEYS = { "ca_file", "ca_path", "proxy", "user_agent", "max_response_size", "http2",
  "allow_http", "bogus" }
local REQUEST_KEYS = { "url", "method", "headers", "body", "multipart", "timeout",
  "connect_timeout", "output", "on_progress", "other" }
local PART_KEYS = { "name", "value", "file", "filename", "content_type", "x" }
local STRINGS = { "http://127.0.0.1:1/", "https://127.0.0.1:1/a?b=c", "http://[::1]:1/",
  "http://localhost:1/", "http://example.com/", "ftp://127.0.0.1/", "not a url", "", "GET",
  "POST", "HEAD", "PUT", "X-A", "a\0b", "a\r\nb", EXISTS, TMP .. "/missing", TMP .. "/out",
  TMP .. "/no/dir/out", "/dev/null", "text/plain" }
local KINDS = { timeout = true, network = true, tls = true, too_large = true, insecure = true,
  io = true, aborted = true, closed = true }

local function reader(s)
  local pos = 1
  local r = {}
  function r.byte()
    local b = s:byte(pos) or 0
    pos = pos + 1
    return b
  end
  function r.str()
    local n = r.byte() % 40
    local v = s:sub(pos, pos + n - 1)
    pos = pos + n
    return v
  end
  function r.more() return pos <= #s end
  return r
end

local value
local function map(r, keys, depth)
  local t = {}
  for _ = 1, r.byte() % 6 do
    t[keys[r.byte() % #keys + 1]] = value(r, depth + 1)
  end
  return t
end

function value(r, depth)
  local k = r.byte() % 11
  if k == 0 then return nil
  elseif k == 1 then return r.byte() % 2 == 0
  elseif k == 2 then return (r.byte() - 100) / 7
  elseif k == 3 or k == 4 then return STRINGS[r.byte() % #STRINGS + 1]
  elseif k == 5 then return r.str()
  elseif k == 6 then return "http://127.0.0.1:1/" .. r.str()
  elseif k == 7 and depth < 3 then
    local a = {}
    for i = 1, r.byte() % 4 do a[i] = value(r, depth + 1) end
    return a
  elseif k == 8 and depth < 3 then return map(r, r.byte() % 2 == 0 and PART_KEYS or STRINGS, depth)
  elseif k == 9 then return function() end
  else return ({ 1 / 0, -1 / 0, 0 / 0, 2 ^ 53, -0.0, 1e-9 })[r.byte() % 6 + 1]
  end
end

local function check(ok, a, b, c, d)
  if not ok then
    assert(type(a) == "string", "misuse must raise a message")
    return
  end
  if a == nil then
    assert(type(b) == "string" and KINDS[c] and type(d) == "boolean", "failure shape")
  else
    assert(math.type(a) == "integer" and type(b) == "table", "success shape")
  end
end

return function(input)
  local r = reader(input)
  local okso, s = pcall(core.session, map(r, SESSION_KEYS, 0))
  if not okso then
    assert(type(s) == "string")
    return
  end
  local loop = core.loop()
  while r.more() do
    local req = map(r, REQUEST_KEYS, 0)
    if type(req.output) == "string" then  -- written to: only ever inside TMP
      req.output = TMP .. (#req.output % 2 == 0 and "/out" or "/no/dir/out")
        .. (req.output:find("\0") and "\0x" or "")
    end
    local ok, x, msg, kind, sent = pcall(loop.start, loop, s, req)
    if ok and x then
      assert(x:cancel())
      check(true, x:result())
    else
      check(ok, x, msg, kind, sent)
    end
    if type(req.url) == "string" and req.url:find("^http://127%.0%.0%.1:1/") then
      req.timeout = 2
      check(pcall(s.request, s, req))
    end
  end
  loop:close()
  s:close()
end
