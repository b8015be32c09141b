--- Fault injection: make a request fail the way real networks and servers fail.
--
-- A fault is a table (JSON object at the control endpoint `POST /_sandbox/faults`):
--
--    { kind = "status", status = 503, times = 2, method = "GET", path = "/models/candidate" }
--
-- `kind` is one of
--
-- * `reset`: the connection is closed without any response (the client sees an empty reply);
-- * `slow`: the response is held back `delay` seconds (default 1) and then sent normally;
-- * `slow_body`: the headers and half the body are sent, then `delay` seconds later the rest;
-- * `truncate`: `Content-Length` promises the whole body, half of it is sent, then the
--   connection is closed;
-- * `status`: an HTML error page with `status` (400-599, e.g. 500, 502 or 503; default 503),
--   and a `Retry-After` header when `retry_after` is given;
-- * `rate_limit`: 429 with `Retry-After: <retry_after>` (default 1) and an error body;
-- * `malformed_json`: the normal answer, cut in the middle, sent as `application/json`;
-- * `expire_token`: the bearer token of the request expires now, so the request (and every
--   later one with that token) gets 401.
-- * `drop_response`: the request is processed (a POST creates its record), then the
--   connection is closed before any answer: the client cannot tell whether its write landed.
--
-- Three more kinds hit a Talview action (`POST /actions/...`) rather than the answer to its
-- request, which goes out as usual: the fault goes with the action and acts when the action is
-- processed (`assesskit.sandbox.queue`):
--
-- * `slow_action`: each item of the action takes `delay` seconds (default 1), so it stays in
--   status 2 (processing) with its counts growing;
-- * `partial_failure`: the first `items` items (default 1) fail, counted in `error_count` and
--   described in `response`; the others are done;
-- * `callback_down`: the action's callback receiver counts as down (connection refused) for the
--   first `attempts` deliveries (default: all of them).
--
-- `times` (a whole number, default 1) is how many matching requests the fault hits; then it
-- is gone, so `{kind = "status", status = 503, times = 2}` is "two failures, then success".
-- `times = -1` never runs out. `method` and `path` narrow what matches: `path` is a prefix of the request
-- path, `path_pattern` a Lua pattern. Control requests (`/_sandbox/...`) never match.
--
-- The same faults can be asked per request with a header:
--
--    X-Sandbox-Fault: status; status=502; times=2; id=call-7
--
-- The first word is the kind, then `name=value` pairs. A header fault hits every request that
-- carries it, unless `times` is given: then only the first `times` requests carrying the same
-- header value (or the same `id`) fail, and later ones pass, so a client's retry of the very
-- same request sees "N failures then success".
-- @module assesskit.sandbox.faults

local type, ipairs, tonumber, tostring, pcall = type, ipairs, tonumber, tostring, pcall
local string_find, string_sub, string_match, string_gmatch, string_lower =
  string.find, string.sub, string.match, string.gmatch, string.lower
local table_remove = table.remove

local M = {}

--- Every fault kind.
M.kinds = {
  reset = true, slow = true, slow_body = true, truncate = true, status = true,
  rate_limit = true, malformed_json = true, expire_token = true, drop_response = true,
  slow_action = true, partial_failure = true, callback_down = true,
}

--- The kinds that go with an action instead of hitting its request.
M.action_kinds = { slow_action = true, partial_failure = true, callback_down = true }

local armed = {}        -- faults from the control endpoint, in arming order
local header_hits = {}  -- header value or id -> number of requests already failed
local next_id = 0

local function trim(s)
  return (string_match(s, "^%s*(.-)%s*$"))
end

--- Check a fault spec and fill defaults.
-- @tparam table spec
-- @treturn[1] table the normalised fault
-- @treturn[2] nil
-- @treturn[2] string what was wrong
function M.normalise(spec)
  if type(spec) ~= "table" then return nil, "a fault is a JSON object" end
  local kind = spec.kind
  if type(kind) ~= "string" or not M.kinds[kind] then
    return nil, "unknown fault kind: " .. tostring(kind)
  end
  local f = { kind = kind }
  -- `v ~= v` refuses NaN (LuaJIT's tonumber reads "nan"), which every range check lets by
  local function num(name, default, min, max, whole)
    local v = spec[name]
    if v == nil then f[name] = default; return true end
    v = tonumber(v)
    if not v or v ~= v or v < min or (max and v > max) or (whole and v ~= math.floor(v)) then
      return nil, string.format("fault %s must be a %s in [%s, %s]", name, whole and "whole number" or "number",
        min, max or "inf")
    end
    f[name] = v
    return true
  end
  local ok, err = num("times", 1, -1, nil, true)
  if not ok then return nil, err end
  if f.times == 0 then return nil, "fault times must not be 0" end
  ok, err = num("delay", 1, 0, 600)
  if not ok then return nil, err end
  ok, err = num("status", kind == "rate_limit" and 429 or 503, 400, 599, true)
  if not ok then return nil, err end
  ok, err = num("retry_after", kind == "rate_limit" and 1 or nil, 0, 86400, true)
  if not ok then return nil, err end
  ok, err = num("items", kind == "partial_failure" and 1 or nil, 1, nil, true)
  if not ok then return nil, err end
  ok, err = num("attempts", nil, 1, nil, true)
  if not ok then return nil, err end
  if spec.method ~= nil then
    if type(spec.method) ~= "string" then return nil, "fault method must be a string" end
    f.method = spec.method:upper()
  end
  for _, name in ipairs({ "path", "path_pattern" }) do
    if spec[name] ~= nil then
      if type(spec[name]) ~= "string" then return nil, "fault " .. name .. " must be a string" end
      f[name] = spec[name]
    end
  end
  if f.path_pattern and not pcall(string_find, "", f.path_pattern) then
    return nil, "fault path_pattern is not a valid Lua pattern"
  end
  return f
end

--- Arm a fault (control endpoint).
-- @tparam table spec see the module description
-- @treturn[1] table the armed fault, with its `id`
-- @treturn[2] nil
-- @treturn[2] string what was wrong
function M.arm(spec)
  local f, err = M.normalise(spec)
  if not f then return nil, err end
  next_id = next_id + 1
  f.id = next_id
  armed[#armed + 1] = f
  return f
end

--- The faults still armed.
-- @treturn table array
function M.list()
  local out = {}
  for i, f in ipairs(armed) do out[i] = f end
  return out
end

--- Disarm every fault and forget header counters.
function M.clear()
  armed = {}
  header_hits = {}
end

local function matches(f, req)
  if f.method and f.method ~= req.method then return false end
  if f.path and string_sub(req.path, 1, #f.path) ~= f.path then return false end
  if f.path_pattern and not string_find(req.path, f.path_pattern) then return false end
  return true
end

--- Parse an `X-Sandbox-Fault` header value.
-- @tparam string value
-- @treturn[1] table the fault
-- @treturn[2] nil
-- @treturn[2] string what was wrong
function M.parse_header(value)
  if type(value) ~= "string" then return nil, "empty fault header" end
  local spec, first = {}, true
  for part in string_gmatch(value, "[^;]+") do
    part = trim(part)
    if first then
      spec.kind = string_lower(part)
      first = false
    elseif part ~= "" then
      local k, v = string_match(part, "^([%w_]+)%s*=%s*(.-)$")
      if not k then return nil, "bad fault header part: " .. part end
      spec[string_lower(k)] = v
    end
  end
  local times = spec.times
  local id = spec.id
  spec.id = nil
  local f, err = M.normalise(spec)
  if not f then return nil, err end
  f.header_key = id or value
  f.times = times and f.times or -1
  return f
end

-- The header's fault when it applies (consuming one use of it), nil otherwise; `nil, err` for
-- a bad header.
local function header_fault(req, want_action)
  local hv = req.headers["x-sandbox-fault"]
  if type(hv) == "table" then hv = hv[1] end
  if not hv then return nil end
  local f, err = M.parse_header(hv)
  if not f then return nil, err end
  if (M.action_kinds[f.kind] == true) ~= want_action then return nil end
  if f.times < 0 then return f end
  local used = header_hits[f.header_key] or 0
  if used >= f.times then return nil end -- budget spent: armed faults may still apply
  header_hits[f.header_key] = used + 1
  return f
end

-- The first armed fault of a request's kinds matching it, consuming one use of it.
local function armed_fault(req)
  for i, f in ipairs(armed) do
    if not M.action_kinds[f.kind] and matches(f, req) then
      if f.times > 0 then
        f.times = f.times - 1
        if f.times == 0 then table_remove(armed, i) end
      end
      return f
    end
  end
  return nil
end

--- Find the fault that applies to a request, consuming one use of it. The action kinds are
-- left for `take_action`.
-- @tparam table req the request (its `X-Sandbox-Fault` header is looked at first)
-- @treturn[1] ?table the fault, or nil when none applies
-- @treturn[2] nil
-- @treturn[2] string a bad `X-Sandbox-Fault` header
function M.take(req)
  local f, err = header_fault(req, false)
  if f or err then return f, err end
  return armed_fault(req)
end

--- The action faults that go with an action request (`POST /actions/...`), consuming one use
-- of each: at most one of each kind, the header's first. (A bad header was refused by `take`.)
-- @tparam table req
-- @treturn table kind -> fault (empty when none applies)
function M.take_action(req)
  local out = {}
  local f = header_fault(req, true)
  if f then out[f.kind] = f end
  local i = 1
  while i <= #armed do
    local g = armed[i]
    if M.action_kinds[g.kind] and not out[g.kind] and matches(g, req) then
      out[g.kind] = g
      if g.times > 0 then g.times = g.times - 1 end
      if g.times == 0 then table_remove(armed, i) else i = i + 1 end
    else
      i = i + 1
    end
  end
  return out
end

return M
