-- Talview actions in the sandbox change the state they name (checked through the API and
-- through the sandbox's state endpoint).
local sandbox = require("support.sandbox")

describe("sandbox Talview actions", function()
  local sb = sandbox.fixture({ token = true, reset = true })

  local function post(path, body)
    return sb:request("POST", path, { token = sb.tok, body = body })
  end

  local function acs_of(candidate_id)
    local out = {}
    for _, ac in ipairs(sb:state("assessment_candidate")) do
      if ac.candidate_id == candidate_id then out[#out + 1] = ac end
    end
    return out
  end

  it("invite creates assessment-candidate and assessment-section-candidate records", function()
    assert.same({}, acs_of(10250))
    local r = post("/actions/invite", { assessmentSectionID = 2002, endDate = "2030-01-31T00:00:00Z",
      isNotify = true, candidates = { { id = 10250 }, { id = 10251 } } })
    assert.equal(200, r.status, r.body)
    assert.equal(3, r.json.status)
    assert.equal(2, r.json.success_count)
    assert.equal(1, r.json.type) -- the seed's type for invite
    assert.equal(2002, r.json.assessmentSectionID)
    local acs = acs_of(10250)
    assert.equal(1, #acs)
    assert.equal(1001, acs[1].assessment_id)
    assert.equal(acs[1].id, r.json.assessmentCandidates[1].id)
    local ascs = sb:request("GET", "/models/assessment-section-candidate",
      { token = sb.tok, query = { assessment_candidate_id = acs[1].id } }).json
    assert.equal(1, #ascs)
    assert.equal(2002, ascs[1].assessment_section_id)
    assert.equal("2030-01-31T00:00:00Z", ascs[1].end_date)
    -- visible through the API with expand
    local got = sb:request("GET", "/models/assessment-candidate/" .. acs[1].id,
      { token = sb.tok, query = { expand = "candidate,assessmentSectionCandidates" } }).json
    assert.equal(10250, got.candidate.id)
    assert.equal(1, #got.assessmentSectionCandidates)
    -- notified
    assert.is_true(#sb:state("notification_log") > 0)
  end)

  it("invite answers 422 naming the field when an id does not exist", function()
    local r = post("/actions/invite", { assessmentSectionID = 987654, endDate = "2030-01-01T00:00:00Z",
      candidates = { { id = 10250 } } })
    assert.equal(422, r.status)
    assert.equal("assessmentSectionID", r.json[1].field)
    r = post("/actions/invite", { assessmentSectionID = 2002, endDate = "2030-01-01T00:00:00Z",
      candidates = { { id = 987654 } } })
    assert.equal(422, r.status)
    assert.equal("candidates", r.json[1].field)
    r = post("/actions/invite", { assessmentSectionID = 2002, candidates = { { id = 10250 } } })
    assert.equal(422, r.status)
    assert.same({ { field = "endDate", message = "End Date cannot be blank." } }, r.json)
    assert.same({}, acs_of(10250))
  end)

  it("re-invite bumps the invite counters", function()
    local before = sb:state("assessment_candidate", 30003)
    local r = post("/actions/re-invite", { isNotify = true, assessmentCandidates = { { id = 30003 } } })
    assert.equal(200, r.status, r.body)
    local after = sb:state("assessment_candidate", 30003)
    assert.equal(before.invite_count + 1, after.invite_count)
    assert.equal(2, sb:state("assessment_section_candidate", 40003).invite_count)
  end)

  it("extend-date moves the end date of every section of the candidate", function()
    local r = post("/actions/extend-date", { isNotify = false, endDate = "2031-05-05T10:00:00Z",
      assessmentCandidates = { { id = 30004 }, { id = 30005 } } })
    assert.equal(200, r.status, r.body)
    assert.equal("2031-05-05T10:00:00Z", sb:state("assessment_section_candidate", 40004).end_date)
    assert.equal("2031-05-05T10:00:00Z", sb:state("assessment_section_candidate", 40005).end_date)
    assert.are_not.equal("2031-05-05T10:00:00Z", sb:state("assessment_section_candidate", 40006).end_date)
  end)

  it("change-status sets the status and refuses an unknown status key", function()
    local r = post("/actions/change-status", { statusSortKey = 90, isNotify = false,
      assessmentCandidates = { { id = 30006 } } })
    assert.equal(200, r.status, r.body)
    assert.equal(90, sb:request("GET", "/models/assessment-candidate/30006", { token = sb.tok }).json.status_id)
    r = post("/actions/change-status", { statusSortKey = 55, isNotify = false,
      assessmentCandidates = { { id = 30006 } } })
    assert.equal(422, r.status)
    assert.equal("statusSortKey", r.json[1].field)
    assert.equal(90, sb:state("assessment_candidate", 30006).status_id)
  end)

  it("live-schedule creates a live session that reschedule and cancel change", function()
    local r = post("/actions/live-schedule", { startDate = "2030-02-01T10:00:00Z", endDate = "2030-02-01T11:00:00Z",
      panel = { { id = 41 } }, assessmentCandidateID = 30001, isNotify = true })
    assert.equal(200, r.status, r.body)
    local sid = r.json.liveSessionID
    local session = sb:request("GET", "/models/live-session/" .. sid, { token = sb.tok })
    assert.equal(200, session.status)
    assert.equal("2030-02-01T10:00:00Z", session.json.starts_at)
    assert.equal(1, session.json.status)
    local attendees = sb:request("GET", "/models/live-attendee", { token = sb.tok, query = { live_session_id = sid } })
    assert.equal(2, #attendees.json) -- the panel member and the candidate
    r = post("/actions/live-reschedule", { liveSessionID = sid, startDate = "2030-03-01T10:00:00Z",
      endDate = "2030-03-01T11:00:00Z", timezone = "Asia/Kolkata" })
    assert.equal(200, r.status, r.body)
    assert.equal("2030-03-01T10:00:00Z", sb:state("live_session", sid).starts_at)
    r = post("/actions/live-cancel", { liveSessionID = sid })
    assert.equal(200, r.status)
    assert.equal(10, sb:state("live_session", sid).status)
    assert.equal(422, post("/actions/live-cancel", { liveSessionID = 987654321 }).status)
  end)

  it("evaluate records an evaluation with its comment and ratings and marks the candidate assessed", function()
    local r = post("/actions/evaluate", { assessmentSectionCandidateID = 40010, recommendation = "select",
      evaluationComment = "Good communication", rating = { { parameter_id = 1, rating = 3 } } })
    assert.equal(200, r.status, r.body)
    local ev = sb:state("evaluation", r.json.evaluationID)
    assert.equal(40010, ev.assessment_section_candidate_id)
    assert.equal("select", ev.recommendation)
    local comments = sb:request("GET", "/models/evaluation-comment", { token = sb.tok,
      query = { evaluation_id = ev.id } }).json
    assert.equal("Good communication", comments[1].content)
    assert.equal(60, sb:state("assessment_candidate", 30010).status_id)
  end)

  it("create-assessment creates the assessment with its sections", function()
    local r = post("/actions/create-assessment", { title = "From an action", description = "x",
      sections = { { order = 1, title = "Objective" }, { order = 2, title = "Interview" } } })
    assert.equal(200, r.status, r.body)
    local a = sb:request("GET", "/models/assessment/" .. r.json.assessmentID, { token = sb.tok,
      query = { expand = "assessmentSections" } }).json
    assert.equal("From an action", a.title)
    assert.equal(2, #a.assessmentSections)
  end)

  it("event-candidate-invite adds candidates to an event, creating new ones", function()
    local r = post("/actions/event-candidate-invite", { event_id = 60001, isNotify = false,
      candidates = { _content = { email = "walkin@example.test", first_name = "Walk", last_name = "In" } } })
    assert.equal(200, r.status, r.body)
    local found
    for _, c in ipairs(sb:state("candidate")) do
      if c.email == "walkin@example.test" then found = c end
    end
    assert.truthy(found)
    local ecs = sb:request("GET", "/models/event-candidate", { token = sb.tok, query = { event_id = 60001,
      candidate_id = found.id } }).json
    assert.equal(1, #ecs)
  end)

  it("event-candidate-invite gives a new candidate its own id, whatever _content says", function()
    local before = sb:state("candidate", 10001)
    local r = post("/actions/event-candidate-invite", { event_id = 60001, isNotify = false,
      candidates = { _content = { id = 10001, email = "intruder@example.test", first_name = "In" } } })
    assert.equal(200, r.status, r.body)
    assert.same(before, sb:state("candidate", 10001))
    local found
    for _, c in ipairs(sb:state("candidate")) do
      if c.email == "intruder@example.test" then found = c end
    end
    assert.truthy(found)
    assert.are_not.equal(10001, found.id)
  end)

  it("keeps every action it ran", function()
    post("/actions/re-invite", { isNotify = false, assessmentCandidates = { { id = 30001 } } })
    local actions = sb:state("action")
    assert.equal("re_invite", actions[#actions].name)
    assert.equal(41, actions[#actions].requested_by)
  end)
end)
