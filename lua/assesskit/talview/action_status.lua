--- The statuses of a Talview action (`POST /actions/...`), in one place: the numbers the API
-- sends, their names, and which of them are final.
--
-- The seed's "List of Status" gives 0 to 3; its Live Schedule example shows 99 for an action
-- that failed as a whole (its `response` says why). docs/actions.md has the life cycle.
--
-- Plain data and two functions, loadable by Lua 5.4 and LuaJIT (the sandbox uses it too).
-- @module assesskit.talview.action_status
-- @usage local action_status = require("assesskit.talview.action_status")
-- print(action_status.name(action.status))        --> "requested"
-- if action_status.is_final(action.status) then ... end

local type = type

local M = {}

--- STATUS_DELETED: the action was deleted.
M.DELETED = 0
--- STATUS_REQUESTED: queued; nothing has happened yet.
M.REQUESTED = 1
--- STATUS_PROCESSING: being carried out, item by item.
M.PROCESSING = 2
--- STATUS_COMPLETED: done; `success_count` and `error_count` say how each item went.
M.COMPLETED = 3
--- Failed as a whole (nothing done); `response` says why.
M.FAILED = 99

--- Status number -> name.
-- @table names
M.names = {
  [0] = "deleted", [1] = "requested", [2] = "processing", [3] = "completed", [99] = "failed",
}

--- The name of a status number.
-- @param status a number (or anything: nil when it is not a known status)
-- @treturn ?string `"deleted"`, `"requested"`, `"processing"`, `"completed"`, `"failed"`
function M.name(status)
  if type(status) ~= "number" then return nil end
  return M.names[status]
end

--- Whether a status is final: the action will not change any more (completed, failed or
-- deleted).
-- @param status
-- @treturn boolean
function M.is_final(status)
  return status == M.COMPLETED or status == M.FAILED or status == M.DELETED
end

return M
