--- The one error object of assesskit.
--
-- Every run-time failure of an assesskit call is returned as `nil, err`, where `err` is an
-- error object built here. Its fields:
--
-- * `kind`: what went wrong, one of `http` (the server answered with an error status),
--   `network` (refused, reset, unresolvable, truncated), `timeout`, `tls` (certificate or
--   handshake), `auth` (credentials rejected, token request failed, 401), `validation` (a
--   parameter was missing or invalid, nothing was sent), `decode` (the body is not the JSON
--   it claims to be), `too_large` (response over the size limit), `insecure` (plain HTTP to
--   a non-loopback host), `io` (a local file cannot be read or written), `aborted` (a
--   progress callback raised), `ambiguous` (a bulk job's item may or may not have been
--   done: it was started in an earlier run without a recorded outcome, or its write was
--   lost after it may have reached the server; `key` names the item; see
--   `assesskit.journal`).
-- * `status`: the HTTP status (number) when there was a response.
-- * `name`, `message`, `code`: the server's error name, message and code when it sent them;
--   otherwise a reason phrase and a message of our own.
-- * `fields`: for a 422 (and for `validation`), an array of `{field =, message =}`.
-- * `retryable`: true when sending the same request again later may succeed.
-- * `retry_after`: seconds the server asked us to wait (`Retry-After`), if any.
-- * `method`, `url`: the request (secret query values masked).
-- * `request_id`: the server's request id header, when it sent one.
-- * `sent`: whether the request can have reached the server. `false` when nothing of it can
--   have (a validation error, a refused plain-HTTP URL, a refused connection, a DNS or TLS
--   handshake failure), `true` when it may have (a failure after some of it was written, or
--   any answer from the server; with retries, true when any attempt may have reached it),
--   `nil` when the transport did not say. A write that failed with `sent ~= false` may have
--   been applied: check before sending it again.
--
-- `tostring(err)` is one readable line. An error never carries a token, secret, password or
-- key: URLs are masked and known secret values are redacted from every text field.
--
-- @module assesskit.errors
-- @usage
-- local cand, err = tv.models.candidate:get(42)
-- if not cand then
--   if err.kind == "http" and err.status == 404 then ... end
--   print(tostring(err))   --> http 404 Not Found: Candidate not found (GET https://...)
-- end
local type, tostring, pairs, ipairs, setmetatable, getmetatable, error, tonumber =
  type, tostring, pairs, ipairs, setmetatable, getmetatable, error, tonumber
local string_find, string_sub, string_lower, string_gsub, string_format, string_char =
  string.find, string.sub, string.lower, string.gsub, string.format, string.char
local table_concat = table.concat

local M = {}

--- The error kinds, as a set (`M.KINDS.http == true`).
M.KINDS = {
  http = true, network = true, timeout = true, tls = true, auth = true, validation = true,
  decode = true, too_large = true, insecure = true, io = true, aborted = true,
  ambiguous = true,
}

--- Reason phrases for the statuses the APIs use.
M.REASONS = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [406] = "Not Acceptable", [408] = "Request Timeout",
  [409] = "Conflict", [410] = "Gone", [413] = "Payload Too Large",
  [415] = "Unsupported Media Type", [422] = "Data Validation Failed",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

-- Names (of headers, query parameters, body and configuration fields) whose values are
-- secrets, after lower-casing, dropping a `[...]` suffix and reading `-` as `_`. Any name
-- containing password, passwd, secret, api_key or apikey is one too, and so is any name
-- ending in token (access_token, x-auth-token; not token_url or token_type).
local SECRET_NAME = {
  authorization = true, proxy_authorization = true, cookie = true, set_cookie = true,
  key = true, assertion = true, signature = true, sig = true, private_key = true,
  passphrase = true,
}
local SECRET_PART = { "password", "passwd", "secret", "api_key", "apikey" }

local MASK = "***"
local INTEGRAL = { "status", "code", "retry_after" }
local math_floor = math.floor

local Error = {}
Error.__index = Error

local function one_line(s)
  s = string_gsub(s, "[%c]+", " ")
  return s
end

--- Redact known secret values from a string: the one masking of secret values.
-- Every occurrence of every secret (strings of 4 bytes or more) is replaced by `***`. Every
-- place assesskit hands a text out through (errors, hook arguments, the command line's
-- output and log lines) masks with this function and the secrets of `Client:secrets()`.
-- @tparam string s the text
-- @tparam[opt] {string,...} secrets the secret values
-- @treturn string the text without them
function M.redact(s, secrets)
  if type(s) ~= "string" or not secrets then return s end
  for i = 1, #secrets do
    local secret = secrets[i]
    if type(secret) == "string" and #secret >= 4 then
      local out, init = nil, 1
      while true do
        local a, b = string_find(s, secret, init, true)
        if not a then break end
        out = out or {}
        out[#out + 1] = string_sub(s, init, a - 1)
        out[#out + 1] = MASK
        init = b + 1
      end
      if out then
        out[#out + 1] = string_sub(s, init)
        s = table_concat(out)
      end
    end
  end
  return s
end

-- A copy of a value with the secrets redacted from every string in it (keys too), at any
-- depth (a server's error body can nest them); a cycle is cut.
local function redact_deep(v, secrets, seen)
  if type(v) == "string" then return M.redact(v, secrets) end
  if type(v) ~= "table" or getmetatable(v) ~= nil then return v end
  seen = seen or {}
  if seen[v] then return nil end
  seen[v] = true
  local out = {}
  for k, x in pairs(v) do out[redact_deep(k, secrets, seen)] = redact_deep(x, secrets, seen) end
  seen[v] = nil
  return out
end

local function decode_pct(s)
  return (string_gsub(s, "%%(%x%x)", function(h) return string_char(tonumber(h, 16)) end))
end

--- Whether a name (of a header, a query parameter, a body or configuration field) holds a
-- secret: `Authorization`, `x-api-key`, `client_secret`, `refresh_token`, `new_password`,
-- `assertion`, `private_key`, ... The one rule every masking place of assesskit uses.
-- @tparam string name
-- @treturn boolean
function M.is_secret_name(name)
  if type(name) ~= "string" then return false end
  local n = string_gsub(string_gsub(string_lower(name), "%[.*$", ""), "-", "_")
  if SECRET_NAME[n] or string_sub(n, -5) == "token" then return true end
  for i = 1, #SECRET_PART do
    if string_find(n, SECRET_PART[i], 1, true) then return true end
  end
  return false
end

--- Mask the secrets of a URL: userinfo, and the values of query parameters such as
-- `access_token`, `password`, `client_secret`, `api_key`, `assertion`.
-- @tparam string url
-- @treturn string the masked URL
function M.mask_url(url)
  -- plain finds: this runs on every response, and most URLs have neither
  if type(url) ~= "string"
    or not (string_find(url, "?", 1, true) or string_find(url, "@", 1, true)) then
    return url
  end
  -- userinfo: scheme://user:pass@host
  url = string_gsub(url, "^(%a[%w+.-]*://)[^/@?#]*@", "%1" .. MASK .. "@")
  local q = string_find(url, "?", 1, true)
  if not q then return url end
  local head, query, frag = string_sub(url, 1, q), string_sub(url, q + 1), ""
  local h = string_find(query, "#", 1, true)
  if h then frag, query = string_sub(query, h), string_sub(query, 1, h - 1) end
  local masked = string_gsub(query, "([^&=]+)=([^&]*)", function(k, v)
    if v ~= "" and M.is_secret_name(decode_pct(k)) then return k .. "=" .. MASK end
  end)
  return head .. masked .. frag
end

--- Build an error object.
-- Unknown fields are kept; text fields are redacted with `secrets`.
-- @tparam table fields `kind` (required) and any of the fields listed above
-- @tparam[opt] {string,...} secrets values to redact from the text fields
-- @treturn table the error object
-- @raise if `kind` is not one of `KINDS`
function M.new(fields, secrets)
  if type(fields) ~= "table" then
    error("assesskit.errors.new: fields must be a table", 2)
  end
  if not M.KINDS[fields.kind] then
    error("assesskit.errors.new: unknown kind " .. tostring(fields.kind), 2)
  end
  local e = {}
  for k, v in pairs(fields) do e[k] = v end
  -- JSON numbers decode as floats on Lua 5.4: show 404, not 404.0
  for _, k in ipairs(INTEGRAL) do
    local v = e[k]
    if type(v) == "number" and v == math_floor(v) and v > -2^53 and v < 2^53 then
      e[k] = math_floor(v)
    end
  end
  if e.message == nil then
    e.message = e.status and (M.REASONS[e.status] or ("HTTP " .. e.status)) or e.kind
  end
  e.message = tostring(e.message)
  if e.name ~= nil then e.name = tostring(e.name) end
  if e.url ~= nil then e.url = M.mask_url(e.url) end
  -- every string field (code, request_id, ... and any other), and every string inside a
  -- table field (the fields' names and messages, a code the server sent as an object), without
  -- the secrets
  for k, v in pairs(e) do
    if k ~= "kind" then e[k] = redact_deep(v, secrets) end
  end
  if type(e.fields) == "table" then
    local list = {}
    for i, f in ipairs(e.fields) do list[i] = f end
    e.fields = list
  end
  if e.retryable == nil then e.retryable = false end
  return setmetatable(e, Error)
end

--- Mask secrets in header values: a copy of `headers` where a secret-named header's value is
-- `***` (`is_secret_name`) and every other value (or each value of a repeated header) has
-- the known secret values redacted.
-- @tparam table|nil headers name -> string, or name -> array of strings
-- @tparam[opt] {string,...} secrets values to redact
-- @treturn table|nil the masked copy
function M.mask_headers(headers, secrets)
  if not headers then return nil end
  local out = {}
  for k, v in pairs(headers) do
    if M.is_secret_name(k) then
      out[k] = MASK
    elseif type(v) == "table" then
      local list = {}
      for i, x in ipairs(v) do list[i] = M.redact(x, secrets) end
      out[k] = list
    else
      out[k] = M.redact(v, secrets)
    end
  end
  return out
end

--- Whether a value is an assesskit error object.
-- @param v any value
-- @treturn boolean
function M.is(v)
  return type(v) == "table" and getmetatable(v) == Error
end

--- The error's one-line description.
-- `kind [status] [name]: message [field: reason; ...] (METHOD url)` (the field list is left
-- out for `validation` errors, whose message names the field).
-- @treturn string
function Error:__tostring()
  local parts = { self.kind }
  if self.status then parts[#parts + 1] = " " .. tostring(self.status) end
  if self.name and self.name ~= "" then parts[#parts + 1] = " " .. self.name end
  parts[#parts + 1] = ": "
  parts[#parts + 1] = tostring(self.message)
  if self.kind ~= "validation" and type(self.fields) == "table" and #self.fields > 0 then
    -- Entries without a field name (InterviewMocha's {"errors": [...]}) are already in
    -- `message`; only named fields add information.
    local fs = {}
    for _, f in ipairs(self.fields) do
      if type(f) == "table" and f.field ~= nil then
        fs[#fs + 1] = tostring(f.field) .. ": " .. tostring(f.message)
      end
    end
    if #fs > 0 then parts[#parts + 1] = " [" .. table_concat(fs, "; ") .. "]" end
  end
  if self.retry_after then
    parts[#parts + 1] = string_format(" (retry after %gs)", self.retry_after)
  end
  if self.method or self.url then
    parts[#parts + 1] = " (" .. tostring(self.method or "?") .. " " .. tostring(self.url or "?") .. ")"
  end
  return one_line(table_concat(parts))
end

--- Serialisable copy of the error (plain table, no metatable), e.g. for JSON logs.
-- @treturn table
function Error:to_table()
  local t = {}
  for k, v in pairs(self) do t[k] = v end
  return t
end

return M
