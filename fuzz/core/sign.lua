-- make fuzz target: RS256 signing and verifying of any bytes with a fixed key (made once with
-- the openssl command), and verifying any bytes as a signature.
local core = require "assesskit.core"

local function openssl_key()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir .. " && openssl genpkey -algorithm RSA "
    .. "-pkeyopt rsa_keygen_bits:1024 -out " .. dir .. "/k.pem 2>/dev/null && openssl pkey -in "
    .. dir .. "/k.pem -pubout -out " .. dir .. "/p.pem 2>/dev/null"))
  local f = assert(io.open(dir .. "/k.pem"))
  local private = f:read("*a")
  f:close()
  f = assert(io.open(dir .. "/p.pem"))
  local public = f:read("*a")
  f:close()
  os.execute("rm -rf " .. dir)
  return assert(core.load_key(private)), assert(core.load_key(public))
end

local key, pub = openssl_key()

return function(input)
  local sig = assert(key:sign(input))
  assert(#sig == 128)
  assert(key:verify(input, sig) and pub:verify(input, sig), "verifies its own signature")
  assert(not pub:verify(input .. "x", sig), "another input does not verify")
  local half = #input // 2
  assert(pub:verify(input:sub(1, half), input:sub(half + 1)) == false
    or key:sign(input:sub(1, half)) == input:sub(half + 1), "a forged signature verifies")
end
