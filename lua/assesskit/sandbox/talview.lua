--- Talview v4 emulation: routing from the catalogue, then the checks every Talview path goes
-- through, then the handler.
-- @module assesskit.sandbox.talview

local http = require("assesskit.sandbox.http")
local auth = require("assesskit.sandbox.auth")
local router = require("assesskit.sandbox.router")
local catalogue = require("assesskit.talview.catalogue")

local M = {}

local routes = router.new(catalogue.endpoints)

--- Serve a Talview request.
-- @tparam table req
function M.handle(req)
  local ep, params = routes:match(req.method, req.path)
  if not ep then
    if params then return http.error(req, 405, "Method Not Allowed. This URL can only handle the following request methods: " .. params .. ".", { Allow = params }) end
    return http.error(req, 404, "Page not found.")
  end
  local principal = auth.authenticate(req)
  if not principal then return end
  return http.json(req, 200, { endpoint = ep.name })
end

return M
