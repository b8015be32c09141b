-- Generates the Lua Language Server annotation files (`---@meta`) of assesskit from the
-- catalogues, so an editor completes and checks every endpoint method.
--
--   lua5.4 tools/annotations.lua [DIR]        (default: types; `make annotations`)
--
-- Writes DIR/assesskit/init.lua (the module `assesskit`), DIR/assesskit/errors.lua (the error
-- object, the response, the per-call, `each` and `map` option tables), DIR/assesskit/jwt.lua,
-- DIR/assesskit/local_sandbox.lua,
-- DIR/assesskit/talview.lua and DIR/assesskit/interviewmocha.lua: a `---@class` per area and
-- resource, one function per endpoint with its path values, a `Params` class of its query and
-- body fields (type, required or not, the seed's description), the seed's one-line summary
-- and the method's results; the option tables of `new`. Inputs: the catalogues
-- (`assesskit.talview.catalogue`, `assesskit.interviewmocha.catalogue`), their parameter
-- documentation (`assesskit.talview.params`, `assesskit.interviewmocha.params`, the same rows
-- `endpoints()` gives: `assesskit.endpoints.params`), `assesskit.errors.KINDS` and the option
-- tables below. spec/annotations_spec.lua fails when the committed files differ from what this
-- writes, and when a client option has no entry here. The files are shipped in the rock
-- (<rock dir>/types, README.md "Editor support").

-- luacheck: no max line length (the option tables are one row per option)

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

local endpoints = require("assesskit.endpoints")
local errors = require("assesskit.errors")
local tv_catalogue = require("assesskit.talview.catalogue")
local tv_params = require("assesskit.talview.params")
local im_catalogue = require("assesskit.interviewmocha.catalogue")
local im_params = require("assesskit.interviewmocha.params")

local out_dir = arg[1] or "types"

local M = {}

-- ------------------------------------------------------------------------------------------
-- Hand-written parts: option tables and fields (spec/annotations_spec.lua checks that every
-- option assesskit.endpoints.CLIENT_OPTIONS passes on is here)

-- options of assesskit.client.new that both API clients' `new` pass on: name -> type, text
M.CLIENT_OPTIONS = {
  { "transport", "assesskit.Transport", "an object with `request(req)` following the core session (default: a libcurl session; inside nginx, `assesskit.ngx.transport`)" },
  { "timeout", "number", "seconds for a whole transfer (default 30)" },
  { "connect_timeout", "number", "seconds to connect (default 10)" },
  { "max_retries", "integer", "retries after the first attempt (default 2)" },
  { "ca_file", "string", "CA bundle for the default transport" },
  { "ca_path", "string", "CA directory for the default transport" },
  { "proxy", "string", "proxy URL for the default transport" },
  { "user_agent", "string", "User-Agent of the default transport" },
  { "allow_http", "boolean", "permit plain `http://` to a non-loopback host (default false; loopback needs no opt-in)" },
  { "max_response_size", "integer", "bytes of a body held in memory (default 64 MiB)" },
  { "on_request", "fun(info: assesskit.HookInfo)", "hook called before each attempt; it never sees a secret" },
  { "on_response", "fun(info: assesskit.HookInfo)", "hook called after each attempt; it never sees a secret" },
  { "retry_base_delay", "number", "first backoff, seconds (default 0.5)" },
  { "retry_max_delay", "number", "largest backoff, seconds (default 8)" },
  { "max_retry_after", "number", "largest `Retry-After` honoured, seconds (default 60)" },
  { "headers", "table<string, string>", "headers sent with every request" },
  { "sleep", "fun(seconds: number)", "how to wait between retries (default: the transport's, `ngx.sleep` or LuaSocket)" },
  { "clock", "fun(): number", "the current time, epoch seconds (default: `ngx.now` or LuaSocket)" },
  { "random", "fun(): number", "a number in [0, 1) for jitter (default `math.random`)" },
  { "max_rate", "number", "requests per second at most for the credential (its rate budget's token bucket)" },
}

M.TALVIEW_OPTIONS = {
  { "base_url", "string", "the API root (default `https://apiv4.talview.com`)" },
  { "token_url", "string", "the token endpoint (default `base_url .. \"/oauth2/token\"`)" },
  { "auth", "assesskit.talview.Auth", "credentials: a password or JWT-bearer grant, or a static access token; without it no credentials are sent" },
  { "token_margin", "number", "renew the token this long before it expires, seconds (default 60, at most 10% of its lifetime)" },
  { "store", "assesskit.TokenStore", "the token and rate budget, shared by the clients given the same store (`assesskit.store.new()`; `assesskit.ngx.token_cache` for nginx workers; `assesskit.redis` for a fleet)" },
  { "token_store", "assesskit.TokenStore", "the former name of `store`, still accepted" },
  { "token_store_key", "string", "the credential's key in the store (default from the grant, client id, username or issuer, and token URL)" },
  { "on_event", "fun(event: table)", "hook for the store's events: `{event = \"redis_down\", message =}` once when Redis becomes unusable, `{event = \"redis_up\"}` when it is back" },
}

M.INTERVIEWMOCHA_OPTIONS = {
  { "api_key", "string", "the InterviewMocha API key, sent as `x-api-key` to the v2 and v3 hosts only" },
  { "v2_url", "string", "the v2 API root (default `https://api.interviewmocha.com/v2`)" },
  { "v3_url", "string", "the v3 API root (default `https://apiv3.interviewmocha.com/v3`)" },
  { "catalogue", "table", "another catalogue of the same shape (for tests)" },
  { "store", "assesskit.TokenStore", "the API key's rate budget, shared by the clients of the key given the same store (`assesskit.store.new()`; `assesskit.ngx.token_cache` for nginx workers; `assesskit.redis` for a fleet); keyed by a hash of the key" },
  { "on_event", "fun(event: table)", "hook for the store's events: `{event = \"redis_down\", message =}` once when Redis becomes unusable, `{event = \"redis_up\"}` when it is back" },
}

-- the per-call options of a resource method (its last argument)
M.CALL_OPTIONS = {
  { "query", "table", "more query parameters" },
  { "headers", "table<string, string>", "extra request headers" },
  { "retry", "boolean", "true: retry this POST/PATCH too; false: never retry this call" },
  { "max_retries", "integer", "retries for this call" },
  { "timeout", "number", "seconds, for this call" },
  { "connect_timeout", "number", "seconds, for this call" },
  { "output", "string", "stream the body to this file; the value is then its size in bytes" },
  { "on_progress", "fun(received: integer, total: integer?)", "called during the transfer; an error in it aborts the call (kind `aborted`)" },
  { "expect", "\"raw\"", "return the body string even when it is JSON" },
  { "filename", "string", "the file name sent with a multipart upload (default: the path's last part)" },
  { "content_type", "string", "the content type of a multipart upload's file" },
  { "raw_params", "boolean", "send parameters the endpoint does not document, as given (else they raise)" },
}

-- `each` takes the per-call options and (issue 12) a read-ahead
M.EACH_OPTIONS = {
  { "concurrency", "integer", "fetch up to this many pages ahead once the page count is known; items still come in order" },
}

-- `client:map(items, fn, opts)` (issues 12 and 13)
M.MAP_OPTIONS = {
  { "concurrency", "integer", "calls in flight at most (default 8); the limit adapts to 429/503 answers, never above this" },
  { "on_result", "fun(i: integer, value: any, err: any)", "receives each result as it completes (then `map` keeps none)" },
  { "on_progress", "fun(done: integer, total: integer?)", "progress, for a progress bar (total nil with an iterator)" },
  { "stop_on_error", "boolean", "stop starting items after the first error" },
  { "max_rate", "number", "requests per second at most" },
  { "journal", "string|assesskit.Journal", "record each item's outcome in this file (or journal object) so a rerun resumes" },
  { "key", "fun(item: any, i: integer): string", "an item's key in the journal (default: its index)" },
  { "reconcile", "fun(item: any, i: integer): any", "for an item whose write may or may not have landed: its value if it did, nil to run it again" },
  { "retry_failed", "boolean", "run again the items the journal records as failed with an error that is not retryable" },
  { "job", "string", "the job's name in a new journal file's header (a journal of another job is refused; default \"map\")" },
}

-- the error object (assesskit.errors)
M.ERROR_FIELDS = {
  { "kind", "assesskit.ErrorKind", "what went wrong" },
  { "status", "integer?", "the HTTP status, when there was a response" },
  { "name", "string?", "the server's error name, or a reason phrase" },
  { "message", "string?", "the server's message, or one of ours" },
  { "code", "any", "the server's error code, when it sent one" },
  { "fields", "assesskit.FieldError[]?", "for a 422 and for `validation`: which field, what is wrong" },
  { "retryable", "boolean?", "true when the same request later may succeed" },
  { "retry_after", "number?", "seconds the server asked to wait (`Retry-After`)" },
  { "method", "string?", "the request's method" },
  { "url", "string?", "the request's URL, secret query values masked" },
  { "request_id", "string?", "the server's request id, when it sent one" },
  { "key", "string?", "for `ambiguous`: the key of the bulk item that may or may not have been done" },
  { "sent", "boolean?", "for a transport failure: false when nothing of the request reached the server, true when it may have; nil when the transport did not say" },
}

M.RESPONSE_FIELDS = {
  { "status", "integer", "the HTTP status" },
  { "headers", "table<string, string|string[]>", "lower-cased names; a repeated header is an array" },
  { "method", "string", "the request's method" },
  { "url", "string", "the request's URL, secrets masked" },
  { "attempts", "integer", "how many times it was sent" },
  { "paging", "assesskit.Paging?", "for list calls: the page counters and links" },
}

-- ------------------------------------------------------------------------------------------
-- Writing

local function writer()
  local buf = {}
  local w = {}
  function w.line(s) buf[#buf + 1] = (s or "") .. "\n" end
  function w.text() return table.concat(buf) end
  return w
end

-- one line of documentation text: no line breaks, no trailing space
local function one_line(s)
  return (tostring(s or ""):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

local function fields(w, list, optional_all)
  for _, f in ipairs(list) do
    local name, ty, text = f[1], f[2], f[3]
    local opt = optional_all and "?" or ""
    w.line(("---@field %s%s %s %s"):format(name, opt, ty, one_line(text)))
  end
end

-- a Lua identifier for a class path (`models.candidate` -> `models_candidate`)
local function ident(path)
  return (path:gsub("[^%w]", "_"))
end

local function is_name(s) return s:match("^[%a_][%w_]*$") ~= nil end

-- the field name in a ---@field line (quoted when it is not a Lua name)
local function field_name(n)
  return is_name(n) and n or ('["' .. n .. '"]')
end

-- results of a method, by catalogue response kind
local VALUE_TYPE = { list = "table[]", object = "table", empty = "true", binary = "string" }
local VALUE_TEXT = {
  list = "the items of the page (decoded JSON)", object = "the decoded JSON",
  empty = "true (the answer has no body)", binary = "the body (not JSON: an image, a file)",
}

local function returns(w, response)
  local ty = VALUE_TYPE[response] or "any"
  w.line(("---@return %s|nil value %s"):format(ty, VALUE_TEXT[response] or "the decoded JSON"))
  w.line("---@return assesskit.Error|nil err nil on success")
  w.line("---@return assesskit.Response|nil response the status, headers and paging")
end

-- ------------------------------------------------------------------------------------------
-- API files: one class per node of the resource tree, one method per endpoint

-- the tree of an API's endpoints: node = {path, children = {name -> node}, order = {names},
-- eps = {{action, entry, params}}}
local function tree(cat, docs_of, path_type, file_field_of, rename)
  local root = { path = "", children = {}, order = {}, eps = {} }
  for _, e in ipairs(cat.endpoints) do
    local parts = {}
    for p in e.name:gmatch("[^.]+") do parts[#parts + 1] = p end
    local node = root
    for k = 1, #parts - 1 do
      local child = node.children[parts[k]]
      if not child then
        child = { path = node.path == "" and parts[k] or (node.path .. "." .. parts[k]),
                  children = {}, order = {}, eps = {} }
        node.children[parts[k]] = child
        node.order[#node.order + 1] = parts[k]
      end
      node = child
    end
    local params = endpoints.params(e, docs_of(e), path_type, file_field_of(e))
    if rename then
      for _, p in ipairs(params) do p.arg = rename(p.name) end
    end
    node.eps[#node.eps + 1] = { action = parts[#parts], entry = e, params = params }
  end
  return root
end

local function summary_line(e, where)
  local s = one_line(e.summary)
  local ref = e.seed_line and (" (seed %s, line %d)"):format(where(e), e.seed_line) or ""
  return ("---%s: `%s %s`%s"):format(s ~= "" and s or e.name, e.method, e.path, ref)
end

-- write the Params class of an endpoint; returns its name, whether any field is required,
-- and the path parameters
local function params_class(w, api, ep, extra_fields)
  local cls = ("%s.%s.Params"):format(api.prefix, ep.entry.name)
  local path, rest, required = {}, {}, false
  for _, p in ipairs(ep.params) do
    if p["in"] == "path" then path[#path + 1] = p else rest[#rest + 1] = p end
  end
  if #rest == 0 and not extra_fields then return nil, false, path end
  w.line(("---The parameters of `%s` (%s)."):format(ep.entry.name, api.params_text))
  w.line(("---@class %s"):format(cls))
  for _, p in ipairs(rest) do
    local req = p.required and "" or "?"
    if p.required then required = true end
    local where = p["in"] == "file" and "file" or p["in"]
    local text = one_line(p.description)
    w.line(("---@field %s%s %s %s%s"):format(field_name(p.arg or p.name), req, p.type,
      "(" .. where .. (p.required and ", required" or "") .. ")", text ~= "" and (" " .. text) or ""))
  end
  for _, f in ipairs(extra_fields or {}) do
    w.line(("---@field %s? %s %s"):format(f[1], f[2], f[3]))
  end
  if ep.entry.filters then
    w.line("---@field [string] any a filter on any attribute of the records (`filters`)")
  end
  w.line()
  return cls, required, path
end

local function api_file(api)
  local w = writer()
  local root = api.tree
  w.line(("---@meta %s"):format(api.module))
  w.line(("-- Generated by tools/annotations.lua from %s; do not edit (make annotations)."):format(api.sources))
  w.line()

  -- options of new
  w.line(("---The options of `%s.new`."):format(api.module))
  w.line(("---@class %s.Options"):format(api.prefix))
  fields(w, api.options, true)
  fields(w, M.CLIENT_OPTIONS, true)
  w.line()
  for _, extra in ipairs(api.extra_classes or {}) do extra(w) end

  -- the client object: its methods, then its top-level resources
  w.line(("---%s"):format(api.client_text))
  w.line(("---@class %s"):format(api.client_class))
  for _, name in ipairs(root.order) do
    w.line(("---@field %s %s.%s"):format(name, api.prefix, name))
  end
  w.line(("local %s = {}"):format(api.client_var))
  w.line()
  for _, m in ipairs(api.client_methods) do
    for _, l in ipairs(m) do w.line(l) end
    w.line()
  end

  -- one class per node, depth first in catalogue order
  local function node_class(node)
    w.line(("---`%s` (%s)."):format(node.path, api.node_text))
    w.line(("---@class %s.%s"):format(api.prefix, node.path))
    for _, name in ipairs(node.order) do
      w.line(("---@field %s %s.%s"):format(name, api.prefix, node.children[name].path))
    end
    local var = ident(node.path)
    w.line(("local %s = {}"):format(var))
    w.line()
    for _, ep in ipairs(node.eps) do
      local e = ep.entry
      local cls, required, path = params_class(w, api, ep, api.extra_params and api.extra_params(e))
      local args, lines = {}, {}
      lines[#lines + 1] = summary_line(e, api.seed_of)
      if e.roles then
        lines[#lines + 1] = ("---Only for the roles: %s."):format(table.concat(e.roles, ", "))
      end
      for _, p in ipairs(path) do
        local text = one_line(p.description)
        lines[#lines + 1] = ("---@param %s %s path value {%s}%s"):format(p.arg or p.name, p.type, p.name,
          text ~= "" and (": " .. text) or "")
        args[#args + 1] = p.arg or p.name
      end
      if cls then
        lines[#lines + 1] = ("---@param params%s %s"):format(required and "" or "?", cls)
        args[#args + 1] = "params"
      else
        lines[#lines + 1] = ("---@param params? table (none documented)")
        args[#args + 1] = "params"
      end
      lines[#lines + 1] = "---@param opts? assesskit.CallOptions"
      args[#args + 1] = "opts"
      local named
      if api.named and #path > 0 then
        -- the path values by name in params instead: `tv.admin.category:list{ oid = 2 }`
        named = ("%s.%s.Named"):format(api.prefix, e.name)
        w.line(("---The parameters of `%s` with its path values by name."):format(e.name))
        w.line(("---@class %s%s"):format(named, cls and (": " .. cls) or ""))
        for _, p in ipairs(path) do
          w.line(("---@field %s %s (path)"):format(p.arg or p.name, p.type))
        end
        w.line()
      end
      for _, l in ipairs(lines) do w.line(l) end
      returns(w, e.response)
      if named then
        w.line(("---@overload fun(self: %s.%s, params: %s, opts?: assesskit.CallOptions): %s|nil, assesskit.Error|nil, assesskit.Response|nil")
          :format(api.prefix, node.path, named, VALUE_TYPE[e.response] or "any"))
      end
      w.line(("function %s:%s(%s) end"):format(var, ep.action, table.concat(args, ", ")))
      w.line()
      if api.paged and api.paged(e) then
        local ptype = cls or "table"
        local pargs = {}
        for _, p in ipairs(path) do pargs[#pargs + 1] = p.arg or p.name end
        pargs[#pargs + 1] = "params"
        pargs[#pargs + 1] = "opts"
        for _, which in ipairs({ "each", "pages" }) do
          w.line(which == "each"
            and ("---Every item of `%s`, fetching pages as needed: `for item, err in ...`; on a failure it yields `false, err` once."):format(e.name)
            or ("---The pages of `%s`: `for items, err, response in ...`; on a failure it yields `false, err` once."):format(e.name))
          for _, l in ipairs(lines) do
            if l:match("^%-%-%-@param ") and not l:match("^%-%-%-@param opts") and not l:match("^%-%-%-@param params") then
              w.line(l)
            end
          end
          w.line(("---@param params%s %s"):format(required and "" or "?", ptype))
          if which == "each" then
            w.line("---@param opts? assesskit.EachOptions")
            w.line("---@return fun(): table|false|nil, assesskit.Error|nil")
          else
            w.line("---@param opts? assesskit.CallOptions")
            w.line("---@return fun(): table[]|false|nil, assesskit.Error|nil, assesskit.Response|nil")
          end
          w.line(("function %s:%s(%s) end"):format(var, which, table.concat(pargs, ", ")))
          w.line()
        end
      end
    end
    for _, l in ipairs(api.node_extras and api.node_extras(node) or {}) do w.line(l) end
    for _, name in ipairs(node.order) do node_class(node.children[name]) end
  end
  for _, name in ipairs(root.order) do node_class(root.children[name]) end

  -- the module
  w.line(("---The module `%s`."):format(api.module))
  w.line(("---@class %s"):format(api.prefix))
  w.line("---@field _VERSION string the version of assesskit")
  w.line("---@field null lightuserdata the JSON null (`cjson.null`)")
  w.line("local M = {}")
  w.line()
  w.line(("---Create a client (misuse, such as an unknown option, raises)."))
  w.line(("---@param opts? %s.Options"):format(api.prefix))
  w.line(("---@return %s"):format(api.client_class))
  w.line("function M.new(opts) end")
  w.line()
  for _, l in ipairs(api.module_extras or {}) do w.line(l) end
  w.line("return M")
  return w.text()
end

-- ------------------------------------------------------------------------------------------
-- The two APIs

local function talview()
  local api = {
    module = "assesskit.talview", prefix = "assesskit.talview", client_class = "assesskit.talview.Client",
    client_var = "Client",
    sources = "assesskit.talview.catalogue and assesskit.talview.params",
    client_text = "A Talview v4 client (`assesskit.talview.new`): every catalogue area is a field.",
    node_text = "Talview resource",
    params_text = "query and body by catalogue name; path values may be given here by name instead",
    options = M.TALVIEW_OPTIONS, named = true,
    seed_of = function() return "002" end,
    paged = function(e) return e.paged == true and e.name:match("%.list$") ~= nil end,
  }
  api.tree = tree(tv_catalogue, function(e) return tv_params[e.name] end, "string|integer",
    function(e)
      return e.upload and (e.file_field or (e.upload == "base64" and "data" or "file")) or nil
    end)
  api.extra_params = function(e)
    if e.upload == "base64" then
      return {
        { "file", "string", "a file path: the client reads it and sends it as `data`" },
        { "content", "string", "the file's content: the client sends it as `data`" },
      }
    end
  end
  api.extra_classes = {
    function(w)
      w.line("---The password grant.")
      w.line("---@class assesskit.talview.PasswordGrant")
      w.line('---@field grant "password"')
      w.line("---@field client_id string")
      w.line("---@field client_secret string")
      w.line("---@field username string")
      w.line("---@field password string")
      w.line("---@field wait_timeout? number seconds a call waits for a renewal under way (default 60)")
      w.line()
      w.line("---The JWT-bearer grant: an RS256 assertion signed with the service account's key.")
      w.line("---@class assesskit.talview.JwtGrant")
      w.line('---@field grant "jwt"')
      w.line("---@field client_id? string sent with the assertion when given; `issuer` or `client_id` is required")
      w.line("---@field issuer? string the assertion's `iss` (default `client_id`)")
      w.line("---@field private_key? string the key, PEM")
      w.line("---@field private_key_file? string a file holding the key, PEM")
      w.line("---@field passphrase? string of an encrypted key")
      w.line("---@field scope? string|string[] the scopes asked for")
      w.line("---@field audience? string the assertion's `aud` (default the token URL)")
      w.line("---@field lifetime? integer the assertion's lifetime, seconds (default 3600, at most 86400)")
      w.line("---@field wait_timeout? number seconds a call waits for a renewal under way (default 60)")
      w.line()
      w.line("---A static access token, used as is and never renewed.")
      w.line("---@class assesskit.talview.StaticToken")
      w.line("---@field access_token string")
      w.line()
      w.line("---@alias assesskit.talview.Auth assesskit.talview.PasswordGrant|assesskit.talview.JwtGrant|assesskit.talview.StaticToken")
      w.line()
    end,
  }
  api.client_methods = {
    { "---Every endpoint: `{name, method, path, summary, params}`, `params` as `{name, in, required, type, description}`.",
      "---@return assesskit.Endpoint[]",
      "function Client:endpoints() end" },
    { "---Call an endpoint by its catalogue name; path values by name in `params`.",
      "---@param name string e.g. `\"models.candidate.get\"`",
      "---@param params? table",
      "---@param opts? assesskit.CallOptions",
      "---@return any|nil value",
      "---@return assesskit.Error|nil err",
      "---@return assesskit.Response|nil response",
      "function Client:call(name, params, opts) end" },
    { "---A request by method and path under the base URL, with the client's auth, retries and errors.",
      "---@param method string",
      "---@param path string `/...`",
      "---@param opts? assesskit.RequestOptions",
      "---@return any|nil value",
      "---@return assesskit.Error|nil err",
      "---@return assesskit.Response|nil response",
      "function Client:request(method, path, opts) end" },
    { "---Run `fn(item, i)` for every item with up to `opts.concurrency` calls in flight; results in input order.",
      "---@param items any[]|fun(): any an array, or an iterator",
      "---@param fn fun(item: any, i: integer): any, any",
      "---@param opts? assesskit.MapOptions",
      "---@return assesskit.MapResult[]|{done: integer, failed: integer} results `{value =, err =}` per item in input order; with `on_result` or an iterator, a summary",
      "---@return any stopped the error that stopped the map early (`stop_on_error`, an iterator's failure), or nil",
      "function Client:map(items, fn, opts) end" },
    { "---Get a token now (it is otherwise fetched on the first call).",
      "---@return true|nil ok",
      "---@return assesskit.Error|nil err",
      "function Client:authenticate() end" },
    { "---The response of the last call.",
      "---@return assesskit.Response|nil",
      "function Client:last_response() end" },
    { "---Close the default transport (its connections).",
      "function Client:close() end" },
  }
  api.module_extras = {
    "---The method names of a resource object (actions and sub-resources), sorted.",
    "---@param obj table a resource object, e.g. `tv.models.candidate`",
    "---@return string[]",
    "function M.names(obj) end",
    "",
  }
  return api
end

local function snake(name)
  return (name:gsub("%u", function(c) return "_" .. c:lower() end))
end

local function interviewmocha()
  local api = {
    module = "assesskit.interviewmocha", prefix = "assesskit.interviewmocha",
    client_class = "assesskit.interviewmocha.Client", client_var = "Client",
    sources = "assesskit.interviewmocha.catalogue and assesskit.interviewmocha.params",
    client_text = "An InterviewMocha v2/v3 client (`assesskit.interviewmocha.new`): every resource is a field.",
    node_text = "InterviewMocha resource",
    params_text = "snake_case names; `im:call` takes the catalogue's camelCase",
    options = M.INTERVIEWMOCHA_OPTIONS,
    seed_of = function(e) return (e.seed or ""):match("^(%d+)") or "seed" end,
  }
  api.tree = tree(im_catalogue, function(e) return im_params[e.name] end, "integer",
    function() return nil end, snake)
  api.node_extras = function(node)
    if node.path ~= "reports" then return {} end
    return {
      "---Download a report's PDF (its `pdfReportUrl`) to `path`, streamed to a temporary file beside it and renamed.",
      "---@param report_or_id table|integer a report from `reports:get`, or a test invitation id",
      "---@param path string the file to write",
      "---@param opts? assesskit.CallOptions",
      "---@return integer|nil bytes written",
      "---@return assesskit.Error|nil err",
      "---@return assesskit.Response|nil response",
      "function reports:download_pdf(report_or_id, path, opts) end",
      "",
    }
  end
  api.client_methods = {
    { "---Every endpoint: `{name, api, method, path, url, summary, params}`.",
      "---@return assesskit.Endpoint[]",
      "function Client:endpoints() end" },
    { "---Call an endpoint by its catalogue name, with the catalogue's parameter names.",
      "---@param name string `\"tests.links\"` or `\"reports.get\"`",
      "---@param params? table",
      "---@param opts? assesskit.CallOptions",
      "---@return any|nil value",
      "---@return assesskit.Error|nil err",
      "---@return assesskit.Response|nil response",
      "function Client:call(name, params, opts) end" },
    { "---Run `fn(item, i)` for every item with up to `opts.concurrency` calls in flight; results in input order.",
      "---@param items any[]|fun(): any an array, or an iterator",
      "---@param fn fun(item: any, i: integer): any, any",
      "---@param opts? assesskit.MapOptions",
      "---@return assesskit.MapResult[]|{done: integer, failed: integer} results `{value =, err =}` per item in input order; with `on_result` or an iterator, a summary",
      "---@return any stopped the error that stopped the map early (`stop_on_error`, an iterator's failure), or nil",
      "function Client:map(items, fn, opts) end" },
    { "---The response of the last call.",
      "---@return assesskit.Response|nil",
      "function Client:last_response() end" },
    { "---Close the default transport (its connections).",
      "function Client:close() end" },
  }
  return api
end

-- ------------------------------------------------------------------------------------------
-- The shared classes and the small modules

local function errors_file()
  local w = writer()
  w.line("---@meta assesskit.errors")
  w.line("-- Generated by tools/annotations.lua; do not edit (make annotations).")
  w.line()
  local kinds = {}
  for k in pairs(errors.KINDS) do kinds[#kinds + 1] = k end
  table.sort(kinds)
  w.line("---What went wrong (`err.kind`).")
  local alias = {}
  for _, k in ipairs(kinds) do alias[#alias + 1] = '"' .. k .. '"' end
  w.line("---@alias assesskit.ErrorKind " .. table.concat(alias, "|"))
  w.line()
  w.line("---The one error object: every run-time failure is `nil, err` with `err` one of these.")
  w.line("---`tostring(err)` is one line; it never holds a token, secret, password or key.")
  w.line("---@class assesskit.Error")
  fields(w, M.ERROR_FIELDS)
  w.line()
  w.line("---One entry of `err.fields`.")
  w.line("---@class assesskit.FieldError")
  w.line("---@field field string")
  w.line("---@field message string")
  w.line()
  w.line("---A call's response (the third result of every call).")
  w.line("---@class assesskit.Response")
  fields(w, M.RESPONSE_FIELDS)
  w.line()
  w.line("---The paging of a list answer.")
  w.line("---@class assesskit.Paging")
  w.line("---@field total integer? the number of items (`X-Pagination-Total-Count`)")
  w.line("---@field page integer? this page (`X-Pagination-Current-Page`)")
  w.line("---@field page_count integer? the number of pages (`X-Pagination-Page-Count`)")
  w.line("---@field per_page integer? the page size (`X-Pagination-Per-Page`)")
  w.line("---@field next string? the next page's URL (`Link rel=next`)")
  w.line("---@field prev string? the previous page's URL (`Link rel=prev`)")
  w.line("---@field first string? the first page's URL (`Link rel=first`)")
  w.line("---@field last string? the last page's URL (`Link rel=last`)")
  w.line()
  w.line("---The per-call options of a resource method (its last argument).")
  w.line("---@class assesskit.CallOptions")
  fields(w, M.CALL_OPTIONS, true)
  w.line()
  w.line("---The options of `:each` on a list endpoint.")
  w.line("---@class assesskit.EachOptions: assesskit.CallOptions")
  fields(w, M.EACH_OPTIONS, true)
  w.line()
  w.line("---The options of `client:request(method, path, opts)`.")
  w.line("---@class assesskit.RequestOptions: assesskit.CallOptions")
  w.line("---@field body? table|string a table is sent as JSON, a string as is")
  w.line("---@field form? table sent as `application/x-www-form-urlencoded`")
  w.line("---@field auth? false send no credentials")
  w.line("---@field paged? boolean compute `response.paging`")
  w.line()
  w.line("---The options of `client:map(items, fn, opts)`.")
  w.line("---@class assesskit.MapOptions")
  fields(w, M.MAP_OPTIONS, true)
  w.line()
  w.line("---One item's result in `map`'s results.")
  w.line("---@class assesskit.MapResult")
  w.line("---@field value any what `fn` returned first")
  w.line("---@field err any what `fn` returned second, or the error it raised")
  w.line()
  w.line("---A journal for `map` (`assesskit.journal`), or a path to one.")
  w.line("---@class assesskit.Journal")
  w.line()
  w.line("---An endpoint, as `client:endpoints()` lists it.")
  w.line("---@class assesskit.Endpoint")
  w.line("---@field name string the catalogue name")
  w.line("---@field method string")
  w.line("---@field path string the template, with `{placeholders}`")
  w.line("---@field summary string the seed's one-line description")
  w.line("---@field params assesskit.Param[]")
  w.line("---@field api? string InterviewMocha: `\"v2\"` or `\"v3\"`")
  w.line("---@field url? string InterviewMocha: the path under the configured base URL")
  w.line()
  w.line("---A parameter of an endpoint.")
  w.line("---@class assesskit.Param")
  w.line("---@field name string")
  w.line('---@field in "path"|"query"|"body"|"file"')
  w.line("---@field required boolean")
  w.line("---@field type string a LuaLS type name (`\"any\"` when the documentation does not say)")
  w.line("---@field description string")
  w.line()
  w.line("---What the hooks `on_request` and `on_response` get (secrets masked).")
  w.line("---@class assesskit.HookInfo")
  w.line("---@field method string")
  w.line("---@field url string")
  w.line("---@field headers table<string, string>")
  w.line("---@field attempt integer")
  w.line("---@field status? integer on_response")
  w.line("---@field duration? number on_response, seconds")
  w.line("---@field error? assesskit.Error on_response, on a failure")
  w.line("---@field retrying? boolean on_response: another attempt follows")
  w.line()
  w.line("---A transport: anything with `request(req)` following the C core's session.")
  w.line("---@class assesskit.Transport")
  w.line("---@field request fun(self: assesskit.Transport, req: table): integer|nil, table|string, string|nil")
  w.line()
  w.line("---A token store shared by clients (`assesskit.ngx.token_cache`).")
  w.line("---@class assesskit.TokenStore")
  w.line("---@field get fun(self: assesskit.TokenStore, key: string): table|nil")
  w.line("---@field set fun(self: assesskit.TokenStore, key: string, entry: table): true|nil, string|nil")
  w.line("---@field lock fun(self: assesskit.TokenStore, key: string, timeout: number): (fun())|nil, string|nil")
  w.line()
  w.line("---The module `assesskit.errors`.")
  w.line("---@class assesskit.errors")
  w.line("local M = {}")
  w.line()
  w.line("---The error kinds, as a set.")
  w.line("---@type table<assesskit.ErrorKind, true>")
  w.line("M.KINDS = {}")
  w.line()
  w.line("---Whether a value is an assesskit error object.")
  w.line("---@param v any")
  w.line("---@return boolean")
  w.line("function M.is(v) end")
  w.line()
  w.line("return M")
  return w.text()
end

local function init_file()
  local w = writer()
  w.line("---@meta assesskit")
  w.line("-- Generated by tools/annotations.lua; do not edit (make annotations).")
  w.line()
  w.line("---The module `assesskit`: its version and the API clients, loaded on first use.")
  w.line("---@class assesskit")
  w.line("---@field _VERSION string the version of assesskit")
  w.line("---@field null lightuserdata the JSON null (`cjson.null`)")
  w.line("---@field talview assesskit.talview")
  w.line("---@field interviewmocha assesskit.interviewmocha")
  w.line("---@field jwt assesskit.jwt")
  w.line("---@field errors assesskit.errors")
  w.line("local M = {}")
  w.line()
  w.line("---The versions of the native libraries assesskit runs on.")
  w.line("---@return {curl: string, openssl: string, lua: string, http2: boolean, assesskit: string}")
  w.line("function M.versions() end")
  w.line()
  w.line("return M")
  return w.text()
end

local function jwt_file()
  local w = writer()
  w.line("---@meta assesskit.jwt")
  w.line("-- Generated by tools/annotations.lua; do not edit (make annotations).")
  w.line()
  w.line("---RS256 JSON Web Signatures over the C core's keys.")
  w.line("---@class assesskit.jwt")
  w.line("local M = {}")
  w.line()
  w.line("---Load an RSA key (PEM).")
  w.line("---@param pem string")
  w.line("---@param passphrase? string")
  w.line("---@return userdata|nil key")
  w.line("---@return string|nil err")
  w.line("function M.load_key(pem, passphrase) end")
  w.line()
  w.line("---Sign a JWS signing input; the base64url signature.")
  w.line("---@param signing_input string")
  w.line("---@param key userdata|string a key, or its PEM")
  w.line("---@param passphrase? string")
  w.line("---@return string|nil signature")
  w.line("---@return string|nil err")
  w.line("function M.sign(signing_input, key, passphrase) end")
  w.line()
  w.line("---A compact JWS of `claims` (header `{alg = \"RS256\", typ = \"JWT\"}` by default).")
  w.line("---@param claims table")
  w.line("---@param key userdata|string a key, or its PEM")
  w.line("---@param header? table")
  w.line("---@param passphrase? string")
  w.line("---@return string|nil jws")
  w.line("---@return string|nil err")
  w.line("function M.encode(claims, key, header, passphrase) end")
  w.line()
  w.line("return M")
  return w.text()
end

local function local_sandbox_file()
  local w = writer()
  w.line("---@meta assesskit.local_sandbox")
  w.line("-- Generated by tools/annotations.lua; do not edit (make annotations).")
  w.line()
  w.line("---A running local sandbox's credentials (`credentials.json` of its run directory).")
  w.line("---@class assesskit.local_sandbox.Credentials")
  w.line("---@field base_url string")
  w.line("---@field ca_file? string with `--tls`")
  w.line("---@field password table the demo recruiter (password grant)")
  w.line("---@field viewer table a user without privileged roles (password grant)")
  w.line("---@field jwt table the service account (JWT-bearer grant, the sandbox demo key)")
  w.line("---@field interviewmocha {api_key: string, v2_url: string, v3_url: string}")
  w.line("---@field dir string the run directory")
  w.line()
  w.line("---The credentials of a running local sandbox, as the clients' options.")
  w.line("---@class assesskit.local_sandbox")
  w.line("local M = {}")
  w.line()
  w.line("---The run directory: `$ASSESSKIT_SANDBOX_DIR`, else `assesskit-sandbox start`'s default.")
  w.line("---@param getenv? fun(name: string): string|nil")
  w.line("---@return string")
  w.line("function M.dir(getenv) end")
  w.line()
  w.line("---Read a running sandbox's credentials; nil and why when there is none or it is not running.")
  w.line("---@param dir? string the run directory (default `dir()`)")
  w.line("---@return assesskit.local_sandbox.Credentials|nil creds")
  w.line("---@return string|nil err")
  w.line("function M.credentials(dir) end")
  w.line()
  w.line("---The options of `assesskit.talview.new` for the sandbox.")
  w.line("---@param creds assesskit.local_sandbox.Credentials")
  w.line('---@param grant? "jwt"|"password"')
  w.line("---@return assesskit.talview.Options|nil opts")
  w.line("---@return string|nil err")
  w.line("function M.talview_options(creds, grant) end")
  w.line()
  w.line("---The options of `assesskit.interviewmocha.new` for the sandbox.")
  w.line("---@param creds assesskit.local_sandbox.Credentials")
  w.line("---@return assesskit.interviewmocha.Options")
  w.line("function M.interviewmocha_options(creds) end")
  w.line()
  w.line("return M")
  return w.text()
end

--- Every file, as path (under the output directory) -> text.
function M.files()
  return {
    ["assesskit/init.lua"] = init_file(),
    ["assesskit/errors.lua"] = errors_file(),
    ["assesskit/jwt.lua"] = jwt_file(),
    ["assesskit/local_sandbox.lua"] = local_sandbox_file(),
    ["assesskit/talview.lua"] = api_file(talview()),
    ["assesskit/interviewmocha.lua"] = api_file(interviewmocha()),
  }
end

-- run as a script: write the files
if arg and arg[0] and arg[0]:match("annotations%.lua$") then
  os.execute("mkdir -p '" .. out_dir .. "/assesskit'")
  local n = 0
  for path, text in pairs(M.files()) do
    local f = assert(io.open(out_dir .. "/" .. path, "w"))
    f:write(text)
    f:close()
    n = n + 1
  end
  io.stderr:write(("annotations: %d files in %s/\n"):format(n, out_dir))
end

return M
