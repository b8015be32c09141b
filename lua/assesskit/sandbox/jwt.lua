--- RS256 JWT verification for the sandbox's JWT-bearer grant, over lua-luaossl.
--
-- Deliberately independent of assesskit's own C core: the sandbox checks our client's
-- signatures with a different implementation, so a signing bug cannot hide behind a matching
-- verification bug.
-- @module assesskit.sandbox.jwt

local json = require("assesskit.sandbox.json")

local ngx = ngx -- luacheck: read globals ngx
local type, pcall, tostring, error, require = type, pcall, tostring, error, require
local string_gsub, string_find, string_match, string_rep = string.gsub, string.find, string.match,
  string.rep

local pkey, digest -- loaded on first use, so that the module loads where luaossl is missing

local M = {}

local function b64_decode(s)
  return ngx.decode_base64(s)
end

--- Decode base64url (padding optional).
-- @tparam string s
-- @treturn ?string bytes, or nil when `s` is not base64url
function M.b64url_decode(s)
  if type(s) ~= "string" or string_find(s, "[^%w%-_=]") then return nil end
  s = string_gsub(string_gsub(s, "%-", "+"), "_", "/")
  local pad = #s % 4
  if pad == 1 then return nil end
  if pad > 0 then s = s .. string_rep("=", 4 - pad) end
  return b64_decode(s)
end

--- Load a PEM public key for verification.
-- @tparam string pem
-- @treturn[1] userdata a luaossl pkey
-- @treturn[2] nil
-- @treturn[2] string reason
function M.load_public_key(pem)
  if type(pem) ~= "string" then error("load_public_key: PEM string expected", 2) end
  if not pkey then
    local ok, mod = pcall(require, "openssl.pkey")
    if not ok then return nil, "lua-luaossl is not available" end
    pkey, digest = mod, require("openssl.digest")
  end
  local ok, key = pcall(pkey.new, pem, "PEM", "public")
  if not ok or not key then
    ok, key = pcall(pkey.new, pem)
  end
  if not ok or not key then return nil, "cannot read the public key" end
  return key
end

--- Split and decode a compact JWS and verify its RS256 signature.
-- Claims are not checked here (see `assesskit.sandbox.auth`).
-- @tparam string token compact JWS
-- @tparam userdata key from `load_public_key`
-- @treturn[1] table claims
-- @treturn[1] table header
-- @treturn[2] nil
-- @treturn[2] string why it was refused (no secret in it)
function M.verify(token, key)
  if type(token) ~= "string" or token == "" then return nil, "assertion is missing" end
  if #token > 16384 then return nil, "assertion is too long" end
  local h64, p64, s64 = string_match(token, "^([^%.]+)%.([^%.]+)%.([^%.]*)$")
  if not h64 then return nil, "assertion is not a compact JWS (three dot-separated parts)" end
  local hraw, praw, sig = M.b64url_decode(h64), M.b64url_decode(p64), M.b64url_decode(s64)
  if not hraw or not praw or not sig then return nil, "assertion part is not base64url" end
  local header = json.decode(hraw)
  if type(header) ~= "table" or json.is_array(header) then
    return nil, "assertion header is not a JSON object"
  end
  if header.alg ~= "RS256" then
    return nil, "assertion alg must be RS256, got " .. tostring(header.alg)
  end
  if header.typ ~= nil and header.typ ~= "JWT" then return nil, "assertion typ must be JWT" end
  local claims = json.decode(praw)
  if type(claims) ~= "table" or json.is_array(claims) then
    return nil, "assertion claim set is not a JSON object"
  end
  if sig == "" then return nil, "assertion signature is empty" end
  local md = digest.new("sha256")
  md:update(h64 .. "." .. p64)
  local ok, good = pcall(key.verify, key, sig, md)
  if not ok or not good then return nil, "assertion signature does not verify" end
  return claims, header
end

return M
