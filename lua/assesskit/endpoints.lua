--- Endpoint binding: from a declarative catalogue to resource objects and methods.
--
-- The layer the API clients (`assesskit.talview`, `assesskit.interviewmocha`) share between
-- their catalogue and `assesskit.client`: it compiles a catalogue once (endpoints by name,
-- path templates split into literals and placeholder names, the tree of resources), builds
-- resource objects lazily from that tree, fills and checks path values, and builds the
-- errors, option checks and client options both clients make the same way. What each API
-- does with a call (envelopes, uploads, paging names, ids) stays in the API client, which
-- hands this module a few functions (a *binding*).
--
-- **Compiled catalogue.** `{list =, by_name =, tree =}`: `list` the endpoints in catalogue
-- order, `by_name` the same by name, `tree` the root node. An endpoint (`ep`) has `name`,
-- `method` (upper case), `path` (the template), `lits` and `names` (`"/a/{x}/b"` ->
-- `{"/a/", "/b"}` and `{"x"}`), `np` (the number of placeholders), `name_set`, `fn` (the
-- method), `entry` (its catalogue entry, for `describe`), plus the fields the binding's
-- `endpoint` function adds. A node has `path` (the
-- dotted name: `models.candidate`), `methods` (action -> function), `children` (name -> node),
-- `eps` (action -> endpoint) and `extra` (hand-written methods, if any).
--
-- **Resource objects** are `{[owner] = the API client, _node = node}` with a metatable whose
-- `__index` finds a method (cached in the object with `rawset`, so the next call is a plain
-- table read), a child resource (built and cached the same way), a hand-written method, or
-- raises naming the key; the API client object holds the compiled catalogue in `_compiled`.
--
-- Runs on Lua 5.4 and LuaJIT (inside nginx).
-- @internal assesskit.endpoints
-- @usage
-- local endpoints = require("assesskit.endpoints")
-- local binding = endpoints.binding{
--   name = "assesskit.example", caller = "example", owner = "_ex",
--   invoke = function(ex, ep, ...) return ex:run(ep, ...) end,
-- }
-- local compiled = binding:compile(catalogue)
-- local EX = {}
-- local ex = setmetatable({ _compiled = compiled }, { __index = binding:index(EX) })
-- ex.things:get(42) -- invoke(ex, <the things.get endpoint>, 42)
local type, tostring, pairs, ipairs, setmetatable, error, select, rawget, rawset, next =
  type, tostring, pairs, ipairs, setmetatable, error, select, rawget, rawset, next
local string_find, string_sub, string_gsub, string_format, string_upper, string_gmatch,
  string_match =
  string.find, string.sub, string.gsub, string.format, string.upper, string.gmatch,
  string.match
local table_concat = table.concat
local math_huge = math.huge

local client_mod = require("assesskit.client")
local options = require("assesskit.options")

local null = client_mod.null
local VERSION = require("assesskit")._VERSION

local M = {}

--- The options of an API client's `new` that go as they are to `assesskit.client.new`.
-- @table CLIENT_OPTIONS
M.CLIENT_OPTIONS = { "transport", "timeout", "connect_timeout", "max_retries", "ca_file",
  "ca_path", "proxy", "user_agent", "allow_http", "max_response_size", "on_request",
  "on_response", "retry_base_delay", "retry_max_delay", "max_retry_after", "headers",
  "sleep", "clock", "random", "max_rate" }
local CLIENT_OPTIONS = M.CLIENT_OPTIONS

-- ------------------------------------------------------------------------------------------
-- Small helpers

--- The set of a list's values.
-- @tparam[opt] table list an array
-- @treturn table `{[value] = true}` (empty when `list` is nil)
function M.set_of(list)
  local s = {}
  if list then
    for _, v in ipairs(list) do s[v] = true end
  end
  return s
end
local set_of = M.set_of

--- Split a path template into its literal parts and its placeholder names.
-- @tparam string path e.g. `"/a/{x}/b/{y}"`
-- @treturn table the literals, one more than the names: `{"/a/", "/b/", ""}`
-- @treturn table the names, in path order: `{"x", "y"}`
function M.split_template(path)
  local lits, names = {}, {}
  local pos = 1
  while true do
    local a, b, name = string_find(path, "{([%w_]+)}", pos)
    if not a then break end
    lits[#lits + 1] = string_sub(path, pos, a - 1)
    names[#names + 1] = name
    pos = b + 1
  end
  lits[#lits + 1] = string_sub(path, pos)
  return lits, names
end
local split_template = M.split_template

--- Raise an error message again without the `file:line:` position it was raised with, at
-- `level` above the caller (an error raised inside `assesskit.client` is reported where the
-- API client was called).
-- @param msg the error value (only a string loses its position)
-- @tparam number level as for `error`, counted from the caller of `reraise`
-- @raise always
function M.reraise(msg, level)
  if type(msg) == "string" then msg = string_gsub(msg, "^[^:]*:%d+: ", "") end
  error(msg, level + 1)
end

--- Check an option's type in an API client's `new`.
-- @tparam table opts the options
-- @tparam string name the option
-- @tparam string want the Lua type it must have when given
-- @tparam string where the function named in the error (`"assesskit.talview.new"`)
-- @return the option's value (nil when not given)
-- @raise `<where>: option '<name>' must be a <want>`, at the caller of `new`
function M.check_opt(opts, name, want, where)
  local v = opts[name]
  if v ~= nil and type(v) ~= want then
    error(where .. ": option '" .. name .. "' must be a " .. want, 3)
  end
  return v
end

--- The options of `assesskit.client.new` taken from an API client's options: every name in
-- `CLIENT_OPTIONS`, and `user_agent` defaulting to `assesskit/<version>`.
-- @tparam table opts the API client's options
-- @treturn table a fresh table, for the API client to complete (`base_url`, `auth`, hooks)
function M.client_options(opts)
  local copts = {}
  for _, k in ipairs(CLIENT_OPTIONS) do copts[k] = opts[k] end
  copts.user_agent = copts.user_agent or ("assesskit/" .. VERSION)
  return copts
end

local STORE_KINDS = "assesskit.store.new(), assesskit.ngx.token_cache.new{...}, assesskit.redis.new{...}"

--- The store rule, one place for both API clients: the rate budget of credential `key` is the
-- store's (`store:budget(key)`) when the store keeps budgets (nil: the client keeps its own),
-- and the client's `on_event` hook hears the store's events (`store:watch(on_event)`, when the
-- store has events: the Redis store's `redis_down` and `redis_up`). The store holds the hook
-- weakly: the API client keeps it (its `_on_event`), so that it lives as long as the client.
-- @tparam[opt] table store the client's `store` option
-- @tparam[opt] string key the credential's identity (never a secret)
-- @tparam[opt] function on_event the client's `on_event` option
-- @tparam string where the caller named in errors (`assesskit.talview.new`)
-- @tparam[opt] boolean need_budget the store is given for its budget alone (InterviewMocha's):
--   one without `budget` is refused rather than ignored
-- @treturn table|nil the budget
-- @raise (at the API client's caller) on a wrong `on_event`, a `store` that is not a store
--   object (a string, a store's module instead of a store made with its `new`) or, with
--   `need_budget`, one without a `budget` method
function M.store_budget(store, key, on_event, where, need_budget)
  if on_event ~= nil and type(on_event) ~= "function" then
    error(where .. ": on_event must be a function", 3)
  end
  if store == nil then return nil end
  if type(store) ~= "table" and type(store) ~= "userdata" then
    error(where .. ": store must be a store object", 3)
  end
  -- a module (a plain table with `new`) passed where one of its stores should be: its
  -- functions would run with the module as the store (a budget of its own, every call)
  if type(store) == "table" and getmetatable(store) == nil and type(rawget(store, "new")) == "function" then
    error(where .. ": store must be a store object, not a module (make one with its new: "
      .. STORE_KINDS .. ")", 3)
  end
  if need_budget and type(store.budget) ~= "function" then
    error(where .. ": store must have a budget method (a store object: " .. STORE_KINDS .. ")", 3)
  end
  if on_event and type(store.watch) == "function" then store:watch(on_event) end
  if type(store.budget) == "function" and key then return store:budget(key) end
  return nil
end

-- ------------------------------------------------------------------------------------------
-- Errors and path values

--- An error about an endpoint's call, before anything is sent (`sent = false`).
-- @tparam table cl the `assesskit.client` the endpoint is sent with (its `error` redacts the
--   authenticator's secrets)
-- @tparam table ep the endpoint
-- @tparam string kind the error's kind (`validation`, `io`, ...)
-- @tparam string message
-- @tparam[opt] table fields the error's `fields`
-- @treturn table the error object, with the endpoint's method and template URL
function M.endpoint_error(cl, ep, kind, message, fields)
  return cl:error({
    kind = kind, method = ep.method, url = cl.base_url .. ep.path,
    message = message, fields = fields, sent = false,
  })
end
local endpoint_error = M.endpoint_error

--- A `validation` error about one parameter of an endpoint's call:
-- message `<endpoint>: parameter '<field>' <message>`, `fields = {{field =, message =}}`.
-- @tparam table cl the `assesskit.client` the endpoint is sent with
-- @tparam table ep the endpoint
-- @tparam string field the parameter
-- @tparam string message what is wrong with it (`"is required"`)
-- @treturn table the error object
function M.validation(cl, ep, field, message)
  return endpoint_error(cl, ep, "validation",
    string_format("%s: parameter '%s' %s", ep.name, field, message),
    { { field = field, message = message } })
end
local validation = M.validation

--- Check one path value and give the text to put in the path.
-- `rule` says what the API accepts: `rule.string(v)` and `rule.number(v)` return the text
-- (percent-encoded as it must appear in the path) or nil and an optional message;
-- `rule.invalid` is the message otherwise (`"must be a positive integer"`). A missing value
-- (nil or `null`) is `is required`; another type is `<rule.invalid>, not a <type>`.
-- @tparam table cl the `assesskit.client` the endpoint is sent with
-- @tparam table ep the endpoint
-- @tparam string name the placeholder
-- @param v the value
-- @tparam table rule `{string =, number =, invalid =}`
-- @treturn string|nil the text
-- @treturn table|nil the `validation` error
function M.path_value(cl, ep, name, v, rule)
  local t = type(v)
  if t == "string" or t == "number" then
    local text, message = rule[t](v)
    if text then return text end
    return nil, validation(cl, ep, name, message or rule.invalid)
  elseif v == nil or v == null then
    return nil, validation(cl, ep, name, "is required")
  end
  return nil, validation(cl, ep, name, rule.invalid .. ", not a " .. t)
end
local path_value = M.path_value

local NO_VALUES = {} -- read only

-- The path with each placeholder's value: from `values` by name, or, when `values` is false,
-- the i-th of the varargs (no table built for them).
local function fill(cl, ep, rule, values, ...)
  local lits, names = ep.lits, ep.names
  local buf = { lits[1] }
  for i = 1, ep.np do
    local v
    if values then v = values[names[i]] else v = (select(i, ...)) end
    local text, err = path_value(cl, ep, names[i], v, rule)
    if not text then return nil, err end
    buf[#buf + 1] = text
    buf[#buf + 1] = lits[i + 1]
  end
  return table_concat(buf)
end

--- Fill an endpoint's path from positional values (in path order).
-- @tparam table cl the `assesskit.client` the endpoint is sent with
-- @tparam table ep the endpoint
-- @tparam table rule as for `path_value`
-- @param ... the values, one per placeholder
-- @treturn string|nil the path
-- @treturn table|nil the `validation` error
function M.fill_positional(cl, ep, rule, ...)
  if ep.np == 1 then -- the common case, without a table
    local v, err = path_value(cl, ep, ep.names[1], (...), rule)
    if not v then return nil, err end
    return ep.lits[1] .. v .. ep.lits[2]
  end
  return fill(cl, ep, rule, false, ...)
end

--- Fill an endpoint's path from values by placeholder name.
-- @tparam table cl the `assesskit.client` the endpoint is sent with
-- @tparam table ep the endpoint
-- @tparam table rule as for `path_value`
-- @tparam[opt] table values placeholder name -> value
-- @treturn string|nil the path
-- @treturn table|nil the `validation` error
function M.fill_named(cl, ep, rule, values)
  return fill(cl, ep, rule, values or NO_VALUES)
end

--- A call's parameters less the path values.
-- @tparam[opt] table params
-- @tparam table set the names to leave out (an endpoint's `name_set`)
-- @treturn table|nil a new table (nil when `params` is nil)
function M.without(params, set)
  if not params then return nil end
  local rest = {}
  for k, v in pairs(params) do
    if not set[k] then rest[k] = v end
  end
  return rest
end

--- Check the types of a call's `params` and `opts` (each a table or nil).
-- @tparam table ep the endpoint (named in the error)
-- @param params
-- @param opts
-- @tparam number level as for `error`, counted from the caller of `check_args`
-- @raise `<endpoint>: params must be a table` (or `opts`)
function M.check_args(ep, params, opts, level)
  if params ~= nil and type(params) ~= "table" then
    error(ep.name .. ": params must be a table", level + 1)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(ep.name .. ": opts must be a table", level + 1)
  end
end

--- The parameters of a catalogue entry, as `endpoints()` lists them (`params` of a row) and
-- the annotation files document them: its path placeholders (in path order), its `query`, then
-- its `body`; an upload's file field (`file_field`, a file path or the file's content) is
-- `in = "file"`.
-- @tparam table e the catalogue entry (`path`, `query`, `body`, `required`)
-- @tparam[opt] table docs the API's parameter documentation for this entry: name ->
--   `{type =, description =}` (`assesskit.talview.params[e.name]`)
-- @tparam string path_type the type of a path value (`"string|integer"`)
-- @tparam[opt] string file_field the upload's file field, for an upload endpoint
-- @treturn table array of `{name =, ["in"] = "path" | "query" | "body" | "file", required =,
--   type =, description =}`; `type` a LuaLS type name (`"any"` when nothing says),
--   `description` a string (`""` when the documentation has none)
function M.params(e, docs, path_type, file_field)
  docs = docs or {}
  local required = M.set_of(e.required)
  local out, seen_file = {}, false
  local function add(name, where, req, ty)
    local d = docs[name] or {}
    out[#out + 1] = { name = name, ["in"] = where, required = req,
      type = ty or d.type or "any", description = d.description or "" }
  end
  local _, names = split_template(e.path)
  for _, name in ipairs(names) do add(name, "path", true, path_type) end
  for _, name in ipairs(e.query or {}) do add(name, "query", required[name] == true) end
  for _, name in ipairs(e.body or {}) do
    if name == file_field then
      seen_file = true
      add(name, "file", required[name] == true, "string")
    else
      add(name, "body", required[name] == true)
    end
  end
  if file_field and not seen_file then add(file_field, "file", true, "string") end
  return out
end

-- ------------------------------------------------------------------------------------------
-- The parameters a call may send

-- At most this many undocumented names a rule with `filters` remembers as accepted (each name
-- is judged once; a caller inventing names without end costs a judgement each).
local MAX_FILTER_MEMO = 256

--- The parameter rule of one endpoint, built once (at compile time by a binding, or by the
-- command line for the endpoint it calls), for `refused_param`.
-- @tparam table names every parameter name the endpoint documents (an array)
-- @tparam[opt] boolean filters the endpoint also takes arbitrary attribute filters
-- @tparam[opt] table option_names the per-call option names of the API (an array), for the
--   suggestions and the typos among filters
-- @tparam[opt] table suggest the names a suggestion is taken from (an array; default: `names`),
--   when some documented names are only accepted (InterviewMocha's methods name `report_type`,
--   not `reportType`)
-- @treturn table the rule: `{names =, set =, filters =, options =, suggest =}`
function M.param_rule(names, filters, option_names, suggest)
  local rule = { names = names, set = set_of(names), filters = filters == true,
    options = option_names, suggest = suggest or names }
  if rule.filters then rule.memo, rule.memo_n = {}, 0 end
  return rule
end

-- The nearest name of `names` to `key` (whether close enough or not) and its distance.
local function closest(key, names)
  if not names or names[1] == nil then return nil, math_huge end
  local _, ranked, dist = options.nearest(key, names)
  return ranked[1], dist[ranked[1]]
end

-- The documented name or the option nearest to `key` when one is close enough (an option only
-- when strictly closer: `timout` -> the option `timeout`, `emial` -> `email`), and whether it
-- is an option.
local function nearest_meant(rule, key, option_names)
  local doc = options.nearest(key, rule.suggest)
  local opt = option_names and options.nearest(key, option_names)
  if opt and (not doc or options.distance(key, opt) < options.distance(key, doc)) then
    return opt, true
  end
  return doc, false
end

-- Whether an undocumented name given to an endpoint that takes filters looks like a typo of a
-- documented name or an option rather than a filter: the same name but for case, `-` and `_`
-- (`pagesize`, `page_size`), or one edit away from one when it has 4 characters or more
-- (`concurency`, `emial`, `timout`). Filters are names of the records' attributes; the
-- seed's own links (`candidate_id`, `event_id`, `startsAt`, `role`) are none of these.
local function looks_like_typo(rule, key)
  local _, d = closest(key, rule.names)
  local _, od = closest(key, rule.options)
  if od < d then d = od end
  return d == 0 or (d == 1 and #key >= 4)
end

--- The parameter rule, one place for both API clients and the command line: the first
-- parameter of a call that its endpoint does not take, or nil when it takes them all.
--
-- An endpoint takes the names its catalogue documents (`rule.set`). A name it does not
-- document is refused, unless the endpoint takes arbitrary filters (`filters = true` in the
-- catalogue: Yii2 list endpoints filter on any attribute of their records, as the links in
-- the seed's own answers do, `/models/candidate-calendar?candidate_id=`): there an
-- undocumented name is a filter, sent as given, except when it looks like a typo of a
-- documented name or of a per-call option (`pagesize`, `page_size` for `pageSize`;
-- `concurency` for `concurrency`; `emial` for `email`). A key that is not a string is always
-- refused. The cost is a set lookup per parameter; an endpoint with filters judges each
-- undocumented name once (remembered, up to 256 names).
-- @tparam table rule the endpoint's rule (`param_rule`)
-- @tparam[opt] table params the call's parameters
-- @tparam[opt] table option_names the options the caller takes (an array), for the
--   suggestion (default: the rule's)
-- @treturn nil|string the refused name (nil: every parameter is taken)
-- @treturn string|nil the documented name or option nearest to it, when one is close
-- @treturn boolean whether that nearest name is an option
function M.refused_param(rule, params, option_names)
  if not params then return nil end
  local known, memo = rule.set, rule.memo
  for k in pairs(params) do
    if not known[k] and not (memo and memo[k]) then
      if type(k) ~= "string" then return tostring(k), nil, false end
      if not rule.filters or looks_like_typo(rule, k) then
        local best, is_option = nearest_meant(rule, k, option_names or rule.options)
        return k, best, is_option
      end
      if rule.memo_n < MAX_FILTER_MEMO then
        memo[k] = true
        rule.memo_n = rule.memo_n + 1
      end
    end
  end
  return nil
end

--- The message of a refused parameter (for `error`):
-- `<where>: undocumented parameter 'timout' (did you mean the option 'timeout'? options go
-- in opts, after params); opts.raw_params = true sends it as given`.
-- @tparam string where the call named in the message (`models.candidate.get`)
-- @tparam string name the refused name
-- @tparam[opt] string near the nearest documented name or option
-- @tparam[opt] boolean is_option whether `near` is an option
-- @tparam[opt] table rule the endpoint's rule (whether it takes filters is said)
-- @treturn string
function M.refused_message(where, name, near, is_option, rule)
  local hint = ""
  if near and is_option then
    hint = " (did you mean the option '" .. near .. "'? options go in opts, after params)"
  elseif near then
    hint = " (did you mean '" .. near .. "'?)"
  end
  local what = (rule and rule.filters) and "parameter '%s' looks like a typo, not a filter"
    or "undocumented parameter '%s'"
  return string_format("%s: " .. what .. "%s; opts.raw_params = true sends it as given", where,
    name, hint)
end

-- ------------------------------------------------------------------------------------------
-- Bindings

local Binding = {}
Binding.__index = Binding

-- A resource method called with a dot (`tv.models.candidate.get(42)`): say to use a colon,
-- at the caller's line (`level` counted from the caller of `dot_error`).
local function dot_error(module, dotted, level)
  local res, action = string_match(dotted, "^(.*)%.([^.]+)$")
  error(string_format("%s: %s called with a dot: use a colon, %s:%s(...)", module, dotted,
    res, action), level + 1)
end

--- Guard an API client's own methods (`call`, `endpoints`, `map`, ...) against a call with a
-- dot (`tv.call("models.candidate.get", ...)`, which passes the name as `self`): each method of
-- `methods` is replaced, in place, by one that raises
-- `<module>: <var>.<name> called with a dot: use a colon, <var>:<name>(...)` at the caller's
-- line unless `self` is a client, and otherwise tail-calls the method (so the levels of the
-- method's own errors are unchanged).
-- @tparam table methods name -> function(self, ...), the client's methods
-- @tparam function is_client `function(v) -> boolean`: whether `v` is a client object
-- @tparam string module the module named in the error (`"assesskit.talview"`)
-- @tparam string var the usual name of a client in the error (`"tv"`)
function M.guard_methods(methods, is_client, module, var)
  for name, fn in pairs(methods) do
    local msg = string_format("%s: %s.%s called with a dot: use a colon, %s:%s(...)", module,
      var, name, var, name)
    methods[name] = function(self, ...)
      if not is_client(self) then error(msg, 2) end
      return fn(self, ...)
    end
  end
end

-- " (did you mean '<name>'?)" for the name of `sets` (tables whose keys are names) nearest to
-- `key`, or "" when none is close.
local function did_you_mean(key, ...)
  local names = {}
  for i = 1, select("#", ...) do
    local set = select(i, ...)
    if set then for k in pairs(set) do if type(k) == "string" then names[k] = true end end end
  end
  local near = next(names) ~= nil and options.nearest(key, names)
  return near and (" (did you mean '" .. near .. "'?)") or ""
end

local function new_node(path)
  return { path = path, methods = {}, children = {}, eps = {} }
end

-- The metatable of a binding's resource objects.
local function node_metatable(b)
  local owner, name, missing = b.owner, b.name, b.missing
  local mt = {}
  mt.__index = function(self, key)
    local node = rawget(self, "_node")
    local fn = node.methods[key]
    if fn then
      rawset(self, key, fn)
      return fn
    end
    local child = node.children[key]
    if child then
      local obj = setmetatable({ [owner] = rawget(self, owner), _node = child }, mt)
      rawset(self, key, obj)
      return obj
    end
    local extra = node.extra
    if extra and extra[key] then return extra[key] end
    if type(key) == "string" and string_sub(key, 1, 2) ~= "__" then
      error(name .. ": " .. missing .. " '" .. key .. "' in " .. node.path
        .. did_you_mean(key, node.methods, node.children, extra), 2)
    end
    return nil
  end
  mt.__tostring = function(self)
    return name .. " resource " .. rawget(self, "_node").path
  end
  return mt
end

--- Make a binding: how one API client turns its catalogue into methods.
-- @tparam table def
-- @tparam string def.name the module, prefix of errors and of resources' `tostring`
--   (`"assesskit.talview"`)
-- @tparam string def.caller prefix of `lookup`'s errors (`"talview"` -> `talview:call: ...`)
-- @tparam string def.owner the field of a resource object holding the API client (`"_tv"`)
-- @tparam function def.invoke `function(owner, ep, ...)`: a resource method's call; the
--   method tail-calls it, so level 2 inside `invoke` is the user's call (`error(msg, 2)`,
--   `check_args(ep, params, opts, 2)`); the same holds for the functions `more` returns
-- @tparam[opt="no resource or action"] string def.missing what a resource object lacks, in
--   the error for an unknown key
-- @tparam[opt] function def.check `function(cat) -> message | nil`: the catalogue's shape
--   (default: it must have an `endpoints` array)
-- @tparam[opt] function def.endpoint `function(e, cat) -> ep | nil, message`: the API's own
--   fields of an endpoint, from the catalogue entry `e` (the binding adds the common ones)
-- @tparam[opt] function def.more `function(ep, action) -> {name = function(owner, ep, ...)}`:
--   more methods beside an action on its resource (e.g. `each` beside a paged `list`)
-- @tparam[opt] table def.extras node path -> table of hand-written methods on that resource
-- @tparam[opt] function def.describe `function(owner, ep, row)`: adds the API's own fields to
--   an endpoint's row in `endpoints`
-- @tparam[opt] function def.documented `function(e, ep) -> names | nil`: the parameter names
--   the endpoint documents (every name a call may give: placeholders, query, body and the
--   API's own), or nil when its catalogue entry does not document them (then it takes any);
--   the compiled endpoint's `param_rule` (see `param_rule`, `refused_param`)
-- @tparam[opt] table def.options every per-call option name of the API (an array): a
--   parameter that is a near miss of one is a typo even where filters are taken
-- @treturn table the binding
function M.binding(def)
  if type(def) ~= "table" or type(def.name) ~= "string" or type(def.owner) ~= "string"
    or type(def.caller) ~= "string" or type(def.invoke) ~= "function" then
    error("assesskit.endpoints.binding: name, caller, owner and invoke are required", 2)
  end
  local b = setmetatable({
    name = def.name, caller = def.caller, owner = def.owner, invoke = def.invoke,
    missing = def.missing or "no resource or action", check = def.check,
    endpoint = def.endpoint, more = def.more, extras = def.extras or {}, describe = def.describe,
    documented = def.documented, options = def.options,
    cache = setmetatable({}, { __mode = "k" }),
  }, Binding)
  b.node_mt = node_metatable(b)
  return b
end

--- Compile a catalogue (once per catalogue table; later calls return the same table).
-- @tparam table cat the catalogue (`{endpoints = {...}, ...}`)
-- @treturn table the compiled catalogue `{list =, by_name =, tree =}`
-- @raise on a malformed catalogue, at the caller of the API client's `new`
function Binding:compile(cat)
  local c = self.cache[cat]
  if c then return c end
  local name, owner, invoke, more = self.name, self.owner, self.invoke, self.more
  local bad
  if self.check then
    bad = self.check(cat)
  elseif type(cat) ~= "table" or type(cat.endpoints) ~= "table" then
    bad = "catalogue must have an endpoints array"
  end
  if bad then error(name .. ": " .. bad, 3) end
  c = { list = {}, by_name = {}, tree = new_node("") }
  for i, e in ipairs(cat.endpoints) do
    local ep = {}
    if self.endpoint then
      ep, bad = self.endpoint(e, cat)
      if not ep then error(name .. ": " .. bad, 3) end
    end
    local lits, names = split_template(e.path)
    ep.name, ep.method, ep.path, ep.entry = e.name, string_upper(e.method), e.path, e
    ep.lits, ep.names, ep.np, ep.name_set = lits, names, #names, set_of(names)
    local doc = self.documented and self.documented(e, ep)
    if doc then -- the parameters it takes (refused_param), decided once here
      ep.param_rule = M.param_rule(doc, e.filters, self.options)
    end
    if c.by_name[ep.name] then
      error(name .. ": duplicate catalogue name " .. ep.name, 3)
    end
    c.list[i] = ep
    c.by_name[ep.name] = ep
    local call_name = ep.name
    ep.fn = function(obj, ...)
      local o = type(obj) == "table" and rawget(obj, owner)
      if not o then dot_error(name, call_name, 2) end
      return invoke(o, ep, ...)
    end
    -- place it in the tree
    local node = c.tree
    local parts = {}
    for part in string_gmatch(ep.name, "[^.]+") do parts[#parts + 1] = part end
    for k = 1, #parts - 1 do
      local child = node.children[parts[k]]
      if not child then
        if node.methods[parts[k]] then error(name .. ": catalogue name clash at " .. ep.name, 3) end
        child = new_node(node.path == "" and parts[k] or (node.path .. "." .. parts[k]))
        child.extra = self.extras[child.path]
        node.children[parts[k]] = child
      end
      node = child
    end
    local action = parts[#parts]
    if node.methods[action] or node.children[action] then
      error(name .. ": catalogue name clash at " .. ep.name, 3)
    end
    node.methods[action] = ep.fn
    node.eps[action] = ep
    local extra = more and more(ep, action)
    if extra then
      for k, f in pairs(extra) do
        if node.methods[k] or node.children[k] then
          error(name .. ": catalogue name clash at " .. ep.name .. " (its " .. k .. ")", 3)
        end
        local more_name = string_gsub(ep.name, "[^.]+$", k)
        node.methods[k] = function(obj, ...)
          local o = type(obj) == "table" and rawget(obj, owner)
          if not o then dot_error(name, more_name, 2) end
          return f(o, ep, ...)
        end
      end
    end
  end
  self.cache[cat] = c
  return c
end

--- The `__index` function of the API client objects: the client's methods first, then the
-- top-level resources of its compiled catalogue (`_compiled`), built on first use and cached
-- in the object; any other key is absent (nil).
-- @tparam table methods the API client's methods
-- @treturn function
function Binding:index(methods)
  local owner, mt = self.owner, self.node_mt
  return function(obj, key)
    local m = methods[key]
    if m ~= nil then return m end
    local child = rawget(obj, "_compiled").tree.children[key]
    if child then
      local r = setmetatable({ [owner] = obj, _node = child }, mt)
      rawset(obj, key, r)
      return r
    end
    return nil
  end
end

--- The endpoint a `call(name, params, ...)` names.
-- @tparam table obj the API client object
-- @param name the catalogue name
-- @param params the call's parameters (checked to be a table or nil)
-- @treturn table the endpoint
-- @raise `<caller>:call: unknown endpoint <name>` (with the nearest name, when one is close)
--   or `<caller>:call: params must be a table`,
--   at the caller of `call`
function Binding:lookup(obj, name, params)
  local by_name = obj._compiled.by_name
  local ep = type(name) == "string" and by_name[name]
  if not ep then
    error(self.caller .. ":call: unknown endpoint " .. tostring(name)
      .. (type(name) == "string" and did_you_mean(name, by_name) or ""), 3)
  end
  if params ~= nil and type(params) ~= "table" then
    error(self.caller .. ":call: params must be a table", 3)
  end
  return ep
end

--- Every endpoint of an API client, as `{name =, method =, path =}` in catalogue order, with
-- the fields the binding's `describe` adds.
-- @tparam table obj the API client object
-- @treturn table array
function Binding:endpoints(obj)
  local describe = self.describe
  local out = {}
  for i, ep in ipairs(obj._compiled.list) do
    local row = { name = ep.name, method = ep.method, path = ep.path }
    if describe then describe(obj, ep, row) end
    out[i] = row
  end
  return out
end

return M
