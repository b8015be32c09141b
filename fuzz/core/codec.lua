-- make fuzz target: base64url and percent-encoding (core.b64url_*, core.url_*).
-- Any bytes: decoding never crashes and either fails with a message or gives bytes that
-- encode back to the input; encoding always decodes back.
local core = require "assesskit.core"

return function(input)
  local enc = core.b64url_encode(input)
  assert(not enc:find("[^%w%-_]"), "b64url_encode: outside the alphabet")
  assert(core.b64url_decode(enc) == input, "b64url round trip")
  local dec, why = core.b64url_decode(input)
  if dec then
    assert(core.b64url_encode(dec) == input:gsub("=+$", ""), "b64url_decode: not canonical")
  else
    assert(type(why) == "string" and why:find("^invalid base64url: "), "b64url_decode: reason")
  end
  local pct = core.url_encode(input)
  assert(not pct:find("[^%w%-%._~%%]"), "url_encode: unreserved or %XX only")
  assert(core.url_decode(pct) == input, "url round trip")
  local plain = core.url_decode(input)
  assert(type(plain) == "string" and #plain <= #input, "url_decode")
end
