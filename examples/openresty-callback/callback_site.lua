-- examples/openresty-callback/callback_site.lua: the Lua side of nginx.conf next to it.
--
-- One receiver per worker (assesskit.talview.callback), built in init_worker from the secret
-- in TALVIEW_CALLBACK_SECRET. `on_action` is where your code goes: here it logs the action
-- and keeps it, so that GET /actions can show what arrived. See README.md for how to run it.

-- luacheck: globals ngx
local callback = require("assesskit.talview.callback")
local cjson = require("cjson")

local M = {}

local receiver, problem

-- "1 of 2 done, 1 failed", or nil when the action gives no counts: some actions leave them
-- null even when done (create-assessment, section-workflow, ...: docs/actions.md, "Which
-- fields are filled when"); then `response` alone tells the items that failed.
local function counts(action)
  local done, all, failed = tonumber(action.success_count), tonumber(action.total_count),
    tonumber(action.error_count)
  if not (done and all and failed) then return nil end
  return ("%d of %d done, %d failed"):format(done, all, failed)
end

--- What the site does with an action, once per action id and status.
function M.on_action(action)
  -- callback.log, not ngx.log: nginx would end the line with the request's URL, secret and all
  callback.log(ngx.NOTICE, ("action %d %s: %s"):format(action.id, callback.status_name(action.status),
    counts(action) or "no counts given"))
  action.status_name = callback.status_name(action.status)
  ngx.shared.talview_actions:set(("%d"):format(action.id), cjson.encode(action))
end

--- init_worker_by_lua: the receiver.
function M.init()
  local ok, r = pcall(callback.new, {
    secret = os.getenv("TALVIEW_CALLBACK_SECRET"),
    seen = "talview_callbacks",
    handler = M.on_action,
  })
  if ok then receiver = r return end
  problem = "set TALVIEW_CALLBACK_SECRET (callback.secret() makes one) before starting nginx"
  ngx.log(ngx.ERR, "callback site: ", problem)
end

--- POST /talview/callback
function M.receive()
  if not receiver then
    ngx.status = 503
    ngx.say(cjson.encode({ error = problem }))
    return ngx.exit(503)
  end
  return receiver:serve()
end

--- GET /actions: the actions received, by id.
function M.list()
  local dict = ngx.shared.talview_actions
  local keys = dict:get_keys(0)
  table.sort(keys, function(a, b) return tonumber(a) < tonumber(b) end)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = dict:get(k) end
  ngx.header["Content-Type"] = "application/json"
  ngx.say("[", table.concat(out, ","), "]")
end

return M
