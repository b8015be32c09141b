-- bulk_invite.lua: invite the candidates of a CSV file to an assessment section, many at once.
--
-- Reads `first_name,last_name,email` rows (a header line first; plain fields, no quoting).
-- For every row it finds the candidate by email or creates them, with up to 16 rows in flight
-- at once through `tv:map` (the loop body is ordinary code: its calls run concurrently, under
-- one rate budget, and the results come back in the rows' order), drawing a progress bar on
-- standard error when that is a terminal. Then it invites them all to the section in one
-- `actions.invite` call (an action: answered at once, processed later). Running it twice is
-- safe: existing candidates are reused. Rows that fail are listed and make the exit status 1.
--
-- With `--journal FILE` the job survives a crash (kill it at any moment, run it again with the
-- same FILE): rows done before are not looked up again, their recorded results come back; a
-- row whose create was cut short (the process died, or the answer was lost) is reconciled by
-- listing candidates by its email: found, it was created; not found, it is created now. The
-- invite is journaled too (in FILE.invite): a rerun after it does not invite anyone twice, and
-- an invite whose answer was lost is reported (kind `ambiguous`) instead of being sent again.
-- The invite is recorded for its set of candidates: rows added to the file since are not
-- passed off as invited; the journal refuses the other set, and the rerun says so.
--
-- Run it (from the repository root, after `make`, with a sandbox running):
--   bin/assesskit-sandbox start --port 0 --dir /tmp/aksb
--   export ASSESSKIT_SANDBOX_DIR=/tmp/aksb
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" \
--     lua5.4 examples/bulk_invite.lua [--journal FILE] [examples/data/candidates.csv [SECTION_ID [PARALLEL]]]
local talview = require("assesskit.talview")
local output = require("assesskit.cli.output")

-- Arguments: --journal FILE anywhere, then the positional ones.
local journal, args = nil, {}
do
  local i = 1
  while arg[i] do
    if arg[i] == "--journal" then
      journal = arg[i + 1] or error("--journal needs a file")
      i = i + 1
    else
      args[#args + 1] = arg[i]
    end
    i = i + 1
  end
end
local csv_path = args[1] or "examples/data/candidates.csv"
local section_id = tonumber(args[2]) or 2002
local parallel = tonumber(args[3]) or 16

local sb = assert(require("assesskit.local_sandbox").credentials())
local tv = talview.new{
  base_url = sb.base_url, ca_file = sb.ca_file,
  auth = { grant = "jwt", client_id = sb.jwt.client_id, issuer = sb.jwt.issuer,
           scope = sb.jwt.scope, private_key_file = sb.jwt.private_key_file },
}

-- Read the rows.
local file = assert(io.open(csv_path, "r"))
local rows, header = {}, nil
for line in file:lines() do
  local fields = {}
  for field in (line .. ","):gmatch("([^,]*),") do fields[#fields + 1] = field end
  if not header then header = fields
  elseif line ~= "" then
    local row = {}
    for i, name in ipairs(header) do row[name] = fields[i] end
    rows[#rows + 1] = row
  end
end
file:close()

-- One row: the candidate with this email, created when there is none.
local function find_or_create(row)
  local found, err = tv.models.candidate:list{ email = row.email }
  if not found then return nil, err end
  if found[1] then return { id = found[1].id, created = false } end
  local cand
  cand, err = tv.models.candidate:create(row)
  if not cand then return nil, err end
  return { id = cand.id, created = true }
end

-- With a journal: an ambiguous row (started in a run that died, or whose create lost its
-- answer) is looked up by email before it runs again.
local function reconcile(row)
  local found, err = tv.models.candidate:list{ email = row.email }
  if not found then return nil, err end            -- cannot tell now: stays ambiguous
  return found[1] and { id = found[1].id, created = true } or nil
end

-- Every row, 16 at a time; a progress bar only on a terminal.
local bar = output.isatty(2) and output.progress{ stream = io.stderr, label = "candidates" }
local results, jerr = tv:map(rows, find_or_create, {
  concurrency = parallel,
  on_progress = bar and function(done, total) bar:update(done, total) end or nil,
  journal = journal,
  key = journal and function(row) return row.email end or nil,
  reconcile = journal and reconcile or nil,
})
if bar then bar:finish() end
if not results then
  io.stderr:write("journal: ", tostring(jerr), "\n")
  os.exit(2)
end

local ids, failed, created = {}, {}, 0
for i, r in ipairs(results) do
  if r.value then
    ids[#ids + 1] = { id = r.value.id }
    if r.value.created then created = created + 1 end
  else
    failed[#failed + 1] = ("%s: %s"):format(rows[i].email, tostring(r.err))
  end
end
print(("%d candidates: %d created, %d already there, %d failed"):format(#rows, created,
  #ids - created, #failed))
for _, f in ipairs(failed) do print("  failed " .. f) end

-- Invite them all at once (with a journal: recorded, so that a rerun does not invite twice).
if #ids > 0 then
  local function invite()
    return tv.actions:invite{
      assessmentSectionID = section_id, endDate = "2030-12-31T23:59:59Z",
      candidates = ids, isNotify = false,
    }
  end
  local action, err
  if journal then
    -- the invite's name: the section and its candidates (a checksum of their ids), so that a
    -- recorded invite is never taken for one of other candidates
    local sum = 0
    for _, c in ipairs(ids) do
      for b in tostring(c.id):gmatch("%d") do sum = (sum * 31 + tonumber(b) + 1) % 4294967291 end
      sum = (sum * 31) % 4294967291
    end
    local r
    r, err = tv:map({ section_id }, invite, { journal = journal .. ".invite",
      key = function(id) return ("section %d: %d candidates (ids checksum %d)"):format(id, #ids, sum) end })
    if r then action, err = r[1].value, r[1].err end
  else
    action, err = invite()
  end
  if not action then
    io.stderr:write("invite failed: ", tostring(err), "\n")
    os.exit(1)
  end
  print(("invited %d candidates to section %d (action #%d)"):format(#ids, section_id, action.id))
end
os.exit(#failed == 0 and 0 or 1)
