--- Talview actions (`POST /actions/...`): what each one does, item by item, and the action
-- object it answers with. docs/actions.md describes the life cycle for users; this is how the
-- sandbox carries it out.
--
-- The POST answers the action object shaped as the seed's example for that action, field for
-- field and value kind for value kind (the example's keys in its order, the request's values
-- for the keys it echoes, `null` or `[]` for the others; a server field the example shows null
-- is null; nothing the example does not carry). Where the seed shows more than one example
-- (Remind Candidate), the one carrying most of the request's fields. Most actions are queued:
-- the answer has `status` 1 (requested), counts and times null, and nothing has happened yet;
-- `assesskit.sandbox.queue` processes them after the `action_delay` setting or at
-- `POST /_sandbox/actions/run`: status 2, then each item, then status 3 with the counts (an
-- item that cannot be done counts in `error_count` and is described in `response`; the others
-- are done). Those whose seed example shows them done (create-assessment, evaluate,
-- event-candidate-invite, event-panel-notify, section-workflow) are processed before the
-- answer, which has status 3 and only the counts and times their example shows (create-
-- assessment's counts are null, section-workflow's `completed_at`, ...); live-schedule too,
-- shaped as its one example (a whole failure: counts 0, `requested_at` and `started_at` set,
-- `completed_at` null), and it fails (status 99, `response` "Invalid configuration", as its
-- example) when its panel or candidate is unknown or its end is not after its start. Every
-- action is kept in the `action` store (`GET /_sandbox/state/action`), as answered; the
-- callback sends it so too.
--
-- The request is checked before anything is queued, as Yii2 validates a model: required
-- fields (the catalogue), the shape of values, and the records the action as a whole is about
-- (an assessment section, a live session, an event): a 422 naming the field. The records of
-- the items (candidates, assessment candidates) are looked up when the item is done.
-- `callbackUrl` (an http or https URL) and `skipCallback` (a boolean) are accepted by every
-- action; `assesskit.sandbox.callbacks` delivers the callback.
-- @module assesskit.sandbox.actions

local ngx = ngx -- luacheck: read globals ngx
local json = require("assesskit.sandbox.json")
local http = require("assesskit.sandbox.http")
local store = require("assesskit.sandbox.store")
local resources = require("assesskit.sandbox.resources")
local faults = require("assesskit.sandbox.faults")
local queue = require("assesskit.sandbox.queue")
local action_status = require("assesskit.talview.action_status")

local type, pairs, ipairs, tostring, tonumber, error = type, pairs, ipairs, tostring, tonumber, error
local string_format, string_match, math_random = string.format, string.match, math.random

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

--- The assessment status "Closed" (the seed's "List of Assessment Status"): nobody can be
-- invited to, re-invited to or given more time in a closed assessment.
M.assessment_closed = 2

--- Actions processed before their POST answers (their seed examples show them done, or, for
-- live-schedule, failed as a whole); every other action is queued.
M.immediate = {
  create_assessment = true, evaluate = true, event_candidate_invite = true,
  event_panel_notify = true, section_workflow = true, live_schedule = true,
}

local function eq(a, b)
  return a ~= nil and b ~= nil and a ~= json.null and b ~= json.null and tostring(a) == tostring(b)
end

local function blank(v)
  return v == nil or v == json.null or v == ""
end

local function uuid()
  return string_format("%08x-%04x-%04x-%04x-%012x", math_random(0, 0x7fffffff),
    math_random(0, 0xffff), math_random(0, 0x0fff) + 0x4000, math_random(0, 0x3fff) + 0x8000,
    math_random(0, 0xffffff) * 0x1000000 + math_random(0, 0xffffff))
end

-- A validation failure carried out of a handler (a 422 naming the field).
local function invalid(field, message)
  error({ invalid = { { field = field, message = message } } }, 0)
end

-- ids from `[{id = 1}, ...]`, `[1, 2]`, `{id = 1}` or a single id; an id that is not a number
-- is kept as given, so that its item fails naming it
local function ids_of(v)
  local out = {}
  if blank(v) then return out end
  if type(v) ~= "table" then
    out[1] = tonumber(v) or v
  elseif v.id ~= nil and not json.is_array(v) then
    out[1] = tonumber(v.id) or v.id
  else
    for _, x in ipairs(v) do
      local id = type(x) == "table" and x.id or x
      out[#out + 1] = tonumber(id) or id
    end
  end
  return out
end

-- The record a whole action is about: a 422 naming the field when there is none.
local function need(resource, value, field)
  local id = tonumber(type(value) == "table" and value.id or value)
  local rec = id and store.get(resource, id)
  if not rec then
    invalid(field, string_format("%s %s is invalid: no such %s.", resources.label(field),
      tostring(type(value) == "table" and value.id or value), resource))
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

-- The ids of an action's items: a 422 when there is none.
local function item_ids(value, field)
  local ids = ids_of(value)
  if #ids == 0 then invalid(field, resources.label(field) .. " cannot be blank.") end
  return ids
end

-- An item's failure: `nil, message`.
local function missing(what, id)
  return nil, string_format("%s %s does not exist.", what, tostring(id))
end

local function get(resource, id)
  return type(id) == "number" and store.get(resource, id) or nil
end

-- nil when the assessment is open to (re-)invitations, else the failure
local function closed(assessment_id)
  local a = store.get("assessment", assessment_id)
  if a and tonumber(a.status_id) == M.assessment_closed then
    return string_format("Assessment %s is closed.", tostring(assessment_id))
  end
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

local function link(resource, id)
  return json.object({ [resource] = json.object({ href = "/models/" .. resource:gsub("_", "-") .. "/" .. id }) })
end

-- Jobs ---------------------------------------------------------------------------------------
--
-- handlers[name](body, principal) checks the request (raising `invalid` for a 422) and returns
-- the job: `items` (array), `item(it) -> true | nil, message`, optionally `start() -> true |
-- nil, reason` (run first when the action is processed: a reason fails it as a whole),
-- `links()` (the `_links` of a completed action) and `label(it, i)` (what names an item in
-- `response`; default: the item itself when it is not a table, else its position).

local handlers = {}

handlers.invite = function(body, principal)
  local section = need("assessment_section", body.assessmentSectionID, "assessmentSectionID")
  if not blank(body.assessmentID) and tonumber(body.assessmentID) ~= tonumber(section.assessment_id) then
    invalid("assessmentID", "Assessment ID does not match the assessment section's assessment.")
  end
  local notify_them = body.isNotify == true
  return {
    items = item_ids(body.candidates, "candidates"),
    start = function()
      if not store.get("assessment_section", section.id) then
        return missing("Assessment Section", section.id)
      end
      return true
    end,
    item = function(id)
      local cand = get("candidate", id)
      if not cand then return missing("Candidate", id) end
      local shut = closed(section.assessment_id)
      if shut then return nil, shut end
      local now = resources.now()
      local ac = store.find("assessment_candidate", function(r)
        return eq(r.candidate_id, cand.id) and eq(r.assessment_id, section.assessment_id)
      end)
      if ac then
        ac.invite_count = (tonumber(ac.invite_count) or 1) + 1
        ac.invited_at, ac.updated_at = now, now
      else
        ac = resources.create_record("assessment_candidate", {
          assessment_id = section.assessment_id, candidate_id = cand.id,
          status_id = notify_them and M.status.mailed or M.status.invited,
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
      if notify_them then notify(principal, "invite", cand.email, asc) end
      return true
    end,
  }
end

-- An item that is an assessment candidate, still in an open assessment: the record, or nil and
-- the failure.
local function open_candidate(id)
  local ac = get("assessment_candidate", id)
  if not ac then return missing("Assessment Candidate", id) end
  local shut = closed(ac.assessment_id)
  if shut then return nil, shut end
  return ac
end

handlers.re_invite = function(body, principal)
  local section_id = body.assessment_section_id
  if blank(section_id) then section_id = body.assessmentSectionID end
  if blank(section_id) then section_id = nil end
  return {
    items = item_ids(body.assessmentCandidates, "assessmentCandidates"),
    item = function(id)
      local ac, why = open_candidate(id)
      if not ac then return nil, why end
      local now = resources.now()
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
      return true
    end,
  }
end

handlers.extend_date = function(body, principal)
  if type(body.endDate) ~= "string" then invalid("endDate", "End Date must be a date string.") end
  return {
    items = item_ids(body.assessmentCandidates, "assessmentCandidates"),
    item = function(id)
      local ac, why = open_candidate(id)
      if not ac then return nil, why end
      local now = resources.now()
      ac.end_date, ac.updated_at = body.endDate, now
      for _, asc in ipairs(sections_of(ac)) do asc.end_date, asc.updated_at = body.endDate, now end
      if body.isNotify == true then notify(principal, "extend-date", nil, { assessment_candidate_id = ac.id }) end
      return true
    end,
  }
end

handlers.change_status = function(body, principal)
  local key = tonumber(body.statusSortKey)
  if not key or not M.status_sort_keys[key] then
    invalid("statusSortKey", "Status Sort Key is invalid: one of 70, 80, 90, 100, 120.")
  end
  return {
    items = item_ids(body.assessmentCandidates, "assessmentCandidates"),
    item = function(id)
      local ac = get("assessment_candidate", id)
      if not ac then return missing("Assessment Candidate", id) end
      local now = resources.now()
      ac.status_id, ac.updated_at = key, now
      ac.reasonText = body.reasonText
      for _, asc in ipairs(sections_of(ac)) do asc.status_id, asc.updated_at = key, now end
      if body.isNotify == true and (key == 70 or key == 90) then
        notify(principal, M.status_sort_keys[key], nil, { assessment_candidate_id = ac.id })
      end
      return true
    end,
  }
end

handlers.add_panel = function(body, principal)
  local section = need("assessment_section", body.assessmentSections, "assessmentSections")
  local panel = need_all("user", body.panel, "panel")
  return {
    items = ids_of(body.assessmentCandidates),
    item = function(id)
      local ac = get("assessment_candidate", id)
      if not ac then return missing("Assessment Candidate", id) end
      local asc = sections_of(ac, section.id)[1]
      -- the candidate's old panel is replaced
      for _, old in ipairs(store.list("panel_candidate", function(r)
        return eq(r.assessment_candidate_id, ac.id) and (asc == nil or eq(r.assessment_section_candidate_id, asc.id))
      end)) do
        store.delete("panel_candidate", old.id)
      end
      for _, user in ipairs(panel) do
        local p = store.find("panel", function(r)
          return eq(r.user_id, user.id) and eq(r.assessment_section_id, section.id)
        end) or resources.create_record("panel", { user_id = user.id, assessment_section_id = section.id }, principal)
        resources.create_record("panel_candidate", {
          panel_id = p.id, assessment_candidate_id = ac.id,
          assessment_section_candidate_id = asc and asc.id or json.null, end_date = body.endDate,
        }, principal)
      end
      return true
    end,
  }
end

-- The assessment candidates a reminder goes to when it names sections instead: those invited
-- or in progress (the seed's note on Remind Candidate).
local function reminded_in_sections(sections)
  local out, seen = {}, {}
  for _, sid in ipairs(ids_of(sections)) do
    for _, asc in ipairs(store.list("assessment_section_candidate", function(r)
      return eq(r.assessment_section_id, sid)
    end)) do
      local ac = store.get("assessment_candidate", asc.assessment_candidate_id)
      local st = ac and tonumber(ac.status_id)
      if ac and not seen[ac.id] and (st == M.status.invited or st == M.status.mailed or st == M.status.attending) then
        seen[ac.id] = true
        out[#out + 1] = ac.id
      end
    end
  end
  return out
end

handlers.remind_candidate = function(body, principal)
  local ids = ids_of(body.assessmentCandidates)
  local job = {
    items = ids,
    item = function(id)
      local ac = get("assessment_candidate", id)
      if not ac then return missing("Assessment Candidate", id) end
      ac.reminded_at = resources.now()
      notify(principal, "remind-candidate", nil, { assessment_candidate_id = ac.id })
      return true
    end,
  }
  if #ids == 0 and not blank(body.assessmentSections) then
    -- who is reminded is decided when the action is processed
    job.start = function()
      job.items = reminded_in_sections(body.assessmentSections)
      return true
    end
  end
  return job
end

handlers.remind_panel = function(body, principal)
  return {
    items = item_ids(body.assessmentCandidates, "assessmentCandidates"),
    item = function(id)
      local ac = get("assessment_candidate", id)
      if not ac then return missing("Assessment Candidate", id) end
      notify(principal, "remind-panel", nil, { assessment_candidate_id = ac.id })
      return true
    end,
  }
end

-- live sessions --------------------------------------------------------------------------------

-- The times of a slot, when both read as ISO 8601 ("2030-02-01T10:00..." or with a space):
-- whether the end comes after the start; true when they cannot be compared.
local function slot_ok(starts, ends)
  local pat = "^(%d%d%d%d%-%d%d%-%d%d)[T ](%d%d:%d%d:?%d?%d?)"
  if type(starts) ~= "string" or type(ends) ~= "string" then return true end
  local sd, st = string_match(starts, pat)
  local ed, et = string_match(ends, pat)
  if not (sd and ed) then return true end
  return (ed .. " " .. et) > (sd .. " " .. st)
end

handlers.live_schedule = function(body, principal)
  local panel_ids = item_ids(body.panel, "panel")
  local session
  return {
    items = { 1 },
    start = function()
      local ac
      if not blank(body.assessmentCandidateID) then
        ac = get("assessment_candidate", tonumber(body.assessmentCandidateID))
        if not ac then return nil, "Invalid configuration" end
      end
      for _, id in ipairs(panel_ids) do
        if not get("user", id) then return nil, "Invalid configuration" end
      end
      if not slot_ok(body.startDate, body.endDate) then return nil, "Invalid configuration" end
      local asc = ac and sections_of(ac)[1]
      session = resources.create_record("live_session", {
        name = tostring(math_random(100000, 999999)), status = M.live_status.scheduled,
        starts_at = body.startDate, ends_at = body.endDate,
        timezone = blank(body.timezone) and json.null or body.timezone,
        assessment_section_candidate_id = asc and asc.id or json.null, hosted_by = principal.id,
        is_record = false,
      }, principal)
      for _, id in ipairs(panel_ids) do
        resources.create_record("live_attendee", {
          live_session_id = session.id, user_id = id, type = 1, status = 1,
        }, principal)
      end
      if ac then
        resources.create_record("live_attendee", {
          live_session_id = session.id, candidate_id = ac.candidate_id, type = 2, status = 1,
        }, principal)
      end
      return true
    end,
    item = function()
      if body.isNotify == true then notify(principal, "live-schedule", nil, nil) end
      return true
    end,
  }
end

-- A one-item action on a live session that must exist when the POST arrives.
local function on_session(fn)
  return function(body, principal)
    local session = need("live_session", body.liveSessionID, "liveSessionID")
    local extra = fn.check and fn.check(body) or nil
    return {
      items = { session.id },
      item = function(id)
        local s = store.get("live_session", id)
        if not s then return missing("Live Session", id) end
        fn.apply(s, body, principal, extra)
        s.updated_at = resources.now()
        return true
      end,
    }
  end
end

handlers.live_reschedule = on_session({
  apply = function(s, body)
    s.starts_at, s.ends_at = body.startDate, body.endDate
    s.timezone = body.timezone
    s.status = M.live_status.scheduled
  end,
})

handlers.live_cancel = on_session({
  apply = function(s) s.status = M.live_status.cancelled end,
})

handlers.live_change_panel = on_session({
  check = function(body) return need_all("user", body.panel, "panel") end,
  apply = function(s, _, principal, panel)
    -- the panel are the attendees with a user; the candidate's attendee stays
    for _, a in ipairs(store.list("live_attendee", function(r)
      return eq(r.live_session_id, s.id) and r.user_id ~= nil and r.user_id ~= json.null
    end)) do
      store.delete("live_attendee", a.id)
    end
    for _, user in ipairs(panel) do
      resources.create_record("live_attendee", {
        live_session_id = s.id, user_id = user.id, type = 1, status = 1,
      }, principal)
    end
  end,
})

-- live-reminder names one session or several (`[{"id": ...}]`, the seed's example)
handlers.live_reminder = function(body, principal)
  return {
    items = item_ids(body.liveSessionID, "liveSessionID"),
    item = function(id)
      if not get("live_session", id) then return missing("Live Session", id) end
      notify(principal, "live-reminder", nil, nil)
      return true
    end,
  }
end

-- assessments and evaluations ------------------------------------------------------------------

handlers.create_assessment = function(body, principal)
  if type(body.sections) ~= "table" or #body.sections == 0 then
    invalid("sections", "Sections cannot be blank.")
  end
  for _, s in ipairs(body.sections) do
    if type(s) ~= "table" then invalid("sections", "Sections must be objects.") end
  end
  local a
  return {
    items = body.sections,
    start = function()
      a = resources.create_record("assessment", {
        title = body.title, description = body.description or json.null,
        start_date = body.start_date or json.null, end_date = body.end_date or json.null,
        status_id = tonumber(body.assessmentStatus) or 1, owned_by = principal.id,
        organization_id = principal.organization_id,
      }, principal)
      return true
    end,
    item = function(s, i)
      local fields = {}
      for k, v in pairs(s) do
        if k ~= "combined" and k ~= "id" then fields[k] = v end
      end
      fields.assessment_id = a.id
      fields.sort_order = s.order or i
      fields.section_id = tonumber(s.section_id) or (a.id * 10 + i)
      local made = resources.create_record("assessment_section", fields, principal)
      if blank(a.first_assessment_section_id) then a.first_assessment_section_id = made.id end
      return true
    end,
    links = function() return link("assessment", a.id) end,
  }
end

handlers.evaluate = function(body, principal)
  local asc = need("assessment_section_candidate", body.assessmentSectionCandidateID,
    "assessmentSectionCandidateID")
  if type(body.recommendation) ~= "string" then invalid("recommendation", "Recommendation must be a string.") end
  local ev
  return {
    items = { asc.id },
    item = function()
      ev = resources.create_record("evaluation", {
        assessment_section_candidate_id = asc.id, assessment_candidate_id = asc.assessment_candidate_id,
        assessment_section_id = asc.assessment_section_id, recommendation = body.recommendation,
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
      return true
    end,
    links = function() return ev and link("evaluation", ev.id) or json.array() end,
  }
end

handlers.section_workflow = function(body, principal)
  local assessment = need("assessment", body.assessmentID, "assessmentID")
  local kind = body.type
  if kind ~= "insert" and kind ~= "delete" then invalid("type", "Type is invalid: insert or delete.") end
  return {
    items = { kind == "insert" and "insert" or tonumber(body.child) or body.child },
    item = function(it)
      if it == "insert" then
        local fields = {}
        for k, v in pairs(type(body.section) == "table" and body.section or {}) do
          if k ~= "combined" and k ~= "id" then fields[k] = v end
        end
        fields.assessment_id = assessment.id
        resources.create_record("assessment_section", fields, principal)
        return true
      end
      local s = get("assessment_section", it)
      if not s or not eq(s.assessment_id, assessment.id) then return missing("Assessment Section", it) end
      store.delete("assessment_section", s.id)
      return true
    end,
    label = function(it) return it == "insert" and json.null or it end,
  }
end

-- events ----------------------------------------------------------------------------------------

handlers.event_candidate_invite = function(body, principal)
  local event = need("event", body.event_id, "event_id")
  local list = body.candidates
  if type(list) ~= "table" or list == json.null then invalid("candidates", "Candidates cannot be blank.") end
  if not json.is_array(list) then list = { list } end
  return {
    items = list,
    item = function(c)
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
        local id = tonumber(type(c) == "table" and c.id or c)
        cand = get("candidate", id)
        if not cand then return missing("Candidate", type(c) == "table" and c.id or c) end
      end
      resources.create_record("event_candidate", { event_id = event.id, candidate_id = cand.id, status = 1 },
        principal)
      if body.isNotify == true then notify(principal, "event-invite", cand.email, nil) end
      return true
    end,
    label = function(c, i)
      if type(c) ~= "table" then return c end
      return c.id or i
    end,
  }
end

handlers.event_candidate_notify = function(body, principal)
  local event = need("event", body.event_id, "event_id")
  local job = { items = {} }
  job.start = function()
    for _, ec in ipairs(store.list("event_candidate", function(r) return eq(r.event_id, event.id) end)) do
      job.items[#job.items + 1] = ec.id
    end
    return true
  end
  job.item = function(id)
    local ec = get("event_candidate", id)
    if not ec then return missing("Event Candidate", id) end
    notify(principal, "event-candidate-notify", nil, { assessment_candidate_id = ec.candidate_id })
    return true
  end
  return job
end

handlers.event_panel_notify = function(body, principal)
  local event = need("event", body.event_id, "event_id")
  local ids = ids_of(body.eventUsers)
  if #ids == 0 then
    for _, u in ipairs(store.list("event_user", function(r) return eq(r.event_id, event.id) end)) do
      ids[#ids + 1] = u.id
    end
  end
  return {
    items = ids,
    item = function(id)
      if not get("event_user", id) then return missing("Event User", id) end
      notify(principal, "event-panel-notify", nil, nil)
      return true
    end,
  }
end

-- simulations ------------------------------------------------------------------------------------

local function simulation(field_updates)
  return function(body, principal)
    local asc = need("assessment_section_candidate", body.assessmentSectionCandidateID,
      "assessmentSectionCandidateID")
    return {
      items = { asc.id },
      item = function(id)
        local rec = store.get("assessment_section_candidate", id)
        if not rec then return missing("Assessment Section Candidate", id) end
        for k, from in pairs(field_updates) do
          if type(from) == "string" then rec[k] = body[from] else rec[k] = from end
        end
        rec.updated_at = resources.now()
        if body.isNotify == true then notify(principal, "simulation", nil, rec) end
        return true
      end,
    }
  end
end

handlers.simulation_schedule = simulation({ simulation_start = "startDate", simulation_end = "endDate",
  simulation_status = M.live_status.scheduled })
handlers.simulation_reschedule = simulation({ simulation_start = "startDate", simulation_end = "endDate",
  simulation_status = M.live_status.scheduled })
handlers.simulation_cancel = simulation({ simulation_status = M.live_status.cancelled })
handlers.simulation_reminder = simulation({})

-- The answer ------------------------------------------------------------------------------------

--- Whether an action has a handler.
-- @tparam string action e.g. "invite"
-- @treturn boolean
function M.has(action)
  return handlers[action] ~= nil
end

-- Action ids: unique for the worker's life (across resets, so that a callback receiver never
-- sees one id twice), starting from the clock in milliseconds so that a restarted sandbox does
-- not reuse them (from the clock in seconds, one that had made more actions than seconds since
-- its first did; it would take 1000 actions a second, sustained, now).
local next_action_id

-- The fields of the action object that the server fills in (the seed's Action object, less
-- `skipCallback` and `isNotify`, which the request gives, plus the `_links` some examples
-- carry): whatever the request says, they start empty.
local SERVER_FIELDS = { "id", "external_id", "status", "type", "total_count", "error_count", "success_count",
  "completed_at", "requested_at", "started_at", "last_attempt_at", "requested_by", "created_at", "updated_at",
  "response", "_links" }

-- The counts and times that processing an action fills in.
local COUNTS = { "total_count", "success_count", "error_count" }
local TIMES = { "started_at", "requested_at", "completed_at", "last_attempt_at" }

-- An empty value of the kind `v` has: `[]` for a list, else null.
local function empty_like(v)
  if type(v) == "table" and json.is_array(v) then return json.array() end
  return json.null
end

local function is_null(v)
  return v == nil or v == json.null
end

-- The seed's example answer that a request matches: of those the seed shows for the action
-- (Remind Candidate has two: by assessment candidates, and by sections), the one that carries
-- most of the request's fields, the first on a tie.
local function example_for(ep, body)
  local best, best_n
  for _, s in ipairs(resources.samples(ep.name)) do
    if type(s) == "table" and json.is_array(s) then s = s[1] end
    if type(s) == "table" then
      local n = 0
      for k in pairs(s) do
        if body[k] ~= nil then n = n + 1 end
      end
      if not best or n > best_n then best, best_n = s, n end
    end
  end
  return best or json.object({})
end

-- An action done before its answer, as its example shows it done: each count or time that the
-- example shows null stays null (production leaves it so; create-assessment's counts,
-- section-workflow's `completed_at`, ...), each time it shows set is set (the action's time).
-- `status` and `response` tell how it went.
local function as_example(rec, example)
  for _, k in ipairs(COUNTS) do
    if is_null(example[k]) then rec[k] = json.null end
  end
  for _, k in ipairs(TIMES) do
    if is_null(example[k]) then
      rec[k] = json.null
    elseif is_null(rec[k]) then
      rec[k] = rec.updated_at
    end
  end
end

-- The action object as `example` shapes it: its keys in its order, the request's values for
-- the keys it echoes (null, or `[]` where the example shows a list, for those the request
-- leaves out), the server's fields empty but for those known now.
local function action_object(example, body, principal)
  local rec = json.object({}, json.order_of(example))
  for k, v in pairs(example) do
    rec[k] = empty_like(v)
    if body[k] ~= nil then rec[k] = body[k] end
  end
  for _, k in ipairs(SERVER_FIELDS) do
    if example[k] ~= nil then rec[k] = empty_like(example[k]) end
  end
  -- the action's type is the server's (a number), but Section Workflow's is the request's word
  rec.type = type(body.type) == "string" and body.type or example.type
  local now = resources.now()
  next_action_id = (next_action_id or math.floor((ngx and ngx.now() or os.time()) * 1000)) + 1
  rec.id = next_action_id
  -- some actions' examples have no external id (create-assessment, evaluate, ...)
  rec.external_id = is_null(example.external_id) and json.null or uuid()
  rec.status = action_status.REQUESTED
  rec.requested_by = principal.id
  rec.created_at, rec.updated_at = now, now
  return rec
end

-- Checks `callbackUrl` and `skipCallback`: the validation errors, or nil.
local function callback_errors(body)
  local errs = {}
  local url = body.callbackUrl
  if not blank(url)
    and (type(url) ~= "string" or not string_match(url, "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#%s]+[^%s]*$")) then
    errs[#errs + 1] = { field = "callbackUrl", message = "Callback Url is not a valid URL." }
  end
  local skip = body.skipCallback
  if skip ~= nil and skip ~= json.null and type(skip) ~= "boolean" then
    errs[#errs + 1] = { field = "skipCallback", message = 'Skip Callback must be either "true" or "false".' }
  end
  if #errs > 0 then return errs end
end

--- Check an action request, keep the action, queue it (or process it at once, see `immediate`)
-- and answer with the action object.
-- @tparam table req
-- @tparam table ep catalogue endpoint (`actions.<name>`)
-- @tparam table body parsed body
-- @tparam table principal
function M.handle(req, ep, body, principal)
  local name = ep.name:match("^actions%.(.+)$")
  local handler = handlers[name]
  if not handler then error("no sandbox handler for " .. ep.name, 0) end
  local errs = callback_errors(body)
  if errs then return http.validation_error(req, errs) end
  local ok, job = pcall(handler, body, principal)
  if not ok then
    if type(job) == "table" and job.invalid then return http.validation_error(req, job.invalid) end
    error(job, 0)
  end
  local example = example_for(ep, body)
  local rec = action_object(example, body, principal)
  store.insert("action", rec)
  local immediate = M.immediate[name] == true
  local entry = queue.add(rec, job, {
    faults = faults.take_action(req),
    callback_url = not blank(body.callbackUrl) and body.callbackUrl or nil,
    skip_callback = body.skipCallback == true,
    immediate = immediate,
    shape = immediate and function(r) as_example(r, example) end or nil,
  })
  if M.immediate[name] then queue.process(entry) end
  return http.json(req, 200, rec)
end

return M
