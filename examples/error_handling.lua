-- error_handling.lua: what failures look like, and how to tell them apart.
--
-- Every assesskit call returns `nil, err` on failure; `err.kind` says what went wrong
-- (`validation`, `http`, `auth`, `network`, `timeout`, ...), `err.status` the HTTP status,
-- `err.fields` the fields a 422 names, `err.retryable` whether trying again may help, and
-- `tostring(err)` is one line without any secret. Shown here: a parameter refused before
-- anything is sent, a 422 from the server, a 404, a 503 the client retries on its own
-- (honouring Retry-After), and a 503 that outlasts the retries.
--
-- Run it (from the repository root, after `make`, with a sandbox running):
--   bin/assesskit-sandbox start --port 0 --dir /tmp/aksb
--   export ASSESSKIT_SANDBOX_DIR=/tmp/aksb
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" lua5.4 examples/error_handling.lua
local talview = require("assesskit.talview")

local sb = assert(require("assesskit.local_sandbox").credentials())
local tv = talview.new{
  base_url = sb.base_url, ca_file = sb.ca_file, max_retries = 2,
  auth = { grant = "jwt", client_id = sb.jwt.client_id, issuer = sb.jwt.issuer,
           scope = sb.jwt.scope, private_key_file = sb.jwt.private_key_file },
}

-- Sandbox only: the X-Sandbox-Fault header makes the sandbox fail this request on purpose.
local function fault(spec)
  return { headers = { ["X-Sandbox-Fault"] = spec .. "; id=" .. os.time() .. math.random(1e6) } }
end

-- 1. A required parameter is missing: refused locally, nothing is sent.
local cand, err = tv.models.candidate:create{ first_name = "Grace" }
assert(not cand and err.kind == "validation")
print(("1. refused before sending (field %s): %s"):format(err.fields[1].field, err))

-- 2. The server rejects a field: 422, with the field and its message.
cand, err = tv.models.candidate:create{ email = "not-an-email" }
assert(not cand and err.status == 422)
for _, f in ipairs(err.fields) do print(("2. rejected: %s: %s"):format(f.field, f.message)) end

-- 3. Not found.
cand, err = tv.models.candidate:get(999999)
if not cand and err.kind == "http" and err.status == 404 then
  print("3. not found: " .. err.message)
end

-- 4. Two 503s with Retry-After: 1, then success. GETs are retried on their own.
local res
cand, err, res = tv.models.candidate:get(10001, nil, fault("status; status=503; retry_after=1; times=2"))
if not cand then error(tostring(err)) end
print(("4. retried: got candidate #%d after %d attempts"):format(cand.id, res.attempts))

-- 5. A 503 that does not go away: the error says it is retryable, so try again later.
cand, err = tv.models.candidate:get(10001, nil, fault("status; status=503; retry_after=0"))
assert(not cand)
print(("5. gave up: status %d, retryable=%s -> %s"):format(err.status, tostring(err.retryable), err))
