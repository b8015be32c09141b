-- quickstart.lua: assesskit in one minute, against the local sandbox.
--
-- Signs in to Talview with the JWT-bearer grant (the sandbox's service account and its demo
-- key), lists candidates a page at a time, creates a candidate, and invites them to an
-- assessment section. The invite is an action: its POST answers "queued" (status 1) and
-- nothing has happened yet, so the script waits until the candidate shows up in the
-- assessment, then reads their status. Then it fetches an InterviewMocha test's links and a
-- candidate's report. docs/actions.md has more on actions.
--
-- Run it (from the repository root, after `make`):
--   make demo                      # starts a sandbox, runs this file, stops the sandbox
-- or by hand:
--   bin/assesskit-sandbox start --port 0 --dir /tmp/aksb
--   export ASSESSKIT_SANDBOX_DIR=/tmp/aksb
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" lua5.4 examples/quickstart.lua
--   bin/assesskit-sandbox stop --dir /tmp/aksb
local talview = require("assesskit.talview")
local interviewmocha = require("assesskit.interviewmocha")
local action_status = require("assesskit.talview.action_status")
local sleep = require("socket").sleep

-- The sandbox wrote its URL and demo credentials to $ASSESSKIT_SANDBOX_DIR/credentials.json.
local sb = assert(require("assesskit.local_sandbox").credentials())

local function check(value, err)
  if value == nil then
    io.stderr:write("quickstart: ", tostring(err), "\n")
    os.exit(1)
  end
  return value
end

local tv = talview.new{
  base_url = sb.base_url, ca_file = sb.ca_file,
  auth = { grant = "jwt", client_id = sb.jwt.client_id, issuer = sb.jwt.issuer,
           scope = sb.jwt.scope, private_key_file = sb.jwt.private_key_file },
}

-- 1. List candidates, five a page: `res.paging` has the totals from the response headers.
local page, err, res = tv.models.candidate:list{ page = 1, pageSize = 5 }
check(page, err)
print(("candidates: %d in all, page %d of %d"):format(res.paging.total, res.paging.page,
  res.paging.page_count))
for _, c in ipairs(page) do print(("  #%d %s %s <%s>"):format(c.id, c.first_name, c.last_name, c.email)) end

-- 2. Create a candidate.
local cand = check(tv.models.candidate:create{
  first_name = "Ada", last_name = "Lovelace", email = ("ada.%d@example.test"):format(os.time()),
})
print(("created candidate #%d <%s>"):format(cand.id, cand.email))

-- 3. Invite them to the first section of an assessment. Actions run asynchronously: the
--    answer is the queued action (status 1, "requested"), not the invitation.
local section = check(tv.models.assessment_section:list{ pageSize = 1 })[1]
local action = check(tv.actions:invite{
  assessmentSectionID = section.id, endDate = "2030-12-31T23:59:59Z",
  candidates = { { id = cand.id } }, isNotify = false,
})
print(("invite queued: action #%d, status %d (%s)"):format(action.id, action.status,
  action_status.name(action.status)))

-- 4. Wait until the invitation exists: look for the candidate in the assessment, backing off
--    between looks, and give up after a while (docs/actions.md: polling or a callback).
local function invited()
  local found = check(tv.models.assessment_candidate:list{
    assessment_id = section.assessment_id, candidate_id = cand.id })
  return found[1]
end
local ac, delay, waited = invited(), 0.1, 0
while not ac and waited < 30 do
  sleep(delay)
  waited = waited + delay
  delay = math.min(delay * 2, 2)
  ac = invited()
end
check(ac, "the invitation did not show up within 30 s")
print(("invited to assessment #%d, section #%d"):format(section.assessment_id, section.id))

-- 5. Their status (status ids as the Talview documentation lists them).
local STATUS = { [10] = "invited", [20] = "mailed", [30] = "attending", [50] = "completed" }
print(("status: %s (status_id %d)"):format(STATUS[ac.status_id] or "?", ac.status_id))

-- 6. InterviewMocha: a test's links, and one candidate's report.
local im = interviewmocha.new{
  api_key = sb.interviewmocha.api_key, ca_file = sb.ca_file,
  v2_url = sb.interviewmocha.v2_url, v3_url = sb.interviewmocha.v3_url,
}
local links = check(im.tests:links(114110))
print(("test 114110 has %d links: %s"):format(#links, links[1].testLinkName))
local report = check(im.reports:get(225634, { report_type = 3 }))
print(("report 225634: %s, %s, %g of %g points"):format(report.candidateEmail, report.status,
  report.candidatePoints, report.totalTestPoints))
