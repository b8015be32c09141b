--- Command-line argument parsing for `assesskit`.
--
-- One pass over an argument array with a spec naming the flags (no value) and the options
-- (one value) a command knows. `--name value` and `--name=value` are both accepted; `-h` is
-- `--help`. With `spec.params`, any other `--name value` becomes an endpoint parameter (the
-- value typed by `value`; a repeated name collects an array), and everything after a bare
-- `--` is read as parameters too, so a parameter whose name is also an option can still be
-- given. A lone `-` asks for parameters as JSON on standard input.
--
-- Failures are usage errors, returned as `nil, message`.
-- @internal assesskit.cli.args
local type, pairs, tonumber, error, pcall, next = type, pairs, tonumber, error, pcall, next
local string_sub, string_find, string_match = string.sub, string.find, string.match

local cjson = require("cjson")
local options_mod = require("assesskit.options")

local M = {}

-- A JSON number (RFC 8259 grammar) that a double holds exactly enough to round-trip an id.
local function is_json_number(s)
  local int, rest = string_match(s, "^%-?(%d+)(.*)$")
  if not int then return false end
  if #int > 1 and string_sub(int, 1, 1) == "0" then return false end
  if #int > 15 then return false end -- keep long ids as strings: a double would round them
  if rest == "" then return true end
  local frac = string_match(rest, "^%.%d+") or ""
  local exp = string_sub(rest, #frac + 1)
  return exp == "" or string_find(exp, "^[eE][%+%-]?%d+$") ~= nil
end

--- Type a parameter's text the way a shell user means it: a JSON number (no leading zero),
-- `true`, `false`, `null`, a JSON array or object is that JSON value; anything else is the
-- string itself.
-- @tparam string s
-- @return the value (`cjson.null` for `null`)
-- @usage args.value("42") --> 42; args.value("007") --> "007"; args.value("[1,2]") --> {1, 2}
function M.value(s)
  if type(s) ~= "string" then error("args.value: string expected", 2) end
  if s == "true" then return true end
  if s == "false" then return false end
  if s == "null" then return cjson.null end
  local first = string_sub(s, 1, 1)
  if first == "[" or first == "{" then
    local ok, v = pcall(cjson.decode, s)
    if ok then return v end
    return s
  end
  if is_json_number(s) then
    local v = tonumber(s) -- an integer on Lua 5.4 when it has no fraction or exponent
    if v then return v end
  end
  return s
end

local function add_param(params, name, v)
  local old = params[name]
  if old == nil then
    params[name] = v
  elseif type(old) == "table" and old.__repeated then
    old[#old + 1] = v
  else
    params[name] = { __repeated = true, old, v }
  end
end

local function finish_params(params)
  for k, v in pairs(params) do
    if type(v) == "table" and v.__repeated then
      v.__repeated = nil
      params[k] = v
    end
  end
  return params
end

--- The option or flag of a spec nearest to a mistyped name, for a usage error.
-- @tparam table spec as for `parse`
-- @tparam string name the name given (without `--`)
-- @treturn string `" (did you mean --NAME?)"`, or `""` when none is close
function M.did_you_mean(spec, name)
  local names = {}
  for k in pairs(spec.flags or {}) do names[k] = true end
  for k in pairs(spec.options or {}) do names[k] = true end
  local near = next(names) ~= nil and options_mod.nearest(name, names)
  return near and (" (did you mean --" .. near .. "?)") or ""
end
local did_you_mean = M.did_you_mean

--- Parse arguments.
-- @tparam table argv array of strings
-- @tparam table spec `flags` (map option name -> result field, set to true), `options` (map
--   option name -> result field, set to the value), `params` (boolean: collect unknown
--   `--name value` as parameters), `max_positional` (number)
-- @treturn[1] table `positional` (array), `params` (map, with `spec.params`), `stdin`
--   (true when `-` was given), and the fields named by `flags` and `options`
-- @treturn[2] nil
-- @treturn[2] string the usage error
-- @usage local r, err = args.parse(arg, { flags = { help = "help" }, options = {}, params = true })
function M.parse(argv, spec)
  if type(argv) ~= "table" then error("args.parse: argv must be a table", 2) end
  if type(spec) ~= "table" then error("args.parse: spec must be a table", 2) end
  local flags, options = spec.flags or {}, spec.options or {}
  local out = { positional = {}, params = spec.params and {} or nil }
  local i, n, only_params = 1, #argv, false
  while i <= n do
    local a = argv[i]
    if type(a) ~= "string" then error("args.parse: argv[" .. i .. "] is not a string", 2) end
    if only_params then
      local name, v = string_match(a, "^%-%-([^=]+)=(.*)$")
      if not name then
        name = string_match(a, "^%-%-(.+)$")
        if not name then return nil, "after --, expected --name value, got '" .. a .. "'" end
        if i == n then return nil, "parameter --" .. name .. " needs a value" end
        i = i + 1
        v = argv[i]
      end
      add_param(out.params, name, M.value(v))
    elseif a == "--" then
      if not spec.params then return nil, "unexpected --" end
      only_params = true
    elseif a == "-" then
      if not spec.params then return nil, "unexpected - (this command reads nothing from standard input)" end
      out.stdin = true
    elseif a == "-h" then
      out[flags.help or "help"] = true
    elseif string_sub(a, 1, 2) == "--" then
      local name, v = string_match(a, "^%-%-([^=]+)=(.*)$")
      name = name or string_sub(a, 3)
      if name == "" then return nil, "empty option name" end
      if flags[name] then
        if v ~= nil then return nil, "option --" .. name .. " takes no value" end
        out[flags[name]] = true
      elseif options[name] then
        if v == nil then
          if i == n then return nil, "option --" .. name .. " needs a value" end
          i = i + 1
          v = argv[i]
        end
        out[options[name]] = v
      elseif spec.params then
        if v == nil then
          if i == n or string_sub(argv[i + 1], 1, 2) == "--" then
            local near = did_you_mean(spec, name) -- a mistyped flag (--dryrun)
            if near ~= "" then return nil, "unknown option --" .. name .. near end
            return nil, "parameter --" .. name .. " needs a value"
          end
          i = i + 1
          v = argv[i]
        end
        add_param(out.params, name, M.value(v))
      else
        return nil, "unknown option --" .. name .. did_you_mean(spec, name)
      end
    elseif string_sub(a, 1, 1) == "-" and #a > 1 and not tonumber(a) then
      return nil, "unknown option " .. a
    else
      out.positional[#out.positional + 1] = a
    end
    i = i + 1
  end
  if spec.max_positional and #out.positional > spec.max_positional then
    return nil, "unexpected argument '" .. out.positional[spec.max_positional + 1] .. "'"
  end
  if out.params then finish_params(out.params) end
  return out
end

return M
