-- assesskit.core over TLS against a real nginx with throwaway certificates
-- (spec/support/pki.lua). Runs under Lua 5.4 and LuaJIT (tag luajit).

local core = require "assesskit.core"
local nginx = require "support.nginx"
local pki_lib = require "support.pki"

describe("assesskit.core TLS #luajit", function()
  local srv, pki

  setup(function()
    pki = pki_lib.new()
    srv = nginx.start {
      locations = nginx.core_locations,
      tls = {
        { cert = pki.server_cert, key = pki.server_key },                 -- 1: good
        { cert = pki.wrong_cert, key = pki.wrong_key },                   -- 2: wrong name
        { cert = pki.server_cert, key = pki.server_key,                   -- 3: one request
          server = "keepalive_requests 1;" },                             --    per connection
        { cert = pki.server_cert, key = pki.server_key,                   -- 4: TLS 1.1 only
          server = "ssl_protocols TLSv1.1; ssl_ciphers DEFAULT@SECLEVEL=0; "
            .. "ssl_conf_command MinProtocol TLSv1; ssl_conf_command MaxProtocol TLSv1.1;" },
      },
    }
  end)

  teardown(function()
    if srv then srv:stop() end
    if pki then pki:cleanup() end
  end)

  it("refuses a server whose certificate comes from an unknown CA (kind tls)", function()
    local s = core.session { ca_file = pki.other_ca }
    local ok, msg, kind = s:request { url = srv:tls_url(1, "/json?t=unknown-ca") }
    assert.is_nil(ok)
    assert.equal("tls", kind)
    assert.matches("certificate", msg)
    s:close()
    -- the system's CAs do not know our test CA either
    s = core.session()
    ok, msg, kind = s:request { url = srv:tls_url(1, "/json?t=system-ca") }
    assert.matches("certificate", msg)
    assert.is_nil(ok)
    assert.equal("tls", kind)
    s:close()
  end)

  it("accepts the server with the right ca_file or ca_path", function()
    local s = core.session { ca_file = pki.ca }
    local status, headers, body = s:request { url = srv:tls_url(1, "/json") }
    assert.equal(200, status)
    assert.equal("application/json", headers["content-type"])
    assert.matches('"id":42', body)
    s:close()
    s = core.session { ca_path = pki.ca_dir, ca_file = pki.other_ca }
    assert.equal(200, (s:request { url = srv:tls_url(1, "/json") }))
    s:close()
  end)

  it("checks the host name against the certificate (kind tls)", function()
    local s = core.session { ca_file = pki.ca }
    local ok, _, kind = s:request { url = srv:tls_url(2, "/json") }
    assert.is_nil(ok)
    assert.equal("tls", kind)
    -- the good certificate names localhost too
    assert.equal(200, (s:request { url = srv:tls_url(1, "/json", "localhost") }))
    s:close()
  end)

  it("reports an unreadable ca_file as kind tls", function()
    local s = core.session { ca_file = pki.dir .. "/no-such-ca.pem" }
    local ok, _, kind = s:request { url = srv:tls_url(1, "/json") }
    assert.is_nil(ok)
    assert.equal("tls", kind)
    s:close()
  end)

  it("refuses a server that speaks only TLS 1.1 (kind tls): 1.2 is the minimum", function()
    -- the curl command line, told to, can still talk to it: the refusal is ours
    local probe = io.popen("curl -sS --cacert " .. pki.ca .. " --ciphers DEFAULT@SECLEVEL=0 "
      .. "-o /dev/null -w '%{http_code}' " .. srv:tls_url(4, "/json") .. " 2>/dev/null")
    assert.equal("200", probe:read("*a"))
    probe:close()
    local s = core.session { ca_file = pki.ca }
    local ok, _, kind = s:request { url = srv:tls_url(4, "/json") }
    assert.is_nil(ok)
    assert.equal("tls", kind)
    s:close()
  end)

  it("offers no option that turns verification off", function()
    for _, opt in ipairs({ "verify", "ssl_verify", "verify_peer", "verify_host", "insecure" }) do
      assert.has_error(function() core.session { [opt] = false } end)
    end
  end)

  it("reuses one TLS connection for many requests (HTTP/2 where libcurl has it)", function()
    local s = core.session { ca_file = pki.ca }
    for i = 1, 10 do
      assert.equal(200, (s:request { url = srv:tls_url(1, "/json?t=tls-reuse-" .. i) }))
    end
    local log = srv:wait_log(10, "t=tls-reuse-")
    assert.equal(10, #log)
    for i, e in ipairs(log) do
      assert.equal(log[1].connection, e.connection)
      assert.equal(i, e.requests)
    end
    assert.equal(1, s:stats().connects)
    local want = core.versions().http2 and "HTTP/2.0" or "HTTP/1.1"
    assert.equal(want, log[1].protocol)
    s:close()
  end)

  it("speaks HTTP/1.1 over TLS with http2 = false", function()
    local s = core.session { ca_file = pki.ca, http2 = false }
    assert.equal(200, (s:request { url = srv:tls_url(1, "/json?t=tls-h1") }))
    assert.equal("HTTP/1.1", srv:wait_log(1, "t=tls-h1")[1].protocol)
    s:close()
  end)

  it("resumes the TLS session on a new connection (session cache)", function()
    -- HTTP/1.1: libcurl 7.88 does not resume after a server's HTTP/2 GOAWAY, even on its own.
    local s = core.session { ca_file = pki.ca, http2 = false }
    for i = 1, 3 do
      assert.equal(200, (s:request { url = srv:tls_url(3, "/json?t=tls-resume-" .. i) }))
    end
    local log = srv:wait_log(3, "t=tls-resume-")
    assert.equal(3, #log)
    assert.equal(3, s:stats().connects) -- the server closes after each request
    assert.equal(".", log[1].ssl_reused)
    assert.equal("r", log[2].ssl_reused)
    assert.equal("r", log[3].ssl_reused)
    s:close()
  end)
end)
