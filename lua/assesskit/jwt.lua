--- RS256 JSON Web Signatures (RFC 7515, compact serialisation) over the C core's keys.
-- @module assesskit.jwt
-- @usage
-- local jwt = require "assesskit.jwt"
-- local token = assert(jwt.encode({ iss = "me", exp = os.time() + 300 }, pem))

local core = require "assesskit.core"
local cjson = require "cjson.safe"

local type = type
local error = error
local pairs = pairs
local tostring = tostring
local getmetatable = getmetatable
local b64url_encode = core.b64url_encode

local M = {}

local KEY_METATABLE = "assesskit.key"

local function is_key(v)
  local mt = type(v) == "userdata" and getmetatable(v)
  return mt and mt.__name == KEY_METATABLE or false
end

-- Raises (at the caller of the caller) unless key_or_pem is a key handle or a PEM string and
-- passphrase a string or nil.
local function check_key_args(key_or_pem, passphrase)
  if not is_key(key_or_pem) and type(key_or_pem) ~= "string" then
    error("bad argument (key handle or PEM string expected, got " .. type(key_or_pem) .. ")", 3)
  end
  if passphrase ~= nil and type(passphrase) ~= "string" then
    error("bad argument (passphrase: string expected, got " .. type(passphrase) .. ")", 3)
  end
end

-- The base64url RS256 signature of signing_input, or nil, reason. A key loaded here from PEM
-- is closed at once: the collector does not see the OpenSSL memory behind a handle.
local function sign_with(signing_input, key_or_pem, passphrase)
  local key = key_or_pem
  if not is_key(key) then
    local err
    key, err = core.load_key(key_or_pem, passphrase)
    if not key then return nil, err end
  end
  local sig, err = key:sign(signing_input)
  if key ~= key_or_pem then key:close() end
  if not sig then return nil, err end
  return b64url_encode(sig)
end

--- Load an RSA key (private or public) from PEM.
-- @string pem PEM text
-- @tparam[opt] string passphrase for an encrypted private key
-- @return[1] key handle (`:sign`, `:verify`, `:bits`, `:is_private`, `:close`)
-- @treturn[2] nil
-- @treturn[2] string the reason
-- @usage local key = assert(jwt.load_key(pem))
function M.load_key(pem, passphrase)
  if type(pem) ~= "string" then
    error("bad argument #1 to 'load_key' (string expected, got " .. type(pem) .. ")", 2)
  end
  if passphrase ~= nil and type(passphrase) ~= "string" then
    error("bad argument #2 to 'load_key' (string expected, got " .. type(passphrase) .. ")", 2)
  end
  return core.load_key(pem, passphrase)
end

--- Sign exactly the given bytes with RS256.
-- @string signing_input the bytes to sign (for a JWS: `header .. "." .. payload`)
-- @param key_or_pem a key handle or a PEM string
-- @tparam[opt] string passphrase for an encrypted PEM
-- @treturn[1] string the base64url signature
-- @treturn[2] nil
-- @treturn[2] string the reason
-- @usage local sig = assert(jwt.sign("a.b", key))
function M.sign(signing_input, key_or_pem, passphrase)
  if type(signing_input) ~= "string" then
    error("bad argument #1 to 'sign' (string expected, got " .. type(signing_input) .. ")", 2)
  end
  check_key_args(key_or_pem, passphrase)
  return sign_with(signing_input, key_or_pem, passphrase)
end

--- Build a compact RS256 JWS from claims.
-- @tparam table claims the payload (JSON-encoded with cjson)
-- @param key_or_pem a key handle or a PEM string
-- @tparam[opt] table header defaults to `{alg = "RS256", typ = "JWT"}`; `alg` is always RS256
-- @tparam[opt] string passphrase for an encrypted PEM
-- @treturn[1] string `header.payload.signature`
-- @treturn[2] nil
-- @treturn[2] string the reason
-- @usage local token = assert(jwt.encode({ sub = "42", exp = os.time() + 60 }, pem))
function M.encode(claims, key_or_pem, header, passphrase)
  if type(claims) ~= "table" then
    error("bad argument #1 to 'encode' (table expected, got " .. type(claims) .. ")", 2)
  end
  if header ~= nil and type(header) ~= "table" then
    error("bad argument #3 to 'encode' (table expected, got " .. type(header) .. ")", 2)
  end
  local h = { alg = "RS256", typ = "JWT" }
  if header then
    for k, v in pairs(header) do h[k] = v end
    if h.alg ~= "RS256" then
      error("bad argument #3 to 'encode' (alg " .. tostring(h.alg) .. " unsupported; RS256 only)", 2)
    end
  end
  check_key_args(key_or_pem, passphrase)
  local hjson, herr = cjson.encode(h)
  if not hjson then return nil, "cannot encode header: " .. tostring(herr) end
  local cjson_claims, cerr = cjson.encode(claims)
  if not cjson_claims then return nil, "cannot encode claims: " .. tostring(cerr) end
  local signing_input = b64url_encode(hjson) .. "." .. b64url_encode(cjson_claims)
  local sig, err = sign_with(signing_input, key_or_pem, passphrase)
  if not sig then return nil, err end
  return signing_input .. "." .. sig
end

return M
