--- The `assesskit` command line.
--
-- `bin/assesskit` calls `main(arg)` and exits with its result. Everything the command line
-- touches outside Lua (environment, standard streams, terminal detection) goes through the
-- `sys` table, so the specs can drive it as a subprocess and the code stays testable.
--
-- Exit status: 0 success, 1 API or network error, 2 usage or configuration error (also a
-- parameter the client refuses before sending anything). Errors are one line on standard
-- error, never with a secret in them. The user guide is docs/cli.md.
-- @internal assesskit.cli
-- @usage os.exit(require("assesskit.cli").main(arg))
local type, pairs, ipairs, tostring, tonumber, error, pcall, require, setmetatable,
  getmetatable =
  type, pairs, ipairs, tostring, tonumber, error, pcall, require, setmetatable,
  getmetatable
local string_format, string_lower, string_find, string_gsub, string_match, string_rep =
  string.format, string.lower, string.find, string.gsub, string.match, string.rep
local table_concat, table_remove, table_sort = table.concat, table.remove, table.sort

local args_mod = require("assesskit.cli.args")
local config = require("assesskit.cli.config")
local output = require("assesskit.cli.output")
local help = require("assesskit.cli.help")
local options = require("assesskit.options")

local M = {}

--- Exit status: success.
M.OK = 0
--- Exit status: an API or network error.
M.FAILED = 1
--- Exit status: a usage or configuration error.
M.USAGE = 2

local VERSION = require("assesskit")._VERSION -- the one version constant

-- A usage error travels as a table raised with error(); anything else raised is a bug.
local Usage = {}
Usage.__index = Usage
Usage.__tostring = function(self) return self.message end

local function usage(message)
  error(setmetatable({ message = message }, Usage), 0)
end

local function is_usage(v)
  return type(v) == "table" and getmetatable(v) == Usage
end

-- A raised error's message without its `file:line:` position.
local function bare(msg)
  return (string_gsub(tostring(msg), "^[^:]*:%d+: ", ""))
end

-- Runs fn: a usage error passes through, anything else raised becomes a usage error
-- (`prefix` and the message); otherwise fn's result.
local function guarded(fn, prefix)
  local ok, status = pcall(fn)
  if not ok then
    if is_usage(status) then error(status, 0) end
    usage((prefix or "") .. bare(status))
  end
  return status
end

-- Options every command accepts (also before the command).
local GLOBAL_FLAGS = {
  help = "help", ["dry-run"] = "dry_run", pretty = "pretty", compact = "compact",
  version = "version",
}
local GLOBAL_OPTIONS = { timeout = "timeout" }

local function spec_with(extra_flags, extra_options, more)
  local s = { flags = {}, options = {} }
  for k, v in pairs(GLOBAL_FLAGS) do s.flags[k] = v end
  for k, v in pairs(GLOBAL_OPTIONS) do s.options[k] = v end
  for k, v in pairs(extra_flags or {}) do s.flags[k] = v end
  for k, v in pairs(extra_options or {}) do s.options[k] = v end
  for k, v in pairs(more or {}) do s[k] = v end
  return s
end

local function parse(argv, spec, globals)
  local r, err = args_mod.parse(argv, spec)
  if not r then usage(err) end
  for k, v in pairs(globals) do
    if r[k] == nil then r[k] = v end
  end
  if r.pretty and r.compact then usage("--pretty and --compact exclude each other") end
  if r.timeout ~= nil then
    local t = tonumber(r.timeout)
    if not t or t <= 0 then usage("--timeout wants a number of seconds > 0") end
    r.timeout = t
  end
  return r
end

-- == The run context: streams, flags, printing ==

local Ctx = {}
Ctx.__index = Ctx

-- Every secret in a text masked: the configured ones, and what the clients made by this run
-- know (a token fetched meanwhile). Everything the command prints goes through it.
function Ctx:redact(s)
  s = tostring(s)
  if self._cfg then s = require("assesskit.errors").redact(s, config.secrets(self._cfg)) end
  for _, c in ipairs(self.clients) do s = c:redact(s) end
  return s
end

function Ctx:out(s)
  self.sys.stdout:write(self:redact(s))
end

-- One line on standard error, prefixed, with every secret masked (whatever the message's
-- origin).
function Ctx:err_line(s)
  local line = string_gsub(self:redact(s), "[\r\n]+", " ")
  self.sys.stderr:write("assesskit: ", line, "\n")
end

function Ctx:pretty()
  if self.flags.pretty then return true end
  if self.flags.compact then return false end
  if self._tty_out == nil then self._tty_out = self.sys.isatty(1) end
  return self._tty_out
end

function Ctx:stderr_tty()
  if self._tty_err == nil then self._tty_err = self.sys.isatty(2) end
  return self._tty_err
end

function Ctx:print_json(v, list)
  self:out(output.json(v, { pretty = self:pretty(), list = list }) .. "\n")
end

-- Print a call's value: JSON for tables and scalars, nothing for `true` (204/empty), the raw
-- body for a string (a non-JSON answer).
function Ctx:print_value(v, list)
  if v == true then return end
  if type(v) == "string" then
    if string_find(v, "%z") and self.sys.isatty(1) then
      usage(string_format("the answer is binary (%d bytes): use --save FILE", #v))
    end
    self:out(v)
    if v ~= "" and not string_find(v, "\n$") and self:pretty() then self:out("\n") end
    return
  end
  self:print_json(v, list)
end

function Ctx:config()
  if not self._cfg then
    local cfg, err = config.load({
      getenv = self.sys.getenv,
      warn = function(msg) self:err_line("warning: " .. msg) end,
    })
    if not cfg then usage(err) end
    self._cfg = cfg
  end
  return self._cfg
end

-- The API error of a call: one line, and the exit status for its kind.
function Ctx:fail(err)
  self:err_line(tostring(err))
  if type(err) == "table" and err.kind == "validation" then return M.USAGE end
  return M.FAILED
end

-- == endpoints ==

local function load_catalogue()
  return require("assesskit.talview.catalogue")
end

local function cmd_endpoints(ctx, argv)
  local r = parse(argv, spec_with({ json = "json" }, nil, { max_positional = 1 }), ctx.flags)
  if r.help then ctx:out(help.endpoints) return M.OK end
  local filter = r.positional[1] and string_lower(r.positional[1])
  local rows, width_name, width_method = {}, 0, 0
  for _, e in ipairs(load_catalogue().endpoints) do
    if not filter or string_find(string_lower(e.name), filter, 1, true)
      or string_find(string_lower(e.path), filter, 1, true) then
      rows[#rows + 1] = e
      if #e.name > width_name then width_name = #e.name end
      if #e.method > width_method then width_method = #e.method end
    end
  end
  if #rows == 0 then
    ctx:err_line("no endpoint matches '" .. r.positional[1] .. "'")
    return M.OK
  end
  for _, e in ipairs(rows) do
    if r.json then
      ctx:out(output.json({ name = e.name, method = e.method, path = e.path }) .. "\n")
    else
      ctx:out(e.name .. string_rep(" ", width_name - #e.name + 2) .. e.method
        .. string_rep(" ", width_method - #e.method + 2) .. e.path .. "\n")
    end
  end
  return M.OK
end

-- == talview ==

local function find_endpoint(name)
  for _, e in ipairs(load_catalogue().endpoints) do
    if e.name == name then return e end
  end
  return nil
end

-- Up to three catalogue names close to `name`, ranked by edit distance (`actions.invit` ->
-- `actions.invite`).
local function suggestions(name)
  local names = {}
  for i, e in ipairs(load_catalogue().endpoints) do names[i] = e.name end
  local best, ranked, dist = options.nearest(name, names)
  local out = {}
  if best then
    for _, n in ipairs(ranked) do
      if #out < 3 and dist[n] <= dist[best] + 1 then out[#out + 1] = n end
    end
  end
  return out
end

-- The arguments `talview` takes: its flags and options, and any --PARAM VALUE.
local function talview_spec()
  return spec_with({ all = "all", ["raw-param"] = "raw_param", ["retry-failed"] = "retry_failed" },
    { save = "save", each = "each", parallel = "parallel", journal = "journal", key = "key" },
    { params = true })
end

-- The parameter rule of an endpoint (`assesskit.endpoints.param_rule`, built once per run):
-- the names `assesskit.talview.documented_params` gives, the filters its catalogue entry
-- takes, and the command's own flags and options (a near miss of one is a typo).
local rules = setmetatable({}, { __mode = "k" })
local function param_rule(e, spec)
  local rule = rules[e]
  if rule then return rule end
  local names = {}
  for _, t in ipairs({ spec.flags, spec.options }) do
    for k in pairs(t) do names[#names + 1] = k end
  end
  table_sort(names)
  local endpoints = require("assesskit.endpoints")
  rule = endpoints.param_rule(require("assesskit.talview").documented_params(e), e.filters, names)
  rules[e] = rule
  return rule
end

-- An undocumented parameter is refused, with the documented name nearest to it, unless
-- --raw-param says it is meant: the library's rule (`assesskit.endpoints.refused_param`).
-- The nearest name may be one of the command's own options (`--timout 3`: --timeout).
local function check_params(e, params, spec)
  local bad, near = require("assesskit.endpoints").refused_param(param_rule(e, spec), params)
  if bad then
    usage(string_format("talview %s: %s is not a documented parameter%s; --raw-param sends"
      .. " it as given", e.name, "--" .. bad, near and (" (did you mean --" .. near .. "?)") or ""))
  end
end

local function endpoint_help(e)
  local lines = {
    "Usage: assesskit talview " .. e.name .. " [--PARAM VALUE ...]",
    "",
    (e.summary or e.name) .. ": " .. e.method .. " " .. e.path,
  }
  local placeholders = {}
  for p in string.gmatch(e.path, "{([%w_]+)}") do placeholders[#placeholders + 1] = "--" .. p end
  if #placeholders > 0 then
    lines[#lines + 1] = "Path parameters (required): " .. table_concat(placeholders, " ")
  end
  local req = {}
  for _, p in ipairs(e.required or {}) do req[p] = true end
  local function list(title, names)
    if not names or #names == 0 then return end
    local items = {}
    for i, p in ipairs(names) do items[i] = "--" .. p .. (req[p] and " (required)" or "") end
    lines[#lines + 1] = title .. ": " .. table_concat(items, " ")
  end
  list("Query parameters", e.query)
  list("Body fields", e.body)
  if e.paged then lines[#lines + 1] = "Paged: --page N --pageSize N, or --all for every page" end
  if e.roles then lines[#lines + 1] = "Roles: " .. table_concat(e.roles, ", ") end
  if e.upload then
    lines[#lines + 1] = "Upload: --" .. (e.file_field or "file") .. " PATH (" .. e.upload .. ")"
  end
  lines[#lines + 1] = "See `assesskit talview --help` for the options."
  return table_concat(lines, "\n") .. "\n"
end

local function read_stdin_params(ctx)
  local src = ctx.sys.stdin:read("a")
  if not src or string_match(src, "^%s*$") then
    usage("standard input is empty (expected a JSON object of parameters)")
  end
  local ok, v = pcall(require("cjson").decode, src)
  if not ok or type(v) ~= "table" or (v[1] ~= nil) then
    usage("standard input is not a JSON object of parameters")
  end
  return v
end

-- An API client (`a.module`) from `a.opts` and the connection options of `a.settings` (the
-- config's, and --timeout): under --dry-run on a recording transport that
-- answers `a.answer`, with stand-in credentials (`a.stand_in`, never sent or shown) as option
-- `a.key`; otherwise with the configured credentials `a.value` (`a.missing` without them).
local function api_client(ctx, a)
  local opts = a.opts
  for k in pairs(config.CONNECTION) do -- the connection options of the config, typed
    if a.settings[k] ~= nil then opts[k] = a.settings[k] end
  end
  if ctx.flags.timeout then opts.timeout = ctx.flags.timeout end
  if ctx.flags.dry_run then
    ctx.recorder = require("assesskit.cli.dryrun").transport({ body = a.answer })
    opts.transport = ctx.recorder
    opts[a.key] = a.stand_in
  else
    if not a.value then usage(a.missing) end
    opts[a.key] = a.value
  end
  local ok, c = pcall(require(a.module).new, opts)
  if not ok then usage("configuration: " .. bare(c)) end
  ctx.clients[#ctx.clients + 1] = c
  return c
end

local function talview_client(ctx, list_answer)
  local t = ctx:config().talview
  return api_client(ctx, {
    module = "assesskit.talview",
    opts = { base_url = t.base_url, token_url = t.token_url }, settings = t,
    key = "auth", value = t.auth,
    stand_in = { access_token = "dry-run" }, -- the curl command shows Bearer ***
    answer = list_answer and "[]" or "{}",
    missing = "no Talview credentials configured (see `assesskit help config`)",
  })
end

-- `settings`: the API's configuration (its `ca_file`, `ca_path` and `proxy` go into the
-- curl command, the proxy's userinfo masked).
local function print_dry_run(ctx, settings, save)
  local dryrun = require("assesskit.cli.dryrun")
  for _, req in ipairs(ctx.recorder.requests) do
    ctx:out(dryrun.curl(req, { ca_file = settings.ca_file, ca_path = settings.ca_path,
      proxy = settings.proxy, output = save }) .. "\n")
  end
end

-- Resource object of a catalogue name: tv.models.candidate for models.candidate.list.
local function resource_of(tv, name)
  local obj = tv
  local parts = {}
  for part in string.gmatch(name, "[^.]+") do parts[#parts + 1] = part end
  for i = 1, #parts - 1 do obj = obj[parts[i]] end
  return obj
end

local function talview_all(ctx, tv, e, params, opts)
  local obj = resource_of(tv, e.name)
  local bar = (not ctx.flags.dry_run and ctx:stderr_tty())
    and output.progress({ stream = ctx.sys.stderr, label = "items" }) or nil
  local count = 0
  for items, err, res in obj:pages(params, opts) do
    if not items then
      if bar then bar:finish() end
      if ctx.flags.dry_run and #ctx.recorder.requests > 0 then break end
      return ctx:fail(err)
    end
    for _, item in ipairs(items) do
      ctx:out(output.json(item) .. "\n")
      count = count + 1
    end
    if bar then bar:update(count, res and res.paging and res.paging.total) end
  end
  if bar then bar:finish() end
  if ctx.flags.dry_run then print_dry_run(ctx, ctx:config().talview) end
  return M.OK
end

-- Whether FILE can be written, checked before anything is fetched (--pdf, --save): its
-- directory must exist and take a new file (`assesskit.client.check_target`, the library's
-- check). Returns nil and a message when it cannot.
local function writable_target(file)
  local ok, why = require("assesskit.client").check_target(file)
  if ok then return true end
  local dir = string_match(file, "^(.*)/[^/]*$")
  if dir == "" then dir = "/" end
  return nil, why .. " (the directory " .. (dir or ".") .. " must exist and be writable)"
end

-- --each FILE|- --parallel N: one call per input line (assesskit.cli.each).
local function talview_each(ctx, e, r, params, list)
  if r.all then usage("talview: --each and --all exclude each other") end
  if r.save then usage("talview: --each and --save exclude each other") end
  if r.stdin and r.each == "-" then
    usage("talview: --each - reads the calls from standard input; parameters for all of them"
      .. " go on the command line")
  end
  local parallel = tonumber(r.parallel or 8)
  if not parallel or parallel ~= math.floor(parallel) or parallel < 1 or parallel > 256 then
    usage("talview: --parallel wants a whole number from 1 to 256")
  end
  if r.dry_run then parallel = 1 end -- the requests print in the lines' order
  if r.journal and r.dry_run then usage("talview: --journal and --dry-run exclude each other") end
  if r.key and not r.journal then usage("talview: --key goes with --journal") end
  if r.retry_failed and not r.journal then usage("talview: --retry-failed goes with --journal") end
  if r.journal == "" or r.key == "" then usage("talview: --journal and --key want a value") end
  local tv = talview_client(ctx, list)
  return guarded(function()
    local failed, why = require("assesskit.cli.each").run(ctx, {
      tv = tv, name = e.name, defaults = params, source = r.each, parallel = parallel,
      check = not r.raw_param and function(p) check_params(e, p, talview_spec()) end or nil,
      raw_params = r.raw_param,
      decorate = e.name:find("^actions%.") and output.with_status_name or nil,
      dry_run = r.dry_run, journal = r.journal, key = r.key, retry_failed = r.retry_failed,
    })
    if not failed then ctx:err_line(why) return M.USAGE end
    if r.dry_run then print_dry_run(ctx, ctx:config().talview) end
    return failed > 0 and M.FAILED or M.OK
  end, "talview " .. e.name .. ": ")
end

local function cmd_talview(ctx, argv)
  local r = parse(argv, talview_spec(), ctx.flags)
  local name = r.positional[1]
  if not name then
    if r.help then ctx:out(help.talview) return M.OK end
    usage("talview: which endpoint? (`assesskit endpoints` lists them)")
  end
  if r.positional[2] then usage("talview: unexpected argument '" .. r.positional[2] .. "'") end
  local e = find_endpoint(name)
  if not e then
    local s = suggestions(name)
    usage("talview: unknown endpoint '" .. name .. "'"
      .. (#s > 0 and (" (did you mean " .. table_concat(s, ", ") .. "?)") or " (see `assesskit endpoints`)"))
  end
  if r.help then ctx:out(endpoint_help(e)) return M.OK end
  ctx.flags = r
  local params = {}
  if r.stdin then params = read_stdin_params(ctx) end
  for k, v in pairs(r.params) do params[k] = v end
  if not r.raw_param then check_params(e, params, talview_spec()) end
  local list = e.response == "list" or e.paged
  if r.all and not e.paged then usage("talview: --all needs a paged list endpoint; " .. e.name .. " is not one") end
  if r.save and r.all then usage("talview: --save and --all exclude each other") end
  if r.each then return talview_each(ctx, e, r, params, list) end
  if r.parallel then usage("talview: --parallel goes with --each") end
  if r.journal or r.key or r.retry_failed then
    usage("talview: --" .. (r.journal and "journal" or r.key and "key" or "retry-failed") .. " goes with --each")
  end
  if r.save and not r.dry_run then
    local ok, why = writable_target(r.save)
    if not ok then ctx:err_line("--save: " .. why) return M.FAILED end
  end
  local tv = talview_client(ctx, list)
  -- --save goes through the client's one download routine: the body streams to a temporary
  -- file beside FILE, renamed to FILE only on success, so an error answer never replaces the
  -- file. A dry run shows `-o FILE` and touches no file.
  local opts = (r.save and not r.dry_run) and { output = r.save } or nil
  if r.raw_param then -- checked above unless --raw-param: the library sends them as given
    opts = opts or {}
    opts.raw_params = true
  end
  return guarded(function()
    if r.all then return talview_all(ctx, tv, e, params, opts) end
    local value, err = tv:call(e.name, params, opts)
    if value == nil then return ctx:fail(err) end
    if ctx.flags.dry_run then
      print_dry_run(ctx, ctx:config().talview, r.save)
      return M.OK
    end
    if r.save then
      ctx:err_line(string_format("saved %s bytes to %s", tostring(value), r.save))
      return M.OK
    end
    if e.name:find("^actions%.") then value = output.with_status_name(value) end
    ctx:print_value(value, list)
    return M.OK
  end, "talview " .. e.name .. ": ")
end

-- == im ==

local function im_client(ctx)
  local i = ctx:config().interviewmocha
  return api_client(ctx, {
    module = "assesskit.interviewmocha",
    opts = { v2_url = i.v2_url, v3_url = i.v3_url }, settings = i,
    key = "api_key", value = i.api_key,
    stand_in = "dry-run", -- the curl command shows x-api-key: ***
    answer = "{}",
    missing = "no InterviewMocha API key configured (ASSESSKIT_IM_API_KEY; see `assesskit help config`)",
  })
end

local function id_arg(s, what)
  if not s then usage(what .. " is required") end
  if not string_match(s, "^%d+$") then usage(what .. " must be a positive integer, got '" .. s .. "'") end
  return tonumber(s)
end

local function cmd_im_links(ctx, argv)
  local r = parse(argv, spec_with(nil, nil, { max_positional = 1 }), ctx.flags)
  if r.help then ctx:out(help.im_links) return M.OK end
  ctx.flags = r
  local test_id = id_arg(r.positional[1], "TEST_ID")
  local im = im_client(ctx)
  return guarded(function()
    local links, err = im.tests:links(test_id)
    if links == nil and not (ctx.flags.dry_run and #ctx.recorder.requests > 0) then
      return ctx:fail(err)
    end
    if ctx.flags.dry_run then print_dry_run(ctx, ctx:config().interviewmocha) return M.OK end
    ctx:print_value(links, true)
    return M.OK
  end)
end

local function cmd_im_report(ctx, argv)
  local r = parse(argv, spec_with(nil, { type = "type", pdf = "pdf" }, { max_positional = 1 }), ctx.flags)
  if r.help then ctx:out(help.im_report) return M.OK end
  ctx.flags = r
  local id = id_arg(r.positional[1], "ID")
  local report_type
  if r.type then
    report_type = tonumber(r.type)
    if report_type ~= 1 and report_type ~= 2 and report_type ~= 3 then
      usage("--type must be 1, 2 or 3")
    end
  end
  if r.pdf and not r.dry_run then
    local ok, why = writable_target(r.pdf)
    if not ok then ctx:err_line("--pdf: " .. why) return M.FAILED end
  end
  local im = im_client(ctx)
  return guarded(function()
    local report, err = im.reports:get(id, { report_type = report_type })
    if report == nil and not (ctx.flags.dry_run and #ctx.recorder.requests > 0) then
      return ctx:fail(err)
    end
    if ctx.flags.dry_run then
      print_dry_run(ctx, ctx:config().interviewmocha)
      if r.pdf then ctx:out("# then the report's PDF (its pdf URL) would be saved to " .. r.pdf .. "\n") end
      return M.OK
    end
    ctx:print_value(report)
    if r.pdf then
      local bar = ctx:stderr_tty() and output.progress({ stream = ctx.sys.stderr, label = "bytes" }) or nil
      local size, perr = im.reports:download_pdf(report, r.pdf, {
        on_progress = bar and function(got, total) bar:update(got, total) end or nil,
      })
      if bar then bar:finish() end
      if size == nil then return ctx:fail(perr) end
      ctx:err_line(string_format("saved the PDF report to %s (%s bytes)", r.pdf, tostring(size)))
    end
    return M.OK
  end)
end

local function cmd_im(ctx, argv)
  local sub = argv[1]
  if sub == "links" or sub == "report" then
    table_remove(argv, 1)
    return (sub == "links" and cmd_im_links or cmd_im_report)(ctx, argv)
  end
  if sub ~= nil and sub ~= "help" and not string_find(sub, "^%-") then
    local near = options.nearest(sub, { "links", "report" })
    usage("im: unknown command '" .. sub .. "'"
      .. (near and (" (did you mean " .. near .. "?)") or " (links or report)"))
  end
  local r = parse(argv, spec_with(nil, nil, { max_positional = 1 }), ctx.flags)
  if r.help or sub == "help" then ctx:out(help.im) return M.OK end
  if r.positional[1] then usage("im: unknown command '" .. r.positional[1] .. "' (links or report)") end
  usage("im: which command? links or report (see `assesskit im --help`)")
end

-- == config, help ==

local function cmd_config(ctx, argv)
  local r = parse(argv, spec_with(nil, nil, { max_positional = 0 }), ctx.flags)
  if r.help then ctx:out(help.config) return M.OK end
  for _, line in ipairs(config.describe(ctx:config())) do ctx:out(line .. "\n") end
  return M.OK
end

local COMMANDS = {
  endpoints = cmd_endpoints, talview = cmd_talview, im = cmd_im, config = cmd_config,
}

local function cmd_help(ctx, argv)
  local topic, sub = argv[1], argv[2]
  if topic == nil then ctx:out(help.main) return M.OK end
  if topic == "im" and (sub == "links" or sub == "report") then
    ctx:out(help["im_" .. sub]) return M.OK
  end
  if topic == "talview" and sub then
    local e = find_endpoint(sub)
    if not e then usage("help: unknown endpoint '" .. sub .. "'") end
    ctx:out(endpoint_help(e)) return M.OK
  end
  if help[topic] and topic ~= "main" then ctx:out(help[topic]) return M.OK end
  usage("help: no help on '" .. topic .. "'")
end
COMMANDS.help = cmd_help

-- == main ==

--- The default `sys`: the process's environment and standard streams.
-- @treturn table `getenv`, `stdout`, `stderr`, `stdin`, `isatty(fd)`
function M.default_sys()
  return { getenv = os.getenv, stdout = io.stdout, stderr = io.stderr, stdin = io.stdin,
    isatty = output.isatty }
end

--- Run the command line.
-- @tparam table argv the arguments (`arg` of the script)
-- @tparam[opt] table sys `getenv`, `stdout`, `stderr`, `stdin`, `isatty` (default
--   `default_sys()`)
-- @treturn number the exit status: 0 ok, 1 API or network error, 2 usage error
function M.main(argv, sys)
  if type(argv) ~= "table" then error("assesskit.cli.main: argv must be a table", 2) end
  sys = sys or M.default_sys()
  local list = {}
  for i = 1, #argv do list[i] = tostring(argv[i]) end
  local ctx = setmetatable({ sys = sys, flags = {}, clients = {} }, Ctx)
  local ok, status = pcall(function()
    -- global options before the command
    local i = 1
    while list[i] and string_find(list[i], "^%-") do
      local name = string_match(list[i], "^%-%-([^=]+)$")
      i = i + ((name and GLOBAL_OPTIONS[name]) and 2 or 1) -- an option's value follows it
    end
    local before = {}
    for k = 1, i - 1 do before[k] = list[k] end
    local g = parse(before, spec_with(nil, nil, { max_positional = 0 }), {})
    ctx.flags = g
    if g.version then ctx:out("assesskit " .. VERSION .. "\n") return M.OK end
    local cmd = list[i]
    if cmd == nil then
      if g.help then ctx:out(help.main) return M.OK end
      usage("which command? (see `assesskit --help`)")
    end
    local rest = {}
    for k = i + 1, #list do rest[#rest + 1] = list[k] end
    if g.help and cmd ~= "help" then
      return cmd_help(ctx, { cmd, rest[1] and not string_find(rest[1], "^%-") and rest[1] or nil })
    end
    local fn = COMMANDS[cmd]
    if not fn then
      local near = options.nearest(cmd, COMMANDS)
      usage("unknown command '" .. cmd .. "'"
        .. (near and (" (did you mean " .. near .. "?)") or " (see `assesskit --help`)"))
    end
    return fn(ctx, rest)
  end)
  if ok then return status or M.OK end
  if is_usage(status) then
    ctx:err_line(status.message)
    return M.USAGE
  end
  ctx:err_line("internal error: " .. tostring(status))
  return M.FAILED
end

M._VERSION = VERSION
return M
