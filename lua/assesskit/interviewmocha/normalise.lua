--- Result normalisers for InterviewMocha responses.
--
-- The v3 report's documentation spells some fields several ways (`Status` in the field table,
-- `status` in the sample; `sectionID` on sections but `sectionId` on skills; `Skills`). The
-- normaliser adds one documented lowerCamelCase spelling for every known field, so users can
-- rely on `report.status`, `section.sectionId`, `section.skills`, `skill.sectionId`, while
-- every field keeps the spelling the server sent too (the raw fields are never removed or
-- renamed). A canonical field already present is never overwritten.
--
-- Plain Lua, no requires: runs on Lua 5.4 and LuaJIT.
-- @internal assesskit.interviewmocha.normalise

local pairs, type, sort, lower = pairs, type, table.sort, string.lower

local M = {}

--- Canonical (documented) field names of each object in a report.
-- @table fields
M.fields = {
  report = { "testInvitationId", "testId", "candidateEmail", "attemptedOn", "status", "score",
             "scorePercentage", "candidatePoints", "totalTestPoints", "testName",
             "pdfReportUrl", "sections", "skills" },
  section = { "candidateScore", "sectionScore", "noOfQue", "sectionId", "sectionName",
              "sectionTime", "sectionTimeTaken", "skills" },
  skill = { "candidateQbScore", "qbScore", "noOfQue", "qbId", "qbName", "sectionId",
            "sectionName" },
}

-- Adds obj[canonical] = obj[variant] where the canonical name is absent and a key differing
-- only in letter case is present. Several variants: the first in byte order wins, so the
-- result does not depend on table iteration order.
local function canonicalise(obj, names)
  local variants
  for k in pairs(obj) do
    if type(k) == "string" then
      local l = lower(k)
      variants = variants or {}
      local list = variants[l]
      if not list then list = {}; variants[l] = list end
      list[#list + 1] = k
    end
  end
  if not variants then return obj end
  for i = 1, #names do
    local name = names[i]
    if obj[name] == nil then
      local list = variants[lower(name)]
      if list then
        sort(list)
        obj[name] = obj[list[1]]
      end
    end
  end
  return obj
end

local function each_table(list, fn)
  if type(list) ~= "table" then return end
  for i = 1, #list do
    if type(list[i]) == "table" then fn(list[i]) end
  end
end

local function skill(s)
  canonicalise(s, M.fields.skill)
end

local function section(s)
  canonicalise(s, M.fields.section)
  each_table(s.skills, skill)
end

--- Normalise a decoded v3 report in place.
-- Adds the canonical spellings listed in `fields` to the report, each of its `sections` and
-- each section's (or the report's) `skills`. Raw fields are kept.
-- @tparam table report the decoded JSON object
-- @treturn table the same table
-- @usage local r = normalise.report(cjson.decode(body)); print(r.status, r.sections[1].sectionId)
function M.report(report)
  if type(report) ~= "table" then
    error("bad argument #1 to 'report' (table expected, got " .. type(report) .. ")", 2)
  end
  canonicalise(report, M.fields.report)
  each_table(report.sections, section)
  each_table(report.skills, skill)
  return report
end

return M
