--- The request log: what each client request carried, so that specs can assert what went
-- over the wire. Read it at `GET /_sandbox/requests`, clear it with `DELETE`.
--
-- Secrets never reach the log. A name is secret when it contains `password`, `secret` or
-- `token`, or is one of `assertion`, `otp`, `api_key`, `apikey`, `api-key`, `x-api-key`,
-- `private_key`, `passphrase` (any letter case). The `Authorization`, `Proxy-Authorization`
-- and `Cookie` headers and headers with a secret name are masked (`Bearer ***`, `***`); so
-- are the values of secret-named fields, and any other value equal to one of them, in the
-- query string and in form and multipart bodies (the rest kept byte for byte) and in JSON
-- bodies (written again, masked, when they hold a secret). A body that cannot be read field
-- by field (bad JSON, an unknown media type) is replaced by `***` whole when it names a
-- secret field. A string value that is an http(s) URL (a `callbackUrl`) has the secret-named
-- parameters of its query masked the same way.
--
-- Outgoing callbacks of Talview actions (`assesskit.sandbox.callbacks`) are logged too, one
-- entry per attempt, with `kind = "callback"` (`record_callback`).
-- @module assesskit.sandbox.log

local ngx = ngx -- luacheck: read globals ngx
local json = require("assesskit.sandbox.json")
local http = require("assesskit.sandbox.http")

local type, pairs, ipairs, next, tostring = type, pairs, ipairs, next, tostring
local string_lower, string_match, string_gmatch, string_sub, string_find =
  string.lower, string.match, string.gmatch, string.sub, string.find
local table_remove, getmetatable, setmetatable = table.remove, getmetatable, setmetatable

local M = {}

--- The most entries kept (oldest dropped first).
M.capacity = 2000
--- The most body bytes kept per entry (`body_size` has the full length).
M.max_body = 16384

local entries = {}
local seq = 0

local MASK = "***"

local secret_names = {
  assertion = true, otp = true, api_key = true, apikey = true, ["api-key"] = true,
  ["x-api-key"] = true, private_key = true, passphrase = true,
}
local credential_headers = { authorization = true, ["proxy-authorization"] = true, cookie = true }

--- Whether a field, parameter or header name is a secret's (see the module description).
-- @tparam string name
-- @treturn boolean
function M.secret_name(name)
  if type(name) ~= "string" then return false end
  local n = string_lower(name)
  return secret_names[n] == true or string_find(n, "password", 1, true) ~= nil
    or string_find(n, "secret", 1, true) ~= nil or string_find(n, "token", 1, true) ~= nil
end

local function mask_header(name, value)
  if not (credential_headers[name] or M.secret_name(name)) then return value end
  if type(value) == "table" then
    local out = json.array()
    for i, v in ipairs(value) do out[i] = mask_header(name, v) end
    return out
  end
  local scheme = string_match(value, "^(%a+)%s+%S")
  if (name == "authorization" or name == "proxy-authorization") and scheme then
    return scheme .. " " .. MASK
  end
  return MASK
end

-- The values of secret-named fields in a decoded value, as a set (numbers as text), for
-- masking the same value under another name; values under 4 bytes are left out, or an
-- `otp=1` would mask every 1 (their own fields are masked by name all the same).
local function collect_secrets(v, found)
  if type(v) ~= "table" then return found end
  for k, x in pairs(v) do
    if M.secret_name(k) and (type(x) == "string" or type(x) == "number") and #tostring(x) >= 4 then
      found[tostring(x)] = true
    end
    collect_secrets(x, found)
  end
  return found
end

local mask_form -- forward

-- A URL with the secret-named parameters of its query masked (other strings as they are).
local function mask_url(s)
  local base, query = string_match(s, "^([Hh][Tt][Tt][Pp][Ss]?://[^?#]*%?)([^#]*)")
  if not base then return s end
  return base .. mask_form(query, {}) .. string_sub(s, #base + #query + 1)
end
M.mask_url = mask_url

-- Whether a decoded value holds a URL whose query has a secret-named parameter.
local function has_secret_url(v, depth)
  if type(v) == "string" then return mask_url(v) ~= v end
  if type(v) ~= "table" or depth > 64 then return false end
  for _, x in pairs(v) do
    if has_secret_url(x, depth + 1) then return true end
  end
  return false
end

-- A copy of a decoded value with secret-named fields, and values equal to a secret, masked.
local function mask_table(v, secrets)
  if v == json.null then return v end
  if type(v) ~= "table" then
    if (type(v) == "string" or type(v) == "number") and secrets[tostring(v)] then return MASK end
    if type(v) == "string" then return mask_url(v) end
    return v
  end
  local out = {}
  for k, x in pairs(v) do
    if M.secret_name(k) and x ~= json.null then
      out[k] = MASK
    else
      out[k] = mask_table(x, secrets)
    end
  end
  local mt = getmetatable(v)
  if mt then setmetatable(out, mt) end
  return out
end

-- A query string or form body with the value of every secret-named field (a bracket part
-- counts: `user[password]`), or equal to a secret, masked; the rest kept byte for byte.
mask_form = function(raw, secrets)
  return (string.gsub(raw, "[^&]+", function(pair)
    local eq = string_find(pair, "=", 1, true)
    if not eq or eq == #pair then return nil end
    local secret = secrets[http.unescape(string_sub(pair, eq + 1))]
    for name in string_gmatch(http.unescape(string_sub(pair, 1, eq - 1)), "[^%[%]]+") do
      if M.secret_name(name) then secret = true end
    end
    if secret then return string_sub(pair, 1, eq) .. MASK end
  end))
end

-- A multipart body with the data of every part whose value is a secret masked.
local function mask_multipart(raw, boundary, secrets)
  local delim = "\r\n--" .. boundary
  for value in pairs(secrets) do
    local from, to = "\r\n\r\n" .. value .. delim, "\r\n\r\n" .. MASK .. delim
    local pos = string_find(raw, from, 1, true)
    while pos do
      raw = string_sub(raw, 1, pos - 1) .. to .. string_sub(raw, pos + #from)
      pos = string_find(raw, from, pos + #to, true)
    end
  end
  return raw
end

-- Whether a text names a secret field anywhere (for a body that cannot be parsed).
local function names_secret(text)
  local n = string_lower(text)
  if string_find(n, "password", 1, true) or string_find(n, "secret", 1, true)
    or string_find(n, "token", 1, true) then
    return true
  end
  for name in pairs(secret_names) do
    if string_find(n, name, 1, true) then return true end
  end
  return false
end

--- Mask secrets in a body, given its media type.
-- @tparam ?string body raw body
-- @tparam ?string media lower-case media type
-- @tparam[opt] string params the Content-Type's parameters (the multipart boundary)
-- @treturn ?string the masked body
function M.mask_body(body, media, params)
  if not body or body == "" then return body end
  if media == "application/json" or (media and string_find(media, "+json", 1, true)) then
    local v = json.decode(body)
    if v ~= nil then
      local secrets = collect_secrets(v, {})
      if next(secrets) == nil and not has_secret_url(v, 0) then return body end
      return json.encode(mask_table(v, secrets))
    end
  elseif media == "application/x-www-form-urlencoded" then
    return mask_form(body, collect_secrets(http.parse_query(body), {}))
  elseif media == "multipart/form-data" then
    local boundary = http.multipart_boundary(params)
    local mp = http.parse_multipart(body, boundary)
    if mp then
      local secrets = {}
      for name, value in pairs(mp.fields) do
        if M.secret_name(name) and value ~= "" then secrets[value] = true end
      end
      -- by value: a part's data is its bytes as sent, between its blank line and the delimiter
      return mask_multipart(body, boundary, secrets)
    end
  end
  if names_secret(body) then return MASK end
  return body
end

--- Record a request; returns the entry so that later stages can add to it (`status`, `fault`,
-- `auth`).
-- @tparam table req from `http.read_request`
-- @treturn table the entry
function M.record(req)
  seq = seq + 1
  local headers = {}
  for k, v in pairs(req.headers) do headers[k] = mask_header(k, v) end
  local qsecrets = collect_secrets(req.args, {})
  local body = M.mask_body(req.body, req.content_type, req.content_type_params)
  local size = req.body and #req.body or 0
  if body and #body > M.max_body then body = string_sub(body, 1, M.max_body) end
  local entry = {
    seq = seq,
    time = req.time,
    method = req.method,
    path = req.path,
    query = mask_form(req.query, qsecrets),
    args = mask_table(req.args, qsecrets),
    headers = headers,
    content_type = req.content_type,
    body = body,
    body_size = size,
  }
  entries[#entries + 1] = entry
  while #entries > M.capacity do table_remove(entries, 1) end
  return entry
end

--- Record one attempt of an action's callback (an outgoing request).
-- @tparam table a `url`, `body` (JSON text sent), `headers` (sent, lower-case names),
--   `action_id`, `action_status`, `attempt` (1 for the first), `status` (the receiver's, nil
--   when it did not answer), `error` (what went wrong, or nil), `fault` (`callback_down`)
-- @treturn table the entry: `seq`, `time`, `kind` ("callback"), `method` ("POST"), `url`,
--   `path` and `query` (secrets masked), `headers`, `content_type`, `body` (masked),
--   `body_size` and the fields above
function M.record_callback(a)
  seq = seq + 1
  local url = mask_url(a.url)
  local path = string_match(url, "^%a+://[^/?#]*([^?#]*)") or ""
  local body = M.mask_body(a.body, "application/json")
  if body and #body > M.max_body then body = string_sub(body, 1, M.max_body) end
  local entry = {
    seq = seq,
    time = ngx and ngx.now() or os.time(),
    kind = "callback",
    method = "POST",
    url = url,
    path = path == "" and "/" or path,
    query = string_match(url, "%?([^#]*)") or "",
    headers = a.headers or {},
    content_type = "application/json",
    body = body,
    body_size = a.body and #a.body or 0,
    action_id = a.action_id,
    action_status = a.action_status,
    attempt = a.attempt,
    status = a.status,
    error = a.error,
    fault = a.fault,
  }
  entries[#entries + 1] = entry
  while #entries > M.capacity do table_remove(entries, 1) end
  return entry
end

--- All entries, oldest first.
-- @treturn table array of entries
function M.entries()
  local out = json.array()
  for i, e in ipairs(entries) do out[i] = e end
  return out
end

--- Forget every entry (the sequence number keeps counting).
function M.clear()
  entries = {}
end

return M
