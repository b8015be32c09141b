-- assesskit.ngx.token_cache in a real nginx with four workers: entries are shared by every
-- worker, and the renewal lock admits one holder at a time across workers and coroutines.

local nginx = require("support.nginx")
local http = require("support.http")
local cjson = require("cjson")
local socket = require("socket")

describe("assesskit.ngx.token_cache #ngx", function()
  local srv, port

  local http_conf = [[
    lua_shared_dict tokens 1m;
    lua_shared_dict probe 1m;
  ]]
  local servers = [[
  server {
    listen 127.0.0.1:@P@ reuseport;
    location = /set {
      content_by_lua_block {
        local cache = require("assesskit.ngx.token_cache").new({ dict = "tokens" })
        local entry = {
          token = ngx.var.arg_token, expires_at = ngx.now() + tonumber(ngx.var.arg_ttl),
          lifetime = tonumber(ngx.var.arg_ttl), refresh_token = ngx.var.arg_refresh,
        }
        assert(cache:set(ngx.var.arg_key, entry))
        ngx.say(ngx.worker.pid())
      }
    }
    location = /set_result {
      content_by_lua_block {
        local cache = require("assesskit.ngx.token_cache").new({ dict = "tokens" })
        local ok, err = cache:set(ngx.var.arg_key, { token = ngx.var.arg_token,
          expires_at = ngx.now() + tonumber(ngx.var.arg_ttl) })
        ngx.say(require("cjson").encode({ ok = ok or false, err = err or false }))
      }
    }
    location = /get {
      content_by_lua_block {
        local cache = require("assesskit.ngx.token_cache").new({ dict = "tokens" })
        local e = cache:get(ngx.var.arg_key)
        ngx.say(require("cjson").encode({ entry = e or false, worker = ngx.worker.pid() }))
      }
    }
    location = /delete {
      content_by_lua_block {
        require("assesskit.ngx.token_cache").new({ dict = "tokens" }):delete(ngx.var.arg_key)
        ngx.say("ok")
      }
    }
    # Takes the lock, notes how many holders are inside at once, holds it, releases it.
    location = /lock {
      content_by_lua_block {
        local probe = ngx.shared.probe
        local cache = require("assesskit.ngx.token_cache").new({ dict = "tokens",
          lock_ttl = tonumber(ngx.var.arg_ttl) or 30 })
        local release, err = cache:lock(ngx.var.arg_key, tonumber(ngx.var.arg_timeout) or 10)
        if not release then
          ngx.say(require("cjson").encode({ acquired = false, err = err }))
          return
        end
        local inside = probe:incr("inside", 1, 0)
        local max = probe:get("max") or 0
        if inside > max then probe:set("max", inside) end
        ngx.sleep(tonumber(ngx.var.arg_hold) or 0.02)
        probe:incr("inside", -1)
        if ngx.var.arg_leak ~= "1" then release() end
        ngx.say(require("cjson").encode({ acquired = true, worker = ngx.worker.pid() }))
      }
    }
    location = /probe {
      content_by_lua_block {
        local probe = ngx.shared.probe
        ngx.say(require("cjson").encode({ max = probe:get("max") or 0,
          locked = ngx.shared.tokens:get("assesskit:token:" .. (ngx.var.arg_key or "") .. ":lock") ~= nil }))
      }
    }
    location = /reset { content_by_lua_block { ngx.shared.probe:flush_all(); ngx.say("ok") } }
    location = /misuse {
      content_by_lua_block {
        local ok, err = pcall(require("assesskit.ngx.token_cache").new, { dict = "no_such_dict" })
        ngx.say(tostring(err))
      }
    }
    location = /misuse_option {
      content_by_lua_block {
        local ok, err = pcall(require("assesskit.ngx.token_cache").new, { dict = "tokens", lock_tll = 5 })
        ngx.say(tostring(ok), " ", tostring(err))
      }
    }
    location = /tostring {
      content_by_lua_block {
        local cache = require("assesskit.ngx.token_cache").new({ dict = "tokens" })
        cache:set("k", { token = "SECRET-TOKEN", expires_at = ngx.now() + 60 })
        ngx.say(tostring(cache))
      }
    }
  }
  ]]

  lazy_setup(function()
    srv = nginx.start({ ports = { "P" }, http = http_conf, servers = servers, workers = 4 })
    port = srv.ports.P
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  local function get(path)
    local status, body = srv:http("GET", path, nil, port)
    assert.are.equal(200, status, body)
    return body
  end

  -- Sends every request at once on its own connection, then reads every answer.
  local function concurrently(paths)
    local socks = {}
    for i, path in ipairs(paths) do socks[i] = http.send(port, path, { host = "x" }) end
    local out = {}
    for i, c in ipairs(socks) do
      local status, _, body, err = http.receive(c)
      assert.are.equal(200, status, err)
      out[i] = cjson.decode(body)
    end
    return out
  end

  before_each(function()
    get("/reset")
  end)

  it("shares an entry between requests, whichever worker serves them", function()
    get("/set?key=a&token=tok-a&ttl=60&refresh=ref-a")
    for _ = 1, 8 do
      local r = cjson.decode(get("/get?key=a"))
      assert.are.equal("tok-a", r.entry.token)
      assert.are.equal("ref-a", r.entry.refresh_token)
      assert.are.equal(60, r.entry.lifetime)
    end
  end)

  it("forgets an entry on delete", function()
    get("/set?key=b&token=tok-b&ttl=60")
    get("/delete?key=b")
    assert.is_false(cjson.decode(get("/get?key=b")).entry)
  end)

  it("reports an entry it cannot store and keeps the one it had", function()
    get("/set?key=e&token=tok-e&ttl=60")
    local r = cjson.decode(get("/set_result?key=e&token=tok-inf&ttl=1e999"))
    assert.is_false(r.ok)
    assert.matches("cannot store the token", r.err, 1, true)
    assert.is_nil(r.err:find("tok-inf", 1, true))
    assert.are.equal("tok-e", cjson.decode(get("/get?key=e")).entry.token)
  end)

  it("drops a token without refresh token when it expires", function()
    get("/set?key=c&token=tok-c&ttl=1")
    assert.are.equal("tok-c", cjson.decode(get("/get?key=c")).entry.token)
    socket.sleep(2.2)
    assert.is_false(cjson.decode(get("/get?key=c")).entry)
  end)

  it("admits one lock holder at a time across workers", function()
    local paths = {}
    for i = 1, 24 do paths[i] = "/lock?key=renew&hold=0.02&n=" .. i end
    local results = concurrently(paths)
    for _, r in ipairs(results) do
      assert.is_true(r.acquired)
    end
    assert.are.equal(1, cjson.decode(get("/probe")).max)
  end)

  it("gives up with timeout while another holder keeps the lock", function()
    local holder = http.send(port, "/lock?key=busy&hold=2", { host = "x", timeout = 10 })
    local locked = false
    for _ = 1, 200 do
      if cjson.decode(get("/probe?key=busy")).locked then locked = true break end
      socket.sleep(0.01)
    end
    assert.is_true(locked)
    local r = cjson.decode(get("/lock?key=busy&timeout=0.2"))
    assert.are.same({ acquired = false, err = "timeout" }, r)
    http.receive(holder)
  end)

  it("frees a lock whose holder never released it after lock_ttl", function()
    local first = cjson.decode(get("/lock?key=leaky&ttl=0.5&leak=1"))
    assert.is_true(first.acquired)
    local second = cjson.decode(get("/lock?key=leaky&timeout=5"))
    assert.is_true(second.acquired)
  end)

  it("names the missing lua_shared_dict", function()
    assert.matches("lua_shared_dict no_such_dict", get("/misuse"), 1, true)
  end)

  it("raises on an unknown option, naming the nearest valid one", function()
    assert.matches("false assesskit.ngx.token_cache.new: unknown option 'lock_tll' (did you mean 'lock_ttl'?)",
      get("/misuse_option"), 1, true)
  end)

  it("keeps tokens out of tostring", function()
    local s = get("/tostring")
    assert.matches("assesskit.ngx.token_cache", s, 1, true)
    assert.is_nil(s:find("SECRET", 1, true))
  end)

  it("refuses to work outside nginx", function()
    assert.has_error(function()
      require("assesskit.ngx.token_cache").new({ dict = "tokens" })
    end)
  end)
end)
