--- Generator of `assesskit.sandbox.samples` from the Talview seed (a development tool, not used
-- at run time).
--
-- The seed's JSON samples lost their braces and brackets when the docs were flattened, but
-- kept their indentation. This rebuilds them: keys open objects (`"k": {`) or arrays
-- (`"k": [`) whose children are the more-indented lines that follow; a key seen twice in the
-- same object starts the next element of a list. For every catalogue endpoint, the sample is
-- the first JSON block after a "returns JSON" / "JSON Response" / "Sample response" line that
-- follows the endpoint's `seed_line` (and precedes the next request line). An action
-- (`actions.*`) whose seed shows more than one request with its answer (Remind Candidate: by
-- assessment candidates, then by sections) keeps the further answers too, in `more`: the
-- sandbox answers each request as the example it matches.
--
-- @usage
-- lua5.4 -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path
--   require("assesskit.sandbox.samples_gen").main("/work/shared/seeds/002_3384fbf1d7adbc06.txt",
--   "lua/assesskit/sandbox/samples.lua")'
-- @module assesskit.sandbox.samples_gen

local json = require("assesskit.sandbox.json")

local M = {}

local function indent_of(line)
  local sp = line:match("^( *)")
  return #sp
end

local function strip_comma(s)
  s = s:gsub("%s+$", "")
  if s:sub(-1) == "," then s = s:sub(1, -2) end
  return (s:gsub("%s+$", ""))
end

local function scalar(text)
  text = strip_comma(text)
  if text == "" then return nil end
  local v = json.decode(text)
  if v ~= nil then return v end
  -- single-quoted or otherwise sloppy values: keep them as strings
  local q = text:match("^'(.*)'$")
  if q then return q end
  return nil
end

-- A line of a flattened sample: returns a table describing it, or nil when it is not JSON.
local function classify(line)
  local body = line:gsub("^%s+", ""):gsub("%s+$", "")
  if body == "" then return nil end
  local key, rest = body:match('^"([^"]*)"%s*:%s*(.*)$')
  if not key then
    key, rest = body:match("^'([^']*)'%s*:%s*(.*)$")
  end
  if not key then
    local k2 = body:match('^"([^"]*)"%s*{$')   -- `"all" {` (a colon lost)
    if k2 then return { key = k2, open = "object" } end
  end
  if key then
    rest = strip_comma(rest)
    if rest == "{" then return { key = key, open = "object" } end
    if rest == "[" then return { key = key, open = "array" } end
    local v = scalar(rest)
    if v == nil and rest ~= "" then
      -- inline array or object that was not flattened, or garbage
      local ok = json.decode(rest)
      if ok == nil then return { key = key, value = rest } end
      v = ok
    end
    if v == nil then return nil end
    return { key = key, value = v }
  end
  if body == "{" then return { open = "object" } end
  if body == "[" then return { open = "array" } end
  local v = scalar(body)
  if v ~= nil then return { value = v } end
  return nil
end

--- Rebuild a value from the lines of one flattened block.
-- @tparam {string,...} lines
-- @return the value (an array when the top level repeats its keys)
function M.rebuild(lines)
  local items = {}
  for _, line in ipairs(lines) do
    local c = classify(line)
    if c then
      c.indent = indent_of(line)
      items[#items + 1] = c
    end
  end
  if #items == 0 then return nil end

  -- frame: { kind = "object"|"array", value, indent = child indent or nil, opener = indent,
  --          implicit = bool (an object element of an array, opened by a key line) }
  local root_kind = items[1].key and "list" or "array"
  local root = { kind = "array", value = json.array(), indent = items[1].indent, opener = -1 }
  local stack = { root }

  local function top() return stack[#stack] end
  local function add_to(frame, key, value)
    if frame.kind == "object" then
      if frame.value[key] == nil then frame.order[#frame.order + 1] = key end
      frame.value[key] = value
    else
      frame.value[#frame.value + 1] = value
    end
  end

  for _, it in ipairs(items) do
    -- close frames this line is not inside of
    while true do
      local f = top()
      if f == root then break end
      if f.indent == nil then
        if it.indent > f.opener then f.indent = it.indent; break end
        table.remove(stack) -- empty container
      elseif it.indent < f.indent then
        table.remove(stack)
      else
        break
      end
    end
    local f = top()
    if it.key then
      if f.kind == "array" then
        -- an object element of an array
        local order = {}
        local obj = { kind = "object", value = json.object({}, order), order = order, indent = it.indent,
                      opener = it.indent - 1, implicit = true }
        add_to(f, nil, obj.value)
        stack[#stack + 1] = obj
        f = obj
      elseif f.implicit and f.value[it.key] ~= nil and it.indent == f.indent then
        -- the key repeats: the next element of the enclosing array
        table.remove(stack)
        local arr = top()
        local order = {}
        local obj = { kind = "object", value = json.object({}, order), order = order, indent = it.indent,
                      opener = it.indent - 1, implicit = true }
        add_to(arr, nil, obj.value)
        stack[#stack + 1] = obj
        f = obj
      end
      if it.open then
        local corder = {}
        local child = { kind = it.open, value = it.open == "array" and json.array() or json.object({}, corder),
                        order = corder, opener = it.indent }
        add_to(f, it.key, child.value)
        stack[#stack + 1] = child
      else
        add_to(f, it.key, it.value)
      end
    else
      if it.open then
        local corder = {}
        local child = { kind = it.open, value = it.open == "array" and json.array() or json.object({}, corder),
                        order = corder, opener = it.indent }
        add_to(f, nil, child.value)
        stack[#stack + 1] = child
      elseif f.kind == "array" then
        add_to(f, nil, it.value)
      end
    end
  end
  -- record key order on every object built
  local function finish(v)
    if type(v) ~= "table" or v == json.null then return v end
    if json.is_array(v) then
      for i, x in ipairs(v) do v[i] = finish(x) end
      return v
    end
    return v
  end
  finish(root.value)
  if root_kind == "list" then return root.value end
  return root.value
end

local function is_request_line(line)
  return line:match("^%s*(GET|POST|PUT|PATCH|DELETE)%s") ~= nil
    or line:match("^%s*GET%s") or line:match("^%s*POST%s") or line:match("^%s*PUT%s")
    or line:match("^%s*PATCH%s") or line:match("^%s*DELETE%s")
end

-- Whether a block right after the request's header line or its role list, with no heading of
-- its own, is the request body: it is when a "returns JSON" line follows it (Event Panel Notify
-- and Simulation Schedule show their request that way); otherwise it is the answer.
local function unheaded_request(seed, prev, after, limit)
  if not (prev:match("^%s*Authorization:") or prev:match("^%s*%d+%.%s")) then return false end
  for k = after, limit do
    local line = seed[k]
    if is_request_line(line) and line:find("HTTP/1.1", 1, true) then return false end
    if line:find("returns JSON", 1, true) then return true end
  end
  return false
end

--- Find the response sample for an endpoint: the first JSON block after its seed line and
-- before the next request line, skipping request-body samples ("JSON POST Request:").
-- @tparam {string,...} seed all seed lines
-- @tparam number from the endpoint's seed line
-- @tparam[opt] number stop the next endpoint's seed line (the scan ends before it)
-- @treturn ?table `{value=, line=, last=}` (`last`: the block's last line)
function M.sample_after(seed, from, stop)
  local limit = math.min(#seed, from + 400, (stop or math.huge) - 1)
  local own_seen = false
  local i = from
  local prev = ""
  while i <= limit do
    local line = seed[i]
    if is_request_line(line) and line:find("HTTP/1.1", 1, true) then
      if own_seen or i > from + 6 then return nil end
      own_seen = true
      i = i + 1
    elseif line:find("status code") or line:find("returns 204") or line:match("^%s*The [%w%s%-]+ Object%s*$") then
      return nil
    elseif classify(line) and indent_of(line) >= 6 and i > from then
      local block, start, j = {}, i, i
      while j <= #seed do
        local l = seed[j]
        if l:match("^%s*$") then
          local k = j + 1
          if k <= #seed and classify(seed[k]) and indent_of(seed[k]) >= 6 then
            j = j + 1
          else
            break
          end
        elseif classify(l) then
          block[#block + 1] = l
          j = j + 1
        else
          break
        end
      end
      if #block > 0 and not prev:find("Request") and not unheaded_request(seed, prev, j, limit) then
        return { value = M.rebuild(block), line = start, last = j - 1 }
      end
      i = j
    else
      if not line:match("^%s*$") then prev = line end
      i = i + 1
    end
  end
  return nil
end

-- The last non-blank line before line `n`.
local function line_before(seed, n)
  for k = n - 1, 1, -1 do
    if not seed[k]:match("^%s*$") then return seed[k] end
  end
  return ""
end

-- The further answers of an action after its first sample `s`, before line `stop`: the JSON
-- blocks that a "returns JSON" line introduces.
local function more_answers(seed, s, stop)
  local out = {}
  local from = s.last + 1
  while true do
    local t = M.sample_after(seed, from, stop)
    if not t then break end
    if line_before(seed, t.line):find("returns JSON", 1, true) then
      out[#out + 1] = { value = t.value, line = t.line }
    end
    from = t.last + 1
  end
  return #out > 0 and out or nil
end

--- Build the samples table for a catalogue.
-- @tparam string seed_path path of the Talview seed
-- @tparam table catalogue
-- @treturn table name -> {line=, value=, more=} (`more`: an action's further answers,
--   `{ {line=, value=}, ... }`, or nil)
function M.build(seed_path, catalogue)
  local seed = {}
  for line in io.lines(seed_path) do seed[#seed + 1] = line end
  local lines = {}
  for _, e in ipairs(catalogue.endpoints) do
    if e.seed_line then lines[#lines + 1] = e.seed_line end
  end
  table.sort(lines)
  local function next_after(n)
    for _, l in ipairs(lines) do
      if l > n then return l end
    end
  end
  local out = {}
  for _, e in ipairs(catalogue.endpoints) do
    if e.seed_line then
      local s = M.sample_after(seed, e.seed_line, next_after(e.seed_line))
      if s and s.value ~= nil then
        out[e.name] = s
        if e.name:match("^actions%.") then s.more = more_answers(seed, s, next_after(e.seed_line)) end
      end
    end
  end
  return out
end

--- Write `samples.lua`.
-- @tparam string seed_path
-- @tparam string out_path
function M.main(seed_path, out_path)
  local catalogue = dofile("lua/assesskit/talview/catalogue.lua")
  local samples = M.build(seed_path, catalogue)
  local names = {}
  for k in pairs(samples) do names[#names + 1] = k end
  table.sort(names)
  local f = assert(io.open(out_path, "wb"))
  -- (written piecewise so that LDoc does not read this header as the generator's own)
  f:write("-- luacheck: no max line length\n", "--", "- Sample response bodies of the Talview endpoints, rebuilt",
    " from the seed's flattened JSON\n",
    "-- samples by `assesskit.sandbox.samples_gen` (do not edit by hand: regenerate). Keys are\n",
    "-- catalogue endpoint names; values are JSON text (decoded by `assesskit.sandbox.resources`)\n",
    "-- and the seed line the sample starts at; `more`: an action's further example answers\n",
    "-- (when its seed shows more than one request), each with its JSON text and line.\n",
    "-- @", "module assesskit.sandbox.samples\n\nreturn {\n")
  for _, name in ipairs(names) do
    local s = samples[name]
    local text = json.encode(s.value)
    assert(not text:find("]==]", 1, true))
    local more = ""
    if s.more then
      local parts = {}
      for _, m in ipairs(s.more) do
        local mtext = json.encode(m.value)
        assert(not mtext:find("]==]", 1, true))
        parts[#parts + 1] = string.format("{ line = %d, json = [==[%s]==] }", m.line, mtext)
      end
      more = ", more = { " .. table.concat(parts, ", ") .. " }"
    end
    f:write(string.format("  [%q] = { line = %d, json = [==[%s]==]%s },\n", name, s.line, text, more))
  end
  f:write("}\n")
  f:close()
  io.stderr:write(string.format("%d samples for %d endpoints\n", #names, #catalogue.endpoints))
end

return M
