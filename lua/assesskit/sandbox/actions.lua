--- Talview actions (`POST /actions/...`): each changes the state it names, then answers with
-- an action object shaped like the seed's sample (the sample's keys, the request's fields
-- echoed, `id`, `status` 3 "completed", counts, times, `requested_by`).
--
-- The sandbox runs actions synchronously, so `status` is 3 (STATUS_COMPLETED) at once and
-- `total_count` / `success_count` / `error_count` say how many records were handled. Where
-- an action creates records the answer also names them (`assessmentCandidates`,
-- `assessmentSectionCandidates`, `liveSessionID`, `assessmentID`, `evaluationID`), so that a
-- client can follow up. Every action is kept in the `action` store
-- (`GET /_sandbox/state/action`).
--
-- Referenced records must exist: an unknown id answers 422 with the field named.
-- @module assesskit.sandbox.actions

local json = require("assesskit.sandbox.json")
local http = require("assesskit.sandbox.http")
local store = require("assesskit.sandbox.store")
local resources = require("assesskit.sandbox.resources")

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local string_format, math_random = string.format, math.random

local M = {}

--- Assessment-candidate status ids (the seed's "List of Assessment Candidate Status").
M.status = {
  invited = 10, mailed = 20, attending = 30, completed = 50, assessed = 60,
  selected = 70, hold = 80, rejected = 90, suspended = 100, archived = 120,
}

--- The `statusSortKey` values `change-status` accepts.
M.status_sort_keys = { [70] = "SELECT", [80] = "HOLD", [90] = "REJECT", [100] = "SUSPEND", [120] = "ARCHIVE" }

--- Live session status ids.
M.live_status = { scheduled = 1, in_progress = 2, complete = 3, cancelled = 10 }

local function eq(a, b)
  return a ~= nil and b ~= nil and a ~= json.null and b ~= json.null and tostring(a) == tostring(b)
end

local function uuid()
  return string_format("%08x-%04x-%04x-%04x-%012x", math_random(0, 0x7fffffff),
    math_random(0, 0xffff), math_random(0, 0x0fff) + 0x4000, math_random(0, 0x3fff) + 0x8000,
    math_random(0, 0xffffff) * 0x1000000 + math_random(0, 0xffffff))
end

-- ids from `[{id = 1}, ...]`, `[1, 2]` or a single id
local function ids_of(v)
  local out = {}
  if v == nil or v == json.null then return out end
  if type(v) ~= "table" then
    out[1] = tonumber(v)
    return out
  end
  if v.id ~= nil and not json.is_array(v) then
    out[1] = tonumber(v.id)
    return out
  end
  for _, x in ipairs(v) do
    if type(x) == "table" then out[#out + 1] = tonumber(x.id) or false
    else out[#out + 1] = tonumber(x) or false end
  end
  return out
end

-- A validation failure carried out of a handler.
local function invalid(field, message)
  error({ invalid = { { field = field, message = message } } }, 0)
end

local function need(resource, id, field)
  local rec = id and store.get(resource, id)
  if not rec then
    invalid(field, string_format("%s %s is invalid: no such %s.", resources.label(field), tostring(id), resource))
  end
  return rec
end

local function need_all(resource, value, field)
  local ids = ids_of(value)
  if #ids == 0 then invalid(field, resources.label(field) .. " cannot be blank.") end
  local out = {}
  for _, id in ipairs(ids) do out[#out + 1] = need(resource, id, field) end
  return out
end

local function sections_of(ac, section_id)
  return store.list("assessment_section_candidate", function(r)
    return eq(r.assessment_candidate_id, ac.id)
      and (section_id == nil or tonumber(r.assessment_section_id) == tonumber(section_id))
  end)
end

local function notify(principal, kind, to, about)
  resources.create_record("notification_log", {
    type = kind, to = to, subject = kind, status = 1, sent_at = resources.now(),
    assessment_candidate_id = about and about.assessment_candidate_id or json.null,
    assessment_id = about and about.assessment_id or json.null,
  }, principal)
end

local function id_list(records)
  local out = json.array()
  for i, r in ipairs(records) do out[i] = json.object({ id = r.id }) end
  return out
end

-- handlers: function(body, principal) -> count, extra fields for the answer ----------------

local handlers = {}

handlers.invite = function(body, principal)
  local section = need("assessment_section", tonumber(body.assessmentSectionID), "assessmentSectionID")
  if body.assessmentID ~= nil and body.assessmentID ~= json.null
    and tonumber(body.assessmentID) ~= tonumber(section.assessment_id) then
    invalid("assessmentID", "Assessment ID does not match the assessment section's assessment.")
  end
  local candidates = need_all("candidate", body.candidates, "candidates")
  local now = resources.now()
  local acs, ascs = {}, {}
  for _, cand in ipairs(candidates) do
    local ac = store.find("assessment_candidate", function(r)
      return eq(r.candidate_id, cand.id) and eq(r.assessment_id, section.assessment_id)
    end)
    if ac then
      ac.invite_count = (tonumber(ac.invite_count) or 1) + 1
      ac.invited_at, ac.updated_at = now, now
    else
      ac = resources.create_record("assessment_candidate", {
        assessment_id = section.assessment_id, candidate_id = cand.id,
        status_id = body.isNotify == true and M.status.mailed or M.status.invited,
        invited_by = principal.id, invited_at = now, invite_count = 1,
      }, principal)
    end
    local asc = sections_of(ac, section.id)[1]
    if asc then
      asc.end_date = body.endDate
      asc.invite_count = (tonumber(asc.invite_count) or 1) + 1
      asc.invited_at, asc.updated_at = now, now
    else
      asc = resources.create_record("assessment_section_candidate", {
        assessment_candidate_id = ac.id, assessment_id = section.assessment_id,
        assessment_section_id = section.id, section_id = section.section_id,
        end_date = body.endDate, status_id = ac.status_id, invited_at = now, invite_count = 1,
        isComplete = false,
      }, principal)
    end
    if body.isNotify == true then notify(principal, "invite", cand.email, asc) end
    acs[#acs + 1], ascs[#ascs + 1] = ac, asc
  end
  return #candidates, {
    assessmentID = section.assessment_id,
    assessmentCandidates = id_list(acs),
    assessmentSectionCandidates = id_list(ascs),
  }
end

handlers.re_invite = function(body, principal)
  local acs = need_all("assessment_candidate", body.assessmentCandidates, "assessmentCandidates")
  local section_id = body.assessment_section_id or body.assessmentSectionID
  if section_id == json.null then section_id = nil end
  local now = resources.now()
  for _, ac in ipairs(acs) do
    ac.invite_count = (tonumber(ac.invite_count) or 1) + 1
    ac.invited_at, ac.updated_at = now, now
    if body.isNotify == true and (ac.status_id == M.status.invited or ac.status_id == json.null) then
      ac.status_id = M.status.mailed
    end
    for _, asc in ipairs(sections_of(ac, section_id)) do
      asc.invite_count = (tonumber(asc.invite_count) or 1) + 1
      asc.invited_at, asc.updated_at = now, now
    end
    if body.isNotify == true then notify(principal, "re-invite", nil, { assessment_candidate_id = ac.id }) end
  end
  return #acs, { assessmentCandidates = id_list(acs) }
end

handlers.extend_date = function(body, principal)
  local acs = need_all("assessment_candidate", body.assessmentCandidates, "assessmentCandidates")
  if type(body.endDate) ~= "string" then invalid("endDate", "End Date must be a date string.") end
  local now = resources.now()
  local n = 0
  for _, ac in ipairs(acs) do
    ac.end_date, ac.updated_at = body.endDate, now
    for _, asc in ipairs(sections_of(ac)) do
      asc.end_date, asc.updated_at = body.endDate, now
      n = n + 1
    end
    if body.isNotify == true then notify(principal, "extend-date", nil, { assessment_candidate_id = ac.id }) end
  end
  return #acs, { assessmentCandidates = id_list(acs), endDate = body.endDate }
end

handlers.change_status = function(body, principal)
  local key = tonumber(body.statusSortKey)
  if not key or not M.status_sort_keys[key] then
    invalid("statusSortKey", "Status Sort Key is invalid: one of 70, 80, 90, 100, 120.")
  end
  local acs = need_all("assessment_candidate", body.assessmentCandidates, "assessmentCandidates")
  local now = resources.now()
  for _, ac in ipairs(acs) do
    ac.status_id, ac.updated_at = key, now
    ac.reasonText = body.reasonText
    for _, asc in ipairs(sections_of(ac)) do asc.status_id, asc.updated_at = key, now end
    if body.isNotify == true and (key == 70 or key == 90) then
      notify(principal, M.status_sort_keys[key], nil, { assessment_candidate_id = ac.id })
    end
  end
  return #acs, { assessmentCandidates = id_list(acs), statusSortKey = key }
end

handlers.live_schedule = function(body, principal)
  local panel = need_all("user", body.panel, "panel")
  local ac, asc
  if body.assessmentCandidateID ~= nil and body.assessmentCandidateID ~= json.null then
    ac = need("assessment_candidate", tonumber(body.assessmentCandidateID), "assessmentCandidateID")
    asc = sections_of(ac)[1]
  end
  local session = resources.create_record("live_session", {
    name = tostring(math_random(100000, 999999)), status = M.live_status.scheduled,
    starts_at = body.startDate, ends_at = body.endDate, timezone = body.timezone or json.null,
    assessment_section_candidate_id = asc and asc.id or json.null, hosted_by = principal.id,
    is_record = false,
  }, principal)
  for _, user in ipairs(panel) do
    resources.create_record("live_attendee", {
      live_session_id = session.id, user_id = user.id, type = 1, status = 1,
    }, principal)
  end
  if ac then
    resources.create_record("live_attendee", {
      live_session_id = session.id, candidate_id = ac.candidate_id, type = 2, status = 1,
    }, principal)
  end
  return 1, { liveSessionID = session.id }
end

handlers.live_reschedule = function(body)
  local session = need("live_session", tonumber(body.liveSessionID), "liveSessionID")
  session.starts_at, session.ends_at = body.startDate, body.endDate
  session.timezone = body.timezone
  session.status = M.live_status.scheduled
  session.updated_at = resources.now()
  return 1, { liveSessionID = session.id }
end

handlers.live_cancel = function(body)
  local session = need("live_session", tonumber(body.liveSessionID), "liveSessionID")
  session.status = M.live_status.cancelled
  session.updated_at = resources.now()
  return 1, { liveSessionID = session.id }
end

handlers.live_change_panel = function(body, principal)
  local session = need("live_session", tonumber(body.liveSessionID), "liveSessionID")
  local panel = need_all("user", body.panel, "panel")
  -- the panel are the attendees with a user; the candidate's attendee stays
  for _, a in ipairs(store.list("live_attendee", function(r)
    return eq(r.live_session_id, session.id) and r.user_id ~= nil and r.user_id ~= json.null
  end)) do
    store.delete("live_attendee", a.id)
  end
  for _, user in ipairs(panel) do
    resources.create_record("live_attendee", {
      live_session_id = session.id, user_id = user.id, type = 1, status = 1,
    }, principal)
  end
  return #panel, { liveSessionID = session.id }
end

handlers.live_reminder = function(body, principal)
  local session = need("live_session", tonumber(body.liveSessionID), "liveSessionID")
  notify(principal, "live-reminder", nil, nil)
  return 1, { liveSessionID = session.id }
end

handlers.add_panel = function(body, principal)
  local sec = body.assessmentSections
  local section = need("assessment_section", type(sec) == "table" and tonumber(sec.id) or tonumber(sec),
    "assessmentSections")
  local panel = need_all("user", body.panel, "panel")
  local acs = {}
  if body.assessmentCandidates ~= nil then
    acs = need_all("assessment_candidate", body.assessmentCandidates, "assessmentCandidates")
  end
  local made = {}
  for _, ac in ipairs(acs) do
    local asc = sections_of(ac, section.id)[1]
    for _, user in ipairs(panel) do
      local p = store.find("panel", function(r)
        return eq(r.user_id, user.id) and eq(r.assessment_section_id, section.id)
      end) or resources.create_record("panel", { user_id = user.id, assessment_section_id = section.id }, principal)
      -- replace an old panel of this candidate
      for _, old in ipairs(store.list("panel_candidate", function(r)
        return eq(r.assessment_candidate_id, ac.id) and (asc == nil or eq(r.assessment_section_candidate_id, asc.id))
      end)) do
        store.delete("panel_candidate", old.id)
      end
      made[#made + 1] = resources.create_record("panel_candidate", {
        panel_id = p.id, assessment_candidate_id = ac.id,
        assessment_section_candidate_id = asc and asc.id or json.null, end_date = body.endDate,
      }, principal)
    end
  end
  return #made, { panelCandidates = id_list(made) }
end

handlers.remind_candidate = function(body, principal)
  local acs = {}
  if body.assessmentCandidates ~= nil and body.assessmentCandidates ~= json.null then
    acs = need_all("assessment_candidate", body.assessmentCandidates, "assessmentCandidates")
  end
  for _, ac in ipairs(acs) do
    ac.reminded_at = resources.now()
    notify(principal, "remind-candidate", nil, { assessment_candidate_id = ac.id })
  end
  return #acs, {}
end

handlers.remind_panel = function(body, principal)
  local acs = need_all("assessment_candidate", body.assessmentCandidates, "assessmentCandidates")
  for _, ac in ipairs(acs) do notify(principal, "remind-panel", nil, { assessment_candidate_id = ac.id }) end
  return #acs, {}
end

handlers.create_assessment = function(body, principal)
  if type(body.sections) ~= "table" or #body.sections == 0 then
    invalid("sections", "Sections cannot be blank.")
  end
  local a = resources.create_record("assessment", {
    title = body.title, description = body.description or json.null,
    start_date = body.start_date or json.null, end_date = body.end_date or json.null,
    status_id = tonumber(body.assessmentStatus) or 1, owned_by = principal.id,
    organization_id = principal.organization_id,
  }, principal)
  local made = {}
  for i, s in ipairs(body.sections) do
    if type(s) ~= "table" then invalid("sections", "Sections must be objects.") end
    local fields = {}
    for k, v in pairs(s) do
      if k ~= "combined" and k ~= "id" then fields[k] = v end
    end
    fields.assessment_id = a.id
    fields.sort_order = s.order or i
    fields.section_id = tonumber(s.section_id) or (a.id * 10 + i)
    made[#made + 1] = resources.create_record("assessment_section", fields, principal)
  end
  a.first_assessment_section_id = made[1] and made[1].id or json.null
  return #made, { assessmentID = a.id, assessmentSections = id_list(made) }
end

handlers.evaluate = function(body, principal)
  local asc = need("assessment_section_candidate", tonumber(body.assessmentSectionCandidateID),
    "assessmentSectionCandidateID")
  local rec = body.recommendation
  if type(rec) ~= "string" then invalid("recommendation", "Recommendation must be a string.") end
  local ev = resources.create_record("evaluation", {
    assessment_section_candidate_id = asc.id, assessment_candidate_id = asc.assessment_candidate_id,
    assessment_section_id = asc.assessment_section_id, recommendation = rec,
    evaluated_at = resources.now(), evaluated_by = principal.id,
  }, principal)
  if type(body.evaluationComment) == "string" and body.evaluationComment ~= "" then
    resources.create_record("evaluation_comment", { evaluation_id = ev.id, content = body.evaluationComment },
      principal)
  end
  if type(body.rating) == "table" then
    for _, r in ipairs(body.rating) do
      if type(r) == "table" then
        resources.create_record("evaluation_rating", {
          evaluation_id = ev.id, parameter_id = r.parameter_id, rating = r.rating,
        }, principal)
      end
    end
  end
  asc.status_id = M.status.assessed
  asc.evaluated_at = resources.now()
  local ac = store.get("assessment_candidate", asc.assessment_candidate_id)
  if ac then
    ac.status_id = M.status.assessed
    ac.evaluated_at = asc.evaluated_at
  end
  return 1, { evaluationID = ev.id }
end

handlers.event_candidate_invite = function(body, principal)
  local event = need("event", tonumber(body.event_id), "event_id")
  local list = body.candidates
  if type(list) ~= "table" then invalid("candidates", "Candidates cannot be blank.") end
  if not json.is_array(list) then list = { list } end
  local made = {}
  for _, c in ipairs(list) do
    local cand
    if type(c) == "table" and type(c._content) == "table" then
      local fields = {}
      -- a new candidate: the id is the store's to give (one sent would overwrite a record)
      for k, v in pairs(c._content) do
        if k ~= "id" then fields[k] = v end
      end
      fields.organization_id = principal.organization_id
      cand = resources.create_record("candidate", fields, principal)
    else
      cand = need("candidate", type(c) == "table" and tonumber(c.id) or tonumber(c), "candidates")
    end
    made[#made + 1] = resources.create_record("event_candidate", {
      event_id = event.id, candidate_id = cand.id, status = 1,
    }, principal)
    if body.isNotify == true then notify(principal, "event-invite", cand.email, nil) end
  end
  return #made, { eventCandidates = id_list(made) }
end

handlers.event_candidate_notify = function(body, principal)
  local event = need("event", tonumber(body.event_id), "event_id")
  local n = 0
  for _, ec in ipairs(store.list("event_candidate", function(r) return eq(r.event_id, event.id) end)) do
    notify(principal, "event-candidate-notify", nil, { assessment_candidate_id = ec.candidate_id })
    n = n + 1
  end
  return n, {}
end

handlers.event_panel_notify = function(body, principal)
  local event = need("event", tonumber(body.event_id), "event_id")
  local users = body.eventUsers ~= nil and need_all("event_user", body.eventUsers, "eventUsers") or
    store.list("event_user", function(r) return eq(r.event_id, event.id) end)
  for _ in ipairs(users) do notify(principal, "event-panel-notify", nil, nil) end
  return #users, {}
end

local function simulation(field_updates)
  return function(body, principal)
    local asc = need("assessment_section_candidate", tonumber(body.assessmentSectionCandidateID),
      "assessmentSectionCandidateID")
    for k, from in pairs(field_updates) do
      if type(from) == "string" then asc[k] = body[from] else asc[k] = from end
    end
    asc.updated_at = resources.now()
    if body.isNotify == true then notify(principal, "simulation", nil, asc) end
    return 1, {}
  end
end

handlers.simulation_schedule = simulation({ simulation_start = "startDate", simulation_end = "endDate",
  simulation_status = M.live_status.scheduled })
handlers.simulation_reschedule = simulation({ simulation_start = "startDate", simulation_end = "endDate",
  simulation_status = M.live_status.scheduled })
handlers.simulation_cancel = simulation({ simulation_status = M.live_status.cancelled })
handlers.simulation_reminder = simulation({})

handlers.section_workflow = function(body)
  need("assessment", tonumber(body.assessmentID), "assessmentID")
  return 1, {}
end

--- Whether an action has a handler.
-- @tparam string action e.g. "invite"
-- @treturn boolean
function M.has(action)
  return handlers[action] ~= nil
end

--- Run an action and answer.
-- @tparam table req
-- @tparam table ep catalogue endpoint (`actions.<name>`)
-- @tparam table body parsed body
-- @tparam table principal
function M.handle(req, ep, body, principal)
  local action = ep.name:match("^actions%.(.+)$")
  local handler = handlers[action]
  local count, extra = 0, {}
  if handler then
    local ok, a, b = pcall(handler, body, principal)
    if not ok then
      if type(a) == "table" and a.invalid then return http.validation_error(req, a.invalid) end
      error(a, 0)
    end
    count, extra = a, b or {}
  end
  local sample = resources.sample(ep.name)
  if type(sample) == "table" and json.is_array(sample) then sample = sample[1] end
  local rec = json.object({}, type(sample) == "table" and json.order_of(sample) or nil)
  if type(sample) == "table" then
    for k, v in pairs(sample) do
      if k == "type" then rec[k] = v
      elseif json.is_array(v) then rec[k] = json.array()
      elseif k ~= "_links" then rec[k] = json.null end
    end
  end
  for k, v in pairs(body) do rec[k] = v end
  for k, v in pairs(extra) do rec[k] = v end
  local now = resources.now()
  rec.id = nil
  rec.external_id = uuid()
  rec.status = 3
  rec.requested_by = principal.id
  rec.created_at, rec.updated_at = now, now
  rec.requested_at, rec.started_at, rec.completed_at = now, now, now
  rec.total_count, rec.success_count, rec.error_count = count, count, 0
  rec.isNotify = body.isNotify == nil and json.null or body.isNotify
  if rec.name == nil or rec.name == json.null then rec.name = action end
  store.insert("action", rec)
  return http.json(req, 200, rec)
end

return M
