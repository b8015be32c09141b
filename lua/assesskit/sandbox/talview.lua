--- Talview v4 emulation: every endpoint of `assesskit.talview.catalogue` is routed, checked
-- and served here.
--
-- Order of checks (Yii2's): unknown path 404 (`Page not found.`), known path with another
-- method 405 (with `Allow`), `Accept` without JSON or a body in an unsupported media type 415,
-- no or bad Bearer token 401, a `roles`-restricted endpoint and a user without the role 403,
-- an unreadable JSON body 400, a required parameter missing 422 (a list of `{field,
-- message}`), then the handler (404 `Object not found: <id>` for an unknown id). Errors are
-- `{name, message, code, status}`; `suppress_error_code=true` or `suppress_response_code=true`
-- turns any answer into `200 {"success": ..., "data": ...}`.
--
-- Handlers: `actions.*` (`assesskit.sandbox.actions`), a few endpoints with their own
-- behaviour (`special` below), REST endpoints over the store (`assesskit.sandbox.resources`),
-- and everything else answers the seed's sample for that endpoint.
-- @module assesskit.sandbox.talview

local ngx = ngx -- luacheck: read globals ngx
local json = require("assesskit.sandbox.json")
local http = require("assesskit.sandbox.http")
local auth = require("assesskit.sandbox.auth")
local router = require("assesskit.sandbox.router")
local resources = require("assesskit.sandbox.resources")
local actions = require("assesskit.sandbox.actions")
local store = require("assesskit.sandbox.store")
local catalogue = require("assesskit.talview.catalogue")

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local string_find, string_lower, string_match, string_gmatch, string_sub =
  string.find, string.lower, string.match, string.gmatch, string.sub

local M = {}

local routes = router.new(catalogue.endpoints)

local body_methods = { POST = true, PUT = true, PATCH = true }

--- Media types a request body may have.
M.body_types = {
  ["application/json"] = true,
  ["application/x-www-form-urlencoded"] = true,
  ["multipart/form-data"] = true,
}

local function accepts_json(accept)
  for item in string_gmatch(accept, "[^,]+") do
    local media = string_lower(string_match(item, "^%s*([^;%s]+)") or "")
    local q = tonumber(string_match(item, ";%s*q=([%d%.]+)") or "1")
    if q and q > 0 and (media == "*/*" or media == "application/*" or media == "application/json"
      or string_find(media, "+json", 1, true)) then
      return true
    end
  end
  return false
end

local function parse_body(req)
  local raw = req.body
  if not raw or raw == "" then return json.object({}) end
  local media = req.content_type
  if media == "application/json" then
    if not json.valid_utf8(raw) then
      return nil, 400, "Invalid JSON data in request body: Malformed UTF-8 characters, possibly incorrectly encoded."
    end
    local v, err = json.decode(raw)
    if v == nil then return nil, 400, "Invalid JSON data in request body: " .. err .. "." end
    if type(v) ~= "table" or v == json.null or json.is_array(v) then
      return nil, 400, "Invalid JSON data in request body: a JSON object is expected."
    end
    return v
  elseif media == "application/x-www-form-urlencoded" then
    return http.parse_query(raw)
  elseif media == "multipart/form-data" then
    local mp, err = http.parse_multipart(raw, http.multipart_boundary(req.content_type_params))
    if not mp then return nil, 400, "Invalid multipart body: " .. err .. "." end
    local out = {}
    for k, v in pairs(mp.fields) do out[k] = v end
    for k, f in pairs(mp.files) do out[k] = f end
    return out
  end
  return nil, 415, "Unsupported Content-Type: " .. tostring(media) .. "."
end

local function base64_ok(s)
  if type(s) ~= "string" or s == "" then return false end
  local data = string.gsub(s, "^data:[^,]*,", "")
  data = string.gsub(data, "%s", "")
  if string_find(data, "[^%w%+/=%-_]") then return false end
  return true
end

-- Endpoints with behaviour of their own ------------------------------------------------------

local special = {}

local function find_user(principal)
  return store.get("user", principal.id)
end

local common_passwords = { password = true, ["123456"] = true, ["12345678"] = true, qwerty = true,
  letmein = true, welcome = true, admin = true, iloveyou = true, ["password1"] = true }

--- A password's strength from 0 (weakest) to 4, zxcvbn-style: estimated bits from length and
-- character classes, common passwords and the user's own name or email score 0.
-- @tparam string p
-- @tparam[opt] table principal
-- @treturn number
function M.password_score(p, principal)
  if p == "" or common_passwords[string_lower(p)] then return 0 end
  if principal and principal.username and string_find(string_lower(principal.username), string_lower(p), 1, true) then
    return 0
  end
  local set = 0
  if string_find(p, "%l") then set = set + 26 end
  if string_find(p, "%u") then set = set + 26 end
  if string_find(p, "%d") then set = set + 10 end
  if string_find(p, "[^%w]") then set = set + 33 end
  local bits = #p * math.log(set) / math.log(2)
  if bits < 28 then return 0 elseif bits < 36 then return 1 elseif bits < 60 then return 2
  elseif bits < 80 then return 3 end
  return 4
end

special["user.me.update_password"] = function(req, _, _, principal, body)
  if principal.kind ~= "user" then return http.error(req, 403, "A service account has no password.") end
  local current = auth.password_of(principal.id)
  local errs = {}
  -- the seed's validation messages
  if body.current_password ~= current then
    errs[#errs + 1] = { field = "current_password", message = "Invalid current password" }
  end
  local new = body.new_password
  if type(new) ~= "string" or M.password_score(new, principal) < 2 then
    errs[#errs + 1] = { field = "new_password",
      message = "This is a weak password, Please set stronger password for your account" }
  elseif new == current then
    errs[#errs + 1] = { field = "new_password",
      message = "Your new password is same as the old password. Please use another password" }
  elseif new ~= body.new_password_repeat then
    errs[#errs + 1] = { field = "new_password", message = "new_password_repeat does not match new_password" }
  end
  if #errs > 0 then return http.validation_error(req, errs) end
  auth.set_password(principal.id, new)
  local u = find_user(principal)
  return http.json(req, 200, u and resources.present("user", u) or json.object({ success = true }))
end

special["user.me.password_strength"] = function(req, _, _, principal, body)
  local p = type(body.password) == "string" and body.password or ""
  return http.json(req, 200, json.object({ score = M.password_score(p, principal) }))
end

special["user.me.generate_otp_uri"] = function(req, _, _, principal)
  -- a fixed demo secret: the seed's shape, {"qr-code", "secret"}
  local secret = "I5BECQZTLBFE2USXKVETCRBWJE"
  return http.json(req, 200, json.object({
    ["qr-code"] = "otpauth://totp/Talview:" .. ngx.escape_uri(principal.username or "user")
      .. "?issuer=Talview&secret=" .. secret,
    secret = secret,
  }, { "qr-code", "secret" }))
end

-- a 1x1 PNG; the real service draws the text, the sandbox only promises an image
local png = ngx and ngx.decode_base64(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")

special["helpers.placeholder"] = function(req)
  return http.send(req, 200, png, { ["Content-Type"] = "image/png", ["Cache-Control"] = "max-age=86400" })
end


-- Fallback: the seed's sample for the endpoint --------------------------------------------------

local function sample_answer(req, ep, principal, body)
  if ep.response == "empty" then return http.send(req, 204, "") end
  local v = resources.sample(ep.name)
  if ep.response == "list" then
    if v == nil then v = json.array() end
    if not json.is_array(v) then v = json.array({ v }) end
    return resources.send_page(req, v)
  end
  if type(v) == "table" and json.is_array(v) then v = v[1] end
  if v == nil then v = json.object({}) end
  if type(v) == "table" and v ~= json.null and body_methods[req.method] then
    -- echo what was sent, as a create or an update would
    for k, x in pairs(body) do
      if type(k) == "string" and v[k] ~= nil and type(x) ~= "table" then v[k] = x end
    end
    if v.created_by ~= nil then v.created_by = principal.id end
  end
  return http.json(req, 200, v)
end

--- Serve a Talview request.
-- @tparam table req from `http.read_request`
function M.handle(req)
  local path = req.path
  if #path > 1 and string_sub(path, -1) == "/" then path = string_sub(path, 1, -2) end
  local ep, params = routes:match(req.method, path)
  if not ep then
    if params and req.method == "OPTIONS" then
      -- a CORS preflight (the seed: "We support cross-origin resource sharing")
      local origin = http.header(req, "origin")
      return http.send(req, 200, "", {
        Allow = params .. ", OPTIONS",
        ["Access-Control-Allow-Origin"] = origin or "*",
        ["Access-Control-Allow-Methods"] = params,
        ["Access-Control-Allow-Headers"] = http.header(req, "access-control-request-headers")
          or "Authorization, Content-Type",
        ["Access-Control-Max-Age"] = "86400",
        ["Vary"] = "Origin",
      })
    end
    if params then
      return http.error(req, 405, "Method Not Allowed. This URL can only handle the following request methods: "
        .. params .. ".", { Allow = params })
    end
    return http.error(req, 404, "Page not found.")
  end
  local accept = http.header(req, "accept")
  if accept and accept ~= "" and not accepts_json(accept) then
    return http.error(req, 415, "None of your requested content types is supported.")
  end
  local has_body = req.body ~= nil and req.body ~= ""
  if has_body and body_methods[req.method] and not M.body_types[req.content_type or ""] then
    return http.error(req, 415, "Unsupported Media Type: " .. tostring(req.content_type or "no Content-Type")
      .. ". Use application/json.")
  end
  local principal = auth.authenticate(req)
  if not principal then return end
  if not auth.has_role(principal, ep.roles) then
    return http.error(req, 403, "You are not allowed to perform this action.")
  end
  local body = json.object({})
  if body_methods[req.method] then
    local b, status, msg = parse_body(req)
    if not b then return http.error(req, status, msg) end
    body = b
  end
  local params_in = body_methods[req.method] and body or req.args
  local errs = resources.validate(ep, params_in)
  if ep.upload == "multipart" and ep.file_field and body_methods[req.method] then
    local f = body[ep.file_field]
    if type(f) ~= "table" or not f.filename then
      errs = errs or {}
      local seen = false
      for _, e in ipairs(errs) do if e.field == ep.file_field then seen = true end end
      if not seen then
        errs[#errs + 1] = { field = ep.file_field, message = "Please upload a file." }
      end
    end
  elseif ep.upload == "base64" and body_methods[req.method] then
    local field = ep.file_field or "data"
    if body[field] ~= nil and not base64_ok(body[field]) then
      errs = errs or {}
      errs[#errs + 1] = { field = field, message = resources.label(field) .. " is not valid base64." }
    end
  end
  if errs then return http.validation_error(req, errs) end

  if string_sub(ep.name, 1, 8) == "actions." then
    return actions.handle(req, ep, body, principal)
  end
  local sp = special[ep.name]
  if sp then return sp(req, ep, params, principal, body) end
  local res, action = resources.resource_of(ep)
  if res and resources.crud[action] and not (ep.upload and action == "create") then
    return resources.serve(req, ep, params, principal, body, res, action)
  end
  if ep.upload then
    -- an upload keeps a record of what was uploaded (file name, size; not the bytes)
    res = res or string.match(ep.name, "^([%w_]+)")
    local fields = {}
    for k, v in pairs(body) do
      if type(v) == "table" and v.filename then
        fields[k] = v.filename
        fields[k .. "_size"] = v.size
      elseif ep.upload == "base64" and k == (ep.file_field or "data") then
        fields.size = #v
      else
        fields[k] = v
      end
    end
    for k, v in pairs(resources.scope(ep, params, principal)) do fields[k] = v end
    if not resources.has_list(res) then
      -- a singleton (the display picture): the new one replaces the old
      for _, old in ipairs(store.list(res, function(r) return r.user_id == fields.user_id end)) do
        store.delete(res, old.id)
      end
    end
    local rec = resources.create_record(res, fields, principal)
    return http.json(req, 201, resources.present(res, rec))
  end
  return sample_answer(req, ep, principal, body)
end

return M
