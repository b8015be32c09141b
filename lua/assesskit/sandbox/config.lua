--- The sandbox's configuration: what `bin/assesskit-sandbox` passed at start (run directory,
-- base URL, TLS) and the run-time settings the control endpoint may change
-- (`PUT /_sandbox/config`).
--
-- Worker-local: the sandbox runs one nginx worker, so this table is the one truth.
-- @module assesskit.sandbox.config

local pairs, type, tonumber, tostring, error = pairs, type, tonumber, tostring, error
local math_floor, math_huge = math.floor, math.huge

local M = {}

--- Run-time settings and their defaults. Every value is a number of seconds unless noted.
-- @table defaults
-- @field token_ttl lifetime of an access token (the seed: 86400 for the password grant)
-- @field jwt_token_ttl lifetime of an access token from the JWT-bearer grant (the seed: 1 h)
-- @field refresh_ttl lifetime of a refresh token
-- @field max_page_size the largest `pageSize` honoured (Yii2's default limit is 50)
-- @field default_page_size the `pageSize` when none is given (Yii2: 20)
-- @field jwt_max_lifetime the longest `exp - iat` accepted in an assertion (24 h)
-- @field jwt_leeway clock skew allowed on `iat` (seconds in the future)
-- @field action_delay how long a queued action waits (status 1) before it is processed
-- @field callback_attempts how many times a callback is tried before the sandbox gives up
--   (whole, >= 1)
-- @field callback_backoff the wait before the second attempt; it doubles for each later one
-- @field callback_timeout how long one callback attempt may take in all (connect, send, the answer)
local defaults = {
  token_ttl = 86400,
  jwt_token_ttl = 3600,
  refresh_ttl = 14 * 86400,
  default_page_size = 20,
  max_page_size = 50,
  jwt_max_lifetime = 86400,
  jwt_leeway = 60,
  action_delay = 0.2,
  callback_attempts = 5,
  callback_backoff = 0.5,
  callback_timeout = 5,
}
M.defaults = defaults

-- settings that count things: a page of 0 (or 2.5) records breaks the arithmetic, and so would
-- 0 or 2.5 callback attempts
local whole_numbers = { default_page_size = true, max_page_size = true, callback_attempts = true }

--- Static settings given at start (filled by `init`): `dir`, `base_url`, `tls`, `ca_file`,
-- `lua_dir`, `port`.
M.static = {}

--- Current run-time settings (see `defaults`).
M.settings = {}

local function apply_defaults()
  for k in pairs(M.settings) do M.settings[k] = nil end
  for k, v in pairs(defaults) do M.settings[k] = v end
end
apply_defaults()

--- Record the start-up settings; `token_ttl` among them overrides both token lifetimes.
-- @tparam table conf the table bin/assesskit-sandbox wrote into nginx.conf
function M.init(conf)
  if type(conf) ~= "table" then error("sandbox config: table expected", 2) end
  for k, v in pairs(conf) do M.static[k] = v end
  if conf.token_ttl then
    defaults.token_ttl = conf.token_ttl
    defaults.jwt_token_ttl = conf.token_ttl
  end
  if conf.refresh_ttl then defaults.refresh_ttl = conf.refresh_ttl end
  apply_defaults()
end

--- Put every run-time setting back to its start-up value.
function M.reset()
  apply_defaults()
end

--- Change run-time settings.
-- @tparam table changes name -> number (finite, >= 0; the page sizes and `callback_attempts`
--   whole and >= 1);
--   `token_ttl` also sets `jwt_token_ttl` unless that is given too
-- @treturn[1] table the settings now in force
-- @treturn[2] nil
-- @treturn[2] string what was wrong
function M.set(changes)
  if type(changes) ~= "table" then return nil, "expected a JSON object" end
  local new = {}
  for k, v in pairs(changes) do
    if defaults[k] == nil then return nil, "unknown setting: " .. tostring(k) end
    local n = tonumber(v)
    if whole_numbers[k] then
      if not n or n < 1 or n ~= math_floor(n) or n == math_huge then
        return nil, "setting " .. k .. " must be a whole number >= 1"
      end
    elseif not n or n < 0 or n ~= n or n == math_huge then
      return nil, "setting " .. k .. " must be a finite number >= 0"
    end
    new[k] = n
  end
  if new.token_ttl and not new.jwt_token_ttl then new.jwt_token_ttl = new.token_ttl end
  for k, v in pairs(new) do M.settings[k] = v end
  return M.settings
end

return M
