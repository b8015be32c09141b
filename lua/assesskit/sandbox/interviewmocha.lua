--- InterviewMocha v2/v3 emulation (placeholder).
-- @module assesskit.sandbox.interviewmocha
local http = require("assesskit.sandbox.http")
local M = {}
--- Serve an InterviewMocha request.
-- @tparam table req
function M.handle(req) return http.send(req, 400, '{"errors":["ApiKey is not invalid or incorrect"]}') end
--- Serve a file.
-- @tparam table req
function M.serve_file(req) return http.send(req, 404, '{"error":"not found"}') end
return M
