-- The rate budget of assesskit.ngx.token_cache (the lua_shared_dict store) in a real nginx
-- with two workers: a pause, the in-flight limit and max_rate hold every worker together.

local nginx = require("support.nginx")
local http = require("support.http")
local cjson = require("cjson")

describe("assesskit.ngx.token_cache budget #ngx", function()
  local srv

  setup(function()
    srv = nginx.start {
      workers = 2, ports = { "P" },
      http = "lua_shared_dict store 1m;",
      servers = [[
  server {
    listen 127.0.0.1:@P@ reuseport;
    location = /budget {
      content_by_lua_block {
        local cjson = require("cjson")
        local store = require("assesskit.ngx.token_cache").new { dict = "store" }
        local rate = tonumber(ngx.var.arg_rate)
        local b = store:budget("cred", rate and { max_rate = rate } or nil)
        local clock = function() ngx.update_time() return ngx.now() end
        local op, out = ngx.var.arg_op, { worker = ngx.worker.pid() }
        if op == "pause" then
          out.till = b:pause(tonumber(ngx.var.arg_s), clock) - clock()
        elseif op == "acquire" then
          local p, wait = b:acquire(clock)
          out.ok, out.wait = p ~= nil, wait
          if p then b:release(p, "ok") end
        elseif op == "cut" then -- hold n permits, one answered 429
          local held = {}
          for i = 1, tonumber(ngx.var.arg_n) do held[i] = assert(b:acquire(clock)) end
          b:release(table.remove(held), "pushback")
          out.limit = b:state().limit
          for _, p in ipairs(held) do b:release(p, "failed") end
        elseif op == "state" then
          out.state = b:state()
        elseif op == "run" then -- take permits for `ms` milliseconds, as fast as allowed
          local n, stop = 0, clock() + tonumber(ngx.var.arg_ms) / 1000
          while clock() < stop do
            local p, wait = b:acquire(clock)
            if p then n = n + 1 b:release(p, "ok") else ngx.sleep(math.min(wait, stop - clock() + 0.001)) end
          end
          out.n = n
        end
        ngx.say(cjson.encode(out))
      }
    }
  }]],
    }
  end)
  teardown(function() if srv then srv:stop() end end)

  local function call(query)
    local status, _, body = http.request("GET", ("http://127.0.0.1:%d/budget?%s"):format(srv.ports.P, query))
    assert.equal(200, status, tostring(body) .. srv:error_log())
    return cjson.decode(body)
  end

  it("holds every worker during a pause one of them set", function()
    assert.is_true(call("op=pause&s=0.6").till > 0.5)
    local workers = {}
    for _ = 1, 12 do
      local r = call("op=acquire")
      assert.is_false(r.ok)
      assert.is_true(r.wait > 0.3 and r.wait <= 0.6)
      workers[r.worker] = true
    end
    local n = 0
    for _ in pairs(workers) do n = n + 1 end
    assert.equal(2, n) -- (both workers answered)
    require("socket").sleep(0.7)
    assert.is_true(call("op=acquire").ok)
  end)

  it("cuts the in-flight limit for every worker on a pushback and lifts it back", function()
    assert.equal(4, call("op=cut&n=8").limit)
    for _ = 1, 6 do assert.equal(4, call("op=state").state.limit) end
    -- answers grow it back to where it was cut, then it is lifted
    for _ = 1, 40 do call("op=acquire") end
    assert.is_nil(call("op=state").state.limit)
  end)

  it("makes max_rate one bucket for every worker", function()
    -- two runs of a second at once (the two workers take them), each as fast as allowed
    local co, conns = {}, {}
    for i = 1, 2 do
      conns[i] = http.send(srv.ports.P, "/budget?op=run&ms=1000&rate=20")
    end
    for i = 1, 2 do
      local status, _, body = http.receive(conns[i])
      assert.equal(200, status, tostring(body) .. srv:error_log())
      co[i] = cjson.decode(body)
    end
    local total = co[1].n + co[2].n
    assert.is_true(total <= 20 + 2 + 1, tostring(total)) -- a second's worth plus the burst
    assert.is_true(total >= 15, tostring(total))
  end)
end)
