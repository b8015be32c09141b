--- `--dry-run` for the `assesskit` command line: a transport that records requests instead of
-- sending them, and the equivalent `curl` command with every secret masked.
--
-- The recording transport follows the transport contract (docs/DESIGN.md) and answers each
-- request with `200` and an empty JSON body, so a client runs its whole call path (parameter
-- checks, paths, query encoding, JSON body) without any network traffic. The command line
-- builds dry-run clients with a placeholder access token, so no token endpoint is contacted.
-- @internal assesskit.cli.dryrun
local type, pairs, ipairs, tostring, tonumber, setmetatable, error, pcall =
  type, pairs, ipairs, tostring, tonumber, setmetatable, error, pcall
local string_gsub, string_lower, string_upper, string_find, string_match, string_sub,
  string_char =
  string.gsub, string.lower, string.upper, string.find, string.match, string.sub, string.char
local table_concat, table_sort = table.concat, table.sort

local cjson = require("cjson")
local errors = require("assesskit.errors")
local output = require("assesskit.cli.output")

local M = {}

local MASK = "***"

local secret_name = errors.is_secret_name
local function secret_field(name) return secret_name(tostring(name)) end

local Recorder = {}
Recorder.__index = Recorder

--- A transport that records requests and sends nothing.
-- @tparam[opt] table opts `body` (the body every answer carries, default `"{}"`)
-- @treturn table the transport; `transport.requests` is the array of recorded requests
-- @usage local t = dryrun.transport()
-- local tv = talview.new{ transport = t, auth = { access_token = "dry-run" } }
-- tv.models.candidate:get(1)
-- print(dryrun.curl(t.requests[1]))
function M.transport(opts)
  if opts ~= nil and type(opts) ~= "table" then error("dryrun.transport: opts must be a table", 2) end
  return setmetatable({ requests = {}, body = opts and opts.body or "{}" }, Recorder)
end

--- Record a request (the transport contract's `request`).
-- @tparam table req
-- @treturn number 200
-- @treturn table headers
-- @treturn string the configured body
function Recorder:request(req)
  local copy = {}
  for k, v in pairs(req) do copy[k] = v end
  self.requests[#self.requests + 1] = copy
  return 200, { ["content-type"] = "application/json" }, self.body
end

--- Nothing to close (for clients that close their transport).
function Recorder.close() end

local function shell_quote(s)
  s = tostring(s)
  if s ~= "" and not string_find(s, "[^%w%-%._/:=@,+]") then return s end
  return "'" .. string_gsub(s, "'", "'\\''") .. "'"
end

local function display_name(name)
  if string_sub(string_lower(name), 1, 2) == "x-" then return string_lower(name) end
  return (string_gsub(string_lower(name), "(%a)([%w]*)", function(a, b) return string_upper(a) .. b end))
end

local function mask_header(name, value)
  if not secret_name(name) then return value end
  local scheme = string_match(tostring(value), "^(%a+)%s")
  if string_lower(name):find("authorization", 1, true) and scheme then
    return scheme .. " " .. MASK
  end
  return MASK
end

local function mask_tree(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if type(k) == "string" and secret_field(k) and x ~= nil and x ~= cjson.null then
      out[k] = MASK
    else
      out[k] = mask_tree(x)
    end
  end
  return out
end

--- Mask the secret fields of a request body: JSON objects (at any depth) and form bodies.
-- @tparam string body
-- @tparam[opt] string content_type
-- @treturn string the body with secret values replaced by `***`
function M.mask_body(body, content_type)
  if type(body) ~= "string" then return body end
  local ct = string_lower(content_type or "")
  if string_find(ct, "json", 1, true) or string_match(body, "^%s*[%[{]") then
    local ok, v = pcall(cjson.decode, body)
    if ok and type(v) == "table" then
      return output.json(mask_tree(v))
    end
  end
  if string_find(ct, "x-www-form-urlencoded", 1, true) then
    return (string_gsub(body, "([^&=]+)=([^&]*)", function(k, val)
      local name = string_gsub(k, "%%(%x%x)", function(h) return string_char(tonumber(h, 16)) end)
      if secret_field(name) and val ~= "" then return k .. "=" .. MASK end
    end))
  end
  return body
end

--- The `curl` command equivalent to a recorded request, secrets masked: the Authorization
-- header as `Bearer ***`, `x-api-key` and other credential headers as `***`, secret query
-- parameters and body fields as `***`.
-- @tparam table req a recorded request (`method`, `url`, `headers`, `body`, `multipart`,
--   `output`)
-- @tparam[opt] table opts `ca_file` (adds `--cacert`), `ca_path` (`--capath`), `proxy` (`-x`,
--   its userinfo masked: `http://***@proxy:3128`), `output` (adds `-o FILE` when the request
--   has no `output` of its own)
-- @treturn string the command, one option per line, joined with ` \` continuations
function M.curl(req, opts)
  if type(req) ~= "table" then error("dryrun.curl: req must be a table", 2) end
  local lines = { "curl -sS -X " .. (req.method or "GET") .. " " .. shell_quote(errors.mask_url(req.url)) }
  if opts and opts.ca_file then lines[#lines + 1] = "  --cacert " .. shell_quote(opts.ca_file) end
  if opts and opts.ca_path then lines[#lines + 1] = "  --capath " .. shell_quote(opts.ca_path) end
  if opts and opts.proxy then
    lines[#lines + 1] = "  -x " .. shell_quote(errors.mask_url(opts.proxy))
  end
  local names = {}
  for k in pairs(req.headers or {}) do names[#names + 1] = k end
  table_sort(names, function(a, b) return string_lower(a) < string_lower(b) end)
  local ctype
  for _, k in ipairs(names) do
    local v = req.headers[k]
    if string_lower(k) == "content-type" then ctype = v end
    local values = type(v) == "table" and v or { v }
    for _, one in ipairs(values) do
      lines[#lines + 1] = "  -H " .. shell_quote(display_name(k) .. ": " .. mask_header(k, one))
    end
  end
  if req.body ~= nil then
    lines[#lines + 1] = "  --data-binary " .. shell_quote(M.mask_body(req.body, ctype))
  end
  for _, part in ipairs(req.multipart or {}) do
    local spec
    if part.file then
      spec = part.name .. "=@" .. part.file
      if part.filename then spec = spec .. ";filename=" .. part.filename end
      if part.content_type then spec = spec .. ";type=" .. part.content_type end
    else
      spec = part.name .. "=" .. (secret_field(part.name) and MASK or tostring(part.value))
    end
    lines[#lines + 1] = "  -F " .. shell_quote(spec)
  end
  local out = req.output or (opts and opts.output)
  if out then lines[#lines + 1] = "  -o " .. shell_quote(out) end
  return table_concat(lines, " \\\n")
end

return M
