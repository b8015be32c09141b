--- InterviewMocha (iMocha) API v2 and v3 client.
--
-- Built from the declarative catalogue `assesskit.interviewmocha.catalogue` on the shared
-- client machinery (`assesskit.client`: transport, hooks, retries, JSON, the error object of
-- `assesskit.errors`), like the Talview client. The user guide is docs/interviewmocha.md.
--
-- **Resources.** `im.tests:links(test_id [, params [, opts]])` (v2) and
-- `im.reports:get(test_invitation_id [, params [, opts]])` (v3) are built from the
-- catalogue; `im.reports:download_pdf(report_or_id, path [, opts])` is written by hand.
-- `im:endpoints()` lists the catalogue, `im:call(name, params [, opts])` calls an endpoint by
-- its name with the catalogue's parameter names.
--
-- **Arguments.** Path values (`test_id`, `test_invitation_id`) must be positive integers
-- (Int64 in the documentation): a Lua integer, an integral float, or a string of decimal
-- digits (for ids beyond 2^53); anything else is a `validation` error and nothing is sent.
-- `params` use snake_case names in resource methods (`report_type`) and the catalogue's
-- names in `call` (`reportType`); another name raises at the caller's line, naming the
-- nearest documented one (`reprot_type`: `report_type`), unless `opts.raw_params = true`
-- (then it is sent in the query as given).
-- `opts`: `timeout`, `connect_timeout`, `max_retries`, `retry`, `headers`, `raw_params`.
--
-- **Results.** `value, nil, response`, as for every assesskit client; `interviewmocha.response(v)`
-- finds the response of a table result later and `im:last_response()` is the latest one.
--
-- **Errors.** `nil, err` (see `assesskit.errors`). A v2 envelope whose `statuscode` is not
-- `200` or `200.<n>` is an error whose `message` is the envelope's `description`, `code` the
-- `statuscode` and `status` its leading number. A v3 `{"errors": [...]}` body becomes
-- `message` (the list joined with "; ") and `fields`. A 400/401/403 whose message is about
-- the API key, and any 401, are `kind = "auth"`. A missing `api_key` is a `validation` error
-- returned before anything is sent.
--
-- **The API key** is sent as the `x-api-key` header, only to the origins of `v2_url` and
-- `v3_url`; it never appears in an error, a hook's arguments, a log line or `tostring(im)`.
--
-- Runs on Lua 5.4 and LuaJIT (inside nginx with `transport = assesskit.ngx.transport`).
-- @module assesskit.interviewmocha
-- @usage
-- local im = require("assesskit.interviewmocha").new{ api_key = os.getenv("IMOCHA_KEY") }
-- local links, err = im.tests:links(114110)
-- if not links then error(tostring(err)) end
-- for _, l in ipairs(links) do print(l.testLinkId, l.testLinkName) end
-- local report = assert(im.reports:get(2807324, { report_type = 3 }))
-- print(report.status, report.sections[1].sectionId)
-- assert(im.reports:download_pdf(report, "/tmp/2807324.pdf"))
local type, tostring, tonumber, pairs, ipairs, setmetatable, getmetatable, error, pcall, select,
  rawget, require =
  type, tostring, tonumber, pairs, ipairs, setmetatable, getmetatable, error, pcall, select,
  rawget, require
local string_find, string_sub, string_gsub, string_format, string_match, string_lower =
  string.find, string.sub, string.gsub, string.format, string.match, string.lower
local math_floor = math.floor
local table_concat = table.concat

local core = require("assesskit.core")
local client_mod = require("assesskit.client")
local endpoints = require("assesskit.endpoints")
local errors = require("assesskit.errors")
local options = require("assesskit.options")
local url_mod = require("assesskit.url")
local normalise = require("assesskit.interviewmocha.normalise")

local null = client_mod.null
local url_encode = url_mod.encode
local check_args, check_opt, reraise = endpoints.check_args, endpoints.check_opt, endpoints.reraise

local M = {}
M._VERSION = require("assesskit")._VERSION

--- The JSON `null` sentinel (`cjson.null`), also `assesskit.client.null`.
M.null = null

--- The response a table result came from: `interviewmocha.response(value)`.
-- @function response
M.response = client_mod.response

local NAME = "assesskit.interviewmocha"

--- The per-call options of the resource methods and `call`. `raw_params = true` sends
-- parameters the endpoint does not document, as given.
-- @table CALL_OPTIONS
M.CALL_OPTIONS = { "headers", "retry", "max_retries", "timeout", "connect_timeout",
  "raw_params" }
local CALL_OPTIONS = endpoints.set_of(M.CALL_OPTIONS)

-- The parameter rule (`assesskit.endpoints.refused_param`): a parameter the endpoint does not
-- document raises at the caller's line (level counted from the caller of this function),
-- unless `opts.raw_params`.
-- `rule`: the endpoint's `method_rule` (resource methods) or `param_rule` (`call`).
local function check_params(rule, where, params, opts, level)
  if params and not (opts and opts.raw_params) then
    local bad, near, is_option = endpoints.refused_param(rule, params, CALL_OPTIONS)
    if bad then
      error(endpoints.refused_message(where, bad, near, is_option, rule), level + 1)
    end
  end
end
local PDF_OPTIONS = { "on_progress", "timeout", "connect_timeout", "max_retries", "headers",
  "check_pdf" }
local NEW_OPTIONS = { "api_key", "v2_url", "v3_url", "catalogue", "store", "on_event" }
for _, k in ipairs(endpoints.CLIENT_OPTIONS) do NEW_OPTIONS[#NEW_OPTIONS + 1] = k end
local MAX_INT64 = "9223372036854775807"

-- ------------------------------------------------------------------------------------------
-- The API key authenticator (the `auth` interface of assesskit.client)

-- authenticator -> key, out of reach of the object's fields (and so of dumps and hooks)
local keys = setmetatable({}, { __mode = "k" })

local KeyAuth = {}
KeyAuth.__index = KeyAuth

local function new_key_auth(key, header)
  local self = setmetatable({ header = header }, KeyAuth)
  keys[self] = key
  return self
end

function KeyAuth:authorize(client, headers)
  local key = keys[self]
  if not key then
    return nil, client:error({ kind = "validation",
      message = "api_key is required (InterviewMocha authenticates with an API key)",
      fields = { { field = "api_key", message = "is required" } } })
  end
  headers[self.header] = key
  return true
end

function KeyAuth:describe()
  return keys[self] and "api_key=***" or "api_key=none"
end

function KeyAuth:secrets()
  local key = keys[self]
  if key then return { key } end
  return {}
end

KeyAuth.__tostring = function(self) return NAME .. ".auth(" .. self:describe() .. ")" end

-- ------------------------------------------------------------------------------------------
-- Responses: the v2 envelope, result extraction, normalisers, error bodies

local function str(v)
  return type(v) == "string" and v ~= "" and v or nil
end

-- "200", "200.1" (or the number 200 / 200.1) -> "200.1", 200; unreadable text -> text, nil;
-- not a string or number -> nil
local function statuscode(sc)
  if type(sc) == "number" then sc = tostring(sc) end
  if type(sc) ~= "string" then return nil, nil end
  local major = string_match(sc, "^%s*(%d%d%d)%s*$") or string_match(sc, "^%s*(%d%d%d)%.%d+%s*$")
  return sc, major and tonumber(major)
end

local function is_key_message(msg)
  return type(msg) == "string" and string_find(string_lower(msg), "api%s*%-?_?key") ~= nil
end

-- The unwrap hook of both clients: checks the v2 envelope, then takes the catalogue's
-- `result` field and runs its normaliser (`opts` is the request's options table).
local function unwrap(value, _, opts)
  local ep = opts and opts.im_endpoint
  if not ep then return value end
  if ep.envelope then
    if type(value) ~= "table" then
      return nil, { kind = "decode", message = "the v2 response is not a JSON envelope" }
    end
    local sc, major = statuscode(value.statuscode)
    if not sc then
      return nil, { kind = "decode", message = "the v2 response has no statuscode" }
    end
    if not major then
      return nil, { kind = "decode", message = "the v2 response has an unreadable statuscode" }
    end
    if major ~= 200 then
      local desc = str(value.description)
      return nil, {
        kind = (major == 401 or major == 403 or is_key_message(desc)) and "auth" or "http",
        status = major, code = sc, name = errors.REASONS[major],
        message = desc or ("statuscode " .. sc),
      }
    end
    value = value.result
    if ep.result then
      if type(value) ~= "table" then
        return nil, { kind = "decode", message = "the v2 response has no result object" }
      end
    end
  end
  if ep.result then
    value = value[ep.result]
    if value == nil or value == null then
      value = {} -- a test without links
    elseif type(value) ~= "table" then
      return nil, { kind = "decode", message = "result." .. ep.result .. " is not a list" }
    end
  end
  if ep.response == "object" and type(value) ~= "table" then
    return nil, { kind = "decode", message = "the response is not a JSON object" }
  end
  if ep.normalise then value = normalise[ep.normalise](value) end
  return value
end

--- Read an InterviewMocha error body (the `parse_error` hook of both clients): v3's
-- `{"errors": [...]}` (strings, or objects with `message`/`description`/`detail`, `field`,
-- `code`; the messages joined with "; "), the v2 envelope's `description` and `statuscode`
-- (the error's `code`), and a plain `{name, message, code}`.
-- @tparam number status
-- @param body the decoded body (a table), or nil when it was not JSON
-- @treturn table `{name =, message =, code =, fields =}` (any may be nil)
function M.parse_error(status, body)
  local out = client_mod.parse_error(status, body)
  if type(body) ~= "table" then return out end
  out.message = out.message or str(body.description)
  if type(body.errors) == "table" then
    local fields, msgs = {}, {}
    for k, e in pairs(body.errors) do
      local name = type(k) == "string" and k or nil
      if type(e) == "table" then
        local m = str(e.message) or str(e.description) or str(e.detail)
        fields[#fields + 1] = { field = e.field or name, message = m }
        msgs[#msgs + 1] = m
        if out.code == nil and e.code ~= nil and e.code ~= null then out.code = e.code end
      elseif type(e) == "string" then
        fields[#fields + 1] = { field = name, message = e }
        msgs[#msgs + 1] = e
      end
    end
    if #fields > 0 then out.fields = fields end
    if not out.message and #msgs > 0 then out.message = table_concat(msgs, "; ") end
  end
  if out.code == nil then
    local sc = statuscode(body.statuscode)
    if sc then out.code = sc end
  end
  return out
end
local parse_error = M.parse_error

-- A 400/403 about the API key is an authentication failure, as is every 401.
local function classify(err)
  if err and err.kind == "http" and (err.status == 400 or err.status == 403)
    and is_key_message(err.message) then
    err.kind = "auth"
  end
  return err
end

-- ------------------------------------------------------------------------------------------
-- Parameters

local function validation(im, ep, field, message)
  return endpoints.validation(im._clients[ep.api], ep, field, message)
end

-- Path values are positive Int64s: the text sent in the path.
local INT64 = {
  invalid = "must be a positive integer",
  number = function(v)
    if v == math_floor(v) and v >= 1 and v < 2^53 then
      return url_encode(string_format("%d", v))
    end
    return nil
  end,
  string = function(v)
    if string_find(v, "^[1-9]%d*$")
      and (#v < #MAX_INT64 or (#v == #MAX_INT64 and v <= MAX_INT64)) then
      return url_encode(v)
    end
    return nil
  end,
}

local function in_enum(list, v)
  for i = 1, #list do
    if list[i] == v then return true end
  end
  return false
end

-- Build the path and the client's request options for an endpoint.
-- `values`: path values by catalogue name; `params`: the other parameters (already in the
-- catalogue's names); `opts`: per-call options.
local function prepare(im, ep, values, params, opts)
  local path, err = endpoints.fill_named(im._clients[ep.api], ep, INT64, values)
  if not path then return nil, err end
  local query
  for k, v in pairs(ep.defaults) do
    query = query or {}
    query[k] = v
  end
  if params then
    for k, v in pairs(params) do
      if v ~= nil and v ~= null then
        query = query or {}
        query[k] = v
      end
    end
  end
  for k, allowed in pairs(ep.enum) do
    local v = query and query[k]
    if v ~= nil and not in_enum(allowed, tonumber(v)) then
      local texts = {}
      for i = 1, #allowed do texts[i] = tostring(allowed[i]) end
      return nil, validation(im, ep, k, "must be one of " .. table_concat(texts, ", "))
    end
  end
  local o = { query = query, im_endpoint = ep }
  if opts then
    o.headers, o.retry, o.max_retries, o.timeout, o.connect_timeout =
      opts.headers, opts.retry, opts.max_retries, opts.timeout, opts.connect_timeout
  end
  return path, o
end

local function check_key(im, ep)
  if im._has_key then return true end
  return nil, validation(im, ep, "api_key", "is required (the client was made without one)")
end

-- Remember the client's latest response as the IM client's, when this call produced one.
local function track(im, cl, before)
  local last = cl:last_response()
  if last ~= before then im._last = last end
end

local function send(im, ep, path, o)
  local ok, err = check_key(im, ep)
  if not ok then return nil, err end
  local cl = im._clients[ep.api]
  local before = cl:last_response()
  local pok, v, e, res = pcall(cl.request, cl, ep.method, path, o)
  if not pok then reraise(v, 2) end
  track(im, cl, before)
  if v == nil then return nil, classify(e) end
  return v, nil, res
end

-- Resource method: ep(self, id1, ..., [params], [opts]) with snake_case params. The method
-- tail-calls this function (and this one `send`), so level 2 is the user's call.
local function invoke(im, ep, ...)
  local values = {}
  local np = #ep.params
  for i = 1, np do values[ep.params[i]] = (select(i, ...)) end
  local params, opts = select(np + 1, ...)
  check_args(ep, params, opts, 2)
  if opts then options.check(opts, CALL_OPTIONS, ep.name, 2) end
  check_params(ep.method_rule, ep.name, params, opts, 2)
  local q
  if params then
    q = {}
    for k, v in pairs(params) do
      local name = ep.aliases[k] or k
      if ep.param_set[name] then
        error(ep.name .. ": '" .. tostring(k) .. "' is a path value: pass it as an argument", 2)
      end
      if q[name] ~= nil then
        error(ep.name .. ": parameter '" .. name .. "' given twice", 2)
      end
      q[name] = v
    end
  end
  local path, o = prepare(im, ep, values, q, opts)
  if not path then return nil, o end
  return send(im, ep, path, o)
end

-- ------------------------------------------------------------------------------------------
-- PDF download

-- The download's last check: the body must be a PDF.
local function pdf_check(res, tmp)
  if client_mod.read_file(tmp, 5) == "%PDF-" then return true end
  local ctype = res.headers and res.headers["content-type"]
  if type(ctype) == "table" then ctype = ctype[#ctype] end
  return nil, { kind = "decode", message = "the downloaded body is not a PDF"
    .. (ctype and (" (content-type " .. tostring(ctype) .. ")") or "") }
end

-- Step of `download_pdf`: the report (fetched when given its id) and its PDF URL.
local function pdf_url(im, ep, report, opts)
  if type(report) ~= "table" then
    local err
    report, err = invoke(im, ep, report, nil, { timeout = opts.timeout, headers = opts.headers,
      connect_timeout = opts.connect_timeout, max_retries = opts.max_retries })
    if not report then return nil, err end
  end
  local v3 = im._clients.v3
  local url = report.pdfReportUrl
  if type(url) ~= "string" or url == "" then
    return nil, v3:error({ kind = "validation", sent = false,
      message = "download_pdf: the report has no pdfReportUrl",
      fields = { { field = "pdfReportUrl", message = "is required" } } })
  end
  if string_sub(url, 1, 1) == "/" then url = v3.origin .. url end
  if not url_mod.parse(url) then
    return nil, v3:error({ kind = "validation", url = url, sent = false,
      message = "download_pdf: pdfReportUrl is not an http(s) URL",
      fields = { { field = "pdfReportUrl", message = "must be an http(s) URL" } } })
  end
  return url
end

-- Step of `download_pdf`: the client that sends the request, and whether it sends the key
-- (only to the API's own origins).
local function pdf_sender(im, url)
  local v3, v2 = im._clients.v3, im._clients.v2
  if v3:same_origin(url) then return v3, true end
  if v2:same_origin(url) then return v2, true end
  return v3, false
end

local Reports = {}

--- Save a report's PDF to a file, streaming it to disk.
-- The PDF at the report's `pdfReportUrl` is saved by the client's one download routine
-- (`assesskit.client`'s `download`): written to a temporary file beside `path`, checked (an
-- HTTP error, or a body that is not a PDF, fails), then renamed to `path`; on any failure the
-- temporary file is removed and `path` is left as it was. The API key is sent only
-- when the PDF URL is on the origin of `v3_url` or `v2_url`; plain `http://` to a non-loopback
-- host is refused unless `allow_http`.
-- @tparam table|number|string report_or_id a report (from `reports:get`) or a test
--   invitation id (the report is fetched first, `report_type` 1)
-- @tparam string path the file to write
-- @tparam[opt] function|table opts `on_progress` (`function(received, total)`, called during
--   the transfer; `total` is nil when unknown; raising aborts the download), or a
--   table with `on_progress`, `timeout`, `connect_timeout`, `max_retries`, `headers`,
--   `check_pdf` (default true: the body must start with `%PDF-`)
-- @treturn number the number of bytes written
-- @treturn nil
-- @treturn table the response
-- @return or nil and the error (`validation`, `http`, `auth`, `decode` when the body is not a
--   PDF, `io`, `aborted`, `network`, `timeout`, `tls`, `insecure`, `too_large`)
-- @raise when `path` is not a non-empty string, or `opts` is of a wrong type
-- @usage local n, err = im.reports:download_pdf(2807324, "report.pdf", function(got, total)
--   io.write(("\r%d / %s"):format(got, total or "?"))
-- end)
function Reports:download_pdf(report_or_id, path, opts)
  local im = type(self) == "table" and rawget(self, "_im")
  if not im then
    error(NAME .. ": reports.download_pdf called with a dot: use a colon,"
      .. " im.reports:download_pdf(...)", 2)
  end
  if type(path) ~= "string" or path == "" then
    error("download_pdf: path must be a non-empty string", 2)
  end
  if type(opts) == "function" then opts = { on_progress = opts } end
  if opts ~= nil and type(opts) ~= "table" then
    error("download_pdf: opts must be a function or a table", 2)
  end
  opts = opts or {}
  options.check(opts, PDF_OPTIONS, "download_pdf", 2)
  if opts.on_progress ~= nil and type(opts.on_progress) ~= "function" then
    error("download_pdf: on_progress must be a function", 2)
  end
  local ep = im._compiled.by_name["reports.get"]
  -- the target first: nothing is fetched (not even the report) for a file that cannot be made
  local writable, why = client_mod.check_target(path)
  if not writable then
    return nil, classify(im._clients.v3:error({ kind = "io", sent = false, message = why }))
  end
  local url, err = pdf_url(im, ep, report_or_id, opts)
  if not url then return nil, err end
  local cl, with_key = pdf_sender(im, url)
  if with_key and not im._has_key then
    return nil, validation(im, ep, "api_key", "is required (the client was made without one)")
  end
  local headers = { accept = "application/pdf" }
  if opts.headers then for k, v in pairs(opts.headers) do headers[string_lower(k)] = v end end
  local send_auth -- nil: the client's authenticator; false: no credentials
  if not with_key then send_auth = false end
  local before = cl:last_response()
  local pok, n, e, res = pcall(cl.download, cl, url, path, {
    headers = headers, auth = send_auth, on_progress = opts.on_progress, timeout = opts.timeout,
    connect_timeout = opts.connect_timeout, max_retries = opts.max_retries,
    check = opts.check_pdf ~= false and pdf_check or nil,
  })
  if not pok then reraise(n, 2) end
  track(im, cl, before)
  if n == nil then return nil, classify(e) end
  return n, nil, res
end

-- ------------------------------------------------------------------------------------------
-- The catalogue: compiled once per catalogue table; resource objects built lazily from it
-- (assesskit.endpoints)

local function snake(name)
  return (string_gsub(name, "%u", function(c) return "_" .. string_lower(c) end))
end

-- The parameter names an endpoint documents, as `call` takes them: its path parameters and
-- query parameters in the catalogue's spelling (`testInvitationId`, `reportType`). The
-- resource methods' rule (`method_rule`, built by `endpoint` below) takes these and their
-- snake_case spelling, and suggests the latter (`report_type`); a path value given there
-- raises, naming the argument.
local function documented_params(e)
  local names = {}
  for _, list in ipairs({ e.params or {}, e.query or {} }) do
    for _, p in ipairs(list) do names[#names + 1] = type(p) == "table" and p.name or p end
  end
  return names
end

local function method_rule(e)
  local names, snakes = documented_params(e), {}
  for i = 1, #names do snakes[i] = snake(names[i]) end
  local all = {}
  for i = 1, #names do all[#all + 1], all[#all + 2] = names[i], snakes[i] end
  return endpoints.param_rule(all, false, M.CALL_OPTIONS, snakes)
end

local binding = endpoints.binding({
  name = NAME, caller = "interviewmocha", owner = "_im", invoke = invoke,
  documented = documented_params, options = M.CALL_OPTIONS,
  missing = "no action",
  extras = { reports = Reports }, -- hand-written actions, by resource
  describe = function(im, ep, row)
    row.api, row.url, row.summary = ep.api, im._clients[ep.api].base_url .. ep.path, ep.summary
    row.params = endpoints.params(ep.entry, require("assesskit.interviewmocha.params")[ep.name],
      "integer")
  end,
  check = function(cat)
    if type(cat) ~= "table" or type(cat.endpoints) ~= "table" or type(cat.apis) ~= "table" then
      return "catalogue must have apis and endpoints"
    end
  end,
  endpoint = function(e, cat)
    local api = cat.apis[e.api]
    if not api then return nil, "catalogue endpoint " .. tostring(e.name) .. " has no api" end
    if not string_match(e.name, "^[%w_]+%.[%w_]+$") then
      return nil, "bad catalogue name " .. tostring(e.name)
    end
    if e.normalise and type(normalise[e.normalise]) ~= "function" then
      return nil, "catalogue endpoint " .. e.name .. " names an unknown normaliser"
    end
    local params, aliases = {}, {}
    for k, p in ipairs(e.params or {}) do
      params[k] = p.name
      aliases[snake(p.name)] = p.name
    end
    for _, q in ipairs(e.query or {}) do aliases[snake(q)] = q end
    return {
      api = e.api, summary = e.summary, params = params, param_set = endpoints.set_of(params),
      aliases = aliases, query_set = endpoints.set_of(e.query), defaults = e.defaults or {},
      enum = e.enum or {}, result = e.result, normalise = e.normalise,
      method_rule = method_rule(e),
      response = e.response, envelope = api.envelope == "statuscode",
    }
  end,
})

-- ------------------------------------------------------------------------------------------
-- The client

local IM = {}

local IM_MT = { __index = binding:index(IM) }

function IM_MT.__tostring(self)
  local c = rawget(self, "_clients")
  return string_format("%s(v2=%s, v3=%s, %s)", NAME, errors.mask_url(c.v2.base_url),
    errors.mask_url(c.v3.base_url),
    rawget(self, "_auth"):describe())
end

--- Create an InterviewMocha client.
-- @tparam[opt] table opts
-- @tparam[opt] string opts.api_key the API key, sent as the `x-api-key` header to the API's
--   own origins; without it every call is a `validation` error and nothing is sent
-- @tparam[opt="https://api.interviewmocha.com/v2"] string opts.v2_url
-- @tparam[opt="https://apiv3.interviewmocha.com/v3"] string opts.v3_url (iMocha also serves
--   `https://apiv3.imocha.io/v3`)
-- @tparam[opt=30] number opts.timeout seconds for a whole transfer
-- @tparam[opt=10] number opts.connect_timeout seconds
-- @tparam[opt=2] number opts.max_retries retries of a failed GET (network, timeout, 429,
--   502, 503, 504), with backoff and jitter, honouring `Retry-After`
-- @tparam[opt] string opts.ca_file CA bundle
-- @tparam[opt] string opts.user_agent
-- @tparam[opt=false] boolean opts.allow_http plain HTTP to a non-loopback host
-- @tparam[opt] function opts.on_request hook (see `assesskit.client.new`; the key is masked)
-- @tparam[opt] function opts.on_response hook (see `assesskit.client.new`)
-- @tparam[opt] table opts.store where the rate budget of the key lives, shared by every client
--   of the key given the same store (a 429 seen by one pauses all; `max_rate` is theirs
--   together): `assesskit.store.new()`, `assesskit.ngx.token_cache` (the workers of one
--   nginx) or `assesskit.redis` (a fleet), each made with its `new`; keyed by a hash of the
--   key, never the key; a store without a `budget` method is refused
-- @tparam[opt] function opts.on_event hook `function(event)`: the store's events
--   (`{event = "redis_down", message =}` once when Redis becomes unusable, `{event =
--   "redis_up"}` when it is back); errors it raises are ignored
-- @tparam[opt] table opts.transport an object with the core session's `request` method
--   (shared by v2 and v3)
-- @param[opt] opts.... also `ca_path`, `proxy`, `max_response_size`, `retry_base_delay`,
--   `retry_max_delay`, `max_retry_after`, `headers`, `sleep`, `clock`, `random` (see
--   `assesskit.client.new`)
-- @treturn table the client
-- @raise on a wrong option (including plain `http://` to a non-loopback host without
--   `allow_http`)
-- @usage local im = require("assesskit.interviewmocha").new{ api_key = key }
function M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error(NAME .. ".new: opts must be a table", 2) end
  options.check(opts, NEW_OPTIONS, NAME .. ".new", 2)
  local key = check_opt(opts, "api_key", "string", NAME .. ".new")
  if key == "" then key = nil end
  local catalogue = opts.catalogue or require("assesskit.interviewmocha.catalogue")
  local compiled = binding:compile(catalogue)
  local urls = {
    v2 = check_opt(opts, "v2_url", "string", NAME .. ".new")
      or (catalogue.apis.v2 and catalogue.apis.v2.base_url),
    v3 = check_opt(opts, "v3_url", "string", NAME .. ".new")
      or (catalogue.apis.v3 and catalogue.apis.v3.base_url),
  }
  local auth = new_key_auth(key, catalogue.auth_header or "x-api-key")
  local clients = {}
  local transport = opts.transport
  -- one rate budget for the key, whichever API a call goes to: the store's (every client of
  -- the key given the same store, a fleet on Redis) or this client's own
  local identity = key and ("interviewmocha|" .. core.b64url_encode(core.sha256(key)))
  local budget = endpoints.store_budget(opts.store, identity, opts.on_event, NAME .. ".new", true)
    or require("assesskit.store").budget()
  for _, api in ipairs({ "v3", "v2" }) do
    local copts = endpoints.client_options(opts)
    copts.transport = transport
    copts.budget = budget
    copts.base_url = urls[api]
    copts.auth = auth
    copts.unwrap = unwrap
    copts.parse_error = parse_error
    copts.name = NAME .. "." .. api
    local ok, c = pcall(client_mod.new, copts)
    if not ok then
      if clients.v3 then clients.v3:close() end
      c = string_gsub(tostring(c), "^[^:]*:%d+: ", "")
      c = string_gsub(c, "assesskit%.client%.new", NAME .. ".new")
      c = string_gsub(c, "base_url", api .. "_url")
      error(c, 2)
    end
    clients[api] = c
    -- one transport (and connection pool) for both APIs; the first client owns it
    transport = transport or c.transport
  end
  return setmetatable({
    _clients = clients, _compiled = compiled, _auth = auth, _has_key = key ~= nil,
    _on_event = opts.on_event, -- the store holds the hook weakly (store:watch): kept here
  }, IM_MT)
end

--- Every endpoint, as `{name =, api =, method =, path =, url =, summary =, params =}` (`path`
-- a template with `{placeholders}`, `url` the same under the configured base URL), in
-- catalogue order. `params` lists its parameters as `tv:endpoints()` does: `{name =, ["in"] =
-- "path" | "query", required =, type =, description =}` (catalogue spelling: `testId`,
-- `reportType`).
-- @treturn table array
-- @usage for _, e in ipairs(im:endpoints()) do print(e.name, e.method, e.url) end
function IM:endpoints()
  return binding:endpoints(self)
end

--- Call an endpoint by its catalogue name, with the catalogue's parameter names.
-- Path values are taken from `params` by name (`testId`, `testInvitationId`); the other
-- parameters are the query. The result is the same as the resource method's.
-- @tparam string name `"tests.links"` or `"reports.get"`
-- @tparam[opt] table params
-- @tparam[opt] table opts per-call options (`timeout`, `max_retries`, `headers`, ...)
-- @return the value, nil and the response; or nil and the error
-- @raise when `name` is not in the catalogue, or `params`/`opts` is not a table
-- @usage local report, err = im:call("reports.get", { testInvitationId = 2807324, reportType = 3 })
function IM:call(name, params, opts)
  local ep = binding:lookup(self, name, params)
  if opts ~= nil and type(opts) ~= "table" then
    error("interviewmocha:call: opts must be a table", 2)
  end
  if opts then options.check(opts, CALL_OPTIONS, "interviewmocha:call", 2) end
  check_params(ep.param_rule, "interviewmocha:call", params, opts, 2)
  local path, o = prepare(self, ep, params, endpoints.without(params, ep.param_set), opts)
  if not path then return nil, o end
  return send(self, ep, path, o)
end

--- Call `fn(item, i)` for every item, with up to `opts.concurrency` calls in flight, under
-- one rate budget for the key (v2 and v3 alike). The same as Talview's `map` (options,
-- results, errors): see `assesskit.talview` and docs/bulk.md.
-- @param items an array, or an iterator function
-- @tparam function fn `fn(item, i) -> value, err`
-- @tparam[opt] table opts `concurrency` (8), `on_result`, `on_progress`, `stop_on_error`,
--   `max_rate`
-- @return results in input order, `results[i] = {value =, err =}` (a summary `{done =,
--   failed =}` with an iterator or `on_result`)
-- @return the error that stopped the map early, or nil
-- @usage local results = im:map(ids, function(id) return im.reports:get(id) end,
--   { concurrency = 8 })
function IM:map(items, fn, opts)
  local results, err = require("assesskit.bulk").map(self._clients.v3.budget, items, fn, opts,
    "interviewmocha:map")
  return results, err
end

--- Mask the API key (every secret the client knows) in a text, e.g. before logging what a
-- server said.
-- @tparam string s
-- @treturn string
function IM:redact(s)
  return self._clients.v3:redact(s)
end

--- The response of the latest completed request (v2, v3 or a download).
-- @treturn table|nil `{status =, headers =, method =, url =, attempts =}`
function IM:last_response()
  return self._last
end

--- Close the default transport (a transport given in `opts` is left to its owner).
-- Idempotent.
function IM:close()
  self._clients.v3:close()
  self._clients.v2:close()
end

-- a client method called with a dot says to use a colon
endpoints.guard_methods(IM, function(v)
  return type(v) == "table" and getmetatable(v) == IM_MT
end, NAME, "im")

return M
