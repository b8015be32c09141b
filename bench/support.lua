--- Helpers for the benchmarks: module paths from the repository, the bench nginx (the test
-- bench's server with the core locations), a timing loop and one output format.
-- @module bench.support
-- @usage
-- local bench = dofile("bench/support.lua")
-- local srv = bench.start_server()
-- local rate = bench.rate(function() session:request{ url = srv:url("/json") } end, 5000)
-- bench.line("core.session GET /json", rate, "req/s")
-- srv:stop()

local root = (debug.getinfo(1, "S").source:sub(2):match("^(.*)/bench/[^/]*$")) or "."
local lua_dir = (jit and "luajit" or "lua5.4")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/?.lua;"
  .. package.path
package.cpath = root .. "/build/" .. lua_dir .. "/?.so;" .. package.cpath

local socket = require "socket"
local nginx = require "support.nginx"

local M = {}

--- The repository root.
M.root = root

--- Name of the running interpreter ("lua5.4" or "luajit").
M.lua = lua_dir

--- Start the bench nginx on a free 127.0.0.1 port (stop it with `srv:stop()`).
-- @tparam[opt] table opts passed to `support.nginx.start`; `locations` defaults to the core
--   locations (`/json` is a small JSON resource) and keep-alive is unlimited
-- @treturn table the server (`:url(path)`, `:stop()`)
function M.start_server(opts)
  opts = opts or {}
  opts.locations = opts.locations or nginx.core_locations
  opts.server = (opts.server or "") .. "\n    keepalive_requests 10000000; access_log off;"
  return nginx.start(opts)
end

--- The candidate object of the seed (002_*.txt, "Retrieve a Candidate"), as one line of JSON
-- (bench/talview.lua serves it, bench/json.lua decodes pages of it).
M.CANDIDATE = [[{"id":6506985,"email":"","first_name":"Trdp","middle_name":null,"last_name":null,]]
  .. [["phone":"454545454545","external_id":null,"assigned_to":null,"status_id":25,]]
  .. [["profile_pic":null,"bio":null,"cf":[],"organization_id":488,"customFields":[],]]
  .. [["industry":null,"isRegistered":false,"icard":null,"created_at":"2019-03-12 05:31:21+00",]]
  .. [["updated_at":"2019-03-12 11:35:31+00","_links":{"image":{"href":"/models/candidate-image/6506985"},]]
  .. [["resume":{"href":"/models/file?candidate_id=6506985&file_type_id=11"},]]
  .. [["calendar":{"href":"/models/candidate-calendar?candidate_id=6506985"},]]
  .. [["assessmentCandidates":{"href":"/models/assessment-candidate?candidate_id=6506985"},]]
  .. [["candidateFileAttachments":{"href":"/models/candidate-file-attachment?candidate_id=6506985"}}}]]

--- Operations per second of `fn`: the best of `rounds` timed runs of `n` calls, after a warm-up.
-- @func fn
-- @int n calls per round
-- @int[opt=3] rounds
-- @treturn number operations per second
function M.rate(fn, n, rounds)
  for _ = 1, math.min(200, n) do fn() end
  local best = 0
  for _ = 1, rounds or 3 do
    local t0 = socket.gettime()
    for _ = 1, n do fn() end
    local r = n / (socket.gettime() - t0)
    if r > best then best = r end
  end
  return best
end

--- Print one result line, optionally beside a reference figure.
-- @string label
-- @number value
-- @string unit
-- @tparam[opt] table ref `{label=, value=}`: printed with the ratio value/ref
function M.line(label, value, unit, ref)
  local s = string.format("  %-44s %10.0f %s", label, value, unit)
  if ref and ref.value and ref.value > 0 then
    s = s .. string.format("   (%.2fx %s: %.0f)", value / ref.value, ref.label, ref.value)
  end
  print(s)
end

--- Run a shell command and return its standard output.
-- @string cmd
-- @treturn string
function M.capture(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

return M
