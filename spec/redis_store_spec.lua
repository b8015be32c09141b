-- assesskit.redis, the store of a fleet: options, sealed tokens, the fleet-wide renewal lock,
-- work on local state while Redis is away, and Talview clients sharing one token through it.
-- Every Redis here is a redis-server of the spec's own (support.redis).

local redis_store = require("assesskit.redis")
local redis = require("support.redis")
local sandbox = require("support.sandbox")
local sys = require("support.sys")
local socket = require("socket")

local IDENTITY = "talview|password|client-1|ada|https://example.test/oauth2/token"

describe("assesskit.redis store #luajit", function()
  local srv

  setup(function() srv = redis.start { user = "app", password = "r3dis-Passw0rd" } end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:cli("FLUSHALL") end)

  describe("new", function()
    it("raises on a malformed url or an unknown option, naming the nearest one", function()
      assert.has_error(function() redis_store.new { url = "http://127.0.0.1" } end,
        "assesskit.redis.new: bad url (unsupported URL scheme 'http' (redis expected))")
      assert.has_error(function() redis_store.new { url = "redis://127.0.0.1/x" } end,
        "assesskit.redis.new: the url's path must be /<database number>")
      assert.has_error(function() redis_store.new { url = srv:url(), timout = 1 } end,
        "assesskit.redis.new: unknown option 'timout' (did you mean 'timeout'?)")
      assert.has_error(function() redis_store.new { url = srv:url(), timeout = -1 } end)
      assert.has_error(function() redis_store.new() end)
    end)

    it("keeps the password out of tostring, the store's fields and every event", function()
      local events = {}
      local store = redis_store.new { url = "redis://app:wrong-Passw0rd@127.0.0.1:" .. srv.port,
        on_event = function(e) events[#events + 1] = e end }
      assert.is_nil(tostring(store):find("Passw0rd", 1, true))
      for k, v in pairs(store) do
        assert.is_nil(tostring(k):find("Passw0rd", 1, true))
        assert.is_nil(tostring(v):find("Passw0rd", 1, true))
      end
      -- a wrong password: Redis refuses, the store works on local state and says so once
      assert.is_true(store:set(IDENTITY, { token = "t", expires_at = os.time() + 60 }, "s"))
      assert.equal(1, #events)
      assert.equal("redis_down", events[1].event)
      assert.matches("refused the credentials", events[1].message)
      assert.is_nil(events[1].message:find("Passw0rd", 1, true))
    end)

    it("selects the database of the url", function()
      local store = redis_store.new { url = srv:url(3) }
      assert(store:set(IDENTITY, { token = "t", expires_at = os.time() + 60 }, "s"))
      assert.equal("1", srv:cli("-n", "3", "DBSIZE"):match("%d+"))
      assert.equal("0", srv:cli("DBSIZE"):match("%d+"))
    end)
  end)

  describe("tokens", function()
    it("seals them: no plaintext token or identity in any Redis key or value", function()
      local store = redis_store.new { url = srv:url() }
      local entry = { token = "plain-token-7f3a", expires_at = os.time() + 3600, lifetime = 3600,
        refresh_token = "plain-refresh-9c1d" }
      assert.is_true(store:set(IDENTITY, entry, "client-secret\0password"))
      local got = store:get(IDENTITY, "client-secret\0password")
      assert.equal("plain-token-7f3a", got.token)
      assert.equal("plain-refresh-9c1d", got.refresh_token)
      assert.equal(entry.expires_at, got.expires_at)
      local dump = srv:dump()
      assert.truthy(dump:find("assesskit:token:", 1, true)) -- the dump holds the keys, uncompressed
      for _, s in ipairs({ "plain-token", "plain-refresh", "ada", "client-1", "password" }) do
        assert.is_nil(dump:find(s, 1, true), s)
      end
    end)

    it("opens them only with the credential's secret", function()
      local a = redis_store.new { url = srv:url() }
      local b = redis_store.new { url = srv:url() }
      assert(a:set(IDENTITY, { token = "tok", expires_at = os.time() + 60 }, "secret-1"))
      assert.equal("tok", b:get(IDENTITY, "secret-1").token)
      assert.is_nil(b:get(IDENTITY, "secret-2"))
      -- without a secret nothing is shared
      assert(a:set("other", { token = "local", expires_at = os.time() + 60 }))
      assert.equal("local", a:get("other").token)
      assert.is_nil(b:get("other"))
      assert.equal("0", srv:cli("EXISTS", "assesskit:token:other"):match("%d"))
    end)

    it("lets them expire from Redis a minute after the token", function()
      local store = redis_store.new { url = srv:url(), prefix = "p:" }
      assert(store:set(IDENTITY, { token = "tok", expires_at = os.time() + 100 }, "s"))
      local key = srv:cli("KEYS", "p:token:*"):match("[^\n]+")
      local ttl = tonumber(srv:cli("TTL", key):match("%-?%d+"))
      assert.is_true(ttl > 150 and ttl <= 161, tostring(ttl))
    end)

    it("admits one holder of the renewal lock at a time across stores", function()
      local a = redis_store.new { url = srv:url() }
      local b = redis_store.new { url = srv:url() }
      local release = assert(a:lock(IDENTITY, 1))
      local none, err = b:lock(IDENTITY, 0.1)
      assert.is_nil(none)
      assert.equal("timeout", err)
      release()
      release() -- idempotent
      local again = assert(b:lock(IDENTITY, 0.1))
      -- a's late release does not free b's lock
      release()
      assert.is_nil((a:lock(IDENTITY, 0.05)))
      again()
    end)

    it("stops a waiter as soon as the holder has stored a new token, even with its lock kept", function()
      local a = redis_store.new { url = srv:url() }
      assert(a:lock(IDENTITY, 1)) -- holds the lock for the whole lease: its release was lost
      local stored = false
      local b = redis_store.new { url = srv:url(), sleep = function(d)
        if not stored then -- meanwhile the holder renews the token
          stored = assert(a:set(IDENTITY, { token = "renewed", expires_at = os.time() + 60 }, "s"))
        end
        socket.sleep(d)
      end }
      local t0 = socket.gettime()
      local release = assert(b:lock(IDENTITY, 5))
      assert.is_true(socket.gettime() - t0 < 1)
      release()
      assert.equal("renewed", b:get(IDENTITY, "s").token)
      -- the holder's lock is still there: b held nothing
      assert.equal("1", srv:cli("EXISTS", (srv:cli("KEYS", "assesskit:lock:*"):match("[^\n]+"))):match("%d"))
    end)

    it("lets a dead holder's lock go after lock_lease", function()
      local a = redis_store.new { url = srv:url(), lock_lease = 0.3 }
      local b = redis_store.new { url = srv:url() }
      assert(a:lock(IDENTITY, 1)) -- never released: its holder "died"
      local t0 = socket.gettime()
      assert(b:lock(IDENTITY, 3))
      assert.is_true(socket.gettime() - t0 < 2)
    end)
  end)

  describe("with Redis away", function()
    it("works on local state, says so once, and goes back to Redis when it returns", function()
      local own = redis.start()
      local events = {}
      local store = redis_store.new { url = own:url(), retry_interval = 0.2,
        on_event = function(e) events[#events + 1] = e.event end }
      assert(store:set(IDENTITY, { token = "shared", expires_at = os.time() + 60 }, "s"))
      local epoch = store:epoch()
      own:pause()
      assert.is_nil(store:get(IDENTITY, "s")) -- the local state has no token yet
      assert(store:set(IDENTITY, { token = "mine", expires_at = os.time() + 60 }, "s"))
      assert.equal("mine", store:get(IDENTITY, "s").token)
      local release = assert(store:lock(IDENTITY, 1)) -- a local lock
      assert.is_nil((store:lock(IDENTITY, 0.05)))
      release()
      assert.is_true(store:is_down())
      assert.same({ "redis_down" }, events)
      assert.are_not.equal(epoch, store:epoch())
      own:resume()
      sys.sleep(0.3)
      assert.is_nil(store:get(IDENTITY, "s")) -- Redis restarted empty
      assert.same({ "redis_down", "redis_up" }, events)
      assert.is_false(store:is_down())
      assert(store:set(IDENTITY, { token = "shared-again", expires_at = os.time() + 60 }, "s"))
      assert.equal("shared-again", redis_store.new { url = own:url() }:get(IDENTITY, "s").token)
      own:stop()
    end)

    it("never waits past its timeout for a Redis that does not answer", function()
      local silent = assert(socket.bind("127.0.0.1", 0))
      local _, port = silent:getsockname()
      local events = {}
      local store = redis_store.new { url = "redis://127.0.0.1:" .. port, timeout = 0.2,
        retry_interval = 60, on_event = function(e) events[#events + 1] = e end }
      local t0 = socket.gettime()
      assert.is_nil(store:get(IDENTITY, "s"))
      assert.is_true(store:set(IDENTITY, { token = "t", expires_at = os.time() + 60 }, "s"))
      assert.equal("t", store:get(IDENTITY, "s").token)
      assert.is_true(socket.gettime() - t0 < 1.5)
      assert.equal(1, #events)
      assert.matches("timed out", events[1].message)
      silent:close()
    end)
  end)

  describe("shared by Talview clients", function()
    local sb = sandbox.fixture { reset = true, clear = true }

    local function token_requests()
      return #sb:requests { path = "/oauth2/token" }
    end

    it("makes one token request for clients on separate stores (as separate processes)", function()
      local clients = {}
      for i = 1, 4 do
        clients[i] = sb:talview { token_store = redis_store.new { url = srv:url() } }
      end
      for round = 1, 3 do
        for i = 1, 4 do assert(clients[i].user.me:get(), "round " .. round) end
      end
      assert.equal(1, token_requests())
      local tokens = {}
      for _, e in ipairs(sb:requests { path = "/user/me" }) do tokens[e.auth.token] = true end
      assert.equal(1, #(function() local t = {} for k in pairs(tokens) do t[#t + 1] = k end return t end)())
    end)

    it("renews once for the fleet after a 401", function()
      local a = sb:talview { token_store = redis_store.new { url = srv:url() } }
      local b = sb:talview { token_store = redis_store.new { url = srv:url() } }
      assert(a.user.me:get())
      assert(b.user.me:get())
      assert.equal(1, token_requests())
      sb:expire_tokens()
      assert(a.user.me:get())
      assert(b.user.me:get())
      assert.equal(2, token_requests())
    end)

    it("keeps working, and says so once, with a Redis that refuses it: no password, no script rights",
      function()
      srv:cli("ACL", "SETUSER", "noscripts", "on", ">n0scripts-Passw0rd", "~*", "&*", "+@all", "-@scripting")
      local urls = {
        ["no password"] = "redis://127.0.0.1:" .. srv.port,
        ["no script rights"] = "redis://noscripts:n0scripts-Passw0rd@127.0.0.1:" .. srv.port,
      }
      for what, u in pairs(urls) do
        sb:reset()
        local events = {}
        local store = redis_store.new { url = u, retry_interval = 0.05,
          on_event = function(e) events[#events + 1] = e end }
        local tv = sb:talview { store = store, max_rate = 1000 }
        for n = 1, 10 do
          local me, err = tv.user.me:get()
          assert(me, what .. ", call " .. n .. ": " .. tostring(err))
          socket.sleep(0.02) -- past retry_interval now and then: Redis is asked again
        end
        assert.equal(1, #events, what)
        assert.equal("redis_down", events[1].event, what)
        assert.is_nil(events[1].message:find("Passw0rd", 1, true))
        assert.is_true(store:is_down(), what)
        local j, err = store:journal("job")
        assert.is_nil(j, what)
        assert.equal("io", err.kind)
      end
    end)

    it("keeps working, and says so once, with a Redis that refuses writes: full, or a replica",
      function()
      local own = redis.start()
      local setups = {
        ["maxmemory reached"] = function() own:cli("CONFIG", "SET", "maxmemory", "1") end,
        ["a read-only replica"] = function()
          own:cli("CONFIG", "SET", "maxmemory", "0")
          own:cli("REPLICAOF", "127.0.0.1", sys.free_port()) -- (a primary that is not there)
        end,
      }
      local events, store, tv
      for _, what in ipairs({ "maxmemory reached", "a read-only replica" }) do
        setups[what]()
        sb:reset()
        events = {}
        store = redis_store.new { url = own:url(), retry_interval = 0.05,
          on_event = function(e) events[#events + 1] = e end }
        tv = sb:talview { store = store }
        for n = 1, 10 do
          local me, err = tv.user.me:get()
          assert(me, what .. ", call " .. n .. ": " .. tostring(err))
          socket.sleep(0.02) -- past retry_interval now and then: Redis is asked again
        end
        -- once: reads that Redis still answers do not make it look back
        assert.equal(1, #events, what)
        assert.equal("redis_down", events[1].event, what)
        assert.is_true(store:is_down(), what)
      end
      -- writable again (promoted): back to Redis at the next try
      own:cli("REPLICAOF", "NO", "ONE")
      socket.sleep(0.06)
      assert(tv.user.me:get())
      assert.equal("redis_up", events[2].event)
      assert.is_false(store:is_down())
      own:stop()
    end)

    it("goes back to one token when Redis returns after each process renewed on its own", function()
      local own = redis.start()
      local a = sb:talview { token_store = redis_store.new { url = own:url(), retry_interval = 0 } }
      local b = sb:talview { token_store = redis_store.new { url = own:url(), retry_interval = 0 } }
      assert(a.user.me:get())
      assert(b.user.me:get())
      own:pause()
      sb:expire_tokens()
      assert(a.user.me:get()) -- each renews on local state
      assert(b.user.me:get())
      assert.is_true(token_requests() >= 3) -- (b's refresh token was a's already: it may start over)
      local during = {}
      for _, e in ipairs(sb:requests { path = "/user/me", method = "GET" }) do
        if e.status == 200 then during[e.auth.token] = true end
      end
      own:resume()
      sb:clear_requests()
      for _ = 1, 3 do
        assert(a.user.me:get())
        assert(b.user.me:get())
      end
      assert.equal(0, token_requests()) -- one of the two tokens is shared, no new one
      local log = sb:requests { path = "/user/me" }
      assert.equal(6, #log)
      for _, e in ipairs(log) do
        assert.equal(log[1].auth.token, e.auth.token)
        assert.is_true(during[e.auth.token]) -- one of the tokens got while Redis was away
      end
      own:stop()
    end)

    it("tells each client's on_event hook once when Redis goes, and when it is back", function()
      local own = redis.start()
      local store = redis_store.new { url = own:url(), retry_interval = 0.05 }
      local heard = { {}, {} }
      local a = sb:talview { store = store,
        on_event = function(e) heard[1][#heard[1] + 1] = e.event end }
      local b = sb:talview { store = store,
        on_event = function(e) heard[2][#heard[2] + 1] = e.event; error("a hook that fails") end }
      assert(a.user.me:get())
      own:pause()
      for _ = 1, 3 do
        assert(a.user.me:get())
        assert(b.user.me:get())
        socket.sleep(0.06)
      end
      assert.same({ "redis_down" }, heard[1])
      assert.same({ "redis_down" }, heard[2])
      own:resume()
      socket.sleep(0.06)
      assert(a.user.me:get())
      assert.same({ "redis_down", "redis_up" }, heard[1])
      assert.same({ "redis_down", "redis_up" }, heard[2])
      assert.has_error(function() sb:talview { store = store, on_event = "log" } end,
        "assesskit.talview.new: on_event must be a function")
      own:stop()
    end)

    it("keeps a client's on_event hook as long as the client lives (a collection between)", function()
      local own = redis.start()
      local store = redis_store.new { url = own:url(), retry_interval = 0.05 }
      local heard = {}
      -- hooks written inline, as users write them: nothing but the client can keep them
      local tv = sb:talview { store = store, on_event = function(e) heard[#heard + 1] = "tv " .. e.event end }
      local im = sb:interviewmocha { store = store, on_event = function(e) heard[#heard + 1] = "im " .. e.event end }
      collectgarbage()
      collectgarbage()
      assert(tv.user.me:get())
      own:pause()
      for _ = 1, 3 do
        assert(tv.user.me:get())
        assert(im.tests:links(114110))
        socket.sleep(0.06)
      end
      own:stop()
      table.sort(heard)
      assert.same({ "im redis_down", "tv redis_down" }, heard)
    end)
  end)

  describe("shared by InterviewMocha clients", function()
    local sb = sandbox.fixture { reset = true, clear = true }

    it("pauses the clients of one key on separate stores during a 429 served to one", function()
      local a = sb:interviewmocha { store = redis_store.new { url = srv:url() } }
      local b = sb:interviewmocha { store = redis_store.new { url = srv:url() } }
      assert(b.tests:links(114110)) -- b has looked at the shared budget before the pause
      sb:fault { kind = "rate_limit", retry_after = 1, path = "/v2/org/tests", times = 1 }
      local _, err = a.tests:links(114110)
      assert.equal(429, err.status)
      socket.sleep(0.05) -- the others look at the shared budget at most every 20 ms
      assert(b.tests:links(114110))
      local log = sb:requests { path_prefix = "/v2/org/tests" }
      local t429, t_after
      for _, e in ipairs(log) do
        if e.status == 429 then t429 = e.time elseif t429 then t_after = e.time end
      end
      assert.truthy(t429 and t_after)
      -- b's call waited the pause out: it reached the API only once the second had passed
      assert.is_true(t_after - t429 >= 0.9, tostring(t_after - t429))
      -- key names hold a hash of the API key, never the key
      local keys = srv:cli("KEYS", "*")
      assert.is_truthy(keys:find("budget", 1, true))
      assert.is_nil(keys:find(sb.credentials.interviewmocha.api_key, 1, true))
    end)

    it("keeps its own budget without a store, and refuses a store that is not one", function()
      local a = sb:interviewmocha()
      local b = sb:interviewmocha()
      sb:fault { kind = "rate_limit", retry_after = 1, path = "/v2/org/tests", times = 1 }
      assert.equal(429, select(2, a.tests:links(114110)).status)
      local t0 = socket.gettime()
      assert(b.tests:links(114110))
      assert.is_true(socket.gettime() - t0 < 0.9)
      assert.has_error(function() sb:interviewmocha { store = "redis://127.0.0.1" } end,
        "assesskit.interviewmocha.new: store must be a store object")
      assert.has_error(function() sb:interviewmocha { stor = {} } end,
        "assesskit.interviewmocha.new: unknown option 'stor' (did you mean 'store'?)")
    end)

    it("refuses a store without a budget, or a store's module, instead of ignoring it", function()
      -- ignored, the key's budget would not be shared: every process its own, 429s for all
      local kinds = "assesskit.store.new(), assesskit.ngx.token_cache.new{...}, assesskit.redis.new{...}"
      local token_only = setmetatable({}, { __index = {
        get = function() end, set = function() return true end, lock = function() return function() end end } })
      assert.has_error(function() sb:interviewmocha { store = token_only } end,
        "assesskit.interviewmocha.new: store must have a budget method (a store object: " .. kinds .. ")")
      for _, mod in ipairs({ "assesskit.redis", "assesskit.store", "assesskit.ngx.token_cache" }) do
        assert.has_error(function() sb:interviewmocha { store = require(mod) } end,
          "assesskit.interviewmocha.new: store must be a store object, not a module (make one with its new: "
          .. kinds .. ")")
      end
      assert.has_error(function() sb:talview { store = require("assesskit.ngx.token_cache") } end,
        "assesskit.talview.new: store must be a store object, not a module (make one with its new: "
        .. kinds .. ")")
      -- a store of the right kind, and a Talview token store of one's own (no budget), still do
      assert(sb:interviewmocha { store = require("assesskit.store").new() }.tests:links(114110))
      assert(sb:talview { store = token_only })
    end)
  end)
end)
