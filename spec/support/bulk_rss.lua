--- Peak memory of a map over an iterator: `lua5.4 spec/support/bulk_rss.lua API_URL N [C]`
-- (or luajit) runs `tv:map` over an iterator of N items (one GET each, C in flight, default
-- 16) against spec/support/bulk_server.lua's API and prints `<items done> <peak RSS in kB>`
-- (VmHWM from /proc/self/status). spec/bulk_map_spec.lua compares N = 1,000 and 100,000.
local api, n, c = arg[1], tonumber(arg[2]), tonumber(arg[3] or 16)
local tv = require("assesskit.talview").new({
  base_url = api,
  auth = { grant = "password", client_id = "bulk", client_secret = "bulk-secret",
    username = "bulk", password = "bulk-password" },
})
local i = 0
local function items()
  i = i + 1
  if i <= n then return i end
end
local failed = 0
local summary = tv:map(items, function(id) return tv.models.candidate:get(id) end, {
  concurrency = c,
  on_result = function(_, _, err) if err then failed = failed + 1 end end,
})
tv:close()
local f = assert(io.open("/proc/self/status"))
local status = f:read("a")
f:close()
print(summary.done - failed, status:match("VmHWM:%s*(%d+)"))
