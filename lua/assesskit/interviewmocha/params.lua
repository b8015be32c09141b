--- The type and one-line description the InterviewMocha seeds give each endpoint parameter.
--
-- Written by hand from the two seeds (000_*.txt: v2 test links; 001_*.txt: v3 report), as
-- the Talview one is generated from its seed: keyed by catalogue name, then parameter name
-- (the catalogue's spelling; resource methods also take it in snake_case), `{type =,
-- description =}` with `type` a LuaLS type name. Read by `im:endpoints()` (its `params`) and
-- by tools/annotations.lua; the catalogue says which parameters exist and where they go.
-- @internal assesskit.interviewmocha.params

return {
  ["tests.links"] = {
    -- 000, line 20: "testId Test Id associated with particular test None Int64 Yes"
    testId = { type = "integer", description = "Test Id associated with particular test" },
  },
  ["reports.get"] = {
    -- 001, line 11 (Int64, required) and line 70
    testInvitationId = { type = "integer",
      description = "testInvitationId associated with candidate giving particular test" },
    -- 001, lines 14 and 17-19
    reportType = { type = "integer",
      description = "1 (default): test summary with section scores; 2: skill-wise scores; 3: both" },
  },
}
