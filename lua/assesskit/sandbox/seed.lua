--- The sandbox's seeded data, rebuilt on every worker start and `POST /_sandbox/reset`.
--
-- 1. Every record of every sample in the Talview seed (so any id the seed's docs show can be
--    fetched, and every list has something in it).
-- 2. Three organisations: 2 (the demo users' organisation), 3 and 488 (from the seed).
-- 3. The demo users (41 recruiter, 42 viewer without privileged roles, 43 the API service
--    account), shaped like the seed's user/me object.
-- 4. In organisation 2: assessments 1001-1004 with three sections each (assessment_section
--    2001-2012), 300 candidates (ids 10001-10300, `candidate001@example.test`...), the first
--    60 invited to assessment 1001 (assessment_candidate 30001-30060 with their
--    assessment_section_candidate 40001-40060) in a spread of statuses, two events and a
--    few evaluations, custom fields and categories.
-- 5. InterviewMocha tests, test links and reports (`assesskit.sandbox.interviewmocha`).
--
-- Everything is deterministic: the same ids and values after every reset.
-- @module assesskit.sandbox.seed

local json = require("assesskit.sandbox.json")
local store = require("assesskit.sandbox.store")
local resources = require("assesskit.sandbox.resources")
local credentials = require("assesskit.sandbox.credentials")

local ipairs, pairs, tonumber, pcall, tostring, string_format =
  ipairs, pairs, tonumber, pcall, tostring, string.format

local M = {}

--- Counts of the generated data.
M.counts = { candidates = 300, invited = 60, assessments = 4, sections_per_assessment = 3 }

local first_names = { "Asha", "Bruno", "Chen", "Dara", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun",
  "Kofi", "Lena", "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara" }
local last_names = { "Ahmed", "Borg", "Costa", "Diaz", "Eze", "Fujita", "Gupta", "Horvat", "Ito", "Jensen",
  "Kim", "Lopez", "Mensah", "Novak", "Okafor", "Patel", "Quispe", "Rossi", "Silva", "Tanaka" }

local function put(res, id, fields)
  local f = {}
  for k, v in pairs(fields) do f[k] = v end
  f.id = id
  local old = store.get(res, id)
  if old then store.delete(res, id) end
  return resources.create_record(res, f, nil)
end

local function ts(day, hour)
  return string_format("2024-03-%02d %02d:00:00+00", day, hour or 9)
end

local function seed_samples()
  for _, res in ipairs(resources.store_names()) do
    store.define(res)
    for _, obj in ipairs(resources.resource_samples(res)) do
      if tonumber(obj.id) then
        obj.id = tonumber(obj.id)
        store.insert(res, obj)
      end
    end
  end
end

local function seed_orgs()
  put("organization", 2, { name = "Sandbox Demo Org", domain = "sandbox.assesskit.test", city = "Bengaluru",
    country = "India", created_at = ts(1), updated_at = ts(1) })
  put("organization", 488, { name = "Sandbox Second Org", domain = "second.sandbox.assesskit.test",
    created_at = ts(1), updated_at = ts(1) })
  if not store.get("organization", 3) then
    put("organization", 3, { name = "company 2 -Pvt. Ltd.", created_at = ts(1) })
  end
end

local function seed_users()
  local people = {}
  for _, u in ipairs(credentials.users) do people[#people + 1] = u end
  for _, sa in ipairs(credentials.service_accounts) do people[#people + 1] = sa end
  for _, u in ipairs(people) do
    local roles = json.array()
    for i, r in ipairs(u.roles) do roles[i] = r end
    put("user", u.id, {
      external_id = "sandbox-" .. u.id, username = u.username or u.issuer, email = u.username or u.issuer,
      name = u.name, location = "Sandbox", roles = roles, organization_id = u.organization_id,
      current_role = u.current_role, status = 20, is_common_login = true, defaultLocale = "en-US",
      isPrivacyAccepted = true, isTermsAccepted = true, created_at = ts(1), updated_at = ts(2),
      created_by = 1, updated_by = 1,
    })
  end
end

local function seed_assessments()
  local titles = { "Backend Engineer (Lua)", "Support Specialist", "Data Analyst", "Campus Hiring 2024" }
  local section_names = { "Objective Test", "Video Interview", "Coding" }
  local sid = 2000
  for i = 1, M.counts.assessments do
    local aid = 1000 + i
    put("assessment", aid, {
      external_id = "SBX-A" .. i, title = titles[i], status_id = i == 4 and 1 or 3,
      description = "Sandbox assessment " .. i, organization_id = 2, owned_by = 41,
      start_date = ts(1), end_date = "2030-12-31 23:59:59+00", created_at = ts(1), updated_at = ts(2),
    })
    local first
    for j = 1, M.counts.sections_per_assessment do
      sid = sid + 1
      first = first or sid
      put("assessment_section", sid, {
        assessment_id = aid, section_id = 500 + j, sort_order = j, title = section_names[j],
        is_public = false, is_proctor = j ~= 2, is_review = false, isSkipAllowed = true, is_visible = true,
        start_date = ts(1), end_date = "2030-12-31 23:59:59+00", created_at = ts(1), updated_at = ts(1),
      })
    end
    store.get("assessment", aid).first_assessment_section_id = first
  end
end

local function seed_candidates()
  for n = 1, M.counts.candidates do
    local fn = first_names[(n - 1) % #first_names + 1]
    local ln = last_names[math.floor((n - 1) / #first_names) % #last_names + 1]
    put("candidate", 10000 + n, {
      email = string_format("candidate%03d@example.test", n), first_name = fn, last_name = ln,
      phone = string_format("+1555%07d", n), external_id = string_format("SBX-C%03d", n),
      status_id = 25, organization_id = n % 50 == 0 and 488 or 2, isRegistered = false,
      created_at = ts(1 + n % 28, n % 24), updated_at = ts(1 + n % 28, n % 24),
    })
  end
end

local status_cycle = { 10, 20, 30, 50, 60, 70, 80, 90 }

local function seed_invitations()
  for n = 1, M.counts.invited do
    local acid, ascid = 30000 + n, 40000 + n
    local status = status_cycle[(n - 1) % #status_cycle + 1]
    put("assessment_candidate", acid, {
      assessment_id = 1001, candidate_id = 10000 + n, status_id = status, invited_by = 41,
      invited_at = ts(2), attended_at = status >= 50 and ts(3) or json.null,
      evaluated_at = status >= 60 and ts(4) or json.null, invite_count = 1,
      created_at = ts(2), updated_at = ts(2),
    })
    put("assessment_section_candidate", ascid, {
      assessment_candidate_id = acid, assessment_id = 1001, assessment_section_id = 2001, section_id = 501,
      status_id = status, isComplete = status >= 50, end_date = "2030-06-30 23:59:59+00",
      invited_at = ts(2), completed_at = status >= 50 and ts(3) or json.null, invite_count = 1,
      created_at = ts(2), updated_at = ts(2),
    })
  end
  for n = 1, 5 do
    put("evaluation", 50000 + n, {
      assessment_candidate_id = 30004 + n, assessment_section_id = 2001,
      assessment_section_candidate_id = 40004 + n, recommendation = n % 2 == 0 and "select" or "hold",
      evaluated_at = ts(4), evaluated_by = 41, panel_id = 0,
    })
  end
end

local function seed_misc()
  put("event", 60001, { title = "Sandbox Campus Day", organization_id = 2, status = 2, starts_at = ts(20),
    ends_at = ts(20, 17), created_at = ts(1), updated_at = ts(1), created_by = 41 })
  put("event", 60002, { title = "Sandbox Walk-in Drive", organization_id = 2, status = 1, starts_at = ts(25),
    ends_at = ts(25, 17), created_at = ts(1), updated_at = ts(1), created_by = 41 })
  for n = 1, 3 do
    put("event_candidate", 61000 + n, { event_id = 60001, candidate_id = 10100 + n, status = 1 })
  end
  local fields = { { "text", "Employee Code", "employee_code" }, { "select", "Department", "department" } }
  for i, f in ipairs(fields) do
    put("custom_field_master", 70000 + i, { type = f[1], label = f[2], key = f[3], sort_order = i,
      organization_id = 2, is_deleted = false, is_hidden = false, created_at = ts(1), updated_at = ts(1) })
  end
  local cats = { { "Engineering", 1 }, { "Lua", 3 } }
  for i, c in ipairs(cats) do
    put("category", 71000 + i, { name = c[1], type = c[2], organization_id = 2, is_deleted = false,
      external_id = "SBX-CAT" .. i, created_at = ts(1), updated_at = ts(1), created_by = 41, updated_by = 41 })
  end
end

--- Put the whole state back to the seed.
function M.reset()
  store.clear()
  store.define("action") -- Talview actions (`assesskit.sandbox.actions`), none yet
  seed_samples()
  seed_orgs()
  seed_users()
  seed_assessments()
  seed_candidates()
  seed_invitations()
  seed_misc()
  require("assesskit.sandbox.interviewmocha").seed()
  require("assesskit.sandbox.auth").reset_passwords()
end

--- Why the last `reset_safely` failed (nil when it succeeded): `/_sandbox/health` reports it.
M.failure = nil

--- `reset`, with a failure caught and kept in `failure` instead of raised.
-- @treturn[1] true
-- @treturn[2] nil
-- @treturn[2] string what went wrong
function M.reset_safely()
  local ok, err = pcall(M.reset)
  M.failure = not ok and tostring(err) or nil
  if not ok then return nil, M.failure end
  return true
end

return M
