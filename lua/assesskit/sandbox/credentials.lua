--- The sandbox's fixed demo credentials.
--
-- These are published with the project and work against the sandbox alone: the sandbox prints
-- them on `start` and writes them to `credentials.json` in its run directory. Nothing else in
-- assesskit may use them as a default for any other base URL.
--
-- Plain data, loadable by Lua 5.4 and LuaJIT.
-- @module assesskit.sandbox.credentials

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

return M
