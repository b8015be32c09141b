-- core.json_decode: RFC 8259 JSON decoding in assesskit.core. Runs under Lua 5.4 and LuaJIT.
--
-- A table of valid texts and their values, a table of invalid texts and their messages, a
-- differential run against lua-cjson on generated texts (same structure; an integer exactly
-- where the literal has no fraction or exponent and fits, as Lua's own `tonumber` reads it),
-- deep nesting, big inputs, bytes from 0x80 up kept as they are (what cjson.encode writes
-- reads back), and a decimal-comma LC_NUMERIC (a locale made with localedef).

local core = require "assesskit.core"
local cjson = require "cjson"
local sys = require "support.sys"

local null = cjson.null
local decode = core.json_decode
local math_type = math.type -- nil on LuaJIT: every number is a double

-- Whether a and b are the same value: same types, integers where integers are (Lua 5.4),
-- the sign of a zero, tables key by key. `loose`: numbers compared as floats (cjson's).
local function same(a, b, loose, path)
  path = path or "value"
  if type(a) ~= type(b) then
    return false, path .. ": " .. type(a) .. " vs " .. type(b)
  end
  if type(a) == "number" then
    if loose then
      if a + 0.0 ~= b + 0.0 then return false, path .. ": " .. a .. " vs " .. b end
      return true
    end
    if math_type and math_type(a) ~= math_type(b) then
      return false, path .. ": " .. math_type(a) .. " " .. tostring(a) .. " vs "
        .. math_type(b) .. " " .. tostring(b)
    end
    if a ~= b or (a == 0 and 1 / a ~= 1 / b) then
      return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
    end
    return true
  end
  if type(a) ~= "table" then
    if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    return true
  end
  for k, v in pairs(a) do
    local ok, why = same(v, b[k], loose, path .. "[" .. tostring(k) .. "]")
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. ": no key " .. tostring(k) end
  end
  return true
end

local function assert_same(expected, actual, loose, what)
  local ok, why = same(expected, actual, loose)
  assert(ok, (what and what .. ": " or "") .. tostring(why))
end

-- The value Lua reads from a number literal: the rule json_decode follows.
local function num(lit)
  local v = assert(tonumber(lit), lit)
  return v
end

describe("assesskit.core json_decode #luajit", function()
  describe("valid texts", function()
    local cases = {
      { "0", num("0") }, { "-0", num("-0") }, { "1", num("1") }, { "-1", num("-1") },
      { "10001", num("10001") }, { "10001.0", num("10001.0") }, { "1e3", num("1e3") },
      { "1E3", num("1E3") }, { "1e+3", num("1e+3") }, { "1e-3", num("1e-3") },
      { "2.5", 2.5 }, { "-2.5e-1", -0.25 }, { "0.1", 0.1 }, { "-0.0", num("-0.0") },
      { "0e0", num("0e0") }, { "0e400", num("0e400") }, { "-0e-324", num("-0e-324") },
      { "0.000e-99999", num("0.0") }, { "123456789012", num("123456789012") },
      { "9007199254740993", num("9007199254740993") },
      { "9223372036854775807", num("9223372036854775807") },
      { "-9223372036854775808", num("-9223372036854775808") },
      { "9223372036854775808", num("9223372036854775808") },
      { "-9223372036854775809", num("-9223372036854775809") },
      { "18446744073709551616", num("18446744073709551616") },
      { "123456789012345678901234567890", num("123456789012345678901234567890") },
      { "1e400", math.huge }, { "-1e400", -math.huge }, { "1e-400", num("0.0") },
      { "1.7976931348623157e308", 1.7976931348623157e308 }, { "5e-324", num("5e-324") },
      { "2.2250738585072011e-308", num("2.2250738585072011e-308") },
      { "0.1e1", num("1.0") }, { "100e-2", num("1.0") },
      { "true", true }, { "false", false }, { "null", null },
      { '""', "" }, { '"abc"', "abc" },
      { '"\\"\\\\\\/\\b\\f\\n\\r\\t"', '"\\/\b\f\n\r\t' },
      { '"\\u0041\\u00e9\\u00E9\\u20ac\\uFFFF"', "A\195\169\195\169\226\130\172\239\191\191" },
      { '"\\ud83d\\ude00"', "\240\159\152\128" }, { '"\\uD83D\\uDE00"', "\240\159\152\128" },
      { '"\\udbff\\udfff"', "\244\143\191\191" },
      { '"a\\u0000b"', "a\0b" }, { '"\\u0000"', "\0" },
      { '"\195\169\226\130\172\240\159\152\128"', "\195\169\226\130\172\240\159\152\128" },
      { '"\244\143\191\191"', "\244\143\191\191" }, { '"\127"', "\127" },
      -- bytes from 0x80 up are kept as they are, UTF-8 or not (as cjson reads and writes them)
      { '"caf\233 \255\192\128\237\160\128"', "caf\233 \255\192\128\237\160\128" },
      { '{"\255": "\\n\128"}', { ["\255"] = "\n\128" } },
      { "[]", {} }, { "{}", {} }, { " \t\r\n[ ] \t\r\n", {} },
      { "[1, 2.0, [3], {}]", { num("1"), num("2.0"), { num("3") }, {} } },
      { '{"a": 1, "a": 2}', { a = num("2") } },
      { '{"a": null, "b": [1, null]}', { a = null, b = { num("1"), null } } },
      { '{"": 0, "\\u0000": 1}', { [""] = num("0"), ["\0"] = num("1") } },
      { '{"id":10001,"score":2.5,"f":10001.0}', { id = num("10001"), score = 2.5, f = num("10001.0") } },
    }
    for _, c in ipairs(cases) do
      it("decodes " .. c[1]:gsub("%c", "?"), function()
        local v, err = decode(c[1], null)
        assert.is_nil(err)
        assert_same(c[2], v)
      end)
    end

    it("keeps integers on Lua 5.4 and makes every number a double on LuaJIT", function()
      local v = assert(decode('[10001, -7, 10001.0, 1e3, 9223372036854775808, -0]', null))
      assert.equal("candidate-10001", "candidate-" .. string.format("%d", v[1]))
      if math_type then
        assert.same({ "integer", "integer", "float", "float", "float", "integer" },
          { math_type(v[1]), math_type(v[2]), math_type(v[3]), math_type(v[4]), math_type(v[5]),
            math_type(v[6]) })
        assert.equal("candidate-10001", "candidate-" .. v[1])
        assert.equal("10001.0", tostring(v[3]))
        assert.equal(0, v[6])
      else
        assert.equal(-math.huge, 1 / v[6]) -- -0 as a double keeps its sign
      end
      assert.equal(-math.huge, 1 / decode("-0.0")) -- everywhere
    end)

    it("reads back whatever cjson.encode writes: strings of any bytes, nested tables", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local all = table.concat(bytes)
      local value = { all, { [all] = all:reverse(), n = 10001, f = 2.5 }, "m\252ller", "/\\\"", null }
      local v = assert(decode(cjson.encode(value), null))
      assert_same(value, v)
    end)

    it("turns null into the sentinel given, or nil", function()
      local mark = {}
      assert.equal(mark, decode("null", mark))
      assert.same({ a = mark }, decode('{"a": null}', mark))
      assert.same({}, decode('{"a": null}'))
      local v = decode("[null, 1]")
      assert.is_nil(v[1])
      assert.equal(1, v[2])
      assert.equal(1, select("#", decode("null"))) -- one value: nil (the sentinel)
    end)
  end)

  describe("invalid texts", function()
    local cases = {
      { "", "expected a value at the end of the text (byte 1)" },
      { "  ", "expected a value at the end of the text (byte 3)" },
      { "[1,2,]", "expected a value at byte 6" },
      { '{"a":1,}', "expected a string (an object's key) at byte 8" },
      { "{a:1}", "expected a string (an object's key) at byte 2" },
      { "{'a':1}", "expected a string (an object's key) at byte 2" },
      { '{"a" 1}', "expected ':' after an object's key at byte 6" },
      { '{"a":1 "b":2}', "expected ',' or '}' in an object at byte 8" },
      { "[1 2]", "expected ',' or ']' in an array at byte 4" },
      { "[1,,2]", "expected a value at byte 4" },
      { "[", "expected a value at the end of the text (byte 2)" },
      { "[1", "expected ',' or ']' in an array at the end of the text (byte 3)" },
      { '{"a":', "expected a value at the end of the text (byte 6)" },
      { "01", "leading zero in a number at byte 1" },
      { "-01", "leading zero in a number at byte 1" },
      { "[00]", "leading zero in a number at byte 2" },
      { "-", "expected a digit in a number at the end of the text (byte 2)" },
      { "-a", "expected a digit in a number at byte 2" },
      { "+1", "expected a value at byte 1" },
      { ".5", "expected a value at byte 1" },
      { "1.", "expected a digit after the decimal point at the end of the text (byte 3)" },
      { "1.e5", "expected a digit after the decimal point at byte 3" },
      { "1e", "expected a digit in an exponent at the end of the text (byte 3)" },
      { "1e+", "expected a digit in an exponent at the end of the text (byte 4)" },
      { "1ex", "expected a digit in an exponent at byte 3" },
      { "0x10", "expected the end of the text after the value at byte 2" },
      { "NaN", "expected a value at byte 1" },
      { "nan", "invalid literal (expected true, false or null) at byte 1" },
      { "Infinity", "expected a value at byte 1" },
      { "-Infinity", "expected a digit in a number at byte 2" },
      { "tru", "invalid literal (expected true, false or null) at byte 1" },
      { "True", "expected a value at byte 1" },
      { "nul", "invalid literal (expected true, false or null) at byte 1" },
      { "falsey", "expected the end of the text after the value at byte 6" },
      { "1 2", "expected the end of the text after the value at byte 3" },
      { "{}{}", "expected the end of the text after the value at byte 3" },
      { "[] // c", "expected the end of the text after the value at byte 4" },
      { "/* c */ []", "expected a value at byte 1" },
      { "[1]\0", "expected the end of the text after the value at byte 4" },
      { "\0", "expected a value at byte 1" },
      { "\239\187\191[]", "expected a value at byte 1" }, -- a byte order mark
      { "\f[]", "expected a value at byte 1" },
      { "[\v]", "expected a value at byte 2" },
      { "[\194\160]", "expected a value at byte 2" }, -- no-break space
      { '"abc', "unterminated string at the end of the text (byte 5)" },
      { '"a\\', "invalid escape in a string at byte 3" },
      { '"a\0b"', "unescaped control character in a string at byte 3" },
      { '"a\nb"', "unescaped control character in a string at byte 3" },
      { '"\t"', "unescaped control character in a string at byte 2" },
      { '"\\x41"', "invalid escape in a string at byte 2" },
      { '"\\U0041"', "invalid escape in a string at byte 2" },
      { "'a'", "expected a value at byte 1" },
      { '"\\u12"', "\\u not followed by four hex digits at byte 2" },
      { '"\\u12g4"', "\\u not followed by four hex digits at byte 2" },
      { '"\\ud800"', "high surrogate (\\uD800-\\uDBFF) not followed by a low one at byte 2" },
      { '"\\ud800\\u0041"', "high surrogate (\\uD800-\\uDBFF) not followed by a low one at byte 2" },
      { '"\\ud800\\ud800"', "high surrogate (\\uD800-\\uDBFF) not followed by a low one at byte 2" },
      { '"x\\udc00"', "lone low surrogate (\\uDC00-\\uDFFF) in a string at byte 3" },
    }
    for _, c in ipairs(cases) do
      it("rejects " .. c[1]:gsub("[%c\128-\255]", "?") .. " with its byte", function()
        local v, err = decode(c[1], null)
        assert.is_nil(v)
        assert.equal("invalid JSON: " .. c[2], err)
      end)
    end

    it("raises only on misuse: a text that is not a string", function()
      for _, bad in ipairs({ 1, true, {}, null }) do
        assert.has_error(function() decode(bad) end)
      end
      assert.has_error(function() decode() end)
    end)

    it("never raises, whatever the bytes", function()
      local seed = '{"a": [1, -2.5e3, "x\\u00e9\\ud83d\\ude00", true, null], "b": {"c": "d"}}'
      math.randomseed(14)
      for _ = 1, 20000 do
        local t = {}
        for i = 1, #seed do t[i] = seed:sub(i, i) end
        for _ = 1, math.random(1, 4) do
          local i, op = math.random(1, #t), math.random(1, 3)
          local b = string.char(math.random(0, 255))
          if op == 1 then t[i] = b elseif op == 2 then table.insert(t, i, b) else table.remove(t, i) end
        end
        local text = table.concat(t)
        local ok, v, err = pcall(decode, text, null)
        assert(ok, v)
        if v == nil then assert.matches("^invalid JSON: .* at .*byte %d+%)?$", err) end
      end
    end)
  end)

  describe("nesting", function()
    it("decodes 1000 levels of arrays and objects", function()
      local v = assert(decode(string.rep("[", 1000) .. string.rep("]", 1000)))
      local depth = 0
      while v do depth = depth + 1; v = v[1] end
      assert.equal(1000, depth)
      v = assert(decode(string.rep('{"a":', 999) .. "{}" .. string.rep("}", 999)))
      depth = 0
      while v do depth = depth + 1; v = v.a end
      assert.equal(1000, depth)
    end)

    it("refuses a 1001st level with a message, and a million with no crash", function()
      local v, err = decode(string.rep("[", 1001) .. string.rep("]", 1001))
      assert.is_nil(v)
      assert.equal("invalid JSON: nested deeper than 1000 objects and arrays at byte 1001", err)
      v, err = decode(string.rep('{"a":', 1001) .. "1" .. string.rep("}", 1001))
      assert.is_nil(v)
      assert.equal("invalid JSON: nested deeper than 1000 objects and arrays at byte 5001", err)
      v, err = decode(string.rep("[", 1000000))
      assert.is_nil(v)
      assert.matches("nested deeper than 1000", err)
      v, err = decode(string.rep('[{"a":', 300000))
      assert.is_nil(v)
      assert.matches("nested deeper than 1000", err)
    end)
  end)

  describe("big inputs", function()
    it("decodes a 200000-element array and a 2 MB string of escapes as cjson does", function()
      local parts = {}
      for i = 1, 200000 do parts[i] = (i % 3 == 0) and tostring(i / 7) or tostring(i * 7919) end
      local text = "[" .. table.concat(parts, ",") .. "]"
      local v = assert(decode(text, null))
      assert.equal(200000, #v)
      assert_same(cjson.decode(text), v, true)
      for i = 1, 200000, 997 do assert_same(num(parts[i]), v[i], false, parts[i]) end
      local s = '"' .. string.rep("ab\\n\\u00e9\\ud83d\\ude00\\\"", 100000) .. '"'
      assert.equal(cjson.decode(s), decode(s))
      assert.equal(100000 * 10, #decode(s))
    end)

    it("decodes number literals of a million digits", function()
      assert.equal(math.huge, decode(string.rep("9", 1000000)))
      assert.equal(1.0, decode("0." .. string.rep("9", 1000000)))
      assert.equal(1.5, decode("1.5" .. string.rep("0", 1000000)))
      assert.equal(0.125, decode("125" .. string.rep("0", 1000000) .. "e-1000003"))
      assert.equal(1e300, decode("1" .. string.rep("0", 300)))
    end)
  end)

  describe("differential against cjson", function()
    -- A generated JSON text and the value it stands for.
    local SPACE = { "", "", "", " ", "\n", "\t", "\r\n  " }
    local KEYS = { "id", "name", "a", "", "é", "id" }
    local INTS = { "0", "-0", "7", "-7", "10001", "6506985", "9007199254740993", "-123456789012",
      "9223372036854775807", "-9223372036854775808", "9223372036854775808", "99999999999999999999" }
    local function ws() return SPACE[math.random(#SPACE)] end
    local function number_literal()
      local r = math.random(1, 6)
      if r == 1 then return INTS[math.random(#INTS)] end
      if r == 2 then return tostring(math.random(-1000000, 1000000)) end
      if r == 3 then return string.format("%.17g", (math.random() - 0.5) * 10 ^ math.random(-30, 30)) end
      if r == 4 then return string.format("%d.%d", math.random(0, 99999), math.random(0, 99999)) end
      local digits = {}
      for i = 1, math.random(1, 25) do digits[i] = tostring(math.random(i == 1 and 1 or 0, 9)) end
      local lit = (math.random(2) == 1 and "-" or "") .. table.concat(digits)
      if math.random(2) == 1 then lit = lit .. "." .. math.random(0, 999999) end
      if r == 6 then lit = lit .. ({ "e", "E" })[math.random(2)] .. ({ "", "+", "-" })[math.random(3)]
          .. math.random(0, 330) end
      return lit
    end
    local CHARS = { { "a", "a" }, { " ", " " }, { "\\\"", '"' }, { "\\\\", "\\" }, { "\\/", "/" },
      { "\\n", "\n" }, { "\\t", "\t" }, { "\\b", "\b" }, { "\\f", "\f" }, { "\\r", "\r" },
      { "\\u0000", "\0" }, { "\\u001f", "\31" }, { "\\u00e9", "\195\169" }, { "\195\169", "\195\169" },
      { "\\u20AC", "\226\130\172" }, { "\226\130\172", "\226\130\172" }, { "\\ud83d\\ude00", "\240\159\152\128" },
      { "\240\159\152\128", "\240\159\152\128" }, { "\\uffff", "\239\191\191" }, { "~", "~" } }
    local function string_literal()
      local text, value = {}, {}
      for i = 1, math.random(0, 12) do
        local c = CHARS[math.random(#CHARS)]
        text[i], value[i] = c[1], c[2]
      end
      return '"' .. table.concat(text) .. '"', table.concat(value)
    end
    local function generate(depth)
      local r = math.random(1, depth < 5 and 10 or 6)
      if r <= 2 then local lit = number_literal() return lit, num(lit) end
      if r <= 4 then return string_literal() end
      if r == 5 then local w = ({ "true", "false" })[math.random(2)] return w, w == "true" end
      if r == 6 then return "null", null end
      if r <= 8 then
        local text, value = {}, {}
        for i = 1, math.random(0, 6) do
          local t, v = generate(depth + 1)
          text[i], value[i] = ws() .. t .. ws(), v
        end
        return "[" .. (#text == 0 and ws() or table.concat(text, ",")) .. "]", value
      end
      local text, value = {}, {}
      for i = 1, math.random(0, 6) do
        local k = KEYS[math.random(#KEYS)]
        local t, v = generate(depth + 1)
        text[i] = ws() .. cjson.encode(k) .. ws() .. ":" .. ws() .. t .. ws()
        value[k] = v -- the last of duplicate keys wins
      end
      return "{" .. (#text == 0 and ws() or table.concat(text, ",")) .. "}", value
    end

    it("gives cjson's values, with integers where the literal has no fraction or exponent", function()
      math.randomseed(2026)
      for i = 1, 3000 do
        local text, expected = generate(0)
        text = ws() .. text .. ws()
        local v, err = decode(text, null)
        assert(err == nil, err)
        assert_same(expected, v, false, "text " .. i .. ": " .. text)
        assert_same(cjson.decode(text), v, true, "cjson, text " .. i .. ": " .. text)
      end
    end)

    it("accepts what cjson accepts and rejects what it rejects, one byte away from valid texts", function()
      math.randomseed(8259)
      local accepted, rejected = 0, 0
      for _ = 1, 3000 do
        local text = generate(0)
        local i = math.random(1, #text)
        text = text:sub(1, i - 1) .. string.char(math.random(32, 126)) .. text:sub(i + 1)
        local v = decode(text, null)
        local ok, c = pcall(cjson.decode, text)
        -- cjson 2.1.0 accepts what strtod reads (hex, inf, nan, leading zeros, "1.", "1.e5"):
        -- we do not (texts that may hold such a number are left out of this direction)
        local lax = text:find("[xXnNiI]") or text:find("%f[%d]0%d") or text:find("%.[^%d]")
          or text:find("%.$") or text:find("[eE][%+%-]?[^%d%+%-]") or text:find("^%+")
          or text:find("[^eE]%+")
        if ok and not lax then
          assert(v ~= nil, "cjson accepts, json_decode rejects: " .. string.format("%q", text))
          assert_same(c, v, true, text)
        end
        if v == nil then rejected = rejected + 1 else accepted = accepted + 1 end
        if not ok then assert(v == nil, "cjson rejects, json_decode accepts: " .. text) end
      end
      assert.is_true(accepted > 100 and rejected > 100)
    end)
  end)

  describe("with a decimal comma in LC_NUMERIC", function()
    it("reads '.' as the decimal point all the same", function()
      -- a subprocess: LOCPATH is read from the environment
      local dir = sys.tmpdir("locale")
      local ok, out = sys.run("localedef -i de_DE -f UTF-8 " .. sys.quote(dir .. "/de_DE.UTF-8"))
      assert(ok or out:find("warnings", 1, true), out)
      local interp = jit and "luajit" or "lua5.4"
      local cpath = sys.repo .. (jit and "/build/luajit/?.so;;" or "/build/lua5.4/?.so;;")
      interp = (not jit and os.getenv("ASSESSKIT_SPEC_LUA")) or interp
      cpath = (not jit and os.getenv("ASSESSKIT_SPEC_CPATH")) or cpath
      local script = [[
        assert(os.setlocale("de_DE.UTF-8", "numeric"), "no de_DE locale")
        -- (LuaJIT formats numbers without the C library: only Lua 5.4 shows the comma)
        assert(jit or string.format("%g", 2.5) == "2,5", "the locale has no decimal comma")
        local core = require("assesskit.core")
        local v = assert(core.json_decode('[2.5, 1.25e2, 0.1, -3.75, 1.0000000000000002, ]]
        .. [[1.7976931348623157e308, 123456789012345678901234567890.5, 10001]'))
        assert(v[1] == 0.5 * 5 and v[2] == 125 and v[3] == 1 / 10 and v[4] == -3.75)
        assert(v[5] == 1 + 2 ^ -52 and v[6] == 1.7976931348623157e308 and v[7] == 1.2345678901234568e29)
        assert(v[8] == 10001)
        print("ok")
      ]]
      -- under make sanitize: glibc's setlocale keeps the LOCPATH list it built (not ours)
      sys.write(dir .. "/lsan.supp", "leak:argz_add_sep\n")
      local code, stdout, stderr = sys.exec(interp .. " -", {
        stdin = script,
        env = { LOCPATH = dir, PATH = os.getenv("PATH"),
          LUA_PATH = sys.repo .. "/lua/?.lua;" .. sys.repo .. "/lua/?/init.lua;;", LUA_CPATH = cpath,
          ASAN_OPTIONS = os.getenv("ASAN_OPTIONS") or "", UBSAN_OPTIONS = os.getenv("UBSAN_OPTIONS") or "",
          LSAN_OPTIONS = "suppressions=" .. dir .. "/lsan.supp:print_suppressions=0" },
      })
      sys.rmdir(dir)
      assert.equal("ok\n", stdout, stderr)
      assert.equal(0, code)
    end)
  end)
end)
