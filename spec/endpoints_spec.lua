-- assesskit.endpoints (the binding layer both API clients are built on), driven through a
-- small binding of its own over assesskit.client, against a real nginx on loopback.
--
-- The spec starts one nginx (spec/support/nginx.lua) on a free port in a temporary
-- directory; its one location echoes the request line as JSON. nginx is stopped by its pid in
-- teardown.

local nginx = require("support.nginx")
local client = require("assesskit.client")
local endpoints = require("assesskit.endpoints")

local ECHO = [[
    location / {
      content_by_lua_block {
        ngx.header["Content-Type"] = "application/json"
        ngx.say(require("cjson").encode({ method = ngx.req.get_method(), uri = ngx.var.request_uri }))
      }
    }
]]

-- Path values of the test API: non-empty strings without "/", or positive integers.
local RULE = {
  invalid = "must be a positive integer or a string",
  number = function(v)
    if v >= 1 and v == math.floor(v) then return string.format("%d", v) end
    return nil
  end,
  string = function(v)
    if v == "" then return nil, "must not be empty" end
    if v:find("/", 1, true) then return nil, "must not contain '/'" end
    return require("assesskit.url").encode(v)
  end,
}

local function catalogue()
  return { endpoints = {
    { name = "shop.item.get", method = "get", path = "/shops/{sid}/items/{id}" },
    { name = "shop.item.list", method = "get", path = "/shops/{sid}/items", counted = true },
    { name = "shop.ping", method = "post", path = "/ping", summary = "Ping" },
  } }
end

-- A minimal API client on the binding: positional path values, then params as the query.
local function make_api()
  local api = {}
  local function invoke(ex, ep, ...)
    local path, err = endpoints.fill_positional(ex._client, ep, RULE, ...)
    if not path then return nil, err end
    local params, opts = select(ep.np + 1, ...)
    endpoints.check_args(ep, params, opts, 2)
    return ex._client:request(ep.method, path, { query = params })
  end
  api.binding = endpoints.binding({
    name = "assesskit.example", caller = "example", owner = "_ex", invoke = invoke,
    missing = "no such thing",
    endpoint = function(e)
      if e.method == "TRACE" then return nil, "no TRACE in " .. e.name end
      return { counted = e.counted == true, summary = e.summary }
    end,
    more = function(ep, action)
      if ep.counted then
        return { [action .. "_count"] = function(ex, e, ...)
          local v, err = invoke(ex, e, ...)
          if not v then return nil, err end
          return e.name .. " via " .. v.uri
        end }
      end
    end,
    extras = { ["shop.item"] = { hello = function(self) return "hello from " .. tostring(self) end } },
    describe = function(ex, ep, row) row.url, row.summary = ex._client.base_url .. ep.path, ep.summary end,
  })
  local EX = {}
  function EX:endpoints() return api.binding:endpoints(self) end
  function EX:call(name, params)
    local ep = api.binding:lookup(self, name, params)
    local path, err = endpoints.fill_named(self._client, ep, RULE, params)
    if not path then return nil, err end
    return self._client:request(ep.method, path, { query = endpoints.without(params, ep.name_set) })
  end
  local MT = { __index = api.binding:index(EX) }
  local cat = catalogue()
  function api.new(base_url)
    return setmetatable({ _client = client.new({ base_url = base_url, max_retries = 0 }),
      _compiled = api.binding:compile(cat) }, MT)
  end
  return api
end

describe("assesskit.endpoints #luajit", function()
  local srv, api, ex

  setup(function()
    srv = nginx.start({ locations = ECHO })
    api = make_api()
    ex = api.new(srv:url(""))
  end)

  teardown(function()
    if ex then ex._client:close() end
    if srv then srv:stop() end
  end)

  it("turns catalogue names into nested resource methods that send to the filled path", function()
    local v, err, res = ex.shop.item:get(7, "a b&c")
    assert.is_nil(err)
    assert.same({ method = "GET", uri = "/shops/7/items/a%20b%26c" }, v)
    assert.equal(200, res.status)
    v = assert(ex.shop.item:list(3, { q = "x" }))
    assert.same({ method = "GET", uri = "/shops/3/items?q=x" }, v)
    v = assert(ex.shop:ping())
    assert.same({ method = "POST", uri = "/ping" }, v)
  end)

  it("adds the binding's extra methods beside an action, and hand-written ones", function()
    assert.equal("shop.item.list via /shops/4/items", ex.shop.item:list_count(4))
    assert.equal("hello from assesskit.example resource shop.item", ex.shop.item:hello())
  end)

  it("refuses a bad path value with a validation error and sends nothing", function()
    local before = #srv:log()
    local cases = {
      { 0, "must be a positive integer or a string" },
      { "", "must not be empty" },
      { "a/b", "must not contain '/'" },
      { nil, "is required" },
      { client.null, "is required" },
      { true, "must be a positive integer or a string, not a boolean" },
    }
    for _, c in ipairs(cases) do
      local v, err = ex.shop.item:get(1, c[1])
      assert.is_nil(v)
      assert.equal("validation", err.kind)
      assert.equal("shop.item.get: parameter 'id' " .. c[2], err.message)
      assert.same({ { field = "id", message = c[2] } }, err.fields)
      assert.equal("GET", err.method)
      assert.equal(srv:url("/shops/{sid}/items/{id}"), err.url)
    end
    assert.equal(before, #srv:log())
  end)

  it("calls an endpoint by name with the path values taken from params", function()
    local v = assert(ex:call("shop.item.get", { sid = 5, id = "z", extra = "1" }))
    assert.same({ method = "GET", uri = "/shops/5/items/z?extra=1" }, v)
    local _, err = ex:call("shop.item.get", { sid = 5 })
    assert.equal("shop.item.get: parameter 'id' is required", err.message)
    assert.has_error(function() ex:call("shop.nothing", {}) end,
      "example:call: unknown endpoint shop.nothing (did you mean 'shop.ping'?)")
    assert.has_error(function() ex:call("zzzzzzzzzz", {}) end, "example:call: unknown endpoint zzzzzzzzzz")
    assert.has_error(function() ex:call(42) end, "example:call: unknown endpoint 42")
    assert.has_error(function() ex:call("shop.ping", "x") end, "example:call: params must be a table")
  end)

  it("raises on a wrong argument type, naming the endpoint", function()
    assert.has_error(function() ex.shop.item:get(1, 2, "x") end, "shop.item.get: params must be a table")
    assert.has_error(function() ex.shop.item:get(1, 2, {}, 5) end, "shop.item.get: opts must be a table")
  end)

  it("raises naming an unknown resource or action, and leaves __ names alone", function()
    local ok, msg = pcall(function() return ex.shop.item.nothing end)
    assert.is_false(ok)
    assert.matches("assesskit.example: no such thing 'nothing' in shop.item", msg, 1, true)
    assert.is_nil(ex.shop.item.__close)
    assert.is_nil(ex.nothing) -- the client object itself answers nil
    assert.equal("assesskit.example resource shop", tostring(ex.shop))
  end)

  it("builds resource objects and methods once, caching them in the object", function()
    local shop = ex.shop
    assert.equal(shop, rawget(ex, "shop"))
    local get = shop.item.get
    assert.equal(get, rawget(shop.item, "get"))
    local other = api.new(srv:url(""))
    assert.equal(get, other.shop.item.get) -- one function per endpoint, shared by clients
    assert.are_not.equal(shop, other.shop)
    other._client:close()
  end)

  it("compiles a catalogue once per catalogue table", function()
    local cat = catalogue()
    local c1 = api.binding:compile(cat)
    assert.equal(c1, api.binding:compile(cat))
    assert.are_not.equal(c1, api.binding:compile(catalogue()))
    local ep = c1.by_name["shop.item.get"]
    assert.same({ "/shops/", "/items/", "" }, ep.lits)
    assert.same({ "sid", "id" }, ep.names)
    assert.equal(2, ep.np)
    assert.equal("GET", ep.method)
    assert.equal(ep, c1.tree.children.shop.children.item.eps.get)
  end)

  it("lists the endpoints in catalogue order with the binding's own fields", function()
    local list = ex:endpoints()
    assert.equal(3, #list)
    assert.same({ name = "shop.item.get", method = "GET", path = "/shops/{sid}/items/{id}",
      url = srv:url("/shops/{sid}/items/{id}") }, list[1])
    assert.same({ name = "shop.ping", method = "POST", path = "/ping", url = srv:url("/ping"),
      summary = "Ping" }, list[3])
  end)

  it("rejects a malformed catalogue, at the caller", function()
    local function compile(cat) return api.binding:compile(cat) end
    local function ep(name, method) return { name = name, method = method or "get", path = "/x" } end
    local bad = {
      { 5, "assesskit.example: catalogue must have an endpoints array" },
      { { endpoints = { ep("a.b"), ep("a.b") } }, "assesskit.example: duplicate catalogue name a.b" },
      { { endpoints = { ep("a.b.c"), ep("a.b") } }, "assesskit.example: catalogue name clash at a.b" },
      { { endpoints = { ep("a.b"), ep("a.b.c") } }, "assesskit.example: catalogue name clash at a.b.c" },
      { { endpoints = { ep("a.list_count"), { name = "a.list", method = "get", path = "/x", counted = true } } },
        "assesskit.example: catalogue name clash at a.list (its list_count)" },
      { { endpoints = { ep("a.b", "TRACE") } }, "assesskit.example: no TRACE in a.b" },
    }
    for _, b in ipairs(bad) do
      local ok, msg = pcall(compile, b[1])
      assert.is_false(ok)
      assert.matches(b[2], msg, 1, true)
    end
  end)
end)

describe("assesskit.endpoints helpers #luajit", function()
  it("splits path templates into literals and names", function()
    assert.same({ { "/a/", "/b/", "" }, { "x", "y" } }, { endpoints.split_template("/a/{x}/b/{y}") })
    assert.same({ { "/plain" }, {} }, { endpoints.split_template("/plain") })
  end)

  it("checks option types for an API client's new, naming it", function()
    assert.equal("v", endpoints.check_opt({ k = "v" }, "k", "string", "x.new"))
    assert.is_nil(endpoints.check_opt({}, "k", "string", "x.new"))
    local ok, msg = pcall(function() endpoints.check_opt({ k = 1 }, "k", "string", "x.new") end)
    assert.is_false(ok)
    assert.matches("x.new: option 'k' must be a string", msg, 1, true)
  end)

  it("passes the client options through, with a default user agent", function()
    local copts = endpoints.client_options({ timeout = 3, headers = { a = "1" }, api_key = "secret" })
    assert.equal(3, copts.timeout)
    assert.same({ a = "1" }, copts.headers)
    assert.is_nil(copts.api_key)
    assert.equal("assesskit/" .. client._VERSION, copts.user_agent)
    assert.equal("me/1", endpoints.client_options({ user_agent = "me/1" }).user_agent)
  end)

  it("re-raises an error without its position", function()
    local ok, msg = pcall(function() endpoints.reraise("some/file.lua:12: went wrong", 1) end)
    assert.is_false(ok)
    assert.matches("went wrong$", msg)
    assert.is_nil(msg:find("some/file.lua", 1, true))
    local t = {}
    local ok2, msg2 = pcall(endpoints.reraise, t, 1)
    assert.is_false(ok2)
    assert.equal(t, msg2)
  end)

  it("gives params less the path values, and sets of lists", function()
    assert.same({ q = 1 }, endpoints.without({ id = 2, q = 1 }, { id = true }))
    assert.is_nil(endpoints.without(nil, { id = true }))
    assert.same({ a = true, b = true }, endpoints.set_of({ "a", "b" }))
    assert.same({}, endpoints.set_of(nil))
  end)
end)
