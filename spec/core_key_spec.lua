-- luacheck: no max line length
-- RS256 keys (assesskit.core) and JWS (assesskit.jwt), checked against the openssl command
-- line and RFC 7515 appendix A.2. Runs under Lua 5.4 and LuaJIT (tag luajit).

local core = require "assesskit.core"
local jwt = require "assesskit.jwt"
local pki_lib = require "support.pki"
local sys = require "support.sys"
local cjson = require "cjson"

-- RFC 7515 appendix A.2: the RSA key (as its JWK) and the RS256 example.
local RFC7515_A2 = {
  jwk = {
    n = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
    e = "AQAB",
    d = "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ",
    p = "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc",
    q = "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc",
    dp = "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0",
    dq = "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU",
    qi = "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U",
  },
  signing_input = "eyJhbGciOiJSUzI1NiJ9"
    .. ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
  signature = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw",
}

local PASSPHRASE = "correct horse battery"

-- Plain-Lua base64url decoding (independent of the code under test).
local function b64url_decode(s)
  return (pki_lib.b64url_to_hex(s):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

describe("assesskit.core keys and assesskit.jwt #luajit", function()
  local pki, rsa, ec_pem, private_pem, public_pem, encrypted_pem

  setup(function()
    pki = pki_lib.new()
    rsa = pki:rsa_key(2048, PASSPHRASE)
    private_pem = assert(sys.read(rsa.private))
    public_pem = assert(sys.read(rsa.public))
    encrypted_pem = assert(sys.read(rsa.encrypted))
    ec_pem = assert(sys.read(pki:ec_key()))
  end)

  teardown(function()
    if pki then pki:cleanup() end
  end)

  describe("core.load_key", function()
    it("loads an RSA private key", function()
      local key = assert(core.load_key(private_pem))
      assert.equal(2048, key:bits())
      assert.is_true(key:is_private())
      key:close()
    end)

    it("loads an RSA public key, which verifies but does not sign", function()
      local priv = assert(core.load_key(private_pem))
      local pub = assert(core.load_key(public_pem))
      assert.is_false(pub:is_private())
      assert.equal(2048, pub:bits())
      local sig = assert(priv:sign("data"))
      assert.is_true(pub:verify("data", sig))
      assert.is_false(pub:verify("Data", sig))
      local ok, msg = pub:sign("data")
      assert.is_nil(ok)
      assert.matches("public key", msg)
    end)

    it("needs the right passphrase for an encrypted key, and never prompts", function()
      local key, msg = core.load_key(encrypted_pem)
      assert.is_nil(key)
      assert.matches("passphrase", msg)
      key, msg = core.load_key(encrypted_pem, "wrong passphrase")
      assert.is_nil(key)
      assert.matches("wrong passphrase", msg)
      key = assert(core.load_key(encrypted_pem, PASSPHRASE))
      assert.is_true(key:is_private())
      assert.is_true(key:verify("x", assert(key:sign("x"))))
    end)

    it("rejects a non-RSA key with a clear reason", function()
      local key, msg = core.load_key(ec_pem)
      assert.is_nil(key)
      assert.matches("not an RSA key", msg)
    end)

    it("rejects bad PEM with nil and a reason", function()
      for _, bad in ipairs({ "", "garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        private_pem:sub(1, 400), (private_pem:gsub("[A-Z]", "A", 40)) }) do
        local key, msg = core.load_key(bad)
        assert.is_nil(key)
        assert.is_string(msg)
        assert.matches("^cannot load key", msg)
      end
    end)

    it("rejects a private key whose parts do not belong together, though it parses", function()
      -- RFC 7515's key with one part altered: each still parses (openssl pkey rebuilt it), but
      -- would sign garbage (n != p*q) or only verify by chance.
      local function altered(field)
        local jwk = {}
        for k, v in pairs(RFC7515_A2.jwk) do jwk[k] = v end
        local c = jwk[field]:sub(40, 40)
        jwk[field] = jwk[field]:sub(1, 39) .. (c == "A" and "B" or "A") .. jwk[field]:sub(41)
        return pki:pem_from_jwk(jwk)
      end
      assert.is_truthy(core.load_key(pki:pem_from_jwk(RFC7515_A2.jwk)))
      for _, field in ipairs({ "n", "d", "p", "dp", "dq", "qi" }) do
        local key, msg = core.load_key(altered(field))
        assert.is_nil(key, field)
        assert.equal("cannot load key: inconsistent RSA private key (its parts do not belong "
          .. "together)", msg)
        local sig, err = jwt.sign("x", altered(field))
        assert.is_nil(sig)
        assert.matches("inconsistent", tostring(err))
      end
    end)

    it("keeps key material out of messages and tostring", function()
      local key = assert(core.load_key(private_pem))
      local s = tostring(key)
      assert.matches("RSA 2048, private", s)
      local body = private_pem:match("\n(%S+)\n")
      assert.is_nil(s:find(body, 1, true))
      local _, msg = core.load_key(encrypted_pem, "hunter2-secret")
      assert.is_nil(msg:find("hunter2", 1, true))
      _, msg = core.load_key(private_pem:sub(1, 400))
      assert.is_nil(msg:find(private_pem:sub(40, 80), 1, true))
    end)

    it("closes idempotently; a closed key no longer signs", function()
      local key = assert(core.load_key(private_pem))
      key:close()
      key:close()
      local ok, msg = key:sign("x")
      assert.is_nil(ok)
      assert.equal("key is closed", msg)
      assert.is_false(key:is_private())
      assert.matches("closed", tostring(key))
    end)

    it("raises on wrong argument types", function()
      assert.has_error(function() core.load_key() end)
      assert.has_error(function() core.load_key({}) end)
      assert.has_error(function() core.load_key(private_pem, {}) end)
      local key = assert(core.load_key(private_pem))
      assert.has_error(function() key:sign() end)
      assert.has_error(function() key.sign({}, "x") end)
    end)
  end)

  describe("RS256", function()
    it("makes signatures the openssl command line verifies", function()
      local key = assert(core.load_key(private_pem))
      local data = "header.payload with bytes \0\1\2\255"
      local sig = assert(key:sign(data))
      assert.equal(256, #sig)
      local ok, out = pki:openssl_verify(data, sig, rsa.public)
      assert.is_true(ok, out)
      assert.matches("Verified OK", out)
      ok = pki:openssl_verify(data .. "x", sig, rsa.public)
      assert.is_false(ok)
    end)

    it("reproduces RFC 7515 appendix A.2 byte for byte", function()
      local pem = pki:pem_from_jwk(RFC7515_A2.jwk)
      local key = assert(core.load_key(pem))
      local sig = assert(key:sign(RFC7515_A2.signing_input))
      assert.equal(b64url_decode(RFC7515_A2.signature), sig)
      assert.equal(RFC7515_A2.signature, core.b64url_encode(sig))
      assert.equal(RFC7515_A2.signature, jwt.sign(RFC7515_A2.signing_input, pem))
      assert.equal(RFC7515_A2.signature, jwt.sign(RFC7515_A2.signing_input, key))
      assert.is_true(key:verify(RFC7515_A2.signing_input, sig))
    end)
  end)

  describe("jwt", function()
    it("encodes a compact JWS that an independent verifier accepts", function()
      local claims = { iss = "assesskit", sub = "42", exp = 1900000000, scope = "a b" }
      local token = assert(jwt.encode(claims, private_pem))
      local h, p, s = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
      assert.is_string(s)
      assert.same({ alg = "RS256", typ = "JWT" }, cjson.decode(b64url_decode(h)))
      assert.same(claims, cjson.decode(b64url_decode(p)))
      local ok, out = pki:openssl_verify(h .. "." .. p, b64url_decode(s), rsa.public)
      assert.is_true(ok, out)
    end)

    it("merges a custom header and accepts a key handle or an encrypted PEM", function()
      local key = assert(jwt.load_key(encrypted_pem, PASSPHRASE))
      local token = assert(jwt.encode({ a = 1 }, key, { kid = "k1" }))
      local h = token:match("^([^.]+)")
      assert.same({ alg = "RS256", typ = "JWT", kid = "k1" }, cjson.decode(b64url_decode(h)))
      local token2 = assert(jwt.encode({ a = 1 }, encrypted_pem, { kid = "k1" }, PASSPHRASE))
      assert.equal(token, token2) -- RS256 (PKCS#1 v1.5) is deterministic
    end)

    it("signs exactly the given signing input", function()
      local sig = assert(jwt.sign("a.b", private_pem))
      local ok = pki:openssl_verify("a.b", b64url_decode(sig), rsa.public)
      assert.is_true(ok)
    end)

    it("closes a key it loaded from PEM once it has signed, and leaves a given handle open", function()
      local real_load, loaded = core.load_key, {}
      core.load_key = function(...)
        local key, err = real_load(...)
        loaded[#loaded + 1] = key
        return key, err
      end
      local ok, err = pcall(function()
        assert(jwt.encode({ a = 1 }, private_pem))
        assert(jwt.sign("a.b", private_pem))
        assert.is_nil(jwt.sign("a.b", public_pem))
      end)
      core.load_key = real_load
      assert(ok, err)
      assert.equal(3, #loaded)
      for i, key in ipairs(loaded) do
        assert.matches("(closed)", tostring(key), 1, true, "key " .. i .. " left open")
      end
      local handle = assert(jwt.load_key(private_pem))
      assert(jwt.encode({ a = 1 }, handle))
      assert.is_true(handle:is_private())
      handle:close()
    end)

    it("returns nil, reason for a bad key or passphrase", function()
      local token, err = jwt.encode({ a = 1 }, "not a pem")
      assert.is_nil(token)
      assert.matches("cannot load key", err)
      token, err = jwt.encode({ a = 1 }, encrypted_pem)
      assert.is_nil(token)
      assert.matches("passphrase", err)
      token, err = jwt.sign("a.b", public_pem)
      assert.is_nil(token)
      assert.matches("public key", err)
      token, err = jwt.encode({ a = 1 }, ec_pem)
      assert.is_nil(token)
      assert.matches("not an RSA key", err)
    end)

    it("raises on wrong argument types and other algorithms", function()
      assert.has_error(function() jwt.encode("claims", private_pem) end)
      assert.has_error(function() jwt.encode({}, 42) end)
      assert.has_error(function() jwt.encode({}, private_pem, "header") end)
      assert.has_error(function() jwt.encode({}, private_pem, { alg = "none" }) end)
      assert.has_error(function() jwt.sign(nil, private_pem) end)
      assert.has_error(function() jwt.load_key(1) end)
    end)
  end)
end)
