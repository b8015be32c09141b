--- A bulk job for the journal's crash specs (spec/journal_crash_spec.lua), run as its own
-- process so that a spec can kill it with SIGKILL at any moment and start it again.
--
--    lua5.4 spec/support/journal_runner.lua CREDENTIALS_JSON JOURNAL OUT COUNT PREFIX [CONCURRENCY]
--
-- Creates COUNT candidates (`<PREFIX>-<n>@journal.test`, n = 1..COUNT) on the sandbox whose
-- credentials.json is given, through `tv:map` with the journal, keyed by email and reconciled
-- by listing candidates by email. When `map` returns, writes one JSON line per item to OUT
-- (`{"i":, "id":, "email":}` or `{"i":, "err":}`), then exits 0. Anything else exits 1.
local cjson = require("cjson")
local talview = require("assesskit.talview")

local creds_path, journal_path, out_path, count, prefix, concurrency =
  arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5], tonumber(arg[6] or "8")
if not (creds_path and journal_path and out_path and count and prefix) then
  io.stderr:write("usage: journal_runner.lua CREDENTIALS_JSON JOURNAL OUT COUNT PREFIX [CONCURRENCY]\n")
  os.exit(2)
end

local f = assert(io.open(creds_path, "rb"))
local creds = cjson.decode(f:read("*a"))
f:close()
local c = creds.password
local tv = talview.new {
  base_url = creds.base_url,
  auth = { grant = "password", client_id = c.client_id, client_secret = c.client_secret,
    username = c.username, password = c.password },
}

local rows = {}
for n = 1, count do
  rows[n] = { email = ("%s-%d@journal.test"):format(prefix, n), first_name = "Crash", last_name = tostring(n) }
end

local results, err = tv:map(rows, function(row)
  return tv.models.candidate:create(row)
end, {
  concurrency = concurrency,
  journal = journal_path,
  key = function(row) return row.email end,
  reconcile = function(row)
    local found, lerr = tv.models.candidate:list { email = row.email }
    if not found then return nil, lerr end
    return found[1]
  end,
})
if not results then
  io.stderr:write("map: ", tostring(err), "\n")
  os.exit(1)
end

local out = assert(io.open(out_path .. ".tmp", "wb"))
for i = 1, count do
  local r = results[i]
  local line
  if r and r.value then
    line = { i = i, id = r.value.id, email = r.value.email }
  else
    line = { i = i, err = tostring(r and r.err) }
  end
  out:write(cjson.encode(line), "\n")
end
out:close()
assert(os.rename(out_path .. ".tmp", out_path))
os.exit(0)
