--- Request parsing and response writing for the sandbox (inside nginx).
--
-- A request is read once into a plain table (`read_request`), which every other module uses;
-- every answer goes out through `send`, which is where output faults (truncated body,
-- malformed JSON, slow body, dropped answer) and the request log's response fields are applied.
-- @module assesskit.sandbox.http

local ngx = ngx -- luacheck: read globals ngx
local json = require("assesskit.sandbox.json")

local type, pairs, ipairs, tostring, tonumber, next = type, pairs, ipairs, tostring, tonumber, next
local string_find, string_sub, string_lower, string_match, string_gsub, string_gmatch =
  string.find, string.sub, string.lower, string.match, string.gsub, string.gmatch
local table_sort, table_concat = table.sort, table.concat

local M = {}

--- Reason phrases used as the `name` of Talview errors (Yii2's names).
M.status_names = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [409] = "Conflict", [413] = "Payload Too Large",
  [415] = "Unsupported Media Type", [422] = "Data Validation Failed",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

--- Decode one name or value of a query string or form body (`+` is a space).
-- @function unescape
-- @tparam string s
-- @treturn string
local function unescape(s)
  s = string_gsub(s, "+", " ")
  return ngx.unescape_uri(s)
end
M.unescape = unescape

-- Turn tables whose keys are all integers (from name[0]=..) into sorted arrays.
local function arrayify(t)
  if type(t) ~= "table" then return t end
  local all_num, keys = true, {}
  for k, v in pairs(t) do
    t[k] = arrayify(v)
    keys[#keys + 1] = k
    if not (type(k) == "number" or string_find(k, "^%d+$")) then all_num = false end
  end
  if not all_num or #keys == 0 then return t end
  table_sort(keys, function(a, b) return tonumber(a) < tonumber(b) end)
  local arr = json.array()
  for i, k in ipairs(keys) do arr[i] = t[k] end
  return arr
end

-- PHP's max_input_nesting_level: a deeper variable is left out.
local MAX_NESTING = 64

--- Parse a query string or form body the PHP way: `ids[0]=1&ids[1]=2` and `ids[]=1&ids[]=2`
-- give `{ ids = {"1", "2"} }`, `a[b]=c` gives `{ a = { b = "c" } }`, a repeated plain name keeps
-- the last value, a name nested 64 levels or more is left out (PHP's default limit).
-- @tparam string qs the query string (no leading `?`)
-- @treturn table name -> string or table
function M.parse_query(qs)
  local out = {}
  if type(qs) ~= "string" or qs == "" then return out end
  -- table -> the index `[]` appends at (PHP: one past the largest integer key), kept as keys
  -- are set: finding it by scanning the table at every `[]` made a long form quadratic
  local next_index = {}
  for pair in string_gmatch(qs, "[^&]+") do
    local eq = string_find(pair, "=", 1, true)
    local k = unescape(eq and string_sub(pair, 1, eq - 1) or pair)
    local v = eq and unescape(string_sub(pair, eq + 1)) or ""
    local base = string_match(k, "^([^%[]+)")
    if base then
      local rest = string_sub(k, #base + 1)
      if rest == "" then
        out[base] = v
      else
        local parts = {}
        for p in string_gmatch(rest, "%[([^%]]*)%]") do parts[#parts + 1] = p end
        if #parts == 0 then
          out[k] = v
        elseif #parts < MAX_NESTING then -- deeper: dropped, as PHP does
          if type(out[base]) ~= "table" then out[base] = {} end
          local t = out[base]
          for i, p in ipairs(parts) do
            local n = next_index[t] or 0
            if p == "" then p = tostring(n) end
            local num = tonumber(p)
            if num and num >= n then next_index[t] = num + 1 end
            if i == #parts then
              t[p] = v
            else
              if type(t[p]) ~= "table" then t[p] = {} end
              t = t[p]
            end
          end
        end
      end
    end
  end
  for k, v in pairs(out) do out[k] = arrayify(v) end
  return out
end

--- The boundary of a multipart body, from its Content-Type's parameters.
-- @tparam ?string params what follows the media type (`; boundary="x"`)
-- @treturn ?string
function M.multipart_boundary(params)
  return string_match(params or "", 'boundary="?([^";]+)"?')
end

--- Parse a multipart/form-data body into fields and files.
-- @tparam string body the raw body
-- @tparam string boundary the boundary from the Content-Type
-- @treturn[1] table `{ fields = {name = value}, files = {name = {filename=, content_type=, size=}} }`
-- @treturn[2] nil
-- @treturn[2] string what was wrong
function M.parse_multipart(body, boundary)
  if not boundary or boundary == "" then return nil, "multipart body without a boundary" end
  local delim = "--" .. boundary
  local out = { fields = {}, files = {} }
  local pos = string_find(body, delim, 1, true)
  if not pos then return nil, "multipart boundary not found" end
  pos = pos + #delim
  local count = 0
  while true do
    if string_sub(body, pos, pos + 1) == "--" then break end
    local hstart = string_find(body, "\r\n", pos, true)
    if not hstart then return nil, "truncated multipart body" end
    local hend = string_find(body, "\r\n\r\n", hstart, true)
    if not hend then return nil, "truncated multipart part headers" end
    local head = string_sub(body, hstart + 2, hend - 1)
    local next_delim = string_find(body, "\r\n" .. delim, hend + 4, true)
    if not next_delim then return nil, "unterminated multipart part" end
    local data = string_sub(body, hend + 4, next_delim - 1)
    local disp = string_match(head, "[Cc]ontent%-[Dd]isposition:%s*([^\r\n]+)") or ""
    local name = string_match(disp, 'name="([^"]*)"')
    local filename = string_match(disp, 'filename="([^"]*)"')
    local ctype = string_match(head, "[Cc]ontent%-[Tt]ype:%s*([^\r\n]+)")
    if name then
      if filename then
        out.files[name] = { filename = filename, content_type = ctype, size = #data }
      else
        out.fields[name] = data
      end
    end
    count = count + 1
    if count > 1000 then return nil, "too many multipart parts" end
    pos = next_delim + 2 + #delim
  end
  return out
end

local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local file = ngx.req.get_body_file()
  if not file then return nil end
  local f = io.open(file, "rb")
  if not f then return nil end
  body = f:read("*a")
  f:close()
  return body
end

--- Read the current nginx request into a table.
-- @treturn table `method`, `path`, `query` (raw string), `args` (parsed), `headers`
--   (lower-case names), `body` (string or nil), `content_type` (media type, lower case),
--   `content_type_params`, `time`
function M.read_request()
  local headers = ngx.req.get_headers(200)
  local plain = {}
  for k, v in pairs(headers) do plain[string_lower(k)] = v end
  local ctype = plain["content-type"]
  if type(ctype) == "table" then ctype = ctype[1] end
  local media, params
  if ctype then
    media = string_lower(string_match(ctype, "^%s*([^;%s]+)") or "")
    params = string_sub(ctype, #(string_match(ctype, "^%s*[^;]*") or "") + 1)
  end
  local query = ngx.var.args or ""
  return {
    method = ngx.req.get_method(),
    path = ngx.var.uri,
    query = query,
    args = M.parse_query(query),
    headers = plain,
    body = read_body(),
    content_type = media,
    content_type_params = params or "",
    time = ngx.now(),
    scheme = ngx.var.scheme,
    host = ngx.var.http_host,
  }
end

--- First value of a request header (lower-case name).
-- @tparam table req the request
-- @tparam string name lower-case header name
-- @treturn ?string
function M.header(req, name)
  local v = req.headers[name]
  if type(v) == "table" then return v[1] end
  return v
end

local function truthy(v)
  if v == nil then return false end
  if type(v) == "table" then return next(v) ~= nil end
  v = string_lower(tostring(v))
  return v ~= "" and v ~= "0" and v ~= "false"
end

--- Whether the request asks for error suppression (`suppress_error_code` or
-- `suppress_response_code`, PHP truthiness).
-- @tparam table req
-- @treturn boolean
function M.suppressed(req)
  return truthy(req.args.suppress_error_code) or truthy(req.args.suppress_response_code)
end

--- Send a response and end the request. Output faults armed on the request
-- (`req.output_fault`) are applied here.
-- @tparam table req the request
-- @tparam number status HTTP status
-- @tparam ?string body the body
-- @tparam ?table headers name -> value
function M.send(req, status, body, headers)
  body = body or ""
  local fault = req.output_fault
  if fault and fault.kind == "malformed_json" then
    -- cut a JSON body in the middle of a value so no parser accepts it
    local cut = body ~= "" and string_sub(body, 1, math.max(1, math.floor(#body / 2))) or "{"
    body = cut .. '"\\u00'
  end
  if req.log_entry then
    req.log_entry.status = status
  end
  ngx.status = status
  if headers then
    for k, v in pairs(headers) do ngx.header[k] = v end
  end
  if not (headers and (headers["Content-Type"] or headers["content-type"])) then
    ngx.header["Content-Type"] = "application/json; charset=UTF-8"
  end
  if fault and fault.kind == "drop_response" then
    return ngx.exit(444) -- processed, and no answer at all
  end
  if fault and fault.kind == "truncate" then
    local keep = math.floor(#body / 2)
    ngx.header["Content-Length"] = #body
    ngx.print(string_sub(body, 1, keep))
    ngx.flush(true)
    return ngx.exit(444)
  end
  if fault and fault.kind == "slow_body" then
    local half = math.floor(#body / 2)
    ngx.header["Content-Length"] = #body
    ngx.print(string_sub(body, 1, half))
    ngx.flush(true)
    ngx.sleep(tonumber(fault.delay) or 1)
    ngx.print(string_sub(body, half + 1))
    return ngx.exit(status)
  end
  if status ~= 204 and status ~= 304 then
    ngx.header["Content-Length"] = #body
    ngx.print(body)
  end
  return ngx.exit(status)
end

--- Send a JSON value. When the request asks for error suppression the value is wrapped as
-- `{"success": <2xx>, "data": value}` and sent with status 200 (Yii2's `beforeSend` recipe
-- that Talview documents).
-- @tparam table req
-- @tparam number status
-- @param value any JSON value (nil for an empty body)
-- @tparam ?table headers
function M.json(req, status, value, headers)
  if value ~= nil and req.suppress_ok ~= false and M.suppressed(req) then
    value = json.object({ success = status >= 200 and status < 300, data = value }, { "success", "data" })
    status = 200
  end
  local body = value ~= nil and json.encode(value) or ""
  return M.send(req, status, body, headers)
end

--- Send a Talview error `{name, message, code, status}`.
-- @tparam table req
-- @tparam number status
-- @tparam string message
-- @tparam ?table headers
function M.error(req, status, message, headers)
  local body = json.object({
    name = M.status_names[status] or "Error",
    message = message,
    code = 0,
    status = status,
  }, { "name", "message", "code", "status" })
  return M.json(req, status, body, headers)
end

--- Send a 422 with a list of `{field, message}`.
-- @tparam table req
-- @tparam {table,...} fields each `{field=, message=}`
function M.validation_error(req, fields)
  local list = json.array()
  for i, f in ipairs(fields) do
    list[i] = json.object({ field = f.field, message = f.message }, { "field", "message" })
  end
  return M.json(req, 422, list)
end

--- A small HTML error page, as a proxy in front of an API would send.
-- @tparam number status
-- @treturn string
function M.html_page(status)
  local name = M.status_names[status] or "Error"
  return table_concat({
    "<html>\r\n<head><title>", status, " ", name, "</title></head>\r\n<body>\r\n",
    "<center><h1>", status, " ", name, "</h1></center>\r\n<hr><center>nginx</center>\r\n",
    "</body>\r\n</html>\r\n" })
end

return M
