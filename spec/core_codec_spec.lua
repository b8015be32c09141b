-- base64url and RFC 3986 percent-encoding in assesskit.core. Runs under Lua 5.4 and LuaJIT.

local core = require "assesskit.core"

local function all_bytes()
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  return table.concat(t)
end

describe("assesskit.core encodings #luajit", function()
  describe("base64url", function()
    it("encodes the RFC 4648 test vectors without padding", function()
      local vectors = { [""] = "", f = "Zg", fo = "Zm8", foo = "Zm9v", foob = "Zm9vYg",
        fooba = "Zm9vYmE", foobar = "Zm9vYmFy" }
      for plain, enc in pairs(vectors) do
        assert.equal(enc, core.b64url_encode(plain))
        assert.equal(plain, core.b64url_decode(enc))
      end
    end)

    it("uses the url-safe alphabet", function()
      assert.equal("-_8", core.b64url_encode("\251\255"))
      assert.equal("__79", core.b64url_encode("\255\254\253"))
      assert.equal("\251\255", core.b64url_decode("-_8"))
      assert.equal("AAEC_w", core.b64url_encode("\0\1\2\255"))
    end)

    it("accepts padding on decode", function()
      assert.equal("fo", core.b64url_decode("Zm8="))
      assert.equal("f", core.b64url_decode("Zg=="))
      assert.equal("foo", core.b64url_decode("Zm9v"))
    end)

    it("rejects what is not base64url with nil and a reason", function()
      for _, bad in ipairs({ "Zm9v!", "Z", "Zm9vY", "Zm+v", "Zm/v", "Zm 9v", "Zm=8", "Zg===",
        "Zm8==", "Zg=", "=", "Zh", "Zm9", "Zm\0v" }) do
        local ok, msg = core.b64url_decode(bad)
        assert.is_nil(ok, bad)
        assert.matches("^invalid base64url", msg)
      end
    end)

    it("round-trips every byte value and every length up to 100", function()
      local bytes = all_bytes()
      assert.equal(bytes, core.b64url_decode(core.b64url_encode(bytes)))
      for n = 0, 100 do
        local s = bytes:sub(256 - n, 255) -- n bytes
        local enc = core.b64url_encode(s)
        assert.is_nil(enc:find("[^%w_-]"))
        assert.equal(s, core.b64url_decode(enc))
      end
      local big = string.rep(bytes, 400) -- past the chunk sizes
      assert.equal(big, core.b64url_decode(core.b64url_encode(big)))
    end)

    it("raises on a non-string argument", function()
      assert.has_error(function() core.b64url_encode({}) end)
      assert.has_error(function() core.b64url_decode() end)
    end)
  end)

  describe("percent-encoding", function()
    it("keeps only RFC 3986 unreserved characters", function()
      assert.equal("AZaz09-._~", core.url_encode("AZaz09-._~"))
      assert.equal("a%20b%26c%3Dd%2Fe%3Ff%23g%2Bh", core.url_encode("a b&c=d/e?f#g+h"))
      assert.equal("%C3%A9t%C3%A9", core.url_encode("été"))
      assert.equal("%00%FF", core.url_encode("\0\255"))
      assert.equal("", core.url_encode(""))
    end)

    it("decodes %XX and leaves + alone", function()
      assert.equal("a b", core.url_decode("a%20b"))
      assert.equal("a+b", core.url_decode("a+b"))
      assert.equal("été", core.url_decode("%c3%a9t%C3%A9"))
      assert.equal("\0", core.url_decode("%00"))
      assert.equal("", core.url_decode(""))
    end)

    it("round-trips every byte value", function()
      local bytes = all_bytes()
      local enc = core.url_encode(bytes)
      assert.is_nil(enc:find("[^%w%%._~-]"))
      assert.equal(bytes, core.url_decode(enc))
    end)

    it("raises on a non-string argument", function()
      assert.has_error(function() core.url_encode({}) end)
      assert.has_error(function() core.url_decode() end)
    end)
  end)

  it("reports the library versions", function()
    local v = core.versions()
    assert.matches("^%d+%.%d+", v.curl)
    assert.matches("OpenSSL", v.openssl)
    assert.is_string(v.lua)
    assert.is_boolean(v.http2)
    assert.equal(require("assesskit")._VERSION, v.assesskit)
  end)
end)
