--- Transports for specs (Lua 5.4 and LuaJIT): a real `assesskit.core` session that remembers
-- what went through it, for specs that check what a client asked of its transport.
-- @module support.transport
-- @usage
-- local rec = require("support.transport").recording({ ca_file = sb.ca_file })
-- local tv = sb:talview({ transport = rec })
-- assert(tv.user.me:get())
-- assert.equal("POST", rec.sent[1].method)                -- the token request
-- local token = cjson.decode(rec.received[1].body).access_token
-- rec:close()

local core = require "assesskit.core"

local pairs = pairs

local M = {}

--- A recording transport over a fresh core session.
-- @tparam[opt] table session_opts options of `core.session` (e.g. `ca_file`)
-- @treturn table the transport: `request` (the transport contract), `sent` (a shallow copy of
--   every request, as it was when sent, oldest first), `received` (`{status, headers, body,
--   sent}` of each, or the failure's `nil, message, kind, sent` in those fields), `close()` (closes the
--   session; also callable as `rec.close()`)
function M.recording(session_opts)
  local inner = core.session(session_opts or {})
  local t = { sent = {}, received = {} }
  function t.request(_, req)
    local copy = {}
    for k, v in pairs(req) do copy[k] = v end
    t.sent[#t.sent + 1] = copy
    local status, headers, body, sent = inner:request(req)
    t.received[#t.received + 1] = { status = status, headers = headers, body = body, sent = sent }
    return status, headers, body, sent
  end
  function t.close() inner:close() end
  return t
end

return M
