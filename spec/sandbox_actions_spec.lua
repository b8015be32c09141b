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

-- The fields of a JSON object's text, in their order: `{ {key =, kind =}, ... }`, the kind
-- (null, boolean, number, string, array, object) read from the first character of the value,
-- so that `[]` and `{}` are told apart (lua-cjson 2.1 decodes both to an empty table). The
-- object is the first one in the text (an example is `[{...}]`).
local KIND = { ["["] = "array", ["{"] = "object", ['"'] = "string", n = "null", t = "boolean", f = "boolean" }
local function fields(text)
  local out, depth, top, i = {}, 0, nil, 1
  while i <= #text do
    local c = text:sub(i, i)
    if c == '"' then
      local j = i + 1
      while j <= #text and text:sub(j, j) ~= '"' do j = j + (text:sub(j, j) == "\\" and 2 or 1) end
      local at = depth == top and text:match("^%s*:%s*()", j + 1)
      if at then out[#out + 1] = { key = text:sub(i + 1, j - 1), kind = KIND[text:sub(at, at)] or "number" } end
      i = j + 1
    else
      if c == "{" then
        depth = depth + 1
        top = top or depth
      elseif c == "[" then
        depth = depth + 1
      elseif c == "}" or c == "]" then
        if depth == top then break end
        depth = depth - 1
      end
      i = i + 1
    end
  end
  return out
end

local function kinds_of(text)
  local out = {}
  for _, f in ipairs(fields(text)) do out[f.key] = f.kind end
  return out
end

local function order_of(text)
  local out = {}
  for _, f in ipairs(fields(text)) do out[#out + 1] = f.key end
  return out
end

local function set(list)
  local out = {}
  for _, k in ipairs(list) do out[k] = true end
  return out
end

-- The fields of the seed's Action object ("The Action Object") that the server fills in, and
-- the `_links` some examples carry. Every other field of an example echoes the request
-- (`isNotify`, `skipCallback`, the action's own fields): the request's value, or null (`[]`
-- where the example shows a list) when the request leaves it out.
local SERVER = set({ "id", "external_id", "status", "type", "total_count", "error_count",
  "success_count", "completed_at", "requested_at", "started_at", "last_attempt_at", "requested_by",
  "created_at", "updated_at", "response", "_links" })

-- What processing a queued action fills in (the life cycle the seed documents): the kinds of
-- those fields once it is done, every item done.
local PROCESSED = { status = "number", started_at = "string", last_attempt_at = "string",
  completed_at = "string", total_count = "number", success_count = "number", error_count = "number",
  updated_at = "string", response = "null" }

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

  -- One table over every action of the catalogue: each request is answered as its seed
  -- example shows, key by key and value kind by value kind (a field the example shows null is
  -- null, `[]` stays a list, `{}` an object), the fields in the example's order, the request
  -- echoed, nothing more. A queued action (status 1 in its example) then gets, when processed,
  -- exactly what the life cycle fills in (PROCESSED) and nothing else changes; an action done
  -- at once keeps the shape its example shows, in the state and after actions/run. For
  -- live-schedule the seed's one example is a failure (99): a request that fails answers it
  -- field for field; one that succeeds differs only in `status` (3) and `response` (null).
  describe("every action, against its seed example", function()
    local SLOT = { startDate = "2030-03-01T10:00:00Z", endDate = "2030-03-01T11:00:00Z" }

    -- a live session for the actions about one (made by a live-schedule, done at once)
    local function session()
      local r = post("/actions/live-schedule", { startDate = "2030-02-01T10:00:00Z", endDate = "2030-02-01T11:00:00Z",
        panel = { { id = 41 } }, assessmentCandidateID = 30001 })
      assert.equal(3, r.json.status, r.body)
      local all = sb:state("live_session")
      return all[#all].id
    end

    -- { action, body (or a function making it), example = n-th example (default 1),
    --   status = the answer's status when it is not the example's }
    local CASES = {
      { "add_panel", { endDate = END, assessmentSections = { id = 2001 }, panel = { { id = 41 } },
        assessmentCandidates = { { id = 30001 } }, isNotify = false } },
      { "change_status", { statusSortKey = 70, isNotify = false, assessmentCandidates = { { id = 30002 } } } },
      { "create_assessment", { title = "T", description = "D", sections = { { order = 1, title = "S" } } } },
      { "evaluate", { assessmentSectionCandidateID = 40010, recommendation = "select", evaluationComment = "Good",
        rating = { { parameter_id = 1, rating = 3 } } } },
      { "event_candidate_invite", { event_id = 60001, isNotify = false,
        candidates = { _content = { email = "e1@example.test", first_name = "E" } } } },
      { "event_candidate_notify", { event_id = 60001, register_reminder = true } },
      { "event_panel_notify", { event_id = 60001 } },
      { "extend_date", { isNotify = false, endDate = END, assessmentCandidates = { { id = 30003 } } } },
      { "invite", { assessmentSectionID = 2002, endDate = END, isNotify = false,
        candidates = { { id = 10250 }, { id = 10251 } } } },
      { "live_cancel", function() return { liveSessionID = session() } end },
      { "live_change_panel", function() return { liveSessionID = session(), panel = { { id = 41 } } } end },
      { "live_reminder", function() return { liveSessionID = { { id = session() } } } end },
      { "live_reschedule", function()
        return { liveSessionID = session(), startDate = SLOT.startDate, endDate = SLOT.endDate,
          timezone = "Asia/Kolkata", isNotify = false }
      end },
      { "live_schedule", { startDate = SLOT.startDate, endDate = SLOT.endDate, panel = { { id = 41 } },
        assessmentCandidateID = 30001, isNotify = false }, status = 3 },
      { "live_schedule", { startDate = SLOT.endDate, endDate = SLOT.startDate, panel = { { id = 41 } },
        assessmentCandidateID = 30001, isNotify = false } },
      { "re_invite", { isNotify = false, assessmentCandidates = { { id = 30004 } } } },
      { "remind_candidate", { isNotify = false, endDate = END, assessmentCandidates = { { id = 30005 } } } },
      { "remind_candidate", { isNotify = false, endDate = END, assessmentSections = { { id = 2001 } } }, example = 2 },
      { "remind_panel", { isNotify = false, endDate = END, assessmentCandidates = { { id = 30005 } } } },
      { "section_workflow", { parent = 2001, child = 2002, assessmentID = 1001, type = "insert",
        section = { title = "New" } } },
      { "simulation_cancel", { assessmentSectionCandidateID = 40011, isNotify = false } },
      { "simulation_reminder", { assessmentSectionCandidateID = 40011, isNotify = false } },
      { "simulation_reschedule", { assessmentSectionCandidateID = 40011, isNotify = false,
        startDate = SLOT.startDate, endDate = SLOT.endDate, timezone = "Asia/Kolkata" } },
      { "simulation_schedule", { assessmentCandidateID = 30011, assessmentSectionCandidateID = 40011,
        isNotify = false, startDate = SLOT.startDate, endDate = SLOT.endDate } },
    }

    it("covers every action of the catalogue", function()
      local covered, want = {}, {}
      for _, c in ipairs(CASES) do covered[c[1]] = true end
      for _, ep in ipairs(require("assesskit.talview.catalogue").endpoints) do
        local name = ep.name:match("^actions%.(.+)$")
        if name then want[#want + 1] = name end
      end
      table.sort(want)
      assert.same(want, keys_of(covered))
      assert.equal(22, #want)
    end)

    -- the answer's fields against the example's: same keys in the same order, each of the
    -- request's fields echoed, each other field of the kind the example shows
    local function check_answer(c, body, r)
      local text = example_text(c[1], c.example)
      local want, got = kinds_of(text), kinds_of(r.body)
      local what = c[1] .. (c.example and (" (example " .. c.example .. ")") or "")
      assert.same(order_of(text), order_of(r.body), what .. ": the example's fields in its order")
      for key, k in pairs(want) do
        if body[key] ~= nil and not SERVER[key] then
          assert.same(body[key], r.json[key], what .. ": " .. key .. " echoes the request")
        elseif not SERVER[key] then
          assert.equal(k == "array" and "array" or "null", got[key], what .. ": " .. key .. " left out")
        elseif key == "status" then
          assert.equal(c.status or example(c[1], c.example).status, r.json.status, what .. ": status")
        elseif key == "response" and c.status then
          assert.equal("null", got[key], what .. ": response")
        else
          assert.equal(k, got[key], what .. ": " .. key .. " (the example's is " .. k .. ")")
        end
      end
      if want.type == "number" or want.type == "null" then
        assert.equal(example(c[1], c.example).type, r.json.type, what .. ": type")
      end
      assert.equal(41, r.json.requested_by, what)
    end

    local function raw_state(id)
      local r = sb:request("GET", "/_sandbox/state/action/" .. id)
      assert.equal(200, r.status, r.body)
      return r
    end

    for _, c in ipairs(CASES) do
      local name, title = c[1], c[1]:gsub("_", "-")
      if c.example then title = title .. " (the seed's example " .. c.example .. ")" end
      if c.status then title = title .. " (succeeding: status " .. c.status .. ")" end
      it(title .. " answers as its seed example", function()
        hold()
        local body = type(c[2]) == "function" and c[2]() or c[2]
        local r = post("/actions/" .. name:gsub("_", "-"), body)
        assert.equal(200, r.status, r.body)
        check_answer(c, body, r)
        local queued = r.json.status == 1
        -- the kept action is the answer, until it is processed
        assert.same(r.json, raw_state(r.json.id).json, name .. ": the kept action")
        sb:run_actions()
        local after = raw_state(r.json.id)
        assert.same(order_of(r.body), order_of(after.body), name .. ": the fields after processing")
        if not queued then
          -- done at once: nothing changes any more
          assert.same(r.json, after.json, name .. ": after actions/run")
          return
        end
        local kinds = kinds_of(after.body)
        for key in pairs(kinds_of(r.body)) do
          if PROCESSED[key] then
            assert.equal(PROCESSED[key], kinds[key], name .. ": " .. key .. " once processed")
          else
            assert.same(r.json[key], after.json[key], name .. ": " .. key .. " unchanged by processing")
          end
        end
        assert.equal(3, after.json.status, name)
        assert.is_true(after.json.total_count >= 1, name)
        assert.equal(after.json.total_count, after.json.success_count, name)
        assert.equal(0, after.json.error_count, name)
      end)
    end
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

    it("partial_failure on an action done at once: its counts stay null as its example, response tells", function()
      sb:fault({ kind = "partial_failure", items = 1, path = "/actions/create-assessment" })
      local r = post("/actions/create-assessment", { title = "Half", sections = { { order = 1, title = "A" },
        { order = 2, title = "B" } } })
      assert.equal(200, r.status, r.body)
      assert.equal(3, r.json.status)
      assert.equal(cjson.null, r.json.error_count)
      assert.equal(cjson.null, r.json.total_count)
      local errs = cjson.decode(r.json.response)
      assert.equal(1, #errs)
      assert.equal(1, errs[1].id)
      local a = sb:request("GET", r.json._links.assessment.href, { token = sb.tok,
        query = { expand = "assessmentSections" } }).json
      assert.equal(1, #a.assessmentSections)
      assert.equal("B", a.assessmentSections[1].title)
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
      assert.equal(cjson.null, r.json.success_count) -- as the seed's example: its counts are null
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
