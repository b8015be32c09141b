-- export_reports.lua: export every report of an InterviewMocha test to CSV.
--
-- InterviewMocha has no call that lists a test's invitations: you keep the test invitation
-- ids (from your invitations or webhooks). This reads them from a file, one a line, fetches
-- the reports (v3, report type 3: sections with their skills) 8 at a time through `im:map`
-- (a progress bar on standard error when that is a terminal), keeps those of the test, and
-- writes one CSV row per report, in the file's order. Ids that fail (a 404, for one) are
-- reported on standard error and skipped.
--
-- Run it (from the repository root, after `make`, with a sandbox running):
--   bin/assesskit-sandbox start --port 0 --dir /tmp/aksb
--   export ASSESSKIT_SANDBOX_DIR=/tmp/aksb
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" \
--     lua5.4 examples/export_reports.lua [TEST_ID [IDS_FILE [OUT.csv]]]
-- (defaults: test 11224, examples/data/invitations.txt, standard output)
local interviewmocha = require("assesskit.interviewmocha")
local output = require("assesskit.cli.output")

local test_id = tonumber(arg[1]) or 11224
local ids_path = arg[2] or "examples/data/invitations.txt"
local out = arg[3] and assert(io.open(arg[3], "w")) or io.stdout

local sb = assert(require("assesskit.local_sandbox").credentials())
local im = interviewmocha.new{
  api_key = sb.interviewmocha.api_key, ca_file = sb.ca_file,
  v2_url = sb.interviewmocha.v2_url, v3_url = sb.interviewmocha.v3_url,
}

-- One CSV field: empty for nil and JSON null, numbers without a needless ".0", quoted when
-- it holds a comma, quote or newline.
local function csv(v)
  if v == nil or v == interviewmocha.null then return "" end
  v = type(v) == "number" and ("%.14g"):format(v) or tostring(v)
  if v:find('[,"\r\n]') then v = '"' .. v:gsub('"', '""') .. '"' end
  return v
end

-- The ids, then their reports, 8 at a time (results come back in the ids' order).
local ids = {}
for line in io.lines(ids_path) do
  local id = line:match("^%s*(%d+)%s*$")
  if id then ids[#ids + 1] = id end
end
local bar = output.isatty(2) and output.progress{ stream = io.stderr, label = "reports" }
local reports = im:map(ids, function(id) return im.reports:get(id, { report_type = 3 }) end, {
  concurrency = 8,
  on_progress = bar and function(done, total) bar:update(done, total) end or nil,
})
if bar then bar:finish() end

out:write("invitation_id,candidate_email,status,attempted_on,points,total_points,percentage,sections\n")
local written, skipped = 0, 0
for i, id in ipairs(ids) do
  local r, err = reports[i].value, reports[i].err
  if not r then
    skipped = skipped + 1
    io.stderr:write(("skipped %s: %s\n"):format(id, tostring(err)))
  elseif tonumber(r.testId) ~= test_id then
    skipped = skipped + 1
    io.stderr:write(("skipped %s: a report of test %s\n"):format(id, csv(r.testId)))
  else
    local sections = {}
    for _, s in ipairs(r.sections or {}) do
      sections[#sections + 1] = ("%s %g/%g"):format(s.sectionName, s.candidateScore, s.sectionScore)
    end
    out:write(table.concat({ csv(id), csv(r.candidateEmail), csv(r.status), csv(r.attemptedOn),
      csv(r.candidatePoints), csv(r.totalTestPoints), csv(r.scorePercentage),
      csv(table.concat(sections, "; ")) }, ","), "\n")
    written = written + 1
  end
end
if out ~= io.stdout then out:close() end
io.stderr:write(("%d reports of test %d exported, %d skipped\n"):format(written, test_id, skipped))
