--- Bench: JSON decoding, core.json_decode against lua-cjson's decode; and encoding a request
-- body, client.json_encode against lua-cjson's encode.
--
-- What it shows: texts decoded per CPU-second (os.clock: this process only) by lua-cjson 2.1.0
-- and by assesskit.core's decoder (which keeps integers on Lua 5.4), on a page of 100
-- Talview candidates (the seed's sample object, 74 KB: the `page` workload of bench/talview.lua
-- without the exchange), on an array of 10000 numbers and on a text of escaped strings. The
-- core's figure should be at least cjson's. Then microseconds per request body encoded (the
-- exact encoder pays for numbers cjson would write otherwise). Prints figures, asserts nothing.
--
-- How to run (from the repository root, after `make`):
--
--     lua5.4 bench/json.lua [--rounds R]
--     luajit bench/json.lua
local bench = dofile((arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or "bench") .. "/support.lua")

local core = require("assesskit.core")
local cjson = require("cjson").new()

local rounds = 5
if arg and arg[1] == "--rounds" then rounds = assert(tonumber(arg[2]), "--rounds N") end

local CANDIDATE = bench.CANDIDATE

local function page()
  local t = {}
  for i = 1, 100 do t[i] = CANDIDATE:gsub("6506985", tostring(6506985 + i)) end
  return "[" .. table.concat(t, ",") .. "]"
end

local function numbers()
  local t = {}
  for i = 1, 10000 do t[i] = (i % 2 == 0) and tostring(i * 7919) or string.format("%.6f", i / 7) end
  return "[" .. table.concat(t, ",") .. "]"
end

local function escapes()
  local t = {}
  for i = 1, 1000 do t[i] = [["line\n\"quoted\" caf\u00e9 \ud83d\ude00 tab\t"]] end
  return "[" .. table.concat(t, ",") .. "]"
end

-- Texts per CPU-second: the best of `rounds` runs of about 0.2 s each, after a warm-up.
local function rate(fn, text)
  local n = 1
  repeat
    local c0 = os.clock()
    for _ = 1, n do fn(text) end
    local dt = os.clock() - c0
    if dt < 0.2 then n = n * 2 end
  until dt >= 0.2
  local best = 0
  for _ = 1, rounds do
    collectgarbage()
    local c0 = os.clock()
    for _ = 1, n do fn(text) end
    local r = n / (os.clock() - c0)
    if r > best then best = r end
  end
  return best
end

local null = cjson.null
local function core_decode(text) return core.json_decode(text, null) end

print(string.format("json bench (%s; texts per CPU-second, best of %d)", jit and "luajit" or _VERSION, rounds))
for _, case in ipairs({ { "a page of 100 candidates", page() }, { "10000 numbers", numbers() },
    { "1000 strings with escapes", escapes() } }) do
  local name, text = case[1], case[2]
  local c = rate(cjson.decode, text)
  local a = rate(core_decode, text)
  print(string.format("  %-28s %6d bytes   cjson.decode %8.0f   core.json_decode %8.0f   (%.2fx)",
    name, #text, c, a, a / c))
end

-- Encoding a request body: client.json_encode (every number as it was made) against cjson's
-- encode, in microseconds per body, on a typical candidate body with and without numbers
-- cjson would write otherwise (a 15-digit id, 0.1 + 0.2).
local json_encode = require("assesskit.client").json_encode
local body = { first_name = "Ada", last_name = "Lovelace", email = "ada@example.com",
  phone = "+44 20 7946 0958", job_id = 10001, tags = { "a", "b", "c" },
  custom = { level = 3, remote = true, note = 'likes "quotes"' }, score = 87 }
local exact = { external_id = 123456789012345, weight = 0.1 + 0.2 }
for k, v in pairs(body) do exact[k] = v end
for _, case in ipairs({ { "a candidate body", body }, { "... with exact numbers", exact } }) do
  local name, v = case[1], case[2]
  local c = rate(cjson.encode, v)
  local a = rate(json_encode, v)
  print(string.format("  %-28s %6d bytes   cjson.encode %6.2f us   client.json_encode %6.2f us",
    name, #json_encode(v), 1e6 / c, 1e6 / a))
end
