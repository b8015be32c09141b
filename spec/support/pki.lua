--- Throwaway keys and certificates for the test bench, made with the `openssl` command line:
-- a CA and a server certificate for 127.0.0.1/localhost signed by it, a certificate for
-- another name, an expired one, a self-signed one, an unrelated second CA and a certificate it
-- signed, RSA keys (plain, encrypted, public), an EC key, and
-- PEM keys rebuilt from JWK parameters.
-- @module support.pki
-- @usage
-- local pki = require("support.pki").new()
-- -- pki.ca, pki.server_cert, pki.server_key, pki.other_ca ...
-- pki:cleanup()

local sys = require "support.sys"

local setmetatable, assert, ipairs = setmetatable, assert, ipairs
local q = sys.quote

local M = {}
local PKI = {}
PKI.__index = PKI

local function openssl(args)
  return sys.must("openssl " .. args)
end

-- A CA certificate (EC P-256, fast to make) at <dir>/<name>.pem with its key <name>.key.
local function make_ca(dir, name, cn)
  local base = dir .. "/" .. name
  openssl("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
    .. " -subj " .. q("/CN=" .. cn)
    .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
    .. " -keyout " .. q(base .. ".key") .. " -out " .. q(base .. ".pem"))
  return base .. ".pem", base .. ".key"
end

-- A leaf certificate signed by the CA, for the subjectAltName `san`, valid for `days` (default
-- 2; -1: it expired a day ago).
local function make_leaf(dir, name, cn, san, ca, ca_key, days)
  local base = dir .. "/" .. name
  sys.write(base .. ".ext", "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    .. "extendedKeyUsage=serverAuth\nsubjectAltName=" .. san .. "\n")
  openssl("req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj " .. q("/CN=" .. cn)
    .. " -keyout " .. q(base .. ".key") .. " -out " .. q(base .. ".csr"))
  openssl("x509 -req -days " .. (days or 2) .. " -in " .. q(base .. ".csr") .. " -CA " .. q(ca)
    .. " -CAkey " .. q(ca_key) .. " -CAcreateserial -extfile " .. q(base .. ".ext")
    .. " -out " .. q(base .. ".pem"))
  return base .. ".pem", base .. ".key"
end

-- A self-signed leaf certificate (no CA) for the subjectAltName `san`.
local function make_self_signed(dir, name, cn, san)
  local base = dir .. "/" .. name
  openssl("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj " .. q("/CN=" .. cn)
    .. " -addext basicConstraints=critical,CA:FALSE -addext " .. q("subjectAltName=" .. san)
    .. " -keyout " .. q(base .. ".key") .. " -out " .. q(base .. ".pem"))
  return base .. ".pem", base .. ".key"
end

--- Make a fresh PKI in a temporary directory.
-- @treturn table with `dir`, `ca`, `server_cert`, `server_key` (127.0.0.1, ::1, localhost),
--   `wrong_cert`, `wrong_key` (signed by `ca` for wrong.example only), `other_ca` (unrelated),
--   `untrusted_cert`, `untrusted_key` (127.0.0.1, ::1, localhost, but signed by `other_ca`),
--   `expired_cert`, `expired_key` (127.0.0.1, ::1, localhost, signed by `ca`, expired a day
--   ago), `self_signed_cert`, `self_signed_key` (127.0.0.1, ::1, localhost, signed by itself),
--   `ca_dir` (a hashed CA directory holding `ca`, for ca_path)
function M.new()
  local self = setmetatable({ dir = sys.tmpdir("pki") }, PKI)
  local d = self.dir
  self.ca, self.ca_key = make_ca(d, "ca", "assesskit test CA")
  self.other_ca, self.other_ca_key = make_ca(d, "other-ca", "assesskit unrelated CA")
  self.server_cert, self.server_key = make_leaf(d, "server", "127.0.0.1",
    "IP:127.0.0.1,IP:::1,DNS:localhost", self.ca, self.ca_key)
  self.wrong_cert, self.wrong_key = make_leaf(d, "wrong", "wrong.example", "DNS:wrong.example",
    self.ca, self.ca_key)
  self.untrusted_cert, self.untrusted_key = make_leaf(d, "untrusted", "127.0.0.1",
    "IP:127.0.0.1,IP:::1,DNS:localhost", self.other_ca, self.other_ca_key)
  self.expired_cert, self.expired_key = make_leaf(d, "expired", "127.0.0.1",
    "IP:127.0.0.1,IP:::1,DNS:localhost", self.ca, self.ca_key, -1)
  self.self_signed_cert, self.self_signed_key = make_self_signed(d, "selfsigned", "127.0.0.1",
    "IP:127.0.0.1,IP:::1,DNS:localhost")
  self.ca_dir = d .. "/cadir"
  sys.must("mkdir " .. q(self.ca_dir) .. " && cp " .. q(self.ca) .. " " .. q(self.ca_dir)
    .. " && openssl rehash " .. q(self.ca_dir))
  return self
end

--- Make an RSA key pair.
-- @int[opt=2048] bits
-- @string[opt] passphrase also write an AES-256 encrypted copy under it
-- @treturn table `{private=path, public=path, encrypted=path|nil}`
function PKI:rsa_key(bits, passphrase)
  self.n = (self.n or 0) + 1
  local base = self.dir .. "/rsa" .. self.n
  local paths = { private = base .. ".pem", public = base .. ".pub.pem" }
  openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:" .. (bits or 2048) .. " -out " .. q(paths.private))
  openssl("pkey -in " .. q(paths.private) .. " -pubout -out " .. q(paths.public))
  if passphrase then
    paths.encrypted = base .. ".enc.pem"
    openssl("pkey -in " .. q(paths.private) .. " -aes256 -passout " .. q("pass:" .. passphrase)
      .. " -out " .. q(paths.encrypted))
  end
  return paths
end

--- Make an EC (P-256) private key.
-- @treturn string its path
function PKI:ec_key()
  local path = self.dir .. "/ec.pem"
  openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. q(path))
  return path
end

-- base64url -> upper-case hex, in plain Lua (independent of the code under test).
local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function b64url_to_hex(s)
  local bits, nbits, out = 0, 0, {}
  for i = 1, #s do
    local v = ALPHABET:find(s:sub(i, i), 1, true)
    assert(v, "not base64url: " .. s:sub(i, i))
    bits = bits * 64 + (v - 1)
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      local p = 2 ^ nbits
      local byte = math.floor(bits / p)
      bits = bits - byte * p
      out[#out + 1] = string.format("%02X", byte)
    end
  end
  return table.concat(out)
end
M.b64url_to_hex = b64url_to_hex

--- Rebuild an RSA private key PEM (PKCS#8) from JWK parameters, with `openssl asn1parse
-- -genconf` (RFC 8017 RSAPrivateKey).
-- @tparam table jwk `n, e, d, p, q, dp, dq, qi` (base64url)
-- @treturn string the PEM text
function PKI:pem_from_jwk(jwk)
  self.n = (self.n or 0) + 1
  local base = self.dir .. "/jwk" .. self.n
  local lines = { "asn1=SEQUENCE:rsa_key", "[rsa_key]", "version=INTEGER:0" }
  for _, f in ipairs({ { "n", "modulus" }, { "e", "pubExp" }, { "d", "privExp" }, { "p", "p" },
    { "q", "q" }, { "dp", "e1" }, { "dq", "e2" }, { "qi", "coeff" } }) do
    lines[#lines + 1] = f[2] .. "=INTEGER:0x" .. b64url_to_hex(assert(jwk[f[1]], f[1]))
  end
  sys.write(base .. ".cnf", table.concat(lines, "\n") .. "\n")
  openssl("asn1parse -noout -genconf " .. q(base .. ".cnf") .. " -out " .. q(base .. ".der"))
  openssl("pkey -inform DER -in " .. q(base .. ".der") .. " -out " .. q(base .. ".pem"))
  return assert(sys.read(base .. ".pem"))
end

--- Verify an RS256 signature with `openssl dgst` (an independent verifier).
-- @string data the signed bytes
-- @string sig the raw signature
-- @string public_pem_path
-- @treturn boolean
-- @treturn string openssl's output
function PKI:openssl_verify(data, sig, public_pem_path)
  self.n = (self.n or 0) + 1
  local base = self.dir .. "/verify" .. self.n
  sys.write(base .. ".data", data)
  sys.write(base .. ".sig", sig)
  return sys.run("openssl dgst -sha256 -verify " .. q(public_pem_path) .. " -signature "
    .. q(base .. ".sig") .. " " .. q(base .. ".data"))
end

--- Remove the PKI's directory.
function PKI:cleanup()
  sys.rmdir(self.dir)
end

return M
