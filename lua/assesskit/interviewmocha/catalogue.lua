--- Declarative table of every InterviewMocha (iMocha) endpoint assesskit knows.
--
-- Plain data, no requires: loadable by Lua 5.4 and LuaJIT, shared by the client
-- (`assesskit.interviewmocha`) and the sandbox. The shape follows the Talview catalogue
-- (docs/DESIGN.md), with one addition: InterviewMocha serves two API versions on two hosts,
-- so every endpoint names its `api` (a key of `apis`), and `apis` gives each one's default
-- base URL and response convention.
--
-- Endpoint fields:
--
-- * `name`: `<resource>.<action>` (`tests.links` is `im.tests:links(...)`).
-- * `method`, `path`: the request line; `{placeholders}` are path parameters.
-- * `params`: the path parameters, in the order the resource method takes them, each with
--   its seed type (`int64`: a positive integer, sent percent-encoded).
-- * `query`: documented query parameters; `defaults` their default values; `enum` the allowed
--   values where the seed lists them.
-- * `response`: `list` or `object`; `result` names the envelope field the list is taken from
--   (v2); `normalise` names the hand-written result normaliser in
--   `assesskit.interviewmocha.normalise`.
-- * `seed`, `seed_line`: where the endpoint is documented (files in the seeds directory).
--
-- @internal assesskit.interviewmocha.catalogue

return {
  apis = {
    v2 = {
      base_url = "https://api.interviewmocha.com/v2",
      -- Every v2 body is `{statuscode = "200.1", description = "...", result = {...}}`;
      -- a statuscode other than 200 or 200.<n> is a failure described by `description`.
      envelope = "statuscode",
    },
    v3 = {
      base_url = "https://apiv3.interviewmocha.com/v3",
      -- Bare JSON bodies; a failure is `{"errors": ["...", ...]}` (seed 001, line 67).
      envelope = false,
    },
  },

  -- Sent as the header named here on requests to the API's own hosts only (never to a
  -- PDF report URL on another origin).
  auth_header = "x-api-key",

  endpoints = {
    { name = "tests.links", method = "GET", api = "v2", path = "/org/tests/{testId}/testlinks",
      summary = "Get all test links of a test",
      seed = "000_7d1f500337031357.txt", seed_line = 10,
      params = { { name = "testId", type = "int64" } },
      response = "list", result = "testLinks",
      fields = { "testId", "testLinkId", "testLinkName", "testLinkAccessKey", "accessTime",
                 "startDateTime", "endDateTime", "timeZoneId", "inviteCandidateOnly",
                 "imageProctoring", "emailToStakeholder", "testLinkStatus" } },

    { name = "reports.get", method = "GET", api = "v3", path = "/reports/{testInvitationId}",
      summary = "Retrieve a candidate's test report",
      seed = "001_c95dd0603bbe8262.txt", seed_line = 6,
      params = { { name = "testInvitationId", type = "int64" } },
      query = { "reportType" },
      defaults = { reportType = 1 },
      enum = { reportType = { 1, 2, 3 } },
      response = "object", normalise = "report" },
  },

  -- Every place where the seed is ambiguous or contradicts itself, and what we chose.
  resolutions = {
    { seed = "001_c95dd0603bbe8262.txt", seed_line = 14,
      text = "reportType listed under 'Request Body Parameters' (and again as a Query parameter)",
      resolved = "reportType is sent in the query string",
      why = "a GET carries no body; the seed's example is /v3/reports/2807324?reportType=3 "
         .. "and its parameter table says 'Parameter Type: Query'" },
    { seed = "001_c95dd0603bbe8262.txt", seed_line = 26,
      text = "the field table says 'Status', the sample response says 'status'",
      resolved = "the result offers `status`; the raw spelling is kept",
      why = "every other documented field is lowerCamelCase" },
    { seed = "001_c95dd0603bbe8262.txt", seed_line = 38,
      text = "sections carry 'sectionID' in the sample, 'sectionId' in the table and in skills",
      resolved = "the result offers `sectionId` on sections and skills; the raw spelling is kept",
      why = "the field table and the skill objects spell it sectionId" },
    { seed = "001_c95dd0603bbe8262.txt", seed_line = 42,
      text = "a section's skills are 'Skills' in the sample; the table only says 'Skill object'",
      resolved = "the result offers `skills` (the same array); the raw spelling is kept",
      why = "lowerCamelCase, like `sections`" },
    { seed = "001_c95dd0603bbe8262.txt", seed_line = 23,
      text = "testId is typed String in the table and is a number in the sample",
      resolved = "passed through as received",
      why = "no contract to enforce either way" },
    { seed = "000_7d1f500337031357.txt", seed_line = 44,
      text = "the curl example ends in a stray quote and sends content-type on a GET",
      resolved = "GET /v2/org/tests/{testId}/testlinks with x-api-key and accept: application/json",
      why = "the URL structure on line 10" },
    { seed = "README.md",
      text = "v3 is also served at https://apiv3.imocha.io/v3 with an X-API-KEY header",
      resolved = "default v3_url stays https://apiv3.interviewmocha.com/v3 (the seed); the header "
         .. "is sent as x-api-key (HTTP header names are case-insensitive); set v3_url to use "
         .. "the imocha.io host",
      why = "the issue fixes the default; TLS 1.2+ is what libcurl/OpenSSL negotiate by default" },
  },
}
