--- The sandbox's fixed demo credentials.
--
-- These are published with the project and work against the sandbox alone: the sandbox prints
-- them on `start` and writes them to `credentials.json` in its run directory. Nothing else in
-- assesskit may use them as a default for any other base URL.
--
-- Data, and the document listing them (`document`, `text`); loadable by Lua 5.4 and LuaJIT.
-- @module assesskit.sandbox.credentials

local json = require("assesskit.sandbox.json")

local tostring, table_concat = tostring, table.concat

local M = {}

--- The OAuth2 application (client) the password and refresh_token grants authenticate.
M.client = {
  client_id = "sandbox-client",
  client_secret = "sandbox-client-secret",
}

--- Users of the password grant. `roles` decides what `roles`-restricted endpoints allow.
-- The first user is the one printed as the demo user; the second has no privileged role and
-- exists to exercise 403 answers.
M.users = {
  {
    id = 41, organization_id = 2, username = "recruiter@sandbox.assesskit.test",
    password = "sandbox-recruiter-password", name = "Sandbox Recruiter",
    roles = { "Account Manager", "Content Manager", "Hiring Manager", "Master Hiring Manager",
              "Master Recruiter", "Recruiter" },
    current_role = "Master Recruiter",
  },
  {
    id = 42, organization_id = 2, username = "viewer@sandbox.assesskit.test",
    password = "sandbox-viewer-password", name = "Sandbox Viewer",
    roles = { "Hiring Manager" },
    current_role = "Hiring Manager",
  },
}

--- Service accounts of the JWT-bearer grant. `public_key_file` is relative to this directory;
-- the matching private key is the sandbox demo key, shipped for the sandbox alone.
M.service_accounts = {
  {
    id = 43, organization_id = 2, client_id = "sandbox-service-account",
    issuer = "service-account@sandbox.assesskit.test",
    scope = "section evaluation invitation",
    public_key_file = "demo-service-account.pub.pem",
    private_key_file = "demo-service-account.key.pem",
    name = "Sandbox API user",
    roles = { "API user" },
    current_role = "API user",
  },
}

--- InterviewMocha API keys (header `x-api-key`).
M.interviewmocha = {
  api_key = "sandbox-im-0c3f8a9d2b714e56",
}

--- The demo credentials as written to `credentials.json` (and served at
-- `/_sandbox/credentials`).
-- @tparam table static the start-up settings (`assesskit.sandbox.config.static`): `base_url`,
--   `ca_file`, `lua_dir`
-- @treturn table `base_url`, `ca_file` (with TLS), `password` {client_id, client_secret,
--   username, password}, `viewer` (the same for the user without privileged roles), `jwt`
--   {client_id, issuer, audience, scope, private_key_file}, `interviewmocha` {api_key, v2_url, v3_url}
function M.document(static)
  local u, viewer, sa = M.users[1], M.users[2], M.service_accounts[1]
  local sandbox_dir = (static.lua_dir or "lua") .. "/assesskit/sandbox/"
  local function grant(user)
    return json.object({
      client_id = M.client.client_id, client_secret = M.client.client_secret,
      username = user.username, password = user.password,
    }, { "client_id", "client_secret", "username", "password" })
  end
  return json.object({
    base_url = static.base_url,
    ca_file = static.ca_file or nil,
    password = grant(u),
    viewer = grant(viewer),
    jwt = json.object({
      client_id = sa.client_id, issuer = sa.issuer,
      audience = (static.base_url or "") .. "/oauth2/token",
      scope = sa.scope, private_key_file = sandbox_dir .. sa.private_key_file,
    }, { "client_id", "issuer", "audience", "scope", "private_key_file" }),
    -- InterviewMocha v2 and v3 are served under <base>/v2 and <base>/v3
    interviewmocha = json.object({
      api_key = M.interviewmocha.api_key,
      v2_url = (static.base_url or "") .. "/v2", v3_url = (static.base_url or "") .. "/v3",
    }, { "api_key", "v2_url", "v3_url" }),
  }, { "base_url", "ca_file", "password", "viewer", "jwt", "interviewmocha" })
end

--- The same as text for people (`credentials.txt`, and what `start` prints).
-- @tparam table c from `document`
-- @treturn string
function M.text(c)
  local lines = {
    "assesskit sandbox (demo credentials, for this sandbox alone)",
    "  base URL:        " .. tostring(c.base_url),
  }
  if c.ca_file then lines[#lines + 1] = "  CA file:         " .. c.ca_file end
  lines[#lines + 1] = "  password grant:  client_id=" .. c.password.client_id .. " client_secret="
    .. c.password.client_secret
  lines[#lines + 1] = "                   username=" .. c.password.username .. " password=" .. c.password.password
  lines[#lines + 1] = "  no-role user:    username=" .. c.viewer.username .. " password=" .. c.viewer.password
  lines[#lines + 1] = "  JWT-bearer:      client_id=" .. c.jwt.client_id .. " iss=" .. c.jwt.issuer
  lines[#lines + 1] = "                   aud=" .. c.jwt.audience .. " scope=\"" .. c.jwt.scope .. "\""
  lines[#lines + 1] = "                   key=" .. c.jwt.private_key_file .. " (sandbox demo key)"
  lines[#lines + 1] = "  InterviewMocha:  x-api-key: " .. c.interviewmocha.api_key
  lines[#lines + 1] = "                   v2: " .. c.interviewmocha.v2_url .. "  v3: " .. c.interviewmocha.v3_url
  lines[#lines + 1] = "  control:         " .. tostring(c.base_url) .. "/_sandbox/"
  return table_concat(lines, "\n") .. "\n"
end

return M
