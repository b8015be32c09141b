-- bulk_invite.lua: invite the candidates of a CSV file to an assessment section, with a
-- progress bar.
--
-- Reads `first_name,last_name,email` rows (a header line first; plain fields, no quoting),
-- finds each candidate by email or creates them, drawing a progress bar on standard error,
-- then invites them all to the section in one `actions.invite` call. Running it twice is
-- safe: existing candidates are reused. Rows that fail are listed and make the exit status 1.
--
-- Run it (from the repository root, after `make`, with a sandbox running):
--   bin/assesskit-sandbox start --port 0 --dir /tmp/aksb
--   export ASSESSKIT_SANDBOX_DIR=/tmp/aksb
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" \
--     lua5.4 examples/bulk_invite.lua [examples/data/candidates.csv [SECTION_ID]]
local talview = require("assesskit.talview")

local csv_path = arg[1] or "examples/data/candidates.csv"
local section_id = tonumber(arg[2]) or 2002

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

local function progress(done, total)
  local width = 30
  local full = math.floor(done * width / total)
  io.stderr:write(("\r[%s%s] %d/%d candidates"):format(("#"):rep(full), ("."):rep(width - full), done, total))
  if done == total then io.stderr:write("\n") end
end

-- Find or create every candidate.
local ids, failed, created = {}, {}, 0
for i, row in ipairs(rows) do
  local found, err = tv.models.candidate:list{ email = row.email }
  local cand = found and found[1]
  if found and not cand then
    cand, err = tv.models.candidate:create(row)
    if cand then created = created + 1 end
  end
  if cand then
    ids[#ids + 1] = { id = cand.id }
  else
    failed[#failed + 1] = ("%s: %s"):format(row.email, tostring(err))
  end
  progress(i, #rows)
end
print(("%d candidates: %d created, %d already there, %d failed"):format(#rows, created,
  #ids - created, #failed))
for _, f in ipairs(failed) do print("  failed " .. f) end

-- Invite them all at once.
if #ids > 0 then
  local action, err = tv.actions:invite{
    assessmentSectionID = section_id, endDate = "2030-12-31T23:59:59Z",
    candidates = ids, isNotify = false,
  }
  if not action then
    io.stderr:write("invite failed: ", tostring(err), "\n")
    os.exit(1)
  end
  print(("invited %d candidates to section %d (action #%d)"):format(#ids, section_id, action.id))
end
os.exit(#failed == 0 and 0 or 1)
