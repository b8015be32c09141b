-- The InterviewMocha report normaliser and catalogue: pure Lua, no server.
-- Tagged luajit too: both modules are plain data/code that may run inside nginx.

local cjson = require("cjson")
local normalise = require("assesskit.interviewmocha.normalise")
local catalogue = require("assesskit.interviewmocha.catalogue")

-- The seed's sample response (001_c95dd0603bbe8262.txt, line 155), verbatim.
local SAMPLE = table.concat({
  [[{ "testInvitationId": 225634, "testId": 11223, "candidateEmail": "dave@yopmail.com"]],
  [[, "attemptedOn": "2020-03-12T11:33:48.04Z", "status": "Complete", "score": 1.0]],
  [[, "candidatePoints": 1.0, "totalTestPoints": 89.0, "testName": "Test with All question types"]],
  [[, "pdfReportUrl": "https://app.interviewmocha.com/PDFReport?id=Hp2MdRaTmBEnI7%2bbD2G%2f"]],
  [[, "sections": [ { "candidateScore": 1.0, "sectionScore": 4.0, "noOfQue": 4]],
  [[, "sectionID": 1465186, "sectionName": "YARN", "sectionTime": 8, "sectionTimeTaken": 9]],
  [[, "Skills": [ { "candidateQbScore": 1.0, "qbScore": 4.0, "noOfQue": 4, "qbId": 78689]],
  [[, "qbName": "YARN", "sectionId": 1465186, "sectionName": "YARN" } ] }, { "candidateScore": 0.0]],
  [[, "sectionScore": 20.0, "noOfQue": 4, "sectionID": 1465193, "sectionName": "Essay Writing"]],
  [[, "sectionTime": 8, "sectionTimeTaken": 15, "Skills": [ { "candidateQbScore": 0.0]],
  [[, "qbScore": 20.0, "noOfQue": 4, "qbId": 31164, "qbName": "Essay Writing", "sectionId": 1465193]],
  [[, "sectionName": "Essay Writing" } ] } ] }]],
})

describe("interviewmocha report normaliser #luajit", function()
  it("offers sectionId and skills on the seed's sample and keeps sectionID and Skills", function()
    local r = normalise.report(cjson.decode(SAMPLE))
    assert.are.equal(2, #r.sections)
    local s1, s2 = r.sections[1], r.sections[2]
    assert.are.equal(1465186, s1.sectionId)
    assert.are.equal(1465186, s1.sectionID)
    assert.are.equal(1465193, s2.sectionId)
    assert.are.equal(s1.Skills, s1.skills)
    assert.are.equal("YARN", s1.skills[1].qbName)
    assert.are.equal(31164, s2.skills[1].qbId)
    assert.are.equal("Complete", r.status)
  end)

  it("offers status when the server spells it Status, as the field table does", function()
    local r = normalise.report({ Status = "Pending", testName = "t" })
    assert.are.equal("Pending", r.status)
    assert.are.equal("Pending", r.Status)
  end)

  it("never overwrites a canonical field the server sent", function()
    local r = normalise.report({ status = "Complete", Status = "Other",
      sections = { { sectionId = 1, sectionID = 2, skills = { "x" }, Skills = { "y" } } } })
    assert.are.equal("Complete", r.status)
    assert.are.equal(1, r.sections[1].sectionId)
    assert.are.same({ "x" }, r.sections[1].skills)
    assert.are.same({ "y" }, r.sections[1].Skills)
  end)

  it("normalises skill objects, nested or at the report's top level", function()
    local r = normalise.report({ SKILLS = { { SectionID = 7, QBNAME = "Lua" } } })
    assert.are.equal(7, r.skills[1].sectionId)
    assert.are.equal("Lua", r.skills[1].qbName)
  end)

  it("picks the same variant whatever the table order when several are present", function()
    for _ = 1, 20 do
      local r = normalise.report({ STATUS = "a", Status = "b", sTATUS = "c" })
      assert.are.equal("STATUS", ({ a = "STATUS", b = "Status", c = "sTATUS" })[r.status])
    end
  end)

  it("leaves odd shapes alone instead of failing", function()
    local r = normalise.report({ sections = "none", skills = { 1, "two", { qbid = 3 } } })
    assert.are.equal("none", r.sections)
    assert.are.equal(3, r.skills[3].qbId)
  end)

  it("raises on a non-table argument", function()
    assert.has_error(function() normalise.report("x") end,
      "bad argument #1 to 'report' (table expected, got string)")
  end)
end)

describe("interviewmocha catalogue #luajit", function()
  it("names every endpoint's api, and every api has a default https base URL", function()
    for _, e in ipairs(catalogue.endpoints) do
      local api = catalogue.apis[e.api]
      assert.is_table(api, e.name)
      assert.matches("^https://", api.base_url)
    end
  end)

  it("declares every path placeholder as a parameter, in order, and nothing else", function()
    for _, e in ipairs(catalogue.endpoints) do
      local seen = {}
      for p in e.path:gmatch("{([^}]+)}") do seen[#seen + 1] = p end
      local declared = {}
      for i, p in ipairs(e.params or {}) do declared[i] = p.name end
      assert.are.same(seen, declared, e.name)
    end
  end)

  it("uses unique <resource>.<action> names and GET/POST/PUT/PATCH/DELETE methods", function()
    local names = {}
    for _, e in ipairs(catalogue.endpoints) do
      assert.matches("^[a-z_]+%.[a-z_]+$", e.name)
      assert.is_nil(names[e.name], e.name)
      names[e.name] = true
      assert.truthy(({ GET = 1, POST = 1, PUT = 1, PATCH = 1, DELETE = 1 })[e.method])
    end
    assert.is_true(names["tests.links"])
    assert.is_true(names["reports.get"])
  end)

  it("documents reportType as a query parameter defaulting to 1, one of 1, 2, 3", function()
    local found = 0
    for _, e in ipairs(catalogue.endpoints) do
      if e.name == "reports.get" then
        found = found + 1
        assert.are.same({ "reportType" }, e.query)
        assert.are.equal(1, e.defaults.reportType)
        assert.are.same({ 1, 2, 3 }, e.enum.reportType)
      end
    end
    assert.are.equal(1, found) -- not vacuous: reports.get is there, once
  end)
end)
