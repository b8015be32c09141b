-- The Talview v4 client against the real sandbox: construction, naming and introspection,
-- parameters (path, required, query arrays, expand, paging, body/query split), results (JSON,
-- null, 204, response, paging, each), the suppress_error_code envelope, and uploads.

local sandbox = require("support.sandbox")
local recording = require("support.transport").recording
local talview = require("assesskit.talview")
local catalogue = require("assesskit.talview.catalogue")
local cjson = require("cjson")

describe("talview client #luajit", function()
  local sb = sandbox.fixture({ reset = true, clear = true })
  local tv, rec

  setup(function()
    rec = recording()
    tv = sb:talview({ transport = rec })
    assert(tv:authenticate())
  end)

  teardown(function()
    if rec then rec.close() end
  end)

  before_each(function()
    rec.sent = {}
  end)

  local function api_requests()
    local out = {}
    for _, e in ipairs(sb:requests()) do
      if e.path ~= "/oauth2/token" then out[#out + 1] = e end
    end
    return out
  end

  describe("construction", function()
    it("defaults to https://apiv4.talview.com and shows only base_url and grant", function()
      local c = talview.new({ auth = { access_token = "tok-abcdef-123456" } })
      assert.equal("assesskit.talview(https://apiv4.talview.com, grant=access_token)", tostring(c))
      c:close()
    end)

    it("refuses plain http:// to a non-loopback host without allow_http; loopback needs nothing", function()
      assert.has_error(function() talview.new({ base_url = "http://apiv4.talview.com" }) end)
      assert.has_error(function()
        talview.new({ base_url = "https://x.example", token_url = "http://x.example/oauth2/token" })
      end)
      assert.has_no.errors(function()
        talview.new({ base_url = "http://apiv4.talview.com", allow_http = true }):close()
      end)
      assert.has_no.errors(function() talview.new({ base_url = sb.url }):close() end)
    end)

    it("raises on wrong option types", function()
      assert.has_error(function() talview.new("x") end)
      assert.has_error(function() talview.new({ timeout = "soon" }) end)
      assert.has_error(function() talview.new({ max_retries = -2 }) end)
      assert.has_error(function() talview.new({ on_request = "log" }) end)
      assert.has_error(function() talview.new({ transport = { request = 1 } }) end)
    end)

    it("blames the caller's line, not the library's, for a wrong option", function()
      local ok, msg = pcall(function() talview.new({ timeout = "soon" }) end)
      assert.is_false(ok)
      assert.matches("^[^:]*talview_client_spec%.lua:%d+: assesskit%.talview%.new: option 'timeout'", msg)
      ok, msg = pcall(function() require("assesskit.interviewmocha").new({ timeout = "soon" }) end)
      assert.is_false(ok)
      assert.matches("^[^:]*talview_client_spec%.lua:%d+: assesskit%.interviewmocha%.new: option 'timeout'", msg)
    end)

    it("blames the caller's line, not the library's, for a malformed auth option", function()
      for _, o in ipairs({ { auth = { grant = "password" } }, { auth = { grant = "x" } }, { auth = 5 },
        { auth = { access_token = "tok-abcdef" }, token_margin = "x" } }) do
        local ok, msg = pcall(function() talview.new(o) end)
        assert.is_false(ok)
        assert.matches("^[^:]*talview_client_spec%.lua:%d+: assesskit%.talview: ", msg)
      end
    end)

    it("blames the caller's line for a wrong argument to an endpoint method or call", function()
      local c = talview.new({ base_url = sb.url })
      -- each call stands alone (not a tail call), so its own line is the caller's
      local function raised(f)
        local ok, msg = pcall(f)
        assert.is_false(ok)
        return msg
      end
      local here = "^[^:]*talview_client_spec%.lua:%d+: "
      assert.matches(here .. "models%.candidate%.get: params must be a table",
        raised(function() local v = c.models.candidate:get(42, 5) return v end))
      assert.matches(here .. "models%.candidate%.get: opts must be a table",
        raised(function() local v = c.models.candidate:get({ id = 42 }, 5) return v end))
      assert.matches(here .. "assesskit: parameter 'x' cannot be a function",
        raised(function() local v = c.models.candidate:list({ x = print }) return v end))
      assert.matches(here .. "models%.candidate%.list: params must be a table",
        raised(function() local v = c.models.candidate:each(5) return v end))
      assert.matches(here .. "models%.candidate%.list: opts must be a table",
        raised(function() local v = c:call("models.candidate.list", {}, 5) return v end))
      c:close()
    end)

    it("builds resource objects lazily, once", function()
      local c = talview.new({ base_url = sb.url })
      assert.is_nil(rawget(c, "models"))
      local models = c.models
      assert.equal(models, rawget(c, "models"))
      assert.equal(models.candidate, c.models.candidate)
      assert.equal("function", type(c.models.candidate.get))
      assert.has_error(function() return c.models.no_such_thing end)
      c:close()
    end)
  end)

  describe("introspection", function()
    it("lists every endpoint of the catalogue as {name, method, path, summary, params}", function()
      local eps = tv:endpoints()
      assert.equal(#catalogue.endpoints, #eps)
      local found
      for _, e in ipairs(eps) do
        if e.name == "models.candidate.get" then found = e end
      end
      assert.same({ name = "models.candidate.get", method = "GET", path = "/models/candidate/{id}",
        summary = "Retrieve a Candidate" },
        { name = found.name, method = found.method, path = found.path, summary = found.summary })
      assert.same({ "id" }, { found.params[1].name, found.params[2] })
    end)

    it("has a method for every endpoint, at the place its name says", function()
      for _, e in ipairs(tv:endpoints()) do
        local obj = tv
        local parts = {}
        for part in e.name:gmatch("[^.]+") do parts[#parts + 1] = part end
        for i = 1, #parts - 1 do obj = obj[parts[i]] end
        assert.equal("function", type(obj[parts[#parts]]), e.name)
      end
      assert.equal("function", type(tv.models.candidate.each))
      assert.equal("function", type(tv.actions.invite))
      assert.equal("function", type(tv.user.me.get))
    end)

    it("names the methods and sub-resources of a resource object, or of the client", function()
      local names = talview.names(tv.models.candidate)
      for _, m in ipairs({ "create", "delete", "each", "get", "list", "pages", "update" }) do
        assert.truthy(table.concat(names, " "):find("%f[%w_]" .. m .. "%f[^%w_]"), m)
      end
      assert.same({ "actions", "admin", "attend", "helpers", "mobile", "models", "spreadsheet", "user" },
        talview.names(tv))
      assert.has_error(function() talview.names(nil) end, "talview.names: not a Talview resource object")
      assert.has_error(function() talview.names({}) end, "talview.names: not a Talview resource object")
    end)

    it("calls an endpoint by name, filling placeholders from params and querying the rest", function()
      -- what matters here is the request the sandbox received (the record may not exist)
      tv:call("admin.category.get", { oid = 2, id = 3, expand = { "items" } })
      local log = api_requests()
      assert.equal("GET", log[1].method)
      assert.equal("/admin/organization/2/category/3", log[1].path)
      assert.equal("expand=items", log[1].query)
    end)

    it("raises for an unknown endpoint name", function()
      assert.has_error(function() tv:call("models.nothing.get", {}) end)
    end)

    it("sends anything through request(), with auth", function()
      local v, err = tv:request("GET", "/user/me", { query = { expand = "x" } })
      assert.is_nil(err)
      assert.is_table(v)
      local log = api_requests()
      assert.equal("/user/me", log[1].path)
      assert.equal("Bearer ***", log[1].headers.authorization)
    end)
  end)

  describe("path parameters", function()
    it("take positional values or named ones", function()
      tv.admin.category:get(2, 3)
      tv.admin.category:get({ oid = 2, id = 3 })
      local log = api_requests()
      assert.equal("/admin/organization/2/category/3", log[1].path)
      assert.equal("/admin/organization/2/category/3", log[2].path)
    end)

    it("are percent-encoded", function()
      tv.models.candidate:get("a b?c#d%e")
      assert.equal(sb.url .. "/models/candidate/a%20b%3Fc%23d%25e", rec.sent[1].url)
    end)

    it("cannot change the path: '1/../2', '..', '' and nil are validation errors, nothing sent", function()
      for _, bad in ipairs({ "1/../2", "..", ".", "", "a\\b" }) do
        local v, err = tv.models.candidate:get(bad)
        assert.is_nil(v)
        assert.equal("validation", err.kind)
        assert.equal("id", err.fields[1].field)
      end
      local _, err = tv.models.candidate:get(nil)
      assert.equal("validation", err.kind)
      assert.matches("'id'", err.message)
      _, err = tv.admin.category:get(2, talview.null)
      assert.equal("validation", err.kind)
      _, err = tv.admin.category:get({ oid = 2 })
      assert.equal("id", err.fields[1].field)
      assert.equal(0, #rec.sent)
      assert.equal(0, #api_requests())
    end)

    it("print integral numbers without a fraction (JSON ids decode as floats on Lua 5.4)", function()
      tv.models.candidate:get(7.0)
      assert.equal(sb.url .. "/models/candidate/7", rec.sent[1].url)
      local _, err = tv.models.candidate:get(7.5)
      assert.equal("validation", err.kind)
    end)
  end)

  describe("strict", function()
    local function raised(f)
      local ok, msg = pcall(f)
      assert.is_false(ok, "did not raise")
      return msg
    end
    local here = "^[^:]*talview_client_spec%.lua:%d+: "

    it("raises on an unknown option of new, naming the nearest valid one", function()
      assert.matches(here .. "assesskit%.talview%.new: unknown option 'baseurl' %(did you mean 'base_url'%?%)",
        raised(function() local c = talview.new({ baseurl = sb.url }) return c end))
      assert.matches("unknown option 'timout' %(did you mean 'timeout'%?%)",
        raised(function() return talview.new({ timout = 3 }) end))
      assert.matches(here .. "assesskit%.interviewmocha%.new: unknown option 'apikey' %(did you mean 'api_key'%?%)",
        raised(function() local c = require("assesskit.interviewmocha").new({ apikey = "k" }) return c end))
      assert.matches("assesskit%.client%.new: unknown option 'max_retires' %(did you mean 'max_retries'%?%)",
        raised(function() return require("assesskit.client").new({ base_url = sb.url, max_retires = 1 }) end))
      -- no suggestion when nothing is close
      assert.matches("unknown option 'colour'$", raised(function() return talview.new({ colour = 1 }) end))
      assert.matches(here .. "assesskit%.store%.new: unknown option 'slep' %(did you mean 'sleep'%?%)",
        raised(function() local st = require("assesskit.store").new({ slep = print }) return st end))
    end)

    it("raises on an undocumented parameter, naming the nearest documented one or option, sending nothing", function()
      assert.matches(here .. "models%.candidate%.get: undocumented parameter 'timout' %(did you mean the option "
        .. "'timeout'%? options go in opts, after params%); opts%.raw_params = true sends it as given$",
        raised(function() local v = tv.models.candidate:get(1, { timout = 5 }) return v end))
      -- an option given among the params is not sent as a query parameter
      assert.matches(here .. "models%.candidate%.get: undocumented parameter 'max_retries' "
        .. "%(did you mean the option 'max_retries'",
        raised(function() local v = tv.models.candidate:get(1, { max_retries = 0 }) return v end))
      assert.matches(here .. "models%.candidate%.create: undocumented parameter 'frist_name' "
        .. "%(did you mean 'first_name'%?%)",
        raised(function() local v = tv.models.candidate:create({ email = "a@b.test", frist_name = "A" }) return v end))
      assert.matches(here .. "models%.candidate%.get: undocumented parameter 'expnad' %(did you mean 'expand'%?%)",
        raised(function() local v = tv:call("models.candidate.get", { id = 1, expnad = { "status" } }) return v end))
      -- a list takes filters, but not a near miss of a documented name or of an option
      assert.matches(here .. "models%.candidate%.each: parameter 'concurency' looks like a typo, not a filter "
        .. "%(did you mean the option 'concurrency'%?",
        raised(function() local v = tv.models.candidate:each({ pageSize = 100, concurency = 4 }) return v end))
      assert.matches(here .. "models%.candidate%.list: parameter 'pagesize' looks like a typo, not a filter "
        .. "%(did you mean 'pageSize'%?%)",
        raised(function() local v = tv.models.candidate:list({ pagesize = 3 }) return v end))
      assert.matches(here .. "models%.candidate%.pages: parameter 'page_size' looks like a typo",
        raised(function() local v = tv.models.candidate:pages({ page_size = 3 }) return v end))
      assert.equal(0, #rec.sent)
    end)

    it("sends an undocumented parameter with opts.raw_params, and a list's filters as given", function()
      local _, err = tv.models.candidate:get(1, { timout = 5 }, { raw_params = true })
      assert.equal(404, err.status)
      assert.equal(sb.url .. "/models/candidate/1?timout=5", rec.sent[1].url)
      -- the attribute filters the seed's own links use (Yii2 lists filter on any attribute)
      assert(tv.models.candidate:list({ menu_card_id = 3 }))
      assert.equal(sb.url .. "/models/candidate?menu_card_id=3", rec.sent[2].url)
      assert(tv.models.file:list({ answer_id = 8, x = 1 }))
      assert.matches("answer_id=8", rec.sent[3].url)
      assert.matches("x=1", rec.sent[3].url)
      local it = tv.models.candidate:each({ concurency = 4 }, { raw_params = true })
      assert.is_table((it()))
      assert.matches("concurency=4", rec.sent[4].url)
    end)

    it("raises on an unknown per-call option (methods, each, pages, call, request), sending nothing", function()
      assert.matches(here .. "models%.candidate%.get: unknown option 'timout' %(did you mean 'timeout'%?%)",
        raised(function() local v = tv.models.candidate:get(1, nil, { timout = 1 }) return v end))
      assert.matches(here .. "models%.candidate%.each: unknown option 'header' %(did you mean 'headers'%?%)",
        raised(function() local v = tv.models.candidate:each({}, { header = {} }) return v end))
      assert.matches("models%.candidate%.pages: unknown option 'max_retry'",
        raised(function() return tv.models.candidate:pages(nil, { max_retry = 1 }) end))
      assert.matches("models%.candidate%.get: unknown option 'retyr' %(did you mean 'retry'%?%)",
        raised(function() return tv:call("models.candidate.get", { id = 1 }, { retyr = true }) end))
      assert.matches("talview:request: unknown option 'querry' %(did you mean 'query'%?%)",
        raised(function() return tv:request("GET", "/models/candidate", { querry = {} }) end))
      assert.equal(0, #rec.sent)
    end)

    it("says to use a colon when a method is called with a dot, at the caller's line", function()
      assert.matches(here .. "assesskit%.talview: models%.candidate%.get called with a dot: use a colon, "
        .. "models%.candidate:get%(%.%.%.%)",
        raised(function() local v = tv.models.candidate.get(42) return v end))
      assert.matches(here .. "assesskit%.talview: models%.candidate%.list called with a dot",
        raised(function() local v = tv.models.candidate.list({ pageSize = 2 }) return v end))
      assert.matches(here .. "assesskit%.talview: models%.candidate%.each called with a dot",
        raised(function() local v = tv.models.candidate.each() return v end))
      assert.matches(here .. "assesskit%.talview: actions%.invite called with a dot",
        raised(function() local v = tv.actions.invite({}) return v end))
      local im = require("assesskit.interviewmocha").new({ api_key = "k" })
      assert.matches(here .. "assesskit%.interviewmocha: reports%.get called with a dot",
        raised(function() local v = im.reports.get(5) return v end))
      assert.matches(here .. "assesskit%.interviewmocha: reports%.download_pdf called with a dot",
        raised(function() local v = im.reports.download_pdf(5, "/tmp/x.pdf") return v end))
      im:close()
      assert.equal(0, #rec.sent)
    end)

    it("says to use a colon when a client's own method is called with a dot, at the caller's line", function()
      -- tv.call("models.candidate.get", ...) takes the name for self: the answer must say so,
      -- not "unknown endpoint table: 0x..." or an internal "attempt to index" error
      for _, name in ipairs({ "call", "request", "endpoints", "map", "authenticate", "redact",
        "last_response", "close" }) do
        assert.matches(here .. "assesskit%.talview: tv%." .. name .. " called with a dot: use a colon, tv:"
          .. name .. "%(%.%.%.%)",
          raised(function() local v = tv[name]("models.candidate.get", { id = 10001 }) return v end))
      end
      local im = require("assesskit.interviewmocha").new({ api_key = "k", v2_url = sb.url .. "/v2",
        v3_url = sb.url .. "/v3", transport = rec })
      for _, name in ipairs({ "call", "endpoints", "map", "redact", "last_response", "close" }) do
        assert.matches(here .. "assesskit%.interviewmocha: im%." .. name .. " called with a dot: use a colon, im:"
          .. name .. "%(%.%.%.%)",
          raised(function() local v = im[name]("reports.get", { testInvitationId = 5 }) return v end))
      end
      -- with a colon they still work
      assert.is_table(tv:endpoints())
      assert.is_table(im:endpoints())
      assert.equal(0, #rec.sent)
    end)

    it("names the nearest endpoint, resource or action for a typo, at the caller's line", function()
      assert.matches(here .. "talview:call: unknown endpoint models%.candidat%.get %(did you mean "
        .. "'models%.candidate%.get'%?%)",
        raised(function() local v = tv:call("models.candidat.get", { id = 1 }) return v end))
      assert.matches(here .. "talview:call: unknown endpoint actions%.invit %(did you mean 'actions%.invite'%?%)",
        raised(function() local v = tv:call("actions.invit", {}) return v end))
      assert.matches(here .. "assesskit%.talview: no resource or action 'candidat' in models %(did you mean "
        .. "'candidate'%?%)",
        raised(function() local r = tv.models.candidat return r end))
      assert.matches(here .. "assesskit%.talview: no resource or action 'gett' in models%.candidate %(did you "
        .. "mean 'get'%?%)",
        raised(function() local v = tv.models.candidate:gett(1) return v end))
      local im = require("assesskit.interviewmocha").new({ api_key = "k", transport = rec })
      assert.matches(here .. "interviewmocha:call: unknown endpoint reports%.gett %(did you mean 'reports%.get'%?%)",
        raised(function() local v = im:call("reports.gett", {}) return v end))
      assert.equal(0, #rec.sent)
    end)

    it("refuses a base_url with a query or a fragment, which would end up inside every path", function()
      for _, u in ipairs({ sb.url .. "/?x=1", sb.url .. "#top", sb.url .. "?" }) do
        assert.matches(here .. "assesskit%.talview%.new: base_url must not have a query or a fragment",
          raised(function() local c = talview.new({ base_url = u }) return c end))
        assert.matches(here .. "assesskit%.interviewmocha%.new: v3_url must not have a query or a fragment",
          raised(function() local c = require("assesskit.interviewmocha").new({ v3_url = u }) return c end))
      end
      -- a path is fine, with or without a final slash
      talview.new({ base_url = sb.url .. "/api/" }):close()
    end)

    it("checks required parameters on every call, also without a params table", function()
      local v, err = tv.user.me:update_password()
      assert.is_nil(v)
      assert.equal("validation", err.kind)
      assert.equal("current_password", err.fields[1].field)
      assert.is_false(err.sent)
      v, err = tv:call("user.me.update_password")
      assert.is_nil(v)
      assert.equal("validation", err.kind)
      assert.equal(0, #rec.sent)
    end)

    it("sends a parameter documented in both the query and the body in both, from one value", function()
      local params = { oid = 2, item_name = "panel.assign", user_id = 41, type = 2 }
      tv.admin.rbac:update(2, { item_name = "panel.assign", user_id = 41, type = 2 })
      tv:call("admin.rbac.update", params)
      local log = api_requests()
      assert.equal(2, #log)
      for _, e in ipairs(log) do
        assert.equal("PUT", e.method)
        assert.equal("/admin/organization/2/rbac", e.path)
        assert.equal("item_name=panel.assign&user_id=41", e.query)
        assert.same({ item_name = "panel.assign", user_id = 41, type = 2 }, cjson.decode(e.body))
      end
    end)
  end)

  describe("required parameters", function()
    it("are checked before anything is sent, naming the field", function()
      local v, err = tv.models.candidate:create({ first_name = "Ada" })
      assert.is_nil(v)
      assert.equal("validation", err.kind)
      assert.equal("email", err.fields[1].field)
      assert.matches("email", tostring(err))
      v, err = tv.actions:invite({ candidates = { 1 } })
      assert.is_nil(v)
      assert.equal("validation", err.kind)
      assert.equal(0, #rec.sent)
    end)

    it("treat null as missing", function()
      local _, err = tv.models.candidate:create({ first_name = "Ada", email = talview.null })
      assert.equal("email", err.fields[1].field)
    end)
  end)

  describe("query and body", function()
    it("writes arrays as name[0]=a&name[1]=b and expand as a comma list", function()
      tv.models.file:list({ file_type_id = { 4, 5 }, expand = { "fileType", "candidate.status" } })
      local log = api_requests()
      assert.equal("expand=fileType%2Ccandidate.status&file_type_id%5B0%5D=4&file_type_id%5B1%5D=5",
        log[1].query)
    end)

    it("passes page and pageSize", function()
      tv.models.candidate:list({ page = 2, pageSize = 5 })
      assert.equal("page=2&pageSize=5", api_requests()[1].query)
    end)

    it("sends POST/PUT params as a JSON body, documented query params and expand in the query", function()
      tv.attend.answer:update(5, { fields = "id", text = "hello", expand = { "question" } })
      local e = api_requests()[1]
      assert.equal("PUT", e.method)
      assert.equal("/attend/answer/5", e.path)
      assert.equal("expand=question&fields=id", e.query)
      assert.same({ text = "hello" }, cjson.decode(e.body))
      assert.matches("application/json", e.content_type)
    end)

    it("merges opts.query and sends opts.headers", function()
      tv.models.candidate:list({ page = 1 }, { query = { pageSize = 3 }, headers = { ["X-Trace"] = "t1" } })
      local e = api_requests()[1]
      assert.equal("page=1&pageSize=3", e.query)
      assert.equal("t1", e.headers["x-trace"])
    end)

    it("raises on misuse: params or opts that are not tables", function()
      assert.has_error(function() tv.models.candidate:list("x") end)
      assert.has_error(function() tv.models.candidate:get(1, {}, "x") end)
      assert.has_error(function() tv.models.candidate:create({ first_name = print, email = "a@b.test" }) end)
    end)
  end)

  describe("results", function()
    it("decode JSON, keep the response, and find it again from the value", function()
      local me, err, res = tv.user.me:get()
      assert.is_nil(err)
      assert.is_table(me)
      assert.equal(200, res.status)
      assert.matches("json", res.headers["content-type"])
      assert.equal(res, talview.response(me))
      assert.equal(res, tv:last_response())
    end)

    it("use talview.null for JSON null", function()
      assert.equal(cjson.null, talview.null)
      assert.equal(require("assesskit.client").null, talview.null)
      assert.equal(require("assesskit").null, talview.null)
    end)
  end)
end)
