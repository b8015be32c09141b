-- password_refresh.lua: the password grant, and a token renewed with the refresh_token grant.
--
-- Signs in with the password grant (client id and secret, user name and password), calls
-- GET /user/me, then makes the sandbox expire that access token. The next call gets 401; the
-- client renews the token with the refresh_token grant the password grant handed out and
-- sends the call again, so the caller only sees the answer. The on_request hook prints
-- every request; the sandbox's request log shows which grant each token request used.
--
-- Run it (from the repository root, after `make`, with a sandbox running):
--   bin/assesskit-sandbox start --port 0 --dir /tmp/aksb
--   export ASSESSKIT_SANDBOX_DIR=/tmp/aksb
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" lua5.4 examples/password_refresh.lua
local talview = require("assesskit.talview")
local cjson = require("cjson")

local sb = assert(require("assesskit.local_sandbox").credentials())

local tv = talview.new{
  base_url = sb.base_url, ca_file = sb.ca_file,
  auth = { grant = "password", client_id = sb.password.client_id,
           client_secret = sb.password.client_secret,
           username = sb.password.username, password = sb.password.password },
  -- Called before every request; it sees URLs and headers with every credential masked.
  on_request = function(info)
    local path = info.url:gsub("^https?://[^/]+", "")
    if not path:find("^/_sandbox/") then
      print(("   -> %s %s%s"):format(info.method, path, info.attempt > 1 and " (attempt " .. info.attempt .. ")" or ""))
    end
  end,
}

-- Sandbox only: where the sandbox's request log stands now (to show our token requests later).
local log = assert(tv:request("GET", "/_sandbox/requests", { auth = false }))
local since = #log > 0 and log[#log].seq or 0

print("1. sign in with the password grant and call GET /user/me")
local me, err = tv.user.me:get()
if not me then error(tostring(err)) end
print(("   signed in as %s (%s)"):format(me.username or me.email, me.name))

print("2. the sandbox expires that token: the next call gets 401, the client refreshes it")
-- Sandbox only: this header asks the sandbox to expire the request's token, once.
me, err = tv.user.me:get(nil, { headers = { ["X-Sandbox-Fault"] = "expire_token; times=1; id=" .. os.time() } })
if not me then error(tostring(err)) end
print(("   still signed in as %s"):format(me.username or me.email))

print("3. the token requests, from the sandbox's request log (secrets masked by the sandbox):")
log = assert(tv:request("GET", "/_sandbox/requests", { auth = false, query = { since = since } }))
for _, entry in ipairs(log) do
  if entry.path == "/oauth2/token" then
    local ok, body = pcall(cjson.decode, entry.body or "")
    print(("   POST /oauth2/token grant_type=%s -> %d"):format(ok and body.grant_type or "?", entry.status))
  end
end
