--- The sandbox's control endpoints, under `/_sandbox/`. They need no credentials (the sandbox
-- listens on 127.0.0.1 only), are never logged and never hit by faults.
--
--    GET    /_sandbox/health            {"ok": true, "base_url": ..., "pid": ...}
--    GET    /_sandbox/credentials       the demo credentials (as credentials.json)
--    GET    /_sandbox/requests          the request log, oldest first; ?since=<seq> for newer ones
--    DELETE /_sandbox/requests          clear the request log
--    POST   /_sandbox/faults            arm a fault (a JSON object, or an array of them);
--                                       201 with the armed faults and their ids
--    GET    /_sandbox/faults            the faults still armed
--    DELETE /_sandbox/faults            disarm every fault
--    GET    /_sandbox/config            the run-time settings (token_ttl, refresh_ttl, ...)
--    PUT    /_sandbox/config            change some (a JSON object name -> number; PATCH too)
--    POST   /_sandbox/reset             state back to the seed, pending actions and callbacks
--                                       dropped, faults disarmed, settings back to their start
--                                       values; ?all=1 also forgets tokens and clears the
--                                       request log
--    POST   /_sandbox/actions/run       process every pending Talview action now, and make each
--                                       callback attempt waiting for its retry
--    POST   /_sandbox/tokens/expire     every access token issued so far expires now
--    DELETE /_sandbox/tokens            forget every access and refresh token
--    GET    /_sandbox/state/<resource>  the stored records of a resource (e.g. candidate)
--    GET    /_sandbox/state/<resource>/<id>
--
-- Errors are `{"error": "..."}` with 400, 404 or 405.
-- @module assesskit.sandbox.control

local ngx = ngx -- luacheck: read globals ngx
local json = require("assesskit.sandbox.json")
local http = require("assesskit.sandbox.http")
local log = require("assesskit.sandbox.log")
local faults = require("assesskit.sandbox.faults")
local config = require("assesskit.sandbox.config")
local credentials = require("assesskit.sandbox.credentials")
local seed = require("assesskit.sandbox.seed")
local queue = require("assesskit.sandbox.queue")

local ipairs, tonumber, require = ipairs, tonumber, require
local string_match = string.match

local M = {}

local function reply(req, status, value, headers)
  req.suppress_ok = false
  return http.send(req, status, value ~= nil and json.encode(value) or "", headers)
end

local function fail(req, status, message, headers)
  return reply(req, status, { error = message }, headers)
end

local function body_json(req)
  if not req.body or req.body == "" then return nil, "a JSON body is required" end
  local v, err = json.decode(req.body)
  if v == nil then return nil, "invalid JSON: " .. err end
  return v
end

local function method_not_allowed(req, allow)
  return fail(req, 405, "method not allowed", { Allow = allow })
end

local routes = {}

routes["/_sandbox/health"] = function(req)
  if req.method ~= "GET" then return method_not_allowed(req, "GET") end
  if seed.failure then return reply(req, 500, { ok = false, error = "seeding failed: " .. seed.failure }) end
  return reply(req, 200, { ok = true, base_url = config.static.base_url, pid = ngx.worker.pid() })
end

routes["/_sandbox/credentials"] = function(req)
  if req.method ~= "GET" then return method_not_allowed(req, "GET") end
  return reply(req, 200, credentials.document(config.static))
end

routes["/_sandbox/requests"] = function(req)
  if req.method == "GET" then
    local since = tonumber(req.args.since)
    local all = log.entries()
    if not since then return reply(req, 200, all) end
    local out = json.array()
    for _, e in ipairs(all) do
      if e.seq > since then out[#out + 1] = e end
    end
    return reply(req, 200, out)
  elseif req.method == "DELETE" then
    log.clear()
    return reply(req, 204)
  end
  return method_not_allowed(req, "GET, DELETE")
end

routes["/_sandbox/faults"] = function(req)
  if req.method == "GET" then
    return reply(req, 200, json.array(faults.list()))
  elseif req.method == "DELETE" then
    faults.clear()
    return reply(req, 204)
  elseif req.method == "POST" then
    local v, err = body_json(req)
    if v == nil then return fail(req, 400, err) end
    local specs = json.is_array(v) and v or { v }
    for _, spec in ipairs(specs) do
      local ok, nerr = faults.normalise(spec)
      if not ok then return fail(req, 400, nerr) end
    end
    local out = json.array()
    for _, spec in ipairs(specs) do out[#out + 1] = faults.arm(spec) end
    return reply(req, 201, out)
  end
  return method_not_allowed(req, "GET, POST, DELETE")
end

routes["/_sandbox/config"] = function(req)
  if req.method == "GET" then
    return reply(req, 200, config.settings)
  elseif req.method == "PUT" or req.method == "PATCH" then
    local v, err = body_json(req)
    if v == nil then return fail(req, 400, err) end
    local settings, serr = config.set(v)
    if not settings then return fail(req, 400, serr) end
    return reply(req, 200, settings)
  end
  return method_not_allowed(req, "GET, PUT, PATCH")
end

routes["/_sandbox/reset"] = function(req)
  if req.method ~= "POST" then return method_not_allowed(req, "POST") end
  queue.clear()
  local ok, err = seed.reset_safely()
  if not ok then return fail(req, 500, "seeding failed: " .. err) end
  faults.clear()
  config.reset()
  local all = req.args.all
  if all and all ~= "0" and all ~= "false" then
    require("assesskit.sandbox.auth").reset_tokens()
    log.clear()
  end
  return reply(req, 200, { ok = true })
end

routes["/_sandbox/actions/run"] = function(req)
  if req.method ~= "POST" then return method_not_allowed(req, "POST") end
  return reply(req, 200, queue.run())
end

routes["/_sandbox/tokens/expire"] = function(req)
  if req.method ~= "POST" then return method_not_allowed(req, "POST") end
  return reply(req, 200, { expired = require("assesskit.sandbox.auth").expire_all() })
end

routes["/_sandbox/tokens"] = function(req)
  if req.method ~= "DELETE" then return method_not_allowed(req, "DELETE") end
  require("assesskit.sandbox.auth").reset_tokens()
  return reply(req, 204)
end

local function state(req)
  if req.method ~= "GET" then return method_not_allowed(req, "GET") end
  local store = require("assesskit.sandbox.store")
  local resource, id = string_match(req.path, "^/_sandbox/state/([%w_%-]+)/?([^/]*)$")
  if not resource then return fail(req, 404, "no such control endpoint") end
  resource = resource:gsub("%-", "_")
  if not store.has(resource) then return fail(req, 404, "no such resource: " .. resource) end
  if id ~= "" then
    local rec = store.get(resource, tonumber(id) or id)
    if not rec then return fail(req, 404, "no such record") end
    return reply(req, 200, rec)
  end
  return reply(req, 200, store.list(resource))
end

--- Serve a control request.
-- @tparam table req from `http.read_request`
function M.handle(req)
  local path = req.path
  if #path > 10 and path:sub(-1) == "/" then path = path:sub(1, -2) end
  local route = routes[path]
  if route then return route(req) end
  if string_match(path, "^/_sandbox/state/") then return state(req) end
  return fail(req, 404, "no such control endpoint")
end

return M
