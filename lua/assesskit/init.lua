--- assesskit: drive the Talview v4 and InterviewMocha v2/v3 hiring-assessment APIs from Lua.
--
-- The API clients load on first use: `require("assesskit").talview` is the same as
-- `require("assesskit.talview")`.
-- @module assesskit
-- @usage
-- local assesskit = require "assesskit"
-- local tv = assesskit.talview.new{ ... }
-- print(assesskit._VERSION)

local require = require
local rawset = rawset
local setmetatable = setmetatable

local M = {
  --- Version of assesskit.
  _VERSION = require("assesskit.client")._VERSION, -- one version for the rock
  --- The JSON `null` sentinel (`cjson.null`): what a JSON null decodes to, and what to put in a
  -- body to send one. The same value as `require("assesskit.talview").null`.
  null = require("cjson").null,
}

-- Lazily required sub-modules, by field name.
local lazy = {
  talview = "assesskit.talview",
  interviewmocha = "assesskit.interviewmocha",
  jwt = "assesskit.jwt",
  errors = "assesskit.errors",
}

--- The versions of the native libraries assesskit runs on.
-- @treturn table `{curl=, openssl=, lua=, http2=, assesskit=}`
-- @usage print(require("assesskit").versions().curl)
function M.versions()
  return require("assesskit.core").versions()
end

setmetatable(M, {
  __index = function(t, k)
    local name = lazy[k]
    if name == nil then return nil end
    local mod = require(name)
    rawset(t, k, mod)
    return mod
  end,
})

return M
