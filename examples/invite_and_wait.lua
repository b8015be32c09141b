-- invite_and_wait.lua: invite candidates through an action, and wait until it is done.
--
-- Talview's actions run asynchronously: `tv.actions:invite{...}` answers with the action
-- queued (status 1, "requested") before anything has happened, and the API has no endpoint to
-- read an action back. So the script watches what the action changes: it looks for each
-- candidate in the assessment (their assessment-candidate record) until all are there,
-- backing off between looks (0.2 s, doubling up to 5 s) and giving up after TIMEOUT seconds
-- (default 60), with a progress line on standard error when that is a terminal. The other way
-- to learn that an action is done is its callback: examples/openresty-callback/ receives it.
-- docs/actions.md describes both.
--
-- It creates COUNT new candidates first (default 3), so that every run invites people who are
-- not in the assessment yet.
--
-- Run it (from the repository root, after `make`, with a sandbox running):
--   bin/assesskit-sandbox start --port 0 --dir /tmp/aksb
--   export ASSESSKIT_SANDBOX_DIR=/tmp/aksb
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" \
--     lua5.4 examples/invite_and_wait.lua [SECTION_ID [COUNT [TIMEOUT]]]
local talview = require("assesskit.talview")
local action_status = require("assesskit.talview.action_status")
local isatty = require("assesskit.cli.output").isatty
local socket = require("socket")

local section_id = tonumber(arg[1]) or 2001
local count = tonumber(arg[2]) or 3
local timeout = tonumber(arg[3]) or 60

local function check(value, err)
  if value == nil then
    io.stderr:write("invite_and_wait: ", tostring(err), "\n")
    os.exit(1)
  end
  return value
end

local sb = check(require("assesskit.local_sandbox").credentials())
local tv = talview.new{
  base_url = sb.base_url, ca_file = sb.ca_file,
  auth = { grant = "jwt", client_id = sb.jwt.client_id, issuer = sb.jwt.issuer,
           scope = sb.jwt.scope, private_key_file = sb.jwt.private_key_file },
}

-- 1. New candidates.
local section = check(tv.models.assessment_section:get(section_id))
local ids, made = {}, {}
local stamp = ("%d%04d"):format(os.time(), math.random(0, 9999))
for i = 1, count do
  local cand = check(tv.models.candidate:create{ first_name = "Wait", last_name = "Example " .. i,
    email = ("wait.%s.%d@example.test"):format(stamp, i) })
  ids[i], made[i] = { id = cand.id }, ("#%d"):format(cand.id)
end
print(("created %d candidates: %s"):format(count, table.concat(made, ", ")))

-- 2. One action invites them all. Its answer says "queued", not "invited".
local action = check(tv.actions:invite{ assessmentSectionID = section.id, endDate = "2030-12-31T23:59:59Z",
  candidates = ids, isNotify = false })
print(("invite queued: action #%d, status %d (%s)"):format(action.id, action.status,
  action_status.name(action.status)))

-- 3. Wait for the effect: each candidate's assessment-candidate record in the assessment.
local tty = isatty(2)
local found, started = {}, socket.gettime()
-- the candidates not seen in the assessment yet
local function missing()
  local want = {}
  for _, c in ipairs(ids) do
    if not found[c.id] then want[#want + 1] = c.id end
  end
  return want
end
-- one look: how many are there now
local function look()
  local list = check(tv.models.assessment_candidate:list{ assessment_id = section.assessment_id,
    candidate_id = missing(), pageSize = 50 })
  for _, ac in ipairs(list) do found[ac.candidate_id] = ac end
  return count - #missing()
end

local done, looks, delay = look(), 1, 0.2
while done < count and socket.gettime() - started < timeout do
  if tty then
    io.stderr:write(("\rwaiting for action #%d: %d of %d invited, next look in %.1f s"):format(
      action.id, done, count, delay), "\27[K")
  end
  socket.sleep(math.min(delay, math.max(0, timeout - (socket.gettime() - started))))
  delay = math.min(delay * 2, 5)
  done, looks = look(), looks + 1
end
if tty then io.stderr:write("\r\27[K") end

if done < count then
  print(("gave up after %d s: %d of %d invited"):format(timeout, done, count))
  os.exit(1)
end
print(("%d of %d invited to assessment #%d after %d looks"):format(done, count, section.assessment_id, looks))
for _, c in ipairs(ids) do
  local ac = found[c.id]
  print(("  #%d -> assessment candidate #%d (status_id %d)"):format(c.id, ac.id, ac.status_id))
end
