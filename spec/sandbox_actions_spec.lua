-- Talview actions in the sandbox behave as the API documents them: the POST answers the seed's
-- example shape, queued (status 1, nothing done yet) for most; the work happens when the
-- action is processed (after `action_delay`, or at POST /_sandbox/actions/run): status 2, item
-- by item, status 3 with counts; items that cannot be done are counted and described, the rest
-- is done; an action that cannot be done at all ends at 99. Checked through the API and the
-- sandbox's state endpoint.
local sandbox = require("support.sandbox")
local sys = require("support.sys")
local cjson = require("cjson")
local samples = require("assesskit.sandbox.samples")

local END = "2030-01-31T00:00:00Z"

-- The seed's example answer of an action (`actions.<name>`), decoded; `n`: the n-th example
-- where the seed shows more than one (Remind Candidate's second, by sections).
local function example_text(name, n)
  local s = samples["actions." .. name]
  if n and n > 1 then s = s.more[n - 1] end
  return s.json
end

local function example(name, n)
  local v = cjson.decode(example_text(name, n))
  return v[1] or v
end

local function keys_of(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

describe("the seed's example answers of the actions", function()
  local SEED = sys.repo .. "/../shared/seeds/002_3384fbf1d7adbc06.txt"

  it("are what samples_gen rebuilds from the seed (lua/assesskit/sandbox/samples.lua is not stale)", function()
    if not sys.read(SEED) then
      return pending("needs the API documents (../shared/seeds/) beside the checkout: rebuilds "
        .. "lua/assesskit/sandbox/samples.lua from the seed and compares")
    end
    local tmp = sys.tmpdir("samples")
    sys.must("cd " .. sys.quote(sys.repo) .. " && lua5.4 -e " .. sys.quote(string.format(
      'package.path = "lua/?.lua;lua/?/init.lua;" .. package.path '
      .. 'require("assesskit.sandbox.samples_gen").main(%q, %q)', SEED, tmp .. "/samples.lua")) .. " 2>&1")
    local fresh = sys.read(tmp .. "/samples.lua")
    sys.rmdir(tmp)
    assert.is_true(fresh == sys.read(sys.repo .. "/lua/assesskit/sandbox/samples.lua"),
      "lua/assesskit/sandbox/samples.lua is stale: regenerate it (lua/assesskit/sandbox/README.md)")
  end)

  it("include Remind Candidate's second example, a reminder by sections, which echoes them", function()
    local more = samples["actions.remind_candidate"].more
    assert.equal(1, #more)
    local second = example("remind_candidate", 2)
    assert.same({ { id = 381499 } }, second.assessmentSections)
    assert.is_nil(second.assessmentCandidates)
    assert.is_nil(example("remind_candidate").assessmentSections)
    for name, s in pairs(samples) do
      if name ~= "actions.remind_candidate" then assert.is_nil(s.more, name) end
    end
  end)
end)

describe("sandbox Talview actions", function()
  local sb = sandbox.fixture({ token = true, reset = true })

  local function post(path, body, headers)
    return sb:request("POST", path, { token = sb.tok, body = body, headers = headers })
  end

  local function acs_of(candidate_id, assessment_id)
    local out = {}
    for _, ac in ipairs(sb:state("assessment_candidate")) do
      if ac.candidate_id == candidate_id and (not assessment_id or ac.assessment_id == assessment_id) then
        out[#out + 1] = ac
      end
    end
    return out
  end

  local function action(id)
    return (sb:state("action", id))
  end

  -- Polls `fn` until it returns a true value (at most `seconds`): no timing is asserted, the
  -- deadline only keeps a broken sandbox from hanging the suite.
  local function eventually(fn, seconds)
    local deadline = os.time() + (seconds or 10)
    repeat
      local v = fn()
      if v then return v end
      sys.sleep(0.02)
    until os.time() > deadline
    return fn()
  end

  -- nothing is processed by itself while a test looks at queued actions
  local function hold()
    sb:config({ action_delay = 600 })
  end

  describe("POST answers", function()
    it("queue an invite: status 1, its example's fields and no others, and nothing has happened", function()
      hold()
      local notes = #sb:state("notification_log")
      local r = post("/actions/invite", { assessmentSectionID = 2002, endDate = END, isNotify = true,
        candidates = { { id = 10250 }, { id = 10251 } } })
      assert.equal(200, r.status, r.body)
      local a = r.json
      assert.equal(1, a.status)
      assert.same(keys_of(example("invite")), keys_of(a))
      assert.is_nil(a.assessmentCandidates) -- production never sends the new ids
      assert.equal(cjson.null, a.total_count)
      assert.equal(cjson.null, a.success_count)
      assert.equal(cjson.null, a.completed_at)
      assert.equal(cjson.null, a.started_at)
      assert.equal(1, a.type) -- the seed's type for invite
      assert.equal(2002, a.assessmentSectionID)
      assert.same({ { id = 10250 }, { id = 10251 } }, a.candidates)
      assert.equal(41, a.requested_by)
      -- nothing has happened yet
      assert.same({}, acs_of(10250))
      assert.same({}, acs_of(10251))
      assert.equal(notes, #sb:state("notification_log")) -- nobody notified
      assert.equal(1, action(a.id).status)
    end)

    it("answer every action as its seed example: queued where it shows status 1, done where it shows 3",
      function()
      hold()
      local sid = post("/actions/live-schedule", { startDate = "2030-02-01T10:00:00Z",
        endDate = "2030-02-01T11:00:00Z", panel = { { id = 41 } }, assessmentCandidateID = 30001 }).json
      assert.equal(3, sid.status)
      local session = sb:state("live_session")
      session = session[#session].id
      local dates = { startDate = "2030-03-01T10:00:00Z", endDate = "2030-03-01T11:00:00Z" }
      local bodies = {
        add_panel = { endDate = END, assessmentSections = { id = 2001 }, panel = { { id = 41 } },
          assessmentCandidates = { { id = 30001 } } },
        change_status = { statusSortKey = 70, isNotify = false, assessmentCandidates = { { id = 30002 } } },
        create_assessment = { title = "T", sections = { { order = 1, title = "S" } } },
        evaluate = { assessmentSectionCandidateID = 40010, recommendation = "select" },
        event_candidate_invite = { event_id = 60001, candidates = { _content = { email = "e1@example.test" } } },
        event_candidate_notify = { event_id = 60001 },
        event_panel_notify = { event_id = 60001 },
        extend_date = { isNotify = false, endDate = END, assessmentCandidates = { { id = 30003 } } },
        invite = { assessmentSectionID = 2002, endDate = END, candidates = { { id = 10250 } } },
        live_cancel = { liveSessionID = session },
        live_change_panel = { liveSessionID = session, panel = { { id = 41 } } },
        live_reminder = { liveSessionID = { { id = session } } },
        live_reschedule = { liveSessionID = session, startDate = dates.startDate, endDate = dates.endDate,
          timezone = "Asia/Kolkata" },
        live_schedule = { startDate = dates.startDate, endDate = dates.endDate, panel = { { id = 41 } } },
        re_invite = { isNotify = false, assessmentCandidates = { { id = 30004 } } },
        remind_candidate = { isNotify = false, assessmentCandidates = { { id = 30005 } } },
        remind_panel = { isNotify = false, assessmentCandidates = { { id = 30005 } } },
        section_workflow = { parent = 2001, child = 2002, assessmentID = 1001, type = "insert",
          section = { title = "New" } },
        simulation_cancel = { assessmentSectionCandidateID = 40011, isNotify = false },
        simulation_reminder = { assessmentSectionCandidateID = 40011, isNotify = false },
        simulation_reschedule = { assessmentSectionCandidateID = 40011, isNotify = false,
          startDate = dates.startDate, endDate = dates.endDate },
        simulation_schedule = { assessmentCandidateID = 30011, assessmentSectionCandidateID = 40011,
          isNotify = false, startDate = dates.startDate, endDate = dates.endDate },
      }
      local names = keys_of(bodies)
      assert.equal(22, #names)
      local queued, done = {}, 0
      for _, name in ipairs(names) do
        local r = post("/actions/" .. name:gsub("_", "-"), bodies[name])
        assert.equal(200, r.status, name .. ": " .. r.body)
        local want = example(name)
        -- live-schedule's example is a failed one; a valid request is done at once
        local status = name == "live_schedule" and 3 or want.status
        assert.equal(status, r.json.status, name)
        assert.same(keys_of(want), keys_of(r.json), name)
        if status == 1 then
          queued[#queued + 1] = r.json.id
          assert.equal(cjson.null, r.json.started_at, name)
        else
          done = done + 1
          assert.equal(r.json.total_count, r.json.success_count, name)
          assert.is_string(r.json.completed_at, name)
        end
      end
      assert.equal(16, #queued)
      assert.equal(6, done)
      assert.equal(16, sb:run_actions().processed)
      for _, id in ipairs(queued) do
        local a = action(id)
        assert.equal(3, a.status, a.type)
        assert.is_true(a.total_count >= 1)
        assert.equal(a.total_count, a.success_count)
        assert.equal(0, a.error_count)
        assert.is_string(a.started_at)
        assert.is_string(a.completed_at)
      end
    end)

    it("refuse a request the action cannot take (422 naming the field), queueing nothing", function()
      local before = #sb:state("action")
      local r = post("/actions/invite", { assessmentSectionID = 987654, endDate = END,
        candidates = { { id = 10250 } } })
      assert.equal(422, r.status)
      assert.equal("assessmentSectionID", r.json[1].field)
      r = post("/actions/invite", { assessmentSectionID = 2002, candidates = { { id = 10250 } } })
      assert.equal(422, r.status)
      assert.same({ { field = "endDate", message = "End Date cannot be blank." } }, r.json)
      r = post("/actions/change-status", { statusSortKey = 55, isNotify = false,
        assessmentCandidates = { { id = 30006 } } })
      assert.equal(422, r.status)
      assert.equal("statusSortKey", r.json[1].field)
      r = post("/actions/invite", { assessmentSectionID = 2002, endDate = END, candidates = { { id = 10250 } },
        callbackUrl = "ftp://example.test/x" })
      assert.equal(422, r.status)
      assert.equal("callbackUrl", r.json[1].field)
      r = post("/actions/re-invite", { isNotify = false, assessmentCandidates = { { id = 30001 } },
        skipCallback = "yes" })
      assert.equal(422, r.status)
      assert.equal("skipCallback", r.json[1].field)
      assert.equal(before, #sb:state("action"))
      assert.same({}, acs_of(10250))
    end)

    it("accept callbackUrl and skipCallback on every action", function()
      hold()
      local r = post("/actions/re-invite", { isNotify = false, assessmentCandidates = { { id = 30001 } },
        callbackUrl = "http://127.0.0.1:9/cb?secret=abcdefabcdefabcdef", skipCallback = true })
      assert.equal(200, r.status, r.body)
      assert.equal(true, r.json.skipCallback)
      r = post("/actions/invite", { assessmentSectionID = 2002, endDate = END, candidates = { { id = 10250 } },
        callbackUrl = "https://hooks.example.test/talview?secret=abcdefabcdefabcdef", skipCallback = false })
      assert.equal(200, r.status, r.body)
      assert.equal("https://hooks.example.test/talview?secret=abcdefabcdefabcdef", r.json.callbackUrl)
      -- the request log keeps the URL but not its secret
      local logged = sb:requests({ path = "/actions/invite" })
      assert.is_nil(logged[#logged].body:find("abcdefabcdefabcdef", 1, true))
      assert.truthy(logged[#logged].body:find("secret=***", 1, true), logged[#logged].body)
    end)
  end)

  describe("processing", function()
    it("does an invite's work at actions/run: status 3, counts, and the new records visible", function()
      hold()
      local a = post("/actions/invite", { assessmentSectionID = 2002, endDate = END, isNotify = true,
        candidates = { { id = 10250 }, { id = 10251 } } }).json
      local notes = #sb:state("notification_log")
      assert.same({ processed = 1, callbacks = 0 }, sb:run_actions())
      local done = action(a.id)
      assert.equal(3, done.status)
      assert.equal(2, done.total_count)
      assert.equal(2, done.success_count)
      assert.equal(0, done.error_count)
      assert.equal(cjson.null, done.response)
      local acs = acs_of(10250)
      assert.equal(1, #acs)
      assert.equal(1001, acs[1].assessment_id)
      local ascs = sb:request("GET", "/models/assessment-section-candidate",
        { token = sb.tok, query = { assessment_candidate_id = acs[1].id } }).json
      assert.equal(1, #ascs)
      assert.equal(2002, ascs[1].assessment_section_id)
      assert.equal(END, ascs[1].end_date)
      local got = sb:request("GET", "/models/assessment-candidate/" .. acs[1].id,
        { token = sb.tok, query = { expand = "candidate,assessmentSectionCandidates" } }).json
      assert.equal(10250, got.candidate.id)
      assert.equal(2, #sb:state("notification_log") - notes)
      -- nothing pending any more
      assert.same({ processed = 0, callbacks = 0 }, sb:run_actions())
    end)

    it("processes a queued action by itself after action_delay", function()
      sb:config({ action_delay = 0.05 })
      local a = post("/actions/invite", { assessmentSectionID = 2002, endDate = END,
        candidates = { { id = 10252 } } }).json
      assert.truthy(eventually(function() return action(a.id).status == 3 end), "still " .. action(a.id).status)
      assert.equal(1, #acs_of(10252))
    end)

    it("counts an item that cannot be done, describes it in response, and does the others", function()
      hold()
      local a = post("/actions/invite", { assessmentSectionID = 2002, endDate = END,
        candidates = { { id = 10250 }, { id = 987654 }, { id = 10251 } } }).json
      sb:run_actions()
      local done = action(a.id)
      assert.equal(3, done.status)
      assert.equal(3, done.total_count)
      assert.equal(2, done.success_count)
      assert.equal(1, done.error_count)
      assert.same({ { id = 987654, message = "Candidate 987654 does not exist." } }, cjson.decode(done.response))
      assert.equal(1, #acs_of(10250))
      assert.equal(1, #acs_of(10251))
    end)

    it("does nothing for a candidate of a closed assessment, and says so", function()
      hold()
      -- assessment 1002 (sections 2004-2006) closes
      local put = sb:request("PUT", "/models/assessment/1002", { token = sb.tok,
        body = { title = sb:state("assessment", 1002).title, status_id = 2 } })
      assert.equal(200, put.status, put.body)
      local a = post("/actions/invite", { assessmentSectionID = 2004, endDate = END,
        candidates = { { id = 10260 }, { id = 10261 } } }).json
      sb:run_actions()
      local done = action(a.id)
      assert.equal(3, done.status)
      assert.equal(0, done.success_count)
      assert.equal(2, done.error_count)
      local errs = cjson.decode(done.response)
      assert.equal("Assessment 1002 is closed.", errs[1].message)
      assert.same({}, acs_of(10260, 1002))
    end)

    it("fails a queued action as a whole (99) when what it is about is gone when it runs", function()
      hold()
      local a = post("/actions/invite", { assessmentSectionID = 2003, endDate = END,
        candidates = { { id = 10253 } } }).json
      assert.equal(1, a.status)
      assert.equal(204, sb:request("DELETE", "/models/assessment-section/2003", { token = sb.tok }).status)
      sb:run_actions()
      local done = action(a.id)
      assert.equal(99, done.status)
      assert.equal(0, done.total_count)
      assert.equal(cjson.null, done.completed_at)
      assert.equal("Assessment Section 2003 does not exist.", cjson.decode(done.response))
      assert.same({}, acs_of(10253))
    end)

    it("fails live-schedule as a whole at once (99, Invalid configuration) when its slot is empty", function()
      local sessions = #sb:state("live_session")
      local r = post("/actions/live-schedule", { startDate = "2030-02-01T11:00:00Z", endDate = "2030-02-01T10:00:00Z",
        panel = { { id = 41 } }, assessmentCandidateID = 30001, isNotify = true })
      assert.equal(200, r.status, r.body)
      assert.equal(99, r.json.status)
      assert.equal('"Invalid configuration"', r.json.response) -- as the seed's example, JSON text
      assert.equal(0, r.json.total_count)
      assert.same(keys_of(example("live_schedule")), keys_of(r.json))
      assert.equal(sessions, #sb:state("live_session"))
    end)

    it("drops pending actions on reset", function()
      hold()
      post("/actions/invite", { assessmentSectionID = 2002, endDate = END, candidates = { { id = 10254 } } })
      sb:reset()
      assert.same({ processed = 0, callbacks = 0 }, sb:run_actions())
      assert.same({}, acs_of(10254))
    end)
  end)

  describe("faults on actions", function()
    it("partial_failure fails the first items and the others are done", function()
      hold()
      sb:fault({ kind = "partial_failure", items = 2, path = "/actions/invite" })
      local a = post("/actions/invite", { assessmentSectionID = 2002, endDate = END,
        candidates = { { id = 10250 }, { id = 10251 }, { id = 10252 } } }).json
      sb:run_actions()
      local done = action(a.id)
      assert.equal(3, done.status)
      assert.equal(1, done.success_count)
      assert.equal(2, done.error_count)
      local errs = cjson.decode(done.response)
      assert.equal(10250, errs[1].id)
      assert.equal(10251, errs[2].id)
      assert.same({}, acs_of(10250))
      assert.equal(1, #acs_of(10252))
      -- used up: the next invite is whole
      local b = post("/actions/invite", { assessmentSectionID = 2002, endDate = END,
        candidates = { { id = 10250 } } }).json
      sb:run_actions()
      assert.equal(0, action(b.id).error_count)
    end)

    it("partial_failure also comes with the X-Sandbox-Fault header", function()
      hold()
      local a = post("/actions/re-invite", { isNotify = false,
        assessmentCandidates = { { id = 30001 }, { id = 30002 } } },
        { ["X-Sandbox-Fault"] = "partial_failure; items=1" }).json
      assert.equal(1, a.status)
      sb:run_actions()
      assert.equal(1, action(a.id).error_count)
      assert.equal(1, action(a.id).success_count)
    end)

    it("slow_action keeps an action processing with its counts growing; actions/run hurries it", function()
      sb:config({ action_delay = 0 })
      sb:fault({ kind = "slow_action", delay = 600, path = "/actions/invite" })
      local a = post("/actions/invite", { assessmentSectionID = 2002, endDate = END,
        candidates = { { id = 10255 }, { id = 10256 } } }).json
      assert.equal(1, a.status)
      local seen = eventually(function()
        local x = action(a.id)
        return x.status == 2 and x
      end)
      assert.truthy(seen, "never seen processing")
      assert.equal(2, seen.total_count)
      assert.equal(0, seen.success_count)
      assert.is_string(seen.started_at)
      assert.equal(cjson.null, seen.completed_at)
      sb:run_actions()
      local done = action(a.id)
      assert.equal(3, done.status)
      assert.equal(2, done.success_count)
      assert.equal(1, #acs_of(10256))
    end)
  end)

  describe("what each action does", function()
    before_each(hold)

    it("re-invite bumps the invite counters", function()
      local before = sb:state("assessment_candidate", 30003)
      assert.equal(200, post("/actions/re-invite", { isNotify = true,
        assessmentCandidates = { { id = 30003 } } }).status)
      assert.equal(before.invite_count, sb:state("assessment_candidate", 30003).invite_count)
      sb:run_actions()
      assert.equal(before.invite_count + 1, sb:state("assessment_candidate", 30003).invite_count)
      assert.equal(2, sb:state("assessment_section_candidate", 40003).invite_count)
    end)

    it("extend-date moves the end date of every section of the candidate", function()
      post("/actions/extend-date", { isNotify = false, endDate = "2031-05-05T10:00:00Z",
        assessmentCandidates = { { id = 30004 }, { id = 30005 } } })
      sb:run_actions()
      assert.equal("2031-05-05T10:00:00Z", sb:state("assessment_section_candidate", 40004).end_date)
      assert.equal("2031-05-05T10:00:00Z", sb:state("assessment_section_candidate", 40005).end_date)
      assert.are_not.equal("2031-05-05T10:00:00Z", sb:state("assessment_section_candidate", 40006).end_date)
    end)

    it("change-status sets the status", function()
      post("/actions/change-status", { statusSortKey = 90, isNotify = false,
        assessmentCandidates = { { id = 30006 } } })
      assert.are_not.equal(90, sb:state("assessment_candidate", 30006).status_id)
      sb:run_actions()
      assert.equal(90, sb:request("GET", "/models/assessment-candidate/30006", { token = sb.tok }).json.status_id)
    end)

    it("live-schedule makes a live session at once; reschedule and cancel change it when processed", function()
      local r = post("/actions/live-schedule", { startDate = "2030-02-01T10:00:00Z", endDate = "2030-02-01T11:00:00Z",
        panel = { { id = 41 } }, assessmentCandidateID = 30001, isNotify = true })
      assert.equal(3, r.json.status)
      assert.is_nil(r.json.liveSessionID) -- not in the seed's example: found through the API
      local list = sb:request("GET", "/models/live-session", { token = sb.tok,
        query = { assessment_section_candidate_id = 40001 } }).json
      local session = list[#list]
      assert.equal("2030-02-01T10:00:00Z", session.starts_at)
      assert.equal(1, session.status)
      local attendees = sb:request("GET", "/models/live-attendee", { token = sb.tok,
        query = { live_session_id = session.id } })
      assert.equal(2, #attendees.json) -- the panel member and the candidate
      post("/actions/live-reschedule", { liveSessionID = session.id, startDate = "2030-03-01T10:00:00Z",
        endDate = "2030-03-01T11:00:00Z", timezone = "Asia/Kolkata" })
      sb:run_actions()
      assert.equal("2030-03-01T10:00:00Z", sb:state("live_session", session.id).starts_at)
      post("/actions/live-cancel", { liveSessionID = session.id })
      sb:run_actions()
      assert.equal(10, sb:state("live_session", session.id).status)
      assert.equal(422, post("/actions/live-cancel", { liveSessionID = 987654321 }).status)
    end)

    it("evaluate is done at once, linking the evaluation with its comment and ratings", function()
      local r = post("/actions/evaluate", { assessmentSectionCandidateID = 40010, recommendation = "select",
        evaluationComment = "Good communication", rating = { { parameter_id = 1, rating = 3 } } })
      assert.equal(3, r.json.status)
      local id = tonumber(r.json._links.evaluation.href:match("^/models/evaluation/(%d+)$"))
      local ev = sb:state("evaluation", id)
      assert.equal(40010, ev.assessment_section_candidate_id)
      assert.equal("select", ev.recommendation)
      local comments = sb:request("GET", "/models/evaluation-comment", { token = sb.tok,
        query = { evaluation_id = ev.id } }).json
      assert.equal("Good communication", comments[1].content)
      assert.equal(60, sb:state("assessment_candidate", 30010).status_id)
    end)

    it("create-assessment is done at once, linking the assessment with its sections", function()
      local r = post("/actions/create-assessment", { title = "From an action", description = "x",
        sections = { { order = 1, title = "Objective" }, { order = 2, title = "Interview" } } })
      assert.equal(3, r.json.status)
      assert.equal(2, r.json.success_count)
      local a = sb:request("GET", r.json._links.assessment.href, { token = sb.tok,
        query = { expand = "assessmentSections" } }).json
      assert.equal("From an action", a.title)
      assert.equal(2, #a.assessmentSections)
    end)

    it("event-candidate-invite adds candidates to an event at once, new ones with ids of their own", function()
      local before = sb:state("candidate", 10001)
      local r = post("/actions/event-candidate-invite", { event_id = 60001, isNotify = false,
        candidates = { _content = { id = 10001, email = "walkin@example.test", first_name = "Walk" } } })
      assert.equal(3, r.json.status, r.body)
      assert.same(before, sb:state("candidate", 10001))
      local found
      for _, c in ipairs(sb:state("candidate")) do
        if c.email == "walkin@example.test" then found = c end
      end
      assert.truthy(found)
      assert.are_not.equal(10001, found.id)
      local ecs = sb:request("GET", "/models/event-candidate", { token = sb.tok, query = { event_id = 60001,
        candidate_id = found.id } }).json
      assert.equal(1, #ecs)
    end)

    it("keeps every action, with unique ids, in the action state", function()
      local a = post("/actions/re-invite", { isNotify = false, assessmentCandidates = { { id = 30001 } } }).json
      local b = post("/actions/re-invite", { isNotify = false, assessmentCandidates = { { id = 30001 } } }).json
      assert.are_not.equal(a.id, b.id)
      local kept = action(b.id)
      assert.equal(13, kept.type) -- the seed's type for re-invite
      assert.equal(41, kept.requested_by)
      sb:reset()
      local c = post("/actions/re-invite", { isNotify = false, assessmentCandidates = { { id = 30001 } } }).json
      assert.is_true(c.id > b.id) -- a reset does not reuse ids (a callback receiver remembers them)
    end)

    it("never gives an action an id that a sandbox started before it gave (a callback receiver remembers them)",
      function()
      hold()
      local before = {}
      for i = 1, 30 do
        before[i] = post("/actions/re-invite", { isNotify = false, assessmentCandidates = { { id = 30001 } } }).json.id
      end
      local other = sandbox.start()
      local ok, err = pcall(function()
        local r = other:request("POST", "/actions/re-invite", { token = other:token(),
          body = { isNotify = false, assessmentCandidates = { { id = 30001 } } } })
        assert.equal(200, r.status, r.body)
        for _, id in ipairs(before) do assert.are_not.equal(id, r.json.id) end
        assert.is_true(r.json.id > before[#before])
      end)
      other:stop()
      assert(ok, err)
    end)
  end)
end)
