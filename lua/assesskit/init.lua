--- assesskit: drive the Talview v4 and InterviewMocha v2/v3 hiring-assessment APIs from Lua.
--
-- The API clients load on first use: `require("assesskit").talview` is the same as
-- `require("assesskit.talview")`. This module requires nothing when it loads, so every part
-- of assesskit (the clients, the nginx transport, the C core's user agent, the command line)
-- reads the one version constant, `_VERSION`, from here.
-- @module assesskit
-- @usage
-- local assesskit = require "assesskit"
-- local tv = assesskit.talview.new{ ... }
-- print(assesskit._VERSION)

local require = require
local rawset = rawset
local setmetatable = setmetatable

local M = {
  --- Version of assesskit: the one constant of the rock (the rockspecs' version without its
  -- revision).
  _VERSION = "0.2.0",
}

--- The JSON `null` sentinel (`cjson.null`): what a JSON null decodes to, and what to put in a
-- body to send one. The same value as `require("assesskit.talview").null` (loaded on first
-- use, like the fields below).
-- @field null

-- Lazily required sub-modules, by field name (`null` is a field of cjson).
local lazy = {
  talview = "assesskit.talview",
  interviewmocha = "assesskit.interviewmocha",
  jwt = "assesskit.jwt",
  errors = "assesskit.errors",
  url = "assesskit.url",
}

--- The versions of the native libraries assesskit runs on.
-- @treturn table `{curl=, openssl=, lua=, http2=, assesskit=}`
-- @usage print(require("assesskit").versions().curl)
function M.versions()
  return require("assesskit.core").versions()
end

setmetatable(M, {
  __index = function(t, k)
    local mod
    if k == "null" then
      mod = require("cjson").null
    else
      local name = lazy[k]
      if name == nil then return nil end
      mod = require(name)
    end
    rawset(t, k, mod)
    return mod
  end,
})

return M
