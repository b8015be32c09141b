-- SHA-256, HKDF-SHA256 and AES-256-GCM in assesskit.core (what a shared store seals tokens
-- with). Runs under Lua 5.4 and LuaJIT. Cross-checked against RFC 5869's vectors and against
-- luaossl (another binding of OpenSSL) where it has the primitive.

local core = require "assesskit.core"

local function unhex(h)
  return (h:gsub("%s", ""):gsub("..", function(b) return string.char(tonumber(b, 16)) end))
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

describe("assesskit.core crypto #luajit", function()
  describe("sha256", function()
    it("hashes as FIPS 180-2 says", function()
      assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        hex(core.sha256("abc")))
      assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        hex(core.sha256("")))
    end)
  end)

  describe("hkdf", function()
    it("derives RFC 5869's test case 1", function()
      local okm = core.hkdf(unhex(string.rep("0b", 22)), unhex("000102030405060708090a0b0c"),
        unhex("f0f1f2f3f4f5f6f7f8f9"), 42)
      assert.equal("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        hex(okm))
    end)

    it("derives RFC 5869's test case 3 (empty salt and info)", function()
      local okm = core.hkdf(unhex(string.rep("0b", 22)), "", "", 42)
      assert.equal("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        hex(okm))
    end)

    it("gives different keys for different info", function()
      assert.are_not.equal(core.hkdf("s", "salt", "a", 32), core.hkdf("s", "salt", "b", 32))
    end)

    it("raises on a length out of range or a wrong type", function()
      assert.has_error(function() core.hkdf("s", "", "", 0) end)
      assert.has_error(function() core.hkdf("s", "", "", 8161) end)
      assert.has_error(function() core.hkdf(nil, "", "", 32) end)
    end)
  end)

  describe("aead_seal / aead_open", function()
    local key = core.hkdf("a client secret", "assesskit", "token", 32)

    it("seals with a fresh nonce each time and opens what it sealed", function()
      local a = assert(core.aead_seal(key, "the token", "name"))
      local b = assert(core.aead_seal(key, "the token", "name"))
      assert.equal(#"the token" + 28, #a)
      assert.are_not.equal(a, b)
      assert.equal("the token", core.aead_open(key, a, "name"))
      assert.equal("the token", core.aead_open(key, b, "name"))
      assert.is_nil(a:find("the token", 1, true))
      assert.equal("", core.aead_open(key, core.aead_seal(key, "")))
    end)

    it("refuses a wrong key, another aad, altered or short bytes", function()
      local sealed = core.aead_seal(key, "the token", "name")
      local other = core.hkdf("another secret", "assesskit", "token", 32)
      local function refused(ok, msg)
        assert.is_nil(ok)
        assert.matches("cannot open", msg)
      end
      refused(core.aead_open(other, sealed, "name"))
      refused(core.aead_open(key, sealed, "other name"))
      refused(core.aead_open(key, sealed))
      for _, at in ipairs({ 1, 13, #sealed }) do
        local b = sealed:byte(at)
        refused(core.aead_open(key, sealed:sub(1, at - 1) .. string.char((b + 1) % 256)
          .. sealed:sub(at + 1), "name"))
      end
      refused(core.aead_open(key, sealed:sub(1, 27), "name"))
      refused(core.aead_open(key, "", "name"))
    end)

    it("agrees with luaossl's AES-256-GCM", function()
      local ok, cipher = pcall(require, "openssl.cipher")
      if not ok then pending("luaossl is not installed") return end
      local sealed = core.aead_seal(key, "interoperable")
      local nonce, body, tag = sealed:sub(1, 12), sealed:sub(13, -17), sealed:sub(-16)
      local e = cipher.new("aes-256-gcm")
      e:encrypt(key, nonce)
      local out = e:final("interoperable")
      assert.equal(body, out)
      assert.equal(tag, e:getTag(16))
      local d = cipher.new("aes-256-gcm")
      d:decrypt(key, nonce)
      d:setTag(tag)
      assert.equal("interoperable", d:final(body))
    end)

    it("raises on a key that is not 32 bytes", function()
      assert.has_error(function() core.aead_seal("short", "x") end)
      assert.has_error(function() core.aead_open("short", string.rep("x", 40)) end)
    end)
  end)

  describe("random_bytes", function()
    it("returns n bytes, different each time", function()
      local a, b = core.random_bytes(16), core.random_bytes(16)
      assert.equal(16, #a)
      assert.are_not.equal(a, b)
      assert.has_error(function() core.random_bytes(0) end)
    end)
  end)
end)
