--- Talview API v4 client.
--
-- Every endpoint of the Talview v4 documentation is a method, built from the declarative
-- catalogue `assesskit.talview.catalogue`; the transport, retries, JSON, errors and paging
-- come from `assesskit.client`, the tokens from `assesskit.talview.auth`. The user guide is
-- docs/talview.md.
--
-- **Naming.** A catalogue name `<area>.<resource>.<action>` is the method
-- `tv.<area>.<resource>:<action>(...)`, and `<area>.<action>` is `tv.<area>:<action>(...)`:
-- `tv.models.candidate:get(42)`, `tv.user.me:update_password{...}`, `tv.actions:invite{...}`.
-- REST actions are `list`, `get`, `create`, `update`, `delete`; other actions are named
-- after their path (`invite`, `change_status`). Resources with a paged `list` also have
-- `each` (every item, fetching pages lazily) and `pages` (page by page).
--
-- **Arguments.** `method(p1, p2, ..., params, opts)`: first the path placeholders in the
-- order of the path (`/admin/organization/{oid}/category/{id}` takes `oid, id`), then
-- `params`, then `opts`. Or `method(params, opts)` with the placeholders inside `params` by
-- name (`tv.models.candidate:get{id = 42}`). Path values must be integers or non-empty
-- strings other than `.` and `..`, without `/` or `\` (a validation error otherwise, sent
-- nowhere); they are percent-encoded. For GET and DELETE `params` is the query; for
-- POST, PUT and PATCH it is the JSON body, except the parameters the catalogue documents as
-- query parameters, `expand`, `fields` and `suppress_error_code`, which go in the query.
-- `expand` may be a Lua array (sent as a comma list); other arrays are sent
-- `name[0]=a&name[1]=b`.
-- `opts`: `query` (extra query parameters), `headers`, `retry` (true: retry this POST too),
-- `max_retries`, `timeout`, `connect_timeout`, `output` (stream the body to a file),
-- `on_progress`, and `filename` and `content_type` for multipart uploads.
--
-- **Results.** `value, nil, response` (the usual `local v, err = ...` idiom holds): the
-- decoded JSON (`talview.null` for JSON null), `true` for 204, the body string for non-JSON
-- answers; `response` has `status`, `headers`, `url`, `attempts`, and for lists
-- `paging = {total =, page_count =, page =, per_page =, next =}`. `talview.response(value)`
-- finds the response of a table result later; `tv:last_response()` is the latest one.
--
-- **Errors.** `nil, err` (see `assesskit.errors`).
--
-- @module assesskit.talview
-- @usage
-- local talview = require("assesskit.talview")
-- local tv = talview.new{
--   auth = { grant = "password", client_id = "...", client_secret = "...",
--            username = "...", password = "..." },
-- }
-- local cand, err = tv.models.candidate:get(42, { expand = { "status" } })
-- for c, e in tv.models.candidate:each{ pageSize = 100 } do
--   if not c then error(tostring(e)) end
--   print(c.id, c.name)
-- end
local type, tostring, tonumber, pairs, ipairs, setmetatable, getmetatable, error, select, rawget,
  require, pcall =
  type, tostring, tonumber, pairs, ipairs, setmetatable, getmetatable, error, select, rawget,
  require, pcall
local string_find, string_gsub, string_format, string_match, string_rep, string_gmatch =
  string.find, string.gsub, string.format, string.match, string.rep, string.gmatch
local math_floor = math.floor
local table_sort = table.sort
local io_open = io.open

local client_mod = require("assesskit.client")
local endpoints = require("assesskit.endpoints")
local options = require("assesskit.options")
local url_mod = require("assesskit.url")

local null = client_mod.null
local url_encode = url_mod.encode
local fill_positional, fill_named = endpoints.fill_positional, endpoints.fill_named
local check_args, check_opt, reraise = endpoints.check_args, endpoints.check_opt, endpoints.reraise
local without, refused_param = endpoints.without, endpoints.refused_param

local unpack = table.unpack or unpack -- luacheck: ignore 143

local M = {}
M._VERSION = require("assesskit")._VERSION

--- The JSON `null` sentinel (`cjson.null`), also `assesskit.client.null`.
M.null = null

--- The response a table result came from: `talview.response(value)`.
-- @function response
M.response = client_mod.response

local NAME = "assesskit.talview"
local DEFAULT_BASE_URL = "https://apiv4.talview.com"
local ALWAYS_QUERY = { expand = true, suppress_error_code = true, fields = true }
local BODY_METHODS = { POST = true, PUT = true, PATCH = true }

---------------------------------------------------------------------------------------------
-- Parameters

local function validation(tv, ep, field, message)
  return endpoints.validation(tv._client, ep, field, message)
end

-- Path values: integers or non-empty strings other than "." and "..", without "/" or "\".
local PATH_RULE = {
  invalid = "must be an integer or a string",
  string = function(v)
    if v == "" or v == "." or v == ".." then
      return nil, "must not be empty, '.' or '..'"
    end
    -- servers decode %2F before resolving dot segments: a slash in an id is refused outright
    if string_find(v, "[/\\]") then
      return nil, "must not contain '/' or '\\'"
    end
    return url_encode(v)
  end,
  number = function(v)
    if v == math_floor(v) and v > -2^53 and v < 2^53 then
      return string_format("%d", v)
    end
    return nil
  end,
}

local function basename(path)
  return string_match(path, "([^/\\]+)$") or path
end

local function readable(path)
  local f = io_open(path, "rb")
  if not f then return false end
  f:close()
  return true
end

local function base64(s)
  local core = require("assesskit.core")
  local b = core.b64url_encode(s)
  b = string_gsub(b, "[-_]", { ["-"] = "+", ["_"] = "/" })
  local pad = (4 - #b % 4) % 4
  return b .. string_rep("=", pad)
end

-- base64 upload: `file` (a path) or `content` (a string) becomes `data`.
local function base64_params(tv, ep, params)
  local field = ep.file_field
  if params == nil or params[field] ~= nil then return params end
  local content, name = params.content, nil
  if params.file ~= nil then
    if type(params.file) ~= "string" then
      return nil, validation(tv, ep, "file", "must be a file path")
    end
    local data, err = client_mod.read_file(params.file)
    if not data then
      return nil, endpoints.endpoint_error(tv._client, ep, "io",
        "cannot read the file to upload: " .. tostring(err))
    end
    content, name = data, basename(params.file)
  elseif content ~= nil and type(content) ~= "string" then
    return nil, validation(tv, ep, "content", "must be a string")
  end
  if content == nil then return params end
  local out = {}
  for k, v in pairs(params) do
    if k ~= "file" and k ~= "content" then out[k] = v end
  end
  out[field] = base64(content)
  if out.name == nil and name then out.name = name end
  return out
end

-- multipart upload: `file` is a path; the other parameters are form fields.
local function multipart_parts(tv, ep, params, opts)
  local field = ep.file_field
  local path = params and params[field]
  if path == nil or path == null then
    return nil, validation(tv, ep, field, "is required (a file path)")
  end
  if type(path) ~= "string" or path == "" then
    return nil, validation(tv, ep, field, "must be a file path")
  end
  if not readable(path) then
    return nil, endpoints.endpoint_error(tv._client, ep, "io",
      "cannot read the file to upload: " .. path)
  end
  local rest = {}
  for k, v in pairs(params) do
    if k ~= field and not ALWAYS_QUERY[k] then rest[k] = v end
  end
  local ok, flat = pcall(url_mod.flatten, rest)
  if not ok then error(flat, 4) end
  local parts = {
    { name = field, file = path, filename = (opts and opts.filename) or basename(path),
      content_type = opts and opts.content_type },
  }
  for i = 1, #flat do parts[#parts + 1] = { name = flat[i][1], value = flat[i][2] } end
  return parts
end

local function check_required(tv, ep, params)
  local req = ep.required
  if not req then return true end
  for i = 1, #req do
    local name = req[i]
    local v = params and params[name]
    if v == nil or v == null then
      return nil, validation(tv, ep, name, "is required")
    end
  end
  return true
end

-- Step of `prepare`: the path (placeholders filled), and the call's params and opts.
-- `named`: the placeholders are in the params table (`tv:call`, `get{id = 42}`).
local function split_args(tv, ep, named, ...)
  if ep.np == 0 then
    local params, opts = ...
    return ep.lits[1], params, opts
  end
  if named or (type((...)) == "table") then
    local p, opts = ...
    check_args(ep, p, nil, 4)
    local path, err = fill_named(tv._client, ep, PATH_RULE, p)
    if not path then return nil, err end
    return path, without(p, ep.name_set), opts
  end
  local path, err = fill_positional(tv._client, ep, PATH_RULE, ...)
  if not path then return nil, err end
  return path, select(ep.np + 1, ...)
end

-- Step of `prepare`: where each parameter goes. GET and DELETE: all in the query; POST, PUT,
-- PATCH: the JSON body, except the query parameters (`ALWAYS_QUERY` and the endpoint's own);
-- a multipart upload: form fields (built by `multipart_parts`) and the query parameters.
-- Returns the body (or nil) and the query (or nil), never modifying `params` or `query`.
local function place_params(ep, params, query)
  if not params then return nil, query end
  if ep.upload == "multipart" then
    local q
    for k in pairs(ALWAYS_QUERY) do
      if params[k] ~= nil then
        if not q then
          q = {}
          if query then for qk, qv in pairs(query) do q[qk] = qv end end
        end
        q[k] = params[k]
      end
    end
    return nil, q or query
  end
  if not BODY_METHODS[ep.method] then
    if not query then return nil, params end
    local q = {}
    for k, v in pairs(params) do q[k] = v end
    for k, v in pairs(query) do q[k] = v end
    return nil, q
  end
  local qset, bset = ep.query_set, ep.body_set
  local split = false
  for k in pairs(params) do
    if ALWAYS_QUERY[k] or qset[k] then split = true break end
  end
  if not split then return params, query end
  local body, q = {}, {}
  if query then for k, v in pairs(query) do q[k] = v end end
  for k, v in pairs(params) do
    if ALWAYS_QUERY[k] or qset[k] then
      q[k] = v
      if bset[k] then body[k] = v end -- documented in both: sent in both, from one value
    else
      body[k] = v
    end
  end
  return body, q
end

-- The per-call options passed on to `assesskit.client`.
local PASSED_OPTS = { "headers", "retry", "max_retries", "timeout", "connect_timeout",
  "output", "on_progress" }

--- The per-call options of the resource methods, `each`, `pages` and `call`
-- (`each` also takes `concurrency`). `raw_params = true` sends parameters the endpoint does
-- not document, as given (as the command line's `--raw-param`).
-- @table CALL_OPTIONS
M.CALL_OPTIONS = { "query", "headers", "retry", "max_retries", "timeout", "connect_timeout",
  "output", "on_progress", "filename", "content_type", "expect", "raw_params" }
local CALL_OPTIONS = endpoints.set_of(M.CALL_OPTIONS)
local EACH_OPTIONS = endpoints.set_of(M.CALL_OPTIONS)
EACH_OPTIONS.concurrency = true
-- every option name of a call, for the parameter rule's near misses
local ALL_OPTIONS = { "concurrency" }
for i, k in ipairs(M.CALL_OPTIONS) do ALL_OPTIONS[i + 1] = k end

--- The parameter names an endpoint of the catalogue documents: its path placeholders, query
-- and body parameters, the query parameters every call takes (`expand`, `fields`,
-- `suppress_error_code`), `page` and `pageSize` of a paged list, and an upload's file field
-- (with `file`, `content` and `name` for a base64 one). A call giving another name raises,
-- except on a list taking filters (`filters = true`), which sends any name that does not look
-- like a typo of these or of an option (`assesskit.endpoints.refused_param`); the command
-- line's `--PARAM` goes by the same rule.
-- @tparam table e a catalogue entry
-- @treturn table array of names
function M.documented_params(e)
  local names = {}
  for p in string_gmatch(e.path, "{([%w_]+)}") do names[#names + 1] = p end
  for _, list in ipairs({ e.query or {}, e.body or {} }) do
    for _, p in ipairs(list) do names[#names + 1] = p end
  end
  for _, p in ipairs({ "expand", "fields", "suppress_error_code" }) do names[#names + 1] = p end
  if e.paged then names[#names + 1], names[#names + 2] = "page", "pageSize" end
  if e.upload then
    names[#names + 1] = e.file_field or (e.upload == "base64" and "data" or "file")
    if e.upload == "base64" then
      names[#names + 1], names[#names + 2], names[#names + 3] = "file", "content", "name"
    end
  end
  return names
end

-- Resolve an endpoint call's arguments into the path and the client's request options, in
-- named steps: the path and the rest (`split_args`), the options (`known`, named `where` in
-- errors) and parameters (the documented ones: `refused_param`), the upload's file, the
-- required parameters, where each parameter goes (`place_params`), the per-call options.
-- Called by `invoke`, `node_each`, `node_pages` and `TV:call`; resource methods tail-call
-- the first three, so level 3 from here is the user's call in every case.
local function prepare(tv, ep, named, where, known, ...)
  local path, params, opts = split_args(tv, ep, named, ...)
  if not path then return nil, params end
  check_args(ep, params, opts, 3)
  if opts then options.check(opts, known, where, 3) end
  if params and not (opts and opts.raw_params) then
    local rule = ep.param_rule
    local bad, near, is_option = refused_param(rule, params, known)
    if bad then error(endpoints.refused_message(where, bad, near, is_option, rule), 3) end
  end
  if params == nil and opts == nil and not ep.needs_params then
    return path, ep.plain_opts -- shared, never modified
  end
  local err
  if ep.upload == "base64" then
    params, err = base64_params(tv, ep, params)
    if err then return nil, err end
  end
  local ok
  ok, err = check_required(tv, ep, params)
  if not ok then return nil, err end
  local o = { paged = ep.paged, expect = ep.expect }
  if ep.upload == "multipart" then
    o.multipart, err = multipart_parts(tv, ep, params, opts)
    if not o.multipart then return nil, err end
  end
  o.body, o.query = place_params(ep, params, opts and opts.query)
  if opts then
    for i = 1, #PASSED_OPTS do
      local k = PASSED_OPTS[i]
      o[k] = opts[k]
    end
    if opts.expect then o.expect = opts.expect end
  end
  return path, o
end

local function invoke(tv, ep, ...)
  local path, o = prepare(tv, ep, false, ep.name, CALL_OPTIONS, ...)
  if not path then return nil, o end
  local ok, v, err, res = pcall(tv._client.request, tv._client, ep.method, path, o)
  if not ok then reraise(v, 2) end
  return v, err, res
end

local function failed_iterator(err)
  local done = false
  return function()
    if done then return nil end
    done = true
    return false, err
  end
end

-- `concurrency` (pages fetched ahead) is an option of `each`, given among its parameters
-- (`:each{pageSize = 100, concurrency = 4}`) or its options: it leaves both here, before
-- `prepare` checks them.
local function without_concurrency(t)
  local out = {}
  for k, v in pairs(t) do if k ~= "concurrency" then out[k] = v end end
  return out
end

local function node_each(tv, ep, ...)
  local n = select("#", ...)
  local args = { ... }
  -- where opts is: after the params table, which follows the placeholders given by position
  local oi = (ep.np == 0 or type(args[1]) == "table") and 2 or ep.np + 2
  local pi = oi - 1
  local ahead
  for _, i in ipairs({ pi, oi }) do
    local t = args[i]
    if type(t) == "table" and t.concurrency ~= nil then
      ahead = t.concurrency
      args[i] = without_concurrency(t)
    end
  end
  local where = string_gsub(ep.name, "[^.]+$", "each")
  if ahead ~= nil and (type(ahead) ~= "number" or ahead ~= math_floor(ahead) or ahead < 1) then
    error(where .. ": concurrency must be an integer >= 1", 2)
  end
  local path, o = prepare(tv, ep, false, where, EACH_OPTIONS, unpack(args, 1, n))
  if not path then return failed_iterator(o) end
  if ahead then
    local copy = {}
    for k, v in pairs(o) do copy[k] = v end
    copy.concurrency = ahead
    o = copy
  end
  return tv._client:each(ep.method, path, o)
end

local function node_pages(tv, ep, ...)
  local path, o = prepare(tv, ep, false, (string_gsub(ep.name, "[^.]+$", "pages")), CALL_OPTIONS,
    ...)
  if not path then return failed_iterator(o) end
  return tv._client:pages(ep.method, path, o)
end

---------------------------------------------------------------------------------------------
-- The catalogue: compiled once per catalogue table; resource objects built lazily from it
-- (assesskit.endpoints)

local binding = endpoints.binding({
  name = NAME, caller = "talview", owner = "_tv", invoke = invoke,
  documented = M.documented_params, options = ALL_OPTIONS,
  endpoint = function(e)
    local ep = {
      required = e.required, query_set = endpoints.set_of(e.query),
      body_set = endpoints.set_of(e.body), paged = e.paged == true,
      upload = e.upload, file_field = e.file_field or (e.upload == "base64" and "data" or "file"),
      expect = (e.response == "binary") and "raw" or nil,
    }
    ep.plain_opts = { paged = ep.paged, expect = ep.expect }
    -- a call without params still needs them checked (required ones) or built (uploads)
    ep.needs_params = ep.upload ~= nil or (ep.required ~= nil and #ep.required > 0)
    return ep
  end,
  -- `endpoints()` rows: the summary and the parameters (seed types and descriptions from
  -- assesskit.talview.params, loaded on first use)
  describe = function(_, ep, row)
    row.summary = ep.entry.summary
    local docs = require("assesskit.talview.params")[ep.name]
    row.params = endpoints.params(ep.entry, docs, "string|integer", ep.upload and ep.file_field)
    for _, p in ipairs(row.params) do
      if p["in"] == "file" and p.description == "" then
        p.description = ep.upload == "base64"
          and "the file's content, base64 (or give `file`, a path, or `content`, a string)"
          or "the path of the file to upload"
      end
    end
  end,
  -- a paged list also has `each` and `pages`
  more = function(ep, action)
    if action == "list" and ep.paged then
      return { each = node_each, pages = node_pages }
    end
  end,
})

--- The method names available on a resource object (actions and sub-resources).
-- @usage for _, name in ipairs(talview.names(tv.models.candidate)) do print(name) end
-- @tparam table obj a resource object (`tv.models.candidate`) or the client
-- @treturn table sorted array of names
function M.names(obj)
  local node = type(obj) == "table"
    and (rawget(obj, "_node") or (rawget(obj, "_compiled") and rawget(obj, "_compiled").tree))
  if not node then error("talview.names: not a Talview resource object", 2) end
  local out = {}
  for k in pairs(node.methods) do out[#out + 1] = k end
  for k in pairs(node.children) do out[#out + 1] = k end
  table_sort(out)
  return out
end

---------------------------------------------------------------------------------------------
-- The client

local TV = {}

local TV_MT = { __index = binding:index(TV) }

function TV_MT.__tostring(self)
  return tostring(rawget(self, "_client"))
end

local function str(v)
  return type(v) == "string" and v ~= "" and v or nil
end

--- Read a Talview error body (the `parse_error` hook of the client): Yii2's
-- `{name, message, code, status}`, a 422 list of `{field, message}`, and OAuth2's
-- `{error, error_description}` from the token endpoint.
-- @tparam number status
-- @param body the decoded body (a table), or nil when it was not JSON
-- @treturn table `{name =, message =, code =, fields =}` (any may be nil)
function M.parse_error(status, body)
  if type(body) == "table" and body[1] ~= nil then -- a JSON array (objects have no integer keys)
    local out, fields = {}, {}
    for _, f in ipairs(body) do
      if type(f) == "table" and (f.field ~= nil or f.message ~= nil) then
        fields[#fields + 1] = { field = f.field, message = f.message }
      elseif type(f) == "string" then
        fields[#fields + 1] = { message = f }
      end
    end
    if #fields > 0 then
      out.fields = fields
      if status ~= 422 then out.message = fields[1].message end
    end
    return out
  end
  local out = client_mod.parse_error(status, body) -- name, message, code
  if type(body) == "table" then
    out.name = out.name or str(body.error)
    out.message = out.message or str(body.error_description)
    if type(body.fields) == "table" then out.fields = body.fields end
  end
  return out
end
local parse_error = M.parse_error

local function header_number(h, name)
  local v = h[name]
  if type(v) == "table" then v = v[1] end
  return v and tonumber(v)
end

--- Paging metadata of a Talview list (the `paging` hook of the client), in the Yii2 REST
-- convention: `X-Pagination-Total-Count`, `X-Pagination-Page-Count`,
-- `X-Pagination-Current-Page`, `X-Pagination-Per-Page`, and the `Link` header.
-- @tparam table res the response
-- @treturn table `{total =, page_count =, page =, per_page =, next =, prev =, first =,
--   last =}`
function M.paging(res)
  local p = client_mod.link_paging(res)
  local h = res.headers
  p.total = header_number(h, "x-pagination-total-count")
  p.page_count = header_number(h, "x-pagination-page-count")
  p.page = header_number(h, "x-pagination-current-page")
  p.per_page = header_number(h, "x-pagination-per-page")
  return p
end

local function unwrap_envelope(value, _, opts)
  if type(value) ~= "table" or value.success == nil or value.data == nil then
    return value
  end
  if value.success == false then
    local d = value.data
    if type(d) ~= "table" then d = { message = tostring(d) } end
    local info = parse_error(422, d)
    local status = tonumber(d.status) or (info.fields and 422) or 400
    return nil, {
      kind = status == 401 and "auth" or "http", status = status,
      name = info.name, message = info.message, code = info.code, fields = info.fields,
    }
  end
  local q = opts and opts.query
  if value.success == true and q and q.suppress_error_code ~= nil then
    return value.data
  end
  return value
end

-- The options of `new`: the client's, and Talview's own.
local NEW_OPTIONS = { "base_url", "token_url", "auth", "token_margin", "store", "token_store",
  "token_store_key", "catalogue", "on_event" }
for _, k in ipairs(endpoints.CLIENT_OPTIONS) do NEW_OPTIONS[#NEW_OPTIONS + 1] = k end

--- Create a Talview v4 client.
-- @tparam table opts
-- @tparam[opt="https://apiv4.talview.com"] string opts.base_url
-- @tparam[opt] string opts.token_url default `base_url .. "/oauth2/token"`
-- @tparam[opt] table opts.auth `{grant = "password", ...}`, `{grant = "jwt", ...}` or
--   `{access_token = "..."}` (see `assesskit.talview.auth`); without it no credentials are sent
-- @tparam[opt=30] number opts.timeout seconds for a whole transfer
-- @tparam[opt=10] number opts.connect_timeout seconds
-- @tparam[opt=2] number opts.max_retries
-- @tparam[opt] string opts.ca_file CA bundle
-- @tparam[opt] string opts.user_agent
-- @tparam[opt=false] boolean opts.allow_http plain HTTP to a non-loopback host
-- @tparam[opt] function opts.on_request hook (see `assesskit.client.new`)
-- @tparam[opt] function opts.on_response hook (see `assesskit.client.new`)
-- @tparam[opt] table opts.transport an object with the core session's `request` method
-- @tparam[opt=60] number opts.token_margin renew the token this long (at most 10% of its
--   lifetime) before it expires
-- @tparam[opt] table opts.store what must be one per credential, shared by every client
--   given the same store: the token (one renewal at a time) and, when the store has a
--   `budget` method, the rate budget (a 429 seen by one client pauses them all).
--   `assesskit.store.new()` (in-process), `assesskit.ngx.token_cache` (every nginx worker)
--   or `assesskit.redis` (a fleet); interface in docs/DESIGN.md. Default: this client's own.
-- @tparam[opt] function opts.on_event hook `function(event)`: the store's events
--   (`{event = "redis_down", message =}` once when Redis becomes unusable, `{event =
--   "redis_up"}` when it is back); errors it raises are ignored
-- @tparam[opt] table opts.token_store the former name of `store`, still accepted
-- @tparam[opt] string opts.token_store_key the credential's key in the store (default from
--   the grant, client id, username or issuer, and token URL)
-- @tparam[opt] number opts.max_rate at most this many requests per second for the
--   credential (its budget's token bucket)
-- @param[opt] opts.... also `ca_path`, `proxy`, `max_response_size`, `retry_base_delay`,
--   `retry_max_delay`, `max_retry_after`, `headers`, `sleep`, `clock`, `random` (see
--   `assesskit.client.new`)
-- @treturn table the client
-- @raise on a wrong or unknown option (naming the nearest valid one: `baseurl` ->
--   `base_url`), a malformed or contradictory `auth`, or plain `http://` to a non-loopback
--   host without `allow_http`
-- @usage local tv = require("assesskit.talview").new{ auth = { access_token = token } }
function M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("assesskit.talview.new: opts must be a table", 2) end
  options.check(opts, NEW_OPTIONS, "assesskit.talview.new", 2)
  local base_url = check_opt(opts, "base_url", "string", "assesskit.talview.new") or DEFAULT_BASE_URL
  base_url = string_gsub(base_url, "/+$", "")
  local token_url = check_opt(opts, "token_url", "string", "assesskit.talview.new")
    or (base_url .. "/oauth2/token")
  local tu = url_mod.parse(token_url)
  if not tu then error("assesskit.talview.new: token_url must be an http(s) URL", 2) end
  local allowed, why = url_mod.allowed(tu, opts.allow_http)
  if not allowed then error("assesskit.talview.new: token_url: " .. why, 2) end
  local store = opts.store
  if store ~= nil and opts.token_store ~= nil then
    error("assesskit.talview.new: give store or token_store (its former name), not both", 2)
  end
  if store == nil then store = opts.token_store end
  local auth_mod = require("assesskit.talview.auth")
  local token_opts = { token_url = token_url, token_margin = opts.token_margin,
    token_store = store, token_store_key = opts.token_store_key }
  local cok, cerr = pcall(auth_mod.check_options, token_opts)
  if not cok then endpoints.reraise(cerr, 2) end
  local auth
  if opts.auth ~= nil then
    local ok, a = pcall(auth_mod.new, opts.auth, token_opts)
    if not ok then endpoints.reraise(a, 2) end
    auth = a
  end
  local catalogue = opts.catalogue or require("assesskit.talview.catalogue")
  local compiled = binding:compile(catalogue)
  local copts = endpoints.client_options(opts)
  copts.base_url = base_url
  copts.auth = auth
  -- one budget per credential: the store's, under the credential's key (a static token has
  -- no identity but the token: its client keeps its own budget unless given a key)
  local key = opts.token_store_key or (auth and auth:identity())
  copts.budget = endpoints.store_budget(store, key, opts.on_event, "assesskit.talview.new")
  copts.unwrap = unwrap_envelope
  copts.paging = M.paging
  copts.parse_error = parse_error
  copts.comma_params = { expand = true }
  copts.page_param, copts.per_page_param = "page", "pageSize"
  copts.name = NAME
  local ok, c = pcall(client_mod.new, copts)
  if not ok then
    endpoints.reraise((string_gsub(tostring(c), "assesskit%.client%.new", "assesskit.talview.new")), 2)
  end
  -- _on_event: the store holds the hook weakly (store:watch); the client keeps it
  return setmetatable({ _client = c, _auth = auth, _compiled = compiled,
    _on_event = opts.on_event }, TV_MT)
end

--- Every endpoint, as `{name =, method =, path =, summary =, params =}` (`path` a template
-- with `{placeholders}`, `summary` the seed's one-line description), in catalogue order.
-- `params` lists its parameters: `{name =, ["in"] = "path" | "query" | "body" | "file",
-- required =, type =, description =}` (`type` a LuaLS type name such as `"integer"`,
-- `"string|integer"` or `"integer[]"`, `"any"` where the seed does not say; `description` the
-- seed's, `""` when it has none): path placeholders in path order, then the query, the body,
-- and an upload's file.
-- @treturn table array
-- @usage for _, p in ipairs(tv:endpoints()[1].params) do print(p.name, p["in"], p.type) end
function TV:endpoints()
  return binding:endpoints(self)
end

--- Call an endpoint by its catalogue name.
-- Placeholders are taken from `params` by name; the other parameters are the query (GET,
-- DELETE) or the JSON body (POST, PUT, PATCH).
-- @tparam string name e.g. `"models.candidate.get"`
-- @tparam[opt] table params
-- @tparam[opt] table opts as for the resource methods
-- @return the value, nil and the response; or nil and the error
-- @raise when `name` is not in the catalogue
-- @usage local cand, err = tv:call("models.candidate.get", { id = 42, expand = { "status" } })
function TV:call(name, params, opts)
  local ep = binding:lookup(self, name, params)
  local path, o = prepare(self, ep, true, ep.name, CALL_OPTIONS, params or {}, opts)
  if not path then return nil, o end
  return self._client:request(ep.method, path, o)
end

--- Send any request (the escape hatch), with the client's auth, retries and decoding.
-- @tparam string method
-- @tparam string path `/...` under `base_url`
-- @tparam[opt] table opts `query`, `body` (table: JSON), `headers`, `retry`, `timeout`,
--   `expect` (`"raw"`), `paged` (see `assesskit.client`)
-- @return the value, nil and the response; or nil and the error
-- @usage local v, err = tv:request("GET", "/models/candidate", { query = { page = 2 } })
function TV:request(method, path, opts)
  if type(method) ~= "string" then error("talview:request: method must be a string", 2) end
  if type(path) ~= "string" then error("talview:request: path must be a string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("talview:request: opts must be a table", 2) end
  if opts then options.check(opts, client_mod.REQUEST_OPTIONS, "talview:request", 2) end
  local ok, v, err, res = pcall(self._client.request, self._client, method, path, opts)
  if not ok then reraise(v, 2) end
  return v, err, res
end

--- Call `fn(item, i)` for every item, with up to `opts.concurrency` calls in flight.
-- `fn` is ordinary code making ordinary calls (`tv.models.candidate:create{...}`, paging,
-- uploads); from plain Lua its calls suspend on libcurl's multi interface, inside nginx they
-- run in light threads. Every call takes a permit from the client's rate budget: a 429 (or
-- 503 with `Retry-After`) pauses them all, and the in-flight limit is cut on 429/503 and grows
-- back while calls succeed. Retries, hooks and errors are those of a single call. Guide:
-- docs/bulk.md.
-- @param items an array, or an iterator function (`nil` ends it; `false, err` stops the map
--   with `err` as its second result)
-- @tparam function fn `fn(item, i) -> value, err`; an error it raises becomes that item's
--   `err` (the raised value, as `pcall` gives it: usually a string "file:line: message")
-- @tparam[opt] table opts
-- @tparam[opt=8] number opts.concurrency calls in flight at most
-- @tparam[opt] function opts.on_result `function(i, value, err)`, called as items complete
--   (any order); results are then not accumulated
-- @tparam[opt] function opts.on_progress `function(done, total)` after each item (`total` is
--   nil with an iterator)
-- @tparam[opt=false] boolean opts.stop_on_error take no new item after the first error
--   (`err ~= nil`); items not started get no result
-- @tparam[opt] number opts.max_rate requests per second at most, while the map runs
-- @return `results`: an array in input order, `results[i] = {value =, err =}`; with an
--   iterator or `on_result`, a summary `{done =, failed =}` instead (memory stays flat)
-- @return the error that stopped the map early (`stop_on_error`, the iterator's `false,
--   err`), or nil
-- @raise on a wrong argument or option; an error raised by the iterator, `on_result` or
--   `on_progress` is raised again once the items in flight have finished
-- @usage local results = tv:map(rows, function(row)
--   return tv.models.candidate:create(row)
-- end, { concurrency = 16 })
function TV:map(items, fn, opts)
  local results, err = require("assesskit.bulk").map(self._client.budget, items, fn, opts,
    "talview:map")
  return results, err
end

--- Fetch a token now (instead of on the first call), to check the credentials.
-- @treturn true|nil
-- @treturn table|nil the error
function TV:authenticate()
  if not self._auth then return true end
  local tok, err = self._auth:token(self._client)
  if not tok then return nil, err end
  return true
end

--- Mask every secret the client knows (credentials, tokens) in a text, e.g. before logging
-- what a server said.
-- @tparam string s
-- @treturn string
-- @usage log(tv:redact(body))
function TV:redact(s)
  return self._client:redact(s)
end

--- The response of the latest completed request.
-- @treturn table|nil
function TV:last_response()
  return self._client:last_response()
end

--- Close the default transport. Idempotent.
function TV:close()
  self._client:close()
end

-- a client method called with a dot says to use a colon
endpoints.guard_methods(TV, function(v)
  return type(v) == "table" and getmetatable(v) == TV_MT
end, NAME, "tv")

return M
