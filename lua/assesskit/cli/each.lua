--- One call per input line, many at once: `assesskit talview NAME` with `each` and `parallel`.
--
-- The options are `--each FILE|-` and `--parallel N`. Each non-blank line of FILE (or of
-- standard input, `-`) is a JSON object of parameters (over the parameters of the command
-- line); the calls run through `tv:map` with N in flight, and one JSON line is written per
-- input line, in input order, as soon as it and every line before it are done:
-- `{"line": <n>, "value": <the answer>}` or `{"line": <n>, "error": {kind =, status =,
-- message =, ...}}` (`kind = "usage"` for a line that is not a JSON object, or whose
-- parameters are refused before sending). Lines are read as the calls go, so memory stays
-- flat for any number of lines; a progress bar goes to standard error when it is a terminal.
-- The exit status is 1 when a line failed.
--
-- With `--journal FILE` the job resumes after a crash (`assesskit.journal`): lines done in an
-- earlier run print their recorded answer without a call; a line whose answer was lost after
-- its request may have reached the server is an error of kind `ambiguous`, not sent again.
-- `--key FIELD` names each line by a field of its object (default: its number among the
-- non-blank lines); the journal's job is the endpoint's name.
-- @internal assesskit.cli.each
local type, pairs, ipairs, tostring, pcall, setmetatable =
  type, pairs, ipairs, tostring, pcall, setmetatable
local string_find, string_gsub = string.find, string.gsub
local math_floor = math.floor
local io_open = io.open

local output = require("assesskit.cli.output")
local json_decode = require("assesskit.client").json_decode

local M = {}

-- The fields of an error a user may act on (tostring(err) masks secrets; so does ctx:out).
local ERROR_FIELDS = { "kind", "status", "name", "message", "code", "fields", "retryable",
  "retry_after", "request_id", "sent", "method", "url", "key" }

local function error_json(err)
  if type(err) == "table" and err.kind then
    local out = {}
    for _, k in ipairs(ERROR_FIELDS) do out[k] = err[k] end
    return out
  end
  -- a usage error of the line, or an error raised while calling
  return { kind = "usage", message = (string_gsub(tostring(err), "^[^:]*:%d+: ", "")) }
end

local function usage_error(message)
  return setmetatable({ kind = "usage", message = message }, {
    __tostring = function(self) return "usage: " .. self.message end,
  })
end

-- Non-blank lines of a file, for the progress bar's total.
local function count_lines(path)
  local f = io_open(path, "r")
  if not f then return nil end
  local n = 0
  for line in f:lines() do
    if string_find(line, "%S") then n = n + 1 end
  end
  f:close()
  return n
end

--- Run the calls.
-- @tparam table ctx the command line's run context (`out`, `sys`, `stderr_tty`)
-- @tparam table a `tv` (the client), `name` (the endpoint's catalogue name), `defaults`
--   (parameters of the command line), `source` (a path or `"-"`), `parallel` (calls in
--   flight), `check(params)` (raises a usage error for a refused parameter, or nil),
--   `raw_params` (--raw-param: the library sends undocumented parameters as given),
--   `decorate(value)` (what is printed of an answer, or nil), `dry_run` (print nothing of the
--   answers: the caller prints the requests), `journal` (a path), `key` (a field of the
--   lines' objects naming them in the journal), `retry_failed`
-- @treturn[1] number the lines that failed
-- @treturn[2] nil
-- @treturn[2] string why the input cannot be read
function M.run(ctx, a)
  local f
  if a.source == "-" then
    f = ctx.sys.stdin
  else
    local err
    f, err = io_open(a.source, "r")
    if not f then return nil, "--each: cannot read " .. a.source .. ": " .. tostring(err) end
  end
  local bar
  if not a.dry_run and ctx:stderr_tty() then
    bar = output.progress({ stream = ctx.sys.stderr, label = "calls",
      total = a.source ~= "-" and count_lines(a.source) or nil })
  end
  -- the lines, read as the workers ask for them; `lines[k]` is the number of the k-th item's
  -- line until its result is written
  local lineno, items_given, lines = 0, 0, {}
  local function items()
    while true do
      local text = f:read("l")
      if text == nil then return nil end
      lineno = lineno + 1
      if string_find(text, "%S") then
        items_given = items_given + 1
        lines[items_given] = lineno
        return text
      end
    end
  end
  local raw_opts = a.raw_params and { raw_params = true } or nil
  local function call(text)
    local ok, params = pcall(json_decode, text)
    if not ok or type(params) ~= "table" or params[1] ~= nil then
      return nil, usage_error("not a JSON object of parameters")
    end
    for k, v in pairs(a.defaults) do
      if params[k] == nil then params[k] = v end
    end
    if a.check then
      local fine, why = pcall(a.check, params)
      if not fine then return nil, usage_error(tostring(why)) end
    end
    return a.tv:call(a.name, params, raw_opts)
  end
  -- results in input order: each waits in `pending` for the ones before it
  local pending, next_k, failed = {}, 1, 0
  local function deliver(k, value, err)
    if err ~= nil then failed = failed + 1 end
    if a.dry_run then return end
    local row = { line = lines[k] }
    if err ~= nil then
      row.error = error_json(err)
    else
      row.value = a.decorate and a.decorate(value) or value
    end
    pending[k] = output.json(row) .. "\n"
    while pending[next_k] do
      ctx:out(pending[next_k])
      pending[next_k], lines[next_k] = nil, nil
      next_k = next_k + 1
    end
  end
  local map_opts = {
    concurrency = a.parallel,
    on_result = deliver,
    on_progress = bar and function(done) bar:update(done) end or nil,
  }
  if a.journal then
    map_opts.journal, map_opts.job = a.journal, "talview " .. a.name
    map_opts.retry_failed = a.retry_failed or nil
    local field = a.key
    if field then
      map_opts.key = function(text, k)
        local ok, params = pcall(json_decode, text)
        local v = ok and type(params) == "table" and params[field]
        if type(v) ~= "string" and not (type(v) == "number" and v == math_floor(v)) then
          error(("line %d has no field %s to name it in the journal (--key)"):format(lines[k], field), 0)
        end
        return v
      end
    end
  end
  local summary, stop_err = a.tv:map(items, call, map_opts)
  if bar then bar:finish() end
  if f ~= ctx.sys.stdin then f:close() end
  if not summary then return nil, "--journal: " .. tostring(stop_err) end
  if stop_err then return nil, "--each: " .. tostring(stop_err) end
  return failed, summary.done
end

return M
