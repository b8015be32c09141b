-- make fuzz target: AES-256-GCM opening (core.aead_open) of any bytes, and HKDF/sealing of
-- any secret and plaintext. Opening what was not sealed under the key fails with a message;
-- sealing then opening gives the plaintext back.
local core = require "assesskit.core"

local key = core.hkdf("fuzz secret", "salt", "info", 32)

return function(input)
  local plain, why = core.aead_open(key, input, "aad")
  assert(plain == nil and type(why) == "string" and why:find("^cannot open"), "forged bytes opened")
  local k = core.hkdf(input, input:sub(1, 7), input:sub(8, 20), 32)
  assert(#k == 32, "hkdf length")
  local sealed = assert(core.aead_seal(k, input, input:sub(1, 3)))
  assert(#sealed == #input + 28, "sealed length")
  assert(core.aead_open(k, sealed, input:sub(1, 3)) == input, "round trip")
end
