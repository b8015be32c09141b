-- assesskit.redis against a Redis that answers what a real one never would (a fake server on
-- loopback, spec/support/fake_redis.lua): replies of the wrong type or shape to every command
-- and script. Nothing may raise; every call answers in its documented shape.

local redis_store = require("assesskit.redis")
local fake_redis = require("support.fake_redis")

-- Valid RESP, wrong for what the store asked.
local REPLIES = {
  ":1\r\n", ":-7\r\n", "*0\r\n", "*1\r\n:1\r\n", "$-1\r\n", "*-1\r\n", "+OK\r\n", "$3\r\nabc\r\n",
  "*5\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n", "*2\r\n*0\r\n*0\r\n",
  "*2\r\n$4\r\nheld\r\n:5\r\n", "*2\r\n$4\r\ndone\r\n$-1\r\n", "*2\r\n$4\r\ndone\r\n$3\r\nabc\r\n",
  "*1\r\n$4\r\nheld\r\n", "*2\r\n$9\r\nother_key\r\n*0\r\n", "*3\r\n:1\r\n:2\r\n$1\r\nx\r\n",
  "*5\r\n$1\r\na\r\n:-1\r\n:0\r\n:1\r\n:0\r\n", "*5\r\n:0\r\n:3\r\n:0\r\n:1\r\n:0\r\n",
  "*3\r\n:1\r\n$1\r\nx\r\n:0\r\n", "*2\r\n$1\r\nx\r\n:0\r\n", "-ERR boom\r\n",
  "*2\r\n$2\r\nok\r\n$1\r\nx\r\n",
}

describe("assesskit.redis against a Redis that answers nonsense", function()
  local fake

  setup(function() fake = fake_redis.start {} end)
  teardown(function() if fake then fake:stop() end end)

  local function clock() return require("socket").gettime() end

  -- Every entry point of the store, its budget and its journal; returns what went wrong.
  local function exercise()
    local problems = {}
    local function check(what, ok, fine)
      if not ok then
        problems[#problems + 1] = what .. " raised: " .. tostring(fine)
      elseif not fine then
        problems[#problems + 1] = what .. " answered out of shape"
      end
    end
    local store = redis_store.new { url = fake:url(), timeout = 0.5, retry_interval = 0 }
    local secret = "s3cret"
    check("get", pcall(function()
      local e = store:get("cred", secret)
      return e == nil or (type(e) == "table" and type(e.token) == "string")
    end))
    check("set", pcall(function()
      local ok, err = store:set("cred", { token = "t", expires_at = clock() + 60, lifetime = 60 }, secret)
      return ok == true or (ok == nil and err ~= nil)
    end))
    check("lock", pcall(function()
      local release, err = store:lock("cred", 0.05)
      if release then release() release() end
      return type(release) == "function" or (release == nil and err ~= nil)
    end))
    check("delete", pcall(function() store:delete("cred") return true end))
    check("epoch", pcall(function() return type(store:epoch()) == "number" end))
    local budget = store:budget("cred", { max_rate = 100 })
    for round = 1, 2 do
      check("budget " .. round, pcall(function()
        local permit, wait = budget:acquire(clock)
        if permit then
          budget:release(permit, round == 1 and "pushback" or "ok")
        elseif type(wait) ~= "number" then
          return false
        end
        local till = budget:pause(0.01, clock)
        if type(till) ~= "number" then return false end
        budget:refresh(clock)
        local st = budget:state()
        return type(st) == "table" and type(st.in_flight) == "number"
      end))
    end
    local j
    check("journal", pcall(function()
      local err
      j, err = store:journal("job", { lease = 1 })
      return j ~= nil or (type(err) == "table" and err.kind ~= nil)
    end))
    if j then
      local function answer(ok, err) return ok == true or (ok == nil and type(err) == "table") end
      check("claim", pcall(function()
        local state, rec = j:claim("a", 1)
        if state == nil then return type(rec) == "table" end
        return type(state) == "string"
      end))
      check("finish", pcall(function() return answer(j:finish("a", 1, { id = 1 })) end))
      check("finish err", pcall(function() return answer(j:finish("a", 1, nil, "boom")) end))
      check("resolve", pcall(function() return answer(j:resolve("a", 1, nil)) end))
      check("resolve value", pcall(function() return answer(j:resolve("a", 1, { id = 2 })) end))
      check("sync", pcall(function() return answer(j:sync()) end))
      check("stats", pcall(function()
        local s, err = j:stats()
        return (type(s) == "table" and type(s.items) == "number") or (s == nil and type(err) == "table")
      end))
      check("close", pcall(function() return j:close() == true end))
    end
    store:close()
    return problems
  end

  it("keeps the password out of what it returns when a server echoes it", function()
    local pw = "Ech0ed-Passw0rd"
    local url = "redis://app:" .. pw .. "@127.0.0.1:" .. fake.port
    local seen = {}
    local function note(where, ...)
      for n = 1, select("#", ...) do
        local v = select(n, ...)
        if type(v) == "table" then v = v.message or v.err or "" end
        if tostring(v):find(pw, 1, true) then seen[#seen + 1] = where end
      end
    end
    for _, replies in ipairs({
      { AUTH = "+OK\r\n", SCRIPT = "-ERR no " .. pw .. "\r\n", default = "-ERR bad " .. pw .. "\r\n" },
      { AUTH = "+OK\r\n", default = "-ERR bad " .. pw .. "\r\n" },
      { AUTH = "-WRONGPASS " .. pw .. "\r\n" },
    }) do
      fake:set(replies)
      local store = redis_store.new { url = url, retry_interval = 0,
        on_event = function(e) note("event", e.message) end }
      note("get", store:get("cred", "s"))
      note("set", store:set("cred", { token = "t", expires_at = clock() + 60 }, "s"))
      note("lock", store:lock("cred", 0.05))
      note("acquire", store:budget("cred", { max_rate = 5 }):acquire(clock))
      note("journal", store:journal("job"))
      note("tostring", tostring(store))
      store:close()
    end
    assert.same({}, seen)
    -- the clients given the store mask its password too (the store's secrets())
    local tv = require("assesskit.talview").new { base_url = "https://api.example.test",
      auth = { grant = "password", client_id = "c", client_secret = "cs", username = "u",
        password = "p" }, store = redis_store.new { url = url } }
    assert.is_nil(tv:redact("Redis said " .. pw):find(pw, 1, true))
  end)

  it("never raises and answers in shape whatever a reply holds", function()
    local all = {}
    for _, reply in ipairs(REPLIES) do
      fake:set { default = reply }
      local shown = reply:gsub("\r\n", " ")
      for _, p in ipairs(exercise()) do all[#all + 1] = shown .. ": " .. p end
    end
    assert.same({}, all)
  end)
end)
