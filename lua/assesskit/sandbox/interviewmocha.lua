--- InterviewMocha emulation: `GET /v2/org/tests/{testId}/testlinks` and
-- `GET /v3/reports/{testInvitationId}?reportType=1|2|3`, both behind the `x-api-key` header,
-- and the PDF reports their `pdfReportUrl` points to (`GET /files/PDFReport?id=...`, no key
-- needed: the id is the capability, as on the real service).
--
-- * v2 answers the seed's envelope `{"statuscode": "200.1", "description": ..., "result":
--   {"testLinks": [...]}}`; an unknown test is 404 with `statuscode` "404.1".
-- * v3 answers the seed's report: reportType 1 has `sections` (section scores), 2 has
--   `skills` (skill scores, each naming its section), 3 has `sections`, each with its
--   `Skills` (the seed's sample, spellings kept: `sectionID` on sections, `sectionId` on
--   skills). Unknown invitation: 404 `{"errors": [...]}`.
-- * A missing or wrong key, a non-numeric id or a bad reportType: 400 `{"errors": [...]}`.
-- @module assesskit.sandbox.interviewmocha

local ngx = ngx -- luacheck: read globals ngx
local json = require("assesskit.sandbox.json")
local http = require("assesskit.sandbox.http")
local store = require("assesskit.sandbox.store")
local config = require("assesskit.sandbox.config")
local credentials = require("assesskit.sandbox.credentials")

local type, ipairs, tostring, tonumber = type, ipairs, tostring, tonumber
local string_match, string_format, string_find, table_concat =
  string.match, string.format, string.find, table.concat

local M = {}

local function send_errors(req, status, ...)
  req.suppress_ok = false
  return http.send(req, status, json.encode({ errors = json.array({ ... }) }))
end

local function key_ok(req)
  local key = http.header(req, "x-api-key")
  return type(key) == "string" and key == credentials.interviewmocha.api_key
end

local function int64(s)
  if type(s) ~= "string" or not string_find(s, "^%d+$") or #s > 18 then return nil end
  return tonumber(s)
end

local function link_out(l)
  local order = { "testLinkId", "testId", "testLinkName", "testLinkAccessKey", "accessTime",
    "startDateTime", "endDateTime", "timeZoneId", "inviteCandidateOnly", "imageProctoring",
    "emailToStakeholder", "testLinkStatus" }
  local out = json.object({}, order)
  for _, k in ipairs(order) do
    local v = l[k]
    if v == nil then v = json.null end
    out[k] = v
  end
  return out
end

local function test_links(req, test_id)
  local id = int64(test_id)
  if not id then return send_errors(req, 400, "testId must be a 64-bit integer") end
  if not store.get("im_test", id) then
    req.suppress_ok = false
    return http.send(req, 404, json.encode(json.object({
      statuscode = "404.1", description = "Test not found.", result = json.null,
    }, { "statuscode", "description", "result" })))
  end
  local links = json.array()
  for _, l in ipairs(store.list("im_test_link", function(r) return r.testId == id end)) do
    links[#links + 1] = link_out(l)
  end
  local body = json.object({
    statuscode = "200.1",
    description = "The request has succeeded.",
    result = json.object({ testLinks = links }),
  }, { "statuscode", "description", "result" })
  req.suppress_ok = false
  return http.send(req, 200, json.encode(body))
end

--- The URL of a report's PDF.
-- @tparam table report the stored report
-- @treturn string
function M.pdf_url(report)
  return (config.static.base_url or "") .. "/files/PDFReport?id=" .. report.pdf_id
end

local function section_out(s, with_skills)
  local out = json.object({
    candidateScore = s.candidateScore, sectionScore = s.sectionScore, noOfQue = s.noOfQue,
    sectionID = s.sectionID, sectionName = s.sectionName, sectionTime = s.sectionTime,
    sectionTimeTaken = s.sectionTimeTaken,
  }, { "candidateScore", "sectionScore", "noOfQue", "sectionID", "sectionName", "sectionTime",
       "sectionTimeTaken", "Skills" })
  if with_skills then out.Skills = json.copy(s.Skills) end
  return out
end

local function report(req, inv_id)
  local id = int64(inv_id)
  if not id then return send_errors(req, 400, "testInvitationId must be a 64-bit integer") end
  local rt = req.args.reportType
  if type(rt) == "table" then rt = rt[1] end
  local report_type = rt == nil and 1 or tonumber(rt)
  if report_type ~= 1 and report_type ~= 2 and report_type ~= 3 then
    return send_errors(req, 400, "reportType is invalid: use 1, 2 or 3")
  end
  local r = store.get("im_report", id)
  if not r then return send_errors(req, 404, "Test invitation not found") end
  local order = { "testInvitationId", "testId", "candidateEmail", "attemptedOn", "status", "score",
    "scorePercentage", "candidatePoints", "totalTestPoints", "testName", "pdfReportUrl", "sections", "skills" }
  local out = json.object({}, order)
  for _, k in ipairs(order) do
    if r[k] ~= nil and k ~= "sections" and k ~= "skills" then out[k] = json.copy(r[k]) end
  end
  out.testInvitationId = r.id
  out.pdfReportUrl = M.pdf_url(r)
  local sections = json.array()
  if report_type == 1 or report_type == 3 then
    for i, s in ipairs(r.sections) do sections[i] = section_out(s, report_type == 3) end
    out.sections = sections
  else
    local skills = json.array()
    for _, s in ipairs(r.sections) do
      for _, sk in ipairs(s.Skills or {}) do skills[#skills + 1] = json.copy(sk) end
    end
    out.skills = skills
  end
  req.suppress_ok = false
  return http.send(req, 200, json.encode(out))
end

--- Serve an InterviewMocha request (`/v2/...`, `/v3/...`).
-- @tparam table req
function M.handle(req)
  local test_id = string_match(req.path, "^/v2/org/tests/([^/]+)/testlinks/?$")
  local inv_id = string_match(req.path, "^/v3/reports/([^/]+)/?$")
  if not test_id and not inv_id then return send_errors(req, 404, "The requested resource does not exist") end
  if req.method ~= "GET" and req.method ~= "HEAD" then
    req.suppress_ok = false
    return http.send(req, 405, json.encode({ errors = json.array({ "The requested method is not allowed" }) }),
      { Allow = "GET" })
  end
  if not key_ok(req) then return send_errors(req, 400, "ApiKey is not invalid or incorrect") end
  if test_id then return test_links(req, test_id) end
  return report(req, inv_id)
end

-- PDF --------------------------------------------------------------------------------------------

local function pdf_escape(s)
  return (string.gsub(s, "[()\\]", "\\%0"))
end

--- A small, valid one-page PDF with the given lines of text.
-- @tparam {string,...} lines
-- @treturn string PDF bytes
function M.pdf(lines)
  local text = { "BT /F1 14 Tf 72 760 Td 18 TL" }
  for _, l in ipairs(lines) do text[#text + 1] = "(" .. pdf_escape(l) .. ") Tj T*" end
  text[#text + 1] = "ET"
  local stream = table_concat(text, "\n")
  local objects = {
    "<< /Type /Catalog /Pages 2 0 R >>",
    "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
      .. " /Resources << /Font << /F1 5 0 R >> >> >>",
    string_format("<< /Length %d >>\nstream\n%s\nendstream", #stream, stream),
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
  }
  local parts = { "%PDF-1.4\n%\226\227\207\211\n" }
  local offsets = {}
  local pos = #parts[1]
  for i, obj in ipairs(objects) do
    offsets[i] = pos
    local chunk = string_format("%d 0 obj\n%s\nendobj\n", i, obj)
    parts[#parts + 1] = chunk
    pos = pos + #chunk
  end
  local xref = { string_format("xref\n0 %d\n0000000000 65535 f \n", #objects + 1) }
  for _, off in ipairs(offsets) do xref[#xref + 1] = string_format("%010d 00000 n \n", off) end
  parts[#parts + 1] = table_concat(xref)
  parts[#parts + 1] = string_format("trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n",
    #objects + 1, pos)
  return table_concat(parts)
end

--- Serve `/files/PDFReport?id=...`.
-- @tparam table req
function M.serve_file(req)
  req.suppress_ok = false
  if req.path ~= "/files/PDFReport" then return send_errors(req, 404, "The requested resource does not exist") end
  if req.method ~= "GET" and req.method ~= "HEAD" then
    return http.send(req, 405, json.encode({ errors = json.array({ "The requested method is not allowed" }) }),
      { Allow = "GET" })
  end
  local pid = req.args.id
  local r = type(pid) == "string" and store.find("im_report", function(x) return x.pdf_id == pid end)
  if not r then return send_errors(req, 404, "Report not found") end
  local lines = {
    "InterviewMocha candidate report (assesskit sandbox)",
    "Test: " .. tostring(r.testName) .. " (" .. tostring(r.testId) .. ")",
    "Candidate: " .. tostring(r.candidateEmail),
    "Test invitation: " .. tostring(r.id),
    string_format("Score: %s of %s", tostring(r.candidatePoints), tostring(r.totalTestPoints)),
  }
  for _, s in ipairs(r.sections or {}) do
    lines[#lines + 1] = string_format("  %s: %s / %s", tostring(s.sectionName), tostring(s.candidateScore),
      tostring(s.sectionScore))
  end
  return http.send(req, 200, M.pdf(lines), {
    ["Content-Type"] = "application/pdf",
    ["Content-Disposition"] = 'inline; filename="report-' .. tostring(r.id) .. '.pdf"',
  })
end

-- Seed ---------------------------------------------------------------------------------------------

local function pdf_id(n)
  -- opaque, URL-safe, stable per invitation
  return ngx.encode_base64(ngx.sha1_bin("sandbox-report-" .. n)):gsub("[+/=]", { ["+"] = "-", ["/"] = "_", ["="] = "" })
end

--- Seed tests, test links and reports (the seed's samples, plus generated ones).
function M.seed()
  store.define("im_test")
  store.define("im_test_link")
  store.define("im_report")
  -- the seed's v2 sample: test 114110 and its three links
  store.insert("im_test", { id = 114110, testName = "Sample test (seed)" })
  local links = {
    { testLinkId = 24540, testLinkName = "Default", testLinkAccessKey = "d3e89987cd", accessTime = 0,
      startDateTime = json.null, endDateTime = json.null, timeZoneId = 1720, inviteCandidateOnly = 0,
      imageProctoring = 0, emailToStakeholder = json.null, testLinkStatus = 1 },
    { testLinkId = 35044, testLinkName = "New Link", testLinkAccessKey = "ef776f9145", accessTime = 1,
      startDateTime = "2018-02-19T01:00:00", endDateTime = "2018-02-20T01:00:00", timeZoneId = 1720,
      inviteCandidateOnly = 0, imageProctoring = 1, emailToStakeholder = "example@gmail.com", testLinkStatus = 3 },
    { testLinkId = 35049, testLinkName = "New Link 1", testLinkAccessKey = "c6ab2bc672", accessTime = 1,
      startDateTime = "2018-02-19T06:52:36", endDateTime = "2018-02-20T06:52:36", timeZoneId = 1720,
      inviteCandidateOnly = 0, imageProctoring = 1, emailToStakeholder = "example1@gmail.com", testLinkStatus = 1 },
  }
  for _, l in ipairs(links) do
    l.testId = 114110
    l.id = l.testLinkId
    store.insert("im_test_link", l)
  end
  -- more tests, one without links
  local tests = { { 11223, "Test with All question types" }, { 11224, "Lua Programming" },
    { 11225, "Empty test (no links)" } }
  for _, t in ipairs(tests) do store.insert("im_test", { id = t[1], testName = t[2] }) end
  for i = 1, 4 do
    store.insert("im_test_link", {
      id = 40000 + i, testLinkId = 40000 + i, testId = i <= 2 and 11223 or 11224,
      testLinkName = "Campus drive " .. i, testLinkAccessKey = string_format("a%09x", 7919 * i),
      accessTime = i % 2, startDateTime = i % 2 == 1 and "2024-01-0" .. i .. "T09:00:00" or json.null,
      endDateTime = i % 2 == 1 and "2024-01-1" .. i .. "T18:00:00" or json.null, timeZoneId = 1720,
      inviteCandidateOnly = 1, imageProctoring = i % 2, emailToStakeholder = json.null, testLinkStatus = 1,
    })
  end
  -- the seed's v3 sample, then generated reports
  local function skill(sec_id, sec_name, qb_id, qb_name, got, max, n)
    return json.object({ candidateQbScore = got, qbScore = max, noOfQue = n, qbId = qb_id, qbName = qb_name,
      sectionId = sec_id, sectionName = sec_name },
      { "candidateQbScore", "qbScore", "noOfQue", "qbId", "qbName", "sectionId", "sectionName" })
  end
  local function section(id, name, got, max, n, time, taken, skills)
    return { candidateScore = got, sectionScore = max, noOfQue = n, sectionID = id, sectionName = name,
      sectionTime = time, sectionTimeTaken = taken, Skills = json.array(skills) }
  end
  local reports = {
    { id = 225634, testId = 11223, candidateEmail = "dave@yopmail.com", attemptedOn = "2020-03-12T11:33:48.04Z",
      status = "Complete", score = 1.0, scorePercentage = 1, candidatePoints = 1.0, totalTestPoints = 89.0,
      testName = "Test with All question types",
      sections = {
        section(1465186, "YARN", 1.0, 4.0, 4, 8, 9, { skill(1465186, "YARN", 78689, "YARN", 1.0, 4.0, 4) }),
        section(1465193, "Essay Writing", 0.0, 20.0, 4, 8, 15,
          { skill(1465193, "Essay Writing", 31164, "Essay Writing", 0.0, 20.0, 4) }),
      } },
  }
  for n = 1, 12 do
    local a, b = (n * 7) % 21, (n * 5) % 11
    reports[#reports + 1] = {
      id = 2807320 + n, testId = 11224, candidateEmail = string_format("candidate%03d@example.test", n),
      attemptedOn = string_format("2024-02-%02dT10:%02d:00Z", n, n * 3 % 60),
      status = n % 4 == 0 and "Pending" or "Complete",
      score = a + b + 0.0, scorePercentage = math.floor((a + b) * 100 / 30 + 0.5),
      candidatePoints = a + b + 0.0, totalTestPoints = 30.0, testName = "Lua Programming",
      sections = {
        section(5100001, "Lua basics", a + 0.0, 20.0, 10, 20, 600 + n,
          { skill(5100001, "Lua basics", 90001, "Tables", a / 2, 10.0, 5),
            skill(5100001, "Lua basics", 90002, "Closures", a / 2, 10.0, 5) }),
        section(5100002, "C API", b + 0.0, 10.0, 5, 15, 400 + n,
          { skill(5100002, "C API", 90003, "Stack", b + 0.0, 10.0, 5) }),
      } }
  end
  for _, r in ipairs(reports) do
    r.pdf_id = pdf_id(r.id)
    store.insert("im_report", r)
  end
end

return M
