-- make fuzz target: key loading (core.load_key) from PEM bytes and a passphrase, then
-- signing and verifying with what loaded. Input: one byte n, n % 32 bytes of passphrase (none
-- when n is 255), then the PEM bytes.
local core = require "assesskit.core"

return function(input)
  local n = input:byte(1) or 255
  local pass, pem
  if n == 255 then
    pem = input:sub(2)
  else
    pass = input:sub(2, 1 + n % 32)
    pem = input:sub(2 + n % 32)
  end
  local key, why = core.load_key(pem, pass)
  if not key then
    assert(type(why) == "string" and why:find("^cannot load key"), "load_key: reason")
    return
  end
  assert(tostring(key):find("^assesskit%.key %(RSA %d+, "), "tostring")
  if key:is_private() then
    local sig = assert(key:sign(input))
    assert(#sig * 8 >= key:bits() - 7, "signature size")
    assert(key:verify(input, sig), "a key verifies its own signature")
  else
    assert(not key:sign("x"), "a public key does not sign")
  end
  assert(type(key:verify(input, input)) == "boolean")
  key:close()
  assert(not key:sign("x") and not key:is_private())
end
