-- JSON numbers through the API clients (assesskit.core's json_decode under client.lua): ids
-- from the real sandbox are Lua integers on Lua 5.4, a number a server writes with a fraction
-- stays a float (a small nginx answers what the sandbox never writes), and a body that is not
-- JSON is a `decode` error naming the byte. Runs under Lua 5.4 and LuaJIT (doubles there).

local sandbox = require("support.sandbox")
local nginx = require("support.nginx")
local sys = require("support.sys")
local talview = require("assesskit.talview")
local client = require("assesskit.client")

local math_type = math.type

describe("JSON numbers through the clients #luajit", function()
  describe("from the sandbox", function()
    local sb = sandbox.fixture({ reset = true })
    local tv, im

    setup(function()
      tv = sb:talview()
      im = sb:interviewmocha()
    end)

    teardown(function()
      if tv then tv:close() end
      if im then im:close() end
    end)

    it("gives Talview ids as integers on Lua 5.4: 'candidate-' .. c.id has no '.0'", function()
      local list = assert(tv.models.candidate:list({ pageSize = 5 }))
      assert.is_true(#list > 0)
      for _, c in ipairs(list) do
        assert.equal("candidate-" .. string.format("%d", c.id), "candidate-" .. c.id)
        if math_type then assert.equal("integer", math_type(c.id)) end
      end
      local one = assert(tv.models.candidate:get(list[1].id))
      assert.equal(list[1].id, one.id)
      if math_type then
        assert.equal("integer", math_type(one.id))
        assert.equal("candidate-" .. string.format("%d", one.id), "candidate-" .. one.id)
      end
    end)

    it("gives InterviewMocha ids as integers on Lua 5.4", function()
      local links = assert(im.tests:links(114110))
      assert.is_true(#links > 0)
      for _, l in ipairs(links) do
        assert.equal(114110, l.testId)
        if math_type then
          assert.equal("integer", math_type(l.testId))
          assert.equal("integer", math_type(l.testLinkId))
        end
      end
    end)

    it("sends every number of a request body as it was made (15+ digit ids, 0.1 + 0.2)", function()
      local list = assert(tv.models.candidate:list({ pageSize = 1 }))
      sb:clear_requests()
      -- cjson alone writes 14 significant digits: 1.2345678901234e+14 and 0.3
      assert(tv.models.candidate:update(list[1].id, { phone = 123456789012345,
        middle_name = 0.1 + 0.2 }))
      local sent = sb:requests({ method = "PUT" })
      assert.equal(1, #sent)
      assert.matches('"phone":123456789012345[,}]', sent[1].body)
      assert.matches('"middle_name":0%.30000000000000004[,}]', sent[1].body)
    end)

    it("sends whole numbers of 15+ digits as integers, also LuaJIT's doubles (not 2e+14)", function()
      local list = assert(tv.models.candidate:list({ pageSize = 1 }))
      sb:clear_requests()
      -- ids ending in zeros: cjson writes 2e+14 and 1.2345678901234e+14 for LuaJIT's doubles
      assert(tv.models.candidate:update(list[1].id, { phone = 200000000000000,
        middle_name = 123456789012340, last_name = 4611686018427387904 }))
      local sent = sb:requests({ method = "PUT" })
      assert.equal(1, #sent)
      assert.matches('"phone":200000000000000[,}]', sent[1].body)
      assert.matches('"middle_name":123456789012340[,}]', sent[1].body)
      assert.matches('"last_name":4611686018427387904[,}]', sent[1].body)
    end)

    it("reports a cut JSON body as a decode error naming the byte", function()
      sb:fault({ kind = "malformed_json", path = "/models/candidate" })
      local v, err = tv.models.candidate:list({ pageSize = 5 })
      assert.is_nil(v)
      assert.equal("decode", err.kind)
      assert.matches("^response body is not valid JSON: [^\n]* at [%w ]*%(?byte %d+%)?$", err.message)
    end)
  end)

  describe("under a decimal-comma LC_NUMERIC set after the client loaded", function()
    local srv
    setup(function() srv = nginx.start({ locations = nginx.core_locations }) end)
    teardown(function() if srv then srv:stop() end end)

    it("still writes '.' as the decimal point in a request body ([0.5] is not [0,5])", function()
      -- a subprocess: LOCPATH is read from the environment; the locale is set after the client
      -- (and lua-cjson, which learns the decimal point when it loads) are loaded
      local dir = sys.tmpdir("locale")
      local ok, out = sys.run("localedef -i de_DE -f UTF-8 " .. sys.quote(dir .. "/de_DE.UTF-8"))
      assert(ok or out:find("warnings", 1, true), out)
      local interp = jit and "luajit" or "lua5.4"
      local cpath = sys.repo .. (jit and "/build/luajit/?.so;;" or "/build/lua5.4/?.so;;")
      local script = [[
        local client = require("assesskit.client")
        assert(os.setlocale("de_DE.UTF-8", "numeric"), "no de_DE locale")
        local c = client.new({ base_url = ]] .. string.format("%q", srv:url("")) .. [[ })
        local v = assert(c:request("POST", "/echo", { query = { raw = 1 }, body = { scores =
          { 0.5, 2.5e-5, 1234567890123.5, 0.1 + 0.2, 7 }, ratio = 0.25, big = 1e300 } }))
        io.write(v)
      ]]
      local code, stdout, stderr = sys.exec(interp .. " -", {
        stdin = script,
        env = { LOCPATH = dir, PATH = os.getenv("PATH"),
          LUA_PATH = sys.repo .. "/lua/?.lua;" .. sys.repo .. "/lua/?/init.lua;;", LUA_CPATH = cpath },
      })
      sys.rmdir(dir)
      assert.equal(0, code, stderr)
      assert.is_nil(stdout:find(",5", 1, true), stdout)
      local sent = client.json_decode(stdout)
      assert.same({ 0.5, 2.5e-5, 1234567890123.5, 0.1 + 0.2, 7 }, sent.scores)
      assert.equal(0.25, sent.ratio)
      assert.equal(1e300, sent.big)
    end)
  end)

  describe("from a server that writes fractions", function()
    local srv
    setup(function()
      srv = nginx.start({
        ports = { "P" },
        servers = [[
          server {
            listen 127.0.0.1:@P@;
            location = /oauth2/token {
              default_type application/json;
              return 200 '{"access_token":"t","expires_in":3600,"token_type":"Bearer"}';
            }
            location = /models/candidate/10001 {
              default_type application/json;
              return 200 '{"id": 10001, "score": 10001.0, "rank": 2.5, "big": 1e3, "tags": ["v2.0"]}';
            }
          }
        ]],
      })
    end)
    teardown(function()
      if srv then srv:stop() end
    end)

    it("keeps 10001.0 a float and 10001 an integer (Lua 5.4)", function()
      local c = talview.new({ base_url = "http://127.0.0.1:" .. srv.ports.P,
        auth = { grant = "password", client_id = "c", client_secret = "s", username = "u",
                 password = "p" } })
      local v = assert(c.models.candidate:get(10001))
      c:close()
      assert.equal(10001, v.id)
      assert.equal(10001, v.score)
      assert.equal(2.5, v.rank)
      assert.equal(1000, v.big)
      assert.equal("v2.0", v.tags[1])
      if math_type then
        assert.equal("candidate-10001", "candidate-" .. v.id)
        assert.equal("integer", math_type(v.id))
        assert.equal("float", math_type(v.score))
        assert.equal("10001.0", tostring(v.score))
        assert.equal("float", math_type(v.big))
      end
    end)
  end)
end)
