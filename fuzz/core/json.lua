-- make fuzz target: core.json_decode on any bytes. It never raises; it fails with a message
-- naming a byte inside the text (or just past it), or gives a value; a value is what lua-cjson
-- gives for the same text (numbers compared as floats: cjson has no integers), since cjson
-- accepts every text json_decode accepts. Nulls are cjson.null in both.
local core = require "assesskit.core"
local cjson = require "cjson"

local null = cjson.null

local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then return a + 0.0 == b + 0.0 or (a ~= a and b ~= b) end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

return function(input)
  local ok, v, err = pcall(core.json_decode, input, null)
  assert(ok, "json_decode raised: " .. tostring(v))
  if v == nil then
    assert(type(err) == "string", "no message")
    local at = tonumber(err:match("^invalid JSON: .- at byte (%d+)$")
      or err:match("^invalid JSON: .- at the end of the text %(byte (%d+)%)$"))
    assert(at and at >= 1 and at <= #input + 1, "message: " .. err)
    return
  end
  local cok, c = pcall(cjson.decode, input)
  assert(cok, "json_decode accepts what cjson rejects: " .. tostring(c))
  assert(same(v, c), "json_decode and cjson disagree")
end
