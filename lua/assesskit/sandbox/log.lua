--- The request log: what each client request carried, so that specs can assert what went
-- over the wire. Read it at `GET /_sandbox/requests`, clear it with `DELETE`.
--
-- Secrets never reach the log: the `Authorization`, `Proxy-Authorization`, `Cookie` and
-- `x-api-key` headers are masked (`Bearer ***`, `***`), and so are secret-named fields
-- (`password`, `client_secret`, `refresh_token`, `assertion`, `access_token`, ...) in the query
-- string and in JSON or form bodies.
-- @module assesskit.sandbox.log

local ngx = ngx -- luacheck: read globals ngx
local json = require("assesskit.sandbox.json")
local http = require("assesskit.sandbox.http")

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local string_lower, string_match, string_gsub, string_sub, string_find =
  string.lower, string.match, string.gsub, string.sub, string.find
local table_remove, table_sort, getmetatable, setmetatable = table.remove, table.sort, getmetatable, setmetatable

local M = {}

--- The most entries kept (oldest dropped first).
M.capacity = 2000
--- The most body bytes kept per entry (`body_size` has the full length).
M.max_body = 16384

local entries = {}
local seq = 0

local secret_headers = {
  authorization = true, ["proxy-authorization"] = true, cookie = true,
  ["x-api-key"] = true, ["x-auth-token"] = true,
}

--- Field names whose values are masked wherever they appear.
M.secret_fields = {
  password = true, client_secret = true, refresh_token = true, assertion = true,
  access_token = true, ["access-token"] = true, new_password = true, old_password = true,
  current_password = true, confirm_password = true, api_key = true, ["x-api-key"] = true,
  token = true, private_key = true, secret = true, otp = true,
}

local MASK = "***"

local function mask_header(name, value)
  if not secret_headers[name] then return value end
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

local function collect_secrets(v, found, depth)
  if type(v) ~= "table" or depth > 20 then return end
  for k, x in pairs(v) do
    if type(k) == "string" and M.secret_fields[string_lower(k)] then
      if type(x) == "string" and x ~= "" then found[#found + 1] = x end
      if type(x) == "number" then found[#found + 1] = tostring(x) end
    end
    collect_secrets(x, found, depth + 1)
  end
end

local function plain_escape(s)
  return (string_gsub(s, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

local function replace_all(s, secret)
  if secret == "" then return s end
  return (string_gsub(s, plain_escape(secret), MASK))
end

-- Mask every secret value in a raw string, in its plain, JSON-escaped and URL-encoded forms.
local function mask_raw(raw, secrets)
  table_sort(secrets, function(a, b) return #a > #b end)
  for _, s in ipairs(secrets) do
    raw = replace_all(raw, s)
    local enc = ngx.escape_uri(s)
    if enc ~= s then raw = replace_all(raw, enc) end
    local plus = string_gsub(enc, "%%20", "+")
    if plus ~= enc then raw = replace_all(raw, plus) end
    local jenc = string_sub(json.encode(s), 2, -2)
    if jenc ~= s then raw = replace_all(raw, jenc) end
  end
  return raw
end

local function mask_table(v, depth)
  if type(v) ~= "table" or depth > 20 then return v end
  local out = {}
  for k, x in pairs(v) do
    if type(k) == "string" and M.secret_fields[string_lower(k)] and x ~= json.null then
      out[k] = MASK
    else
      out[k] = mask_table(x, depth + 1)
    end
  end
  local mt = getmetatable(v)
  if mt then setmetatable(out, mt) end
  return out
end

--- Mask secrets in a body, given its media type.
-- @tparam ?string body raw body
-- @tparam ?string media lower-case media type
-- @treturn ?string the masked body
function M.mask_body(body, media)
  if not body or body == "" then return body end
  local secrets = {}
  if media == "application/json" or (media and string_find(media, "+json", 1, true)) then
    local v = json.decode(body)
    collect_secrets(v, secrets, 0)
  elseif media == "application/x-www-form-urlencoded" then
    collect_secrets(http.parse_query(body), secrets, 0)
  else
    -- unknown bodies: still mask name=value pairs that look like form fields
    collect_secrets(http.parse_query(body), secrets, 0)
  end
  if #secrets == 0 then return body end
  return mask_raw(body, secrets)
end

--- Record a request; returns the entry so that later stages can add to it (`status`, `fault`,
-- `auth`).
-- @tparam table req from `http.read_request`
-- @treturn table the entry
function M.record(req)
  seq = seq + 1
  local headers = {}
  for k, v in pairs(req.headers) do headers[k] = mask_header(k, v) end
  local qsecrets = {}
  collect_secrets(req.args, qsecrets, 0)
  local query = #qsecrets > 0 and mask_raw(req.query, qsecrets) or req.query
  local body = M.mask_body(req.body, req.content_type)
  local size = req.body and #req.body or 0
  if body and #body > M.max_body then body = string_sub(body, 1, M.max_body) end
  local entry = {
    seq = seq,
    time = req.time,
    method = req.method,
    path = req.path,
    query = query,
    args = mask_table(req.args, 0),
    headers = headers,
    content_type = req.content_type,
    body = body,
    body_size = size,
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
