-- The sandbox's InterviewMocha v2/v3 emulation, over real HTTP.
local sandbox = require("support.sandbox")

describe("sandbox InterviewMocha emulation", function()
  local sb = sandbox.fixture()
  local key

  setup(function()
    key = sb.credentials.interviewmocha.api_key
  end)

  local function get(path, headers)
    return sb:request("GET", path, { headers = headers or { ["x-api-key"] = key } })
  end

  it("lists a test's links in the v2 envelope (statuscode 200.1)", function()
    local r = get("/v2/org/tests/114110/testlinks")
    assert.equal(200, r.status)
    assert.equal("200.1", r.json.statuscode)
    assert.equal("The request has succeeded.", r.json.description)
    local links = r.json.result.testLinks
    assert.equal(3, #links)
    assert.equal(24540, links[1].testLinkId)
    assert.equal(114110, links[1].testId)
    assert.equal("d3e89987cd", links[1].testLinkAccessKey)
    for _, l in ipairs(links) do
      for _, f in ipairs({ "testLinkId", "testId", "testLinkName", "testLinkAccessKey", "accessTime",
                           "timeZoneId", "inviteCandidateOnly", "imageProctoring", "testLinkStatus" }) do
        assert.is_not_nil(l[f], f)
      end
    end
    assert.equal(0, #get("/v2/org/tests/11225/testlinks").json.result.testLinks)
  end)

  it("takes the key header in any letter case", function()
    assert.equal(200, get("/v2/org/tests/114110/testlinks", { ["X-API-KEY"] = key }).status)
  end)

  it("answers 400 {errors} for a missing or wrong key, on v2 and v3", function()
    for _, path in ipairs({ "/v2/org/tests/114110/testlinks", "/v3/reports/225634" }) do
      local r = get(path, {})
      assert.equal(400, r.status, path)
      assert.same({ errors = { "ApiKey is not invalid or incorrect" } }, r.json)
      r = get(path, { ["x-api-key"] = "wrong-key" })
      assert.equal(400, r.status, path)
      assert.is_table(r.json.errors)
      assert.falsy(r.body:find("wrong-key", 1, true))
    end
  end)

  it("answers unknown tests and invitations with 404 and bad ids with 400", function()
    local r = get("/v2/org/tests/999999/testlinks")
    assert.equal(404, r.status)
    assert.equal("404.1", r.json.statuscode)
    r = get("/v3/reports/999999")
    assert.equal(404, r.status)
    assert.is_table(r.json.errors)
    assert.equal(400, get("/v3/reports/abc").status)
    assert.equal(400, get("/v2/org/tests/abc/testlinks").status)
    assert.equal(400, get("/v3/reports/225634?reportType=4").status)
  end)

  it("returns the report in the seed's three shapes by reportType", function()
    local one = get("/v3/reports/225634")
    assert.equal(200, one.status)
    assert.equal(225634, one.json.testInvitationId)
    assert.equal("dave@yopmail.com", one.json.candidateEmail)
    assert.equal("Complete", one.json.status)
    assert.equal(2, #one.json.sections)
    assert.equal(1465186, one.json.sections[1].sectionID)
    assert.is_nil(one.json.sections[1].Skills)
    assert.is_nil(one.json.skills)
    assert.same(one.json, get("/v3/reports/225634?reportType=1").json)

    local two = get("/v3/reports/225634?reportType=2").json
    assert.is_nil(two.sections)
    assert.equal(2, #two.skills)
    assert.equal(78689, two.skills[1].qbId)
    assert.equal(1465186, two.skills[1].sectionId)

    local three = get("/v3/reports/225634?reportType=3").json
    assert.equal(2, #three.sections)
    assert.equal("YARN", three.sections[1].Skills[1].qbName)
    assert.equal(4.0, three.sections[1].sectionScore)
    assert.equal(89.0, three.totalTestPoints)
    -- the seed's example URL
    assert.equal(200, get("/v3/reports/2807324?reportType=3").status)
  end)

  it("serves the PDF the report's pdfReportUrl points to, without the API key", function()
    local url = get("/v3/reports/225634").json.pdfReportUrl
    assert.equal(sb.url, url:sub(1, #sb.url))
    local r = sb:request("GET", url:sub(#sb.url + 1))
    assert.equal(200, r.status)
    assert.equal("application/pdf", r.headers["content-type"])
    assert.equal("%PDF-1.4", r.body:sub(1, 8))
    assert.matches("%%%%EOF\n$", r.body)
    -- the xref offsets point at the objects
    local startxref = tonumber(r.body:match("startxref\n(%d+)"))
    assert.equal("xref", r.body:sub(startxref + 1, startxref + 4))
    local first_offset = tonumber(r.body:match("xref\n0 %d+\n0000000000 65535 f \n(%d+)"))
    assert.equal("1 0 obj", r.body:sub(first_offset + 1, first_offset + 7))
    assert.truthy(r.body:find("dave@yopmail.com", 1, true))
    assert.equal(404, sb:request("GET", "/files/PDFReport?id=nope").status)
  end)

  it("answers 405 to another method", function()
    local r = sb:request("POST", "/v3/reports/225634", { headers = { ["x-api-key"] = key }, body = {} })
    assert.equal(405, r.status)
    assert.equal("GET", r.headers.allow)
  end)
end)
