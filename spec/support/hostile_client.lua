--- The API clients against a (hostile) server, reduced to what a user sees, as plain data (JSON
-- can carry it): used by spec/hostile_*_spec.lua both in the spec's own process (Lua 5.4, the
-- libcurl transport) and inside nginx (LuaJIT, the nginx transport), so that both run exactly
-- the same calls.
-- @module support.hostile_client
-- @usage
-- local hc = require("support.hostile_client")
-- local out = hc.run({ api = "talview", base = h:url(""), calls = { "get" },
--   opts = { max_retries = 0 } })
-- -- out.results[1].err.kind, out.results[1].err.status, out.sleeps, out.transport

-- luacheck: read globals ngx

local type, pairs, ipairs, tostring, pcall = type, pairs, ipairs, tostring, pcall

local M = {}

local ERROR_FIELDS = { "kind", "status", "name", "message", "code", "retryable", "retry_after",
  "sent", "method", "url" }

--- An error object as data: its fields (those above) and `text = tostring(err)`.
-- @tparam table err an assesskit.errors object
-- @treturn table
function M.describe(err)
  local d = { text = tostring(err) }
  for _, k in ipairs(ERROR_FIELDS) do
    local v = err[k]
    if type(v) == "string" or type(v) == "number" or type(v) == "boolean" then
      if v == math.huge or v ~= v then v = tostring(v) end
      d[k] = v
    end
  end
  return d
end

-- The calls a spec can ask for, per API: what a user of the client would write.
local CALLS = {
  talview = {
    get = function(c) return c.models.candidate:get(42) end,
    create = function(c) return c.models.candidate:create({ email = "ada@example.com", first_name = "Ada" }) end,
    authenticate = function(c) return c:authenticate() end,
    -- a write with a body of 8 MiB (a server may answer before it has read it all)
    upload = function(c)
      return c.models.candidate:create({ email = "ada@example.com", first_name = string.rep("u", 8 * 1024 * 1024) })
    end,
  },
  interviewmocha = {
    get = function(c) return c.reports:get(123) end,
  },
}

--- Build a client and make the calls.
-- @tparam table spec `api` (`"talview"` or `"interviewmocha"`), `base` (the server's URL: the
--   Talview `base_url`, or both InterviewMocha URLs), `auth` (Talview auth table; default a
--   static token `"T0KEN"`; InterviewMocha: the API key `"K3Y"`), `token_url`, `opts` (more
--   client options, e.g. `max_retries`, `max_response_size`, `timeout`), `calls` (names:
--   `get`, `create`, `authenticate`, `upload`)
-- @treturn table `{results = { {ok = true, value_type =} | {err = describe(err)} | {raised =} },
--   sleeps = {seconds...}, transport = "ngx"|"core"}`
function M.run(spec)
  local sleeps = {}
  local opts = {}
  for k, v in pairs(spec.opts or {}) do opts[k] = v end
  opts.sleep = function(s) sleeps[#sleeps + 1] = s end -- recorded, not slept
  local c
  if spec.api == "interviewmocha" then
    opts.api_key = "K3Y"
    opts.v2_url, opts.v3_url = spec.base, spec.base
    c = require("assesskit.interviewmocha").new(opts)
  else
    opts.base_url = spec.base
    opts.token_url = spec.token_url
    opts.auth = spec.auth or { access_token = "T0KEN" }
    c = require("assesskit.talview").new(opts)
  end
  local results = {}
  for i, name in ipairs(spec.calls or { "get" }) do
    local ok, value, err = pcall(CALLS[spec.api or "talview"][name], c)
    if not ok then
      results[i] = { raised = tostring(value) }
    elseif value == nil then
      results[i] = { err = M.describe(err) }
    else
      results[i] = { ok = true, value_type = type(value) }
    end
  end
  c:close()
  return { results = results, sleeps = sleeps, transport = (ngx and ngx.socket) and "ngx" or "core" }
end

return M
