--- Seeded data (placeholder while the store is built).
-- @module assesskit.sandbox.seed
local store = require("assesskit.sandbox.store")
local M = {}
--- Put the state back to the seed.
function M.reset() store.clear() end
return M
