-- Driver for .ci/memcheck.sh: runs the C core through every path (requests of all kinds,
-- every error kind, keys, codecs) against the test nginx, under valgrind. Prints a summary;
-- valgrind decides the verdict.

local core = require "assesskit.core"
local jwt = require "assesskit.jwt"
local nginx = require "support.nginx"
local pki_lib = require "support.pki"
local sys = require "support.sys"
local redis = require "support.redis"
local socket = require "socket"

local ROUNDS = tonumber(os.getenv("MEMCHECK_ROUNDS")) or 10

local pki = pki_lib.new()
-- /folded: obsolete line folding, which the core joins in place in its header buffer
local srv = nginx.start { locations = nginx.core_locations .. [[
    location = /folded {
      content_by_lua_block {
        ngx.req.socket(true):send("HTTP/1.1 200 OK\r\nX-Fold: a\r\n b\r\n\tc  \r\nX-Empty:\r\n d\r\n"
          .. "Content-Length: 2\r\nConnection: close\r\n\r\nok")
      }
    }]],
  tls = { { cert = pki.server_cert, key = pki.server_key } } }
local tmp = sys.tmpdir("memcheck")

local counts = {}
local function note(what) counts[what] = (counts[what] or 0) + 1 end

local function expect(kind_wanted, ok, msg, kind)
  if kind_wanted == "ok" then
    assert(ok, msg)
  else
    assert(ok == nil and kind == kind_wanted, ("wanted %s, got %s %s %s"):format(kind_wanted,
      tostring(ok), tostring(msg):sub(1, 200), tostring(kind)))
  end
  note(kind_wanted)
end

local upload = tmp .. "/upload.bin"
sys.write(upload, string.rep("\0\1\2\3binary", 5000))
local rsa = pki:rsa_key(2048, "pass phrase")
local private_pem, public_pem = sys.read(rsa.private), sys.read(rsa.public)
local encrypted_pem, ec_pem = sys.read(rsa.encrypted), sys.read(pki:ec_key())

local closed_port = sys.free_port()
local rsrv = redis.start()

-- Redis connections (every reply type, error replies, pipelines, every failure kind) and the
-- crypto helpers, once per round.
local function redis_round(round)
  local c = assert(core.redis_connect { host = "127.0.0.1", port = rsrv.port, timeout = 2 })
  for i = 1, 10 do
    assert(c:command("SET", "k" .. i, string.rep("v", i * 100)))
    assert(c:command("EVAL", "return {1, {'a', {2, false}}, 's', redis.error_reply('e')}", 0))
    expect("redis", c:command("NOSUCHCOMMAND", i))
  end
  assert(c:pipeline { { "MGET", "k1", "nope" }, { "BAD" }, { "INCR", "n" }, { "GET", "k9" } })
  assert(not pcall(c.command, c, "SET", "k", {}))
  assert(not pcall(c.pipeline, c, { { "SET", "k", true } }))
  local small = assert(core.redis_connect { host = "127.0.0.1", port = rsrv.port, max_reply_size = 50 })
  expect("too_large", small:command("GET", "k5"))
  expect("closed", small:command("PING"))
  expect("network", core.redis_connect { host = "127.0.0.1", port = closed_port })
  local raw = assert(socket.bind("127.0.0.1", 0))
  local _, rport = raw:getsockname()
  local t = assert(core.redis_connect { host = "127.0.0.1", port = tonumber(rport), timeout = 0.05 })
  expect("timeout", t:command("PING"))
  assert(raw:accept()):close()
  local g = assert(core.redis_connect { host = "127.0.0.1", port = tonumber(rport) })
  local peer = assert(raw:accept())
  peer:send("$100\r\nabc")
  peer:close()
  expect("network", g:command("GET", "x"))
  raw:close()
  if round % 2 == 0 then c:close() end -- the others are left to __gc
  local key = core.hkdf("secret", "salt", "info", 32)
  local sealed = assert(core.aead_seal(key, string.rep("token", round), "aad"))
  assert(core.aead_open(key, sealed, "aad") == string.rep("token", round))
  assert(not core.aead_open(key, sealed, "other"))
  assert(#core.sha256("x") == 32 and #core.random_bytes(16) == 16)
end
local shared = core.session { ca_file = pki.ca, max_response_size = 250000 }
for round = 1, ROUNDS do
  local s = (round % 2 == 0) and shared or core.session { ca_file = pki.ca, max_response_size = 100000 }
  for _ = 1, 10 do
    expect("ok", s:request { url = srv:url("/json"), headers = { Accept = "application/json",
      ["X-Rep"] = { "a", "b" } } })
  end
  for _ = 1, 4 do
    expect("ok", s:request { method = "POST", url = srv:url("/echo?raw=1"), body = string.rep("x", 3000),
      headers = { ["Content-Type"] = "text/plain" } })
  end
  expect("ok", s:request { url = srv:url("/echo?raw=1"), multipart = {
    { name = "a", value = "1" },
    { name = "f", file = upload, filename = "u.bin", content_type = "application/octet-stream" } } })
  expect("ok", s:request { url = srv:url("/bytes?n=200000"), output = tmp .. "/out.bin",
    on_progress = function() end })
  expect("ok", s:request { url = srv:url("/headers") })
  local _, folded = s:request { url = srv:url("/folded") }
  assert(folded["x-fold"] == "a b c" and folded["x-empty"] == "d", "folded headers")
  expect("ok", s:request { method = "HEAD", url = srv:url("/json") })
  expect("ok", s:request { url = srv:tls_url(1, "/json") })
  expect("ok", s:request { url = srv:tls_url(1, "/bytes?n=50000") })
  expect("network", s:request { url = "http://127.0.0.1:" .. closed_port .. "/" })
  expect("network", s:request { url = srv:url("/drop") })
  expect("network", s:request { url = srv:url("/truncated") })
  expect("timeout", s:request { url = srv:url("/slow?s=2"), timeout = 0.1 })
  expect("too_large", s:request { url = srv:url("/bytes?n=300000") })
  expect("too_large", s:request { url = srv:url("/bytes?chunked=1&n=2000000") })
  expect("aborted", s:request { url = srv:url("/bytes?n=100000"), on_progress = function() error("stop") end })
  expect("aborted", s:request { url = srv:url("/json"), on_progress = function() error({}) end })
  expect("aborted", s:request { url = srv:url("/json"), on_progress = function() s:request { url = "x" } end })
  expect("io", s:request { url = srv:url("/json"), output = tmp .. "/no/such/dir" })
  expect("io", s:request { url = srv:url("/json"), multipart = { { name = "f", file = tmp .. "/missing" } } })
  expect("insecure", s:request { url = "http://example.com/" })
  assert(not pcall(s.request, s, { url = "not a url" }))
  assert(not pcall(s.request, s, { url = srv:url("/json") .. "\0x" }))
  assert(not pcall(s.request, s, { url = srv:url("/json"), output = tmp .. "/out\0x" }))
  assert(not pcall(s.request, s, { url = srv:url("/json"), headers = { X = "a\r\nb" } }))
  assert(not pcall(s.request, s, { url = srv:url("/json"), multipart = { { name = "a" } } }))
  assert(not pcall(core.session, { bogus = 1 }))
  assert(not pcall(core.session, { ca_file = "x", proxy = 1 }))
  -- loop transfers: many in flight, every way to end, every order of collection
  do
    local loop, other = core.loop(), core.loop()
    local xs = {}
    for i = 1, 12 do
      xs[#xs + 1] = assert(loop:start(s, { url = srv:url("/json?l=" .. i),
        headers = { ["X-Rep"] = { "a", "b" } } }))
    end
    xs[#xs + 1] = assert(loop:start(s, { method = "POST", url = srv:url("/echo?raw=1"),
      body = string.rep("y", 5000) }))
    xs[#xs + 1] = assert(loop:start(s, { url = srv:url("/echo?raw=1"), multipart = {
      { name = "f", file = upload, filename = "u.bin" } } }))
    xs[#xs + 1] = assert(loop:start(s, { url = srv:tls_url(1, "/bytes?n=30000") }))
    xs[#xs + 1] = assert(loop:start(s, { url = srv:url("/bytes?n=300000") }))
    xs[#xs + 1] = assert(loop:start(s, { url = srv:url("/bytes?n=100000"),
      on_progress = function(r) if r > 0 then error("stop") end end }))
    xs[#xs + 1] = assert(loop:start(s, { url = srv:url("/bytes?n=100000"),
      on_progress = function() loop:run(0) end }))
    xs[#xs + 1] = assert(loop:start(s, { url = srv:url("/bytes?n=50000"),
      output = tmp .. "/loop.bin" }))
    local cancel_me = assert(loop:start(s, { url = srv:url("/slow?s=2") }))
    local cancel_inside
    cancel_inside = assert(loop:start(s, { url = srv:url("/trickle?n=20&s=0.05"),
      on_progress = function(r) if r > 0 then cancel_inside:cancel() end end }))
    assert(not loop:start(s, { url = "http://example.com/" }))
    assert(not pcall(loop.start, loop, s, { url = "not a url" }))
    local quick = core.session { ca_file = pki.ca }
    local dropped = assert(other:start(quick, { url = srv:url("/slow?s=2") })) -- luacheck: ignore
    local closed = assert(other:start(quick, { url = srv:url("/slow?s=2") }))
    loop:run(0.05)
    other:run(0.05)
    cancel_me:cancel()
    quick:close()  -- `closed` ends with kind closed
    assert(select(3, closed:result()) == "closed")
    while loop:count() > 0 do loop:run(1) end
    for _, x in ipairs(xs) do x:result() end
    note("loop")
    local late = assert(other:start(s, { url = srv:url("/slow?s=2") })) -- luacheck: ignore
    other:run(0.02)
    if round % 2 == 0 then other:close() end  -- else __gc cancels `late`
    loop:close()
    dropped, late, other = nil, nil, nil -- luacheck: ignore
  end

  local bad_ca = core.session { ca_file = pki.other_ca }
  expect("tls", bad_ca:request { url = srv:tls_url(1, "/json") })
  if round % 2 == 1 then bad_ca:close() end -- the others are left to __gc
  if s ~= shared then
    if round % 3 == 0 then s:close() end
    s = nil -- luacheck: ignore
  end

  for _ = 1, 5 do
    local key = assert(core.load_key(private_pem))
    local sig = assert(key:sign("payload"))
    assert(key:verify("payload", sig))
    local pub = assert(core.load_key(public_pem))
    assert(pub:verify("payload", sig))
    assert(not pub:sign("x"))
    if round % 2 == 0 then key:close() end
    note("key")
  end
  assert(core.load_key(encrypted_pem, "pass phrase"))
  assert(not core.load_key(encrypted_pem, "wrong"))
  assert(not core.load_key(encrypted_pem))
  assert(not core.load_key(ec_pem))
  assert(not core.load_key("garbage"))
  assert(not core.load_key(private_pem:sub(1, 300)))
  assert(jwt.encode({ sub = "x", n = round }, private_pem))
  assert(not jwt.encode({ sub = "x" }, "bad"))
  for i = 0, 40 do
    local bytes = string.rep("\255\0a", i)
    assert(core.b64url_decode(core.b64url_encode(bytes)) == bytes)
    assert(core.url_decode(core.url_encode(bytes)) == bytes)
  end
  assert(not core.b64url_decode("Zm9v!"))
  assert(not core.b64url_decode("Z"))
  -- JSON: values, escapes (the scratch buffer), slow-path numbers, failures at any depth
  local v = assert(core.json_decode('{"a": [1, 2.5, 1e400, 123456789012345678901234567890, '
    .. '"x\\u00e9\\ud83d\\ude00\\n", null, true, {"b": {}}], "a": -0}', core))
  assert(v.a == 0)
  assert(core.json_decode(string.rep("[", 1000) .. string.rep("]", 1000)))
  for _, bad in ipairs({ string.rep("[", 1001), string.rep('{"a":', 999) .. "[1,", '{"a":"\\ud800"}',
      '["x\\n", "\\u12"]', '[1, 2', '"a\1b"', "01", "" }) do
    assert(not core.json_decode(bad))
  end
  note("json")
  -- the journal's durable files: sync, lock (and a refused second lock), truncate, dir sync
  local jpath = tmp .. "/journal-" .. round
  local jf = assert(io.open(jpath, "a+b"))
  assert(core.file_lock(jf))
  assert(core.file_is_regular(jf) == true)
  local jg = assert(io.open(jpath, "a+b"))
  assert(select(3, core.file_lock(jg)) == "busy")
  jg:close()
  jf:write(string.rep("record\n", round * 10))
  assert(core.file_sync(jf))
  assert(core.file_truncate(jf, 7))
  assert(core.dir_sync(tmp))
  assert(not core.dir_sync(tmp .. "/missing"))
  assert(not pcall(core.file_truncate, jf, -1))
  jf:close()
  assert(not pcall(core.file_sync, jf))
  note("file")
  redis_round(round)
  collectgarbage()
end
-- left running at exit: lua_close collects loop, transfers and session in whatever order
local exit_loop = core.loop()
for _ = 1, 3 do assert(exit_loop:start(shared, { url = srv:url("/slow?s=2") })) end
exit_loop:run(0.05)
local exit_session = core.session()
local exit_transfer = assert(exit_loop:start(exit_session, { url = srv:url("/slow?s=2") })) -- luacheck: ignore
shared:close()
shared:close()
expect("closed", shared:request { url = srv:url("/json") })

srv:stop()
rsrv:stop()
pki:cleanup()
sys.rmdir(tmp)
local names = {}
for k, v in pairs(counts) do names[#names + 1] = k .. "=" .. v end
table.sort(names)
print("memcheck driver: " .. table.concat(names, " "))
collectgarbage()
os.exit(0, true) -- close the state: every handle goes through __gc
