-- The sandbox's Talview v4 emulation, over real HTTP (LuaSocket), without assesskit's client.
local sandbox = require("support.sandbox")
local catalogue = require("assesskit.talview.catalogue")

local function endpoint(name)
  for _, e in ipairs(catalogue.endpoints) do
    if e.name == name then return e end
  end
  error("no catalogue endpoint " .. name)
end

-- A plausible value for a required field, by its name.
local function value_for(sb, name)
  if name:match("email") then return "someone@example.test" end
  if name:match("_id$") or name:match("ID$") then
    local res = name:gsub("ID$", ""):gsub("_id$", ""):gsub("(%l)(%u)", "%1_%2"):lower()
    local ok, recs = pcall(sb.state, sb, res)
    if ok and recs[1] then return recs[1].id end
    return 1
  end
  if name:match("date") or name == "from" or name == "to" or name:match("_at$") then
    return "2030-01-01 09:00:00+00"
  end
  if name:match("^is") or name:match("^has") then return true end
  if name == "type" or name == "sort_order" or name:match("[Cc]ount$") or name:match("Time$") then return 1 end
  return "sandbox " .. name
end

local function body_for(sb, ep, extra)
  local body = {}
  for _, f in ipairs(ep.required or {}) do body[f] = value_for(sb, f) end
  for k, v in pairs(extra or {}) do body[k] = v end
  return body
end

local function fill(path, params)
  return (path:gsub("{([%w_]+)}", function(n) return tostring(params[n]) end))
end

describe("sandbox Talview emulation", function()
  local sb = sandbox.fixture({ token = true, reset = true })

  local function get(path, opts)
    opts = opts or {}
    opts.token = opts.token or sb.tok
    return sb:request("GET", path, opts)
  end

  describe("error answers", function()
    it("answers every catalogue path with 401 and the error shape when no token is sent", function()
      local seen = 0
      for _, e in ipairs(catalogue.endpoints) do
        local r = sb:request(e.method, fill(e.path, setmetatable({}, { __index = function() return 1 end })))
        assert.equal(401, r.status, e.method .. " " .. e.path)
        assert.same({ code = 0, message = "Your request was made with invalid credentials.",
                      name = "Unauthorized", status = 401 }, r.json)
        seen = seen + 1
      end
      assert.is_true(seen > 300)
    end)

    it("answers 404 for an unknown path and for an unknown id", function()
      local r = get("/models/no-such-thing")
      assert.equal(404, r.status)
      assert.equal("Not Found", r.json.name)
      r = get("/models/candidate/987654321")
      assert.equal(404, r.status)
      assert.same({ name = "Not Found", message = "Object not found: 987654321", code = 0, status = 404 }, r.json)
    end)

    it("answers 405 with an Allow header for a wrong method", function()
      local r = sb:request("PATCH", "/models/candidate", { token = sb.tok, body = {} })
      assert.equal(405, r.status)
      assert.equal("GET, POST", r.headers.allow)
      assert.equal("Method Not Allowed", r.json.name)
      assert.equal(405, r.json.status)
    end)

    it("answers a CORS preflight (OPTIONS) without credentials for known paths only", function()
      local r = sb:request("OPTIONS", "/models/candidate", { headers = { Origin = "https://app.example.test",
        ["Access-Control-Request-Method"] = "POST" } })
      assert.equal(200, r.status)
      assert.equal("https://app.example.test", r.headers["access-control-allow-origin"])
      assert.equal("GET, POST", r.headers["access-control-allow-methods"])
      assert.equal(404, sb:request("OPTIONS", "/models/no-such-thing").status)
    end)

    it("answers 415 for an unsupported content type or an Accept without JSON", function()
      local r = sb:request("POST", "/models/candidate", { token = sb.tok, body = "<candidate/>",
        headers = { ["Content-Type"] = "application/xml" } })
      assert.equal(415, r.status)
      assert.equal("Unsupported Media Type", r.json.name)
      r = get("/models/candidate", { headers = { Accept = "text/html" } })
      assert.equal(415, r.status)
      assert.equal(200, get("/models/candidate", { headers = { Accept = "application/json" } }).status)
    end)

    it("answers 400 for a body that is not JSON", function()
      local r = sb:request("POST", "/models/candidate", { token = sb.tok, body = "{\"email\": ",
        headers = { ["Content-Type"] = "application/json" } })
      assert.equal(400, r.status)
      assert.matches("^Invalid JSON data in request body", r.json.message)
      r = sb:request("POST", "/models/candidate", { token = sb.tok, body = '{"email": "\255\254@example.test"}',
        headers = { ["Content-Type"] = "application/json" } })
      assert.equal(400, r.status)
      assert.matches("Malformed UTF%-8", r.json.message)
      r = sb:request("POST", "/models/candidate", { token = sb.tok, body = '{"email": "\195\169@example.test"}',
        headers = { ["Content-Type"] = "application/json" } })
      assert.equal(201, r.status)
      assert.equal("\195\169@example.test", r.json.email)
    end)

    it("answers 422 with a list of {field, message} for each missing required field", function()
      local r = sb:request("POST", "/models/candidate", { token = sb.tok, body = { first_name = "No Email" } })
      assert.equal(422, r.status)
      assert.same({ { field = "email", message = "Email cannot be blank." } }, r.json)
      local ep = endpoint("admin.custom_field_master.create")
      r = sb:request("POST", fill(ep.path, { oid = 2 }), { token = sb.tok, body = {} })
      assert.equal(422, r.status)
      local fields = {}
      for _, f in ipairs(r.json) do fields[#fields + 1] = f.field end
      table.sort(fields)
      local want = {}
      for _, f in ipairs(ep.required) do want[#want + 1] = f end
      table.sort(want)
      assert.same(want, fields)
    end)

    it("suppresses error codes with suppress_error_code and suppress_response_code", function()
      for _, name in ipairs({ "suppress_error_code", "suppress_response_code" }) do
        local r = get("/models/candidate/987654321?" .. name .. "=true")
        assert.equal(200, r.status)
        assert.same({ success = false, data = { name = "Not Found", message = "Object not found: 987654321",
          code = 0, status = 404 } }, r.json)
        r = sb:request("POST", "/models/candidate?" .. name .. "=true", { token = sb.tok, body = {} })
        assert.equal(200, r.status)
        assert.is_false(r.json.success)
        assert.equal("email", r.json.data[1].field)
      end
      local r = sb:request("GET", "/models/candidate?suppress_error_code=true")
      assert.equal(200, r.status)
      assert.equal(401, r.json.data.status)
      assert.equal(404, get("/models/candidate/987654321?suppress_error_code=false").status)
    end)
  end)

  describe("state", function()
    -- resource, create endpoint, path parameters, extra create fields, a field to update
    local cases = {
      { "candidate", "models.candidate.create", {}, { first_name = "Ada" }, "first_name" },
      { "assessment", "models.assessment.create", {}, {}, "title" },
      { "assessment_section", "models.assessment_section.create", {}, { assessment_id = 1001 }, "intro" },
      { "event", "models.event.create", {}, {}, "title" },
      { "evaluation", "models.evaluation.create", {}, { assessment_candidate_id = 30001 }, "recommendation" },
      { "category", "admin.category.create", { oid = 2 }, { type = 1 }, "name" },
      { "custom_field_master", "admin.custom_field_master.create", { oid = 2 }, {}, "label" },
      { "custom_field_master", "models.custom_field_master.create", {}, {}, "label" },
    }
    for _, c in ipairs(cases) do
      local res, create_name, params, extra, field = c[1], c[2], c[3], c[4], c[5]
      it("keeps " .. res .. " records across create, read, update, list and delete (" .. create_name .. ")", function()
        local create = endpoint(create_name)
        local prefix = create_name:match("^(.*)%.create$")
        local get_ep, update_ep, delete_ep, list_ep = endpoint(prefix .. ".get"), endpoint(prefix .. ".update"),
          endpoint(prefix .. ".delete"), endpoint(prefix .. ".list")
        local body = body_for(sb, create, extra)
        local r = sb:request("POST", fill(create.path, params), { token = sb.tok, body = body })
        assert.equal(201, r.status, r.body)
        local id = r.json.id
        assert.is_number(id)
        assert.matches("/" .. id .. "$", r.headers.location)
        params.id = id
        -- read back
        local got = get(fill(get_ep.path, params))
        assert.equal(200, got.status)
        for k, v in pairs(body) do assert.same(v, got.json[k], k) end
        local stored = sb:state(res, id)
        for k, v in pairs(body) do assert.same(v, stored[k], k) end
        -- update
        local ubody = body_for(sb, update_ep, { [field] = "changed by the spec" })
        r = sb:request(update_ep.method, fill(update_ep.path, params), { token = sb.tok, body = ubody })
        assert.equal(200, r.status, r.body)
        assert.equal("changed by the spec", r.json[field])
        assert.equal("changed by the spec", get(fill(get_ep.path, params)).json[field])
        assert.equal("changed by the spec", sb:state(res, id)[field])
        -- listed
        local listed = get(fill(list_ep.path, params), { query = { ids = { id } } })
        assert.equal(200, listed.status)
        assert.equal(1, #listed.json)
        assert.equal(id, listed.json[1].id)
        -- delete
        r = sb:request("DELETE", fill(delete_ep.path, params), { token = sb.tok })
        assert.equal(204, r.status)
        assert.equal("", r.body)
        assert.equal(404, get(fill(get_ep.path, params)).status)
        -- and reset brings the seed back, without the deleted record's successor
        sb:reset()
        assert.equal(404, get(fill(get_ep.path, params)).status)
      end)
    end

    it("scopes admin records to the organisation in the path", function()
      local ep = endpoint("admin.category.create")
      local r = sb:request("POST", fill(ep.path, { oid = 2 }), { token = sb.tok, body = { name = "Scoped", type = 2 } })
      assert.equal(201, r.status)
      assert.equal(2, r.json.organization_id)
      local id = r.json.id
      assert.equal(200, get(fill(endpoint("admin.category.get").path, { oid = 2, id = id })).status)
      assert.equal(404, get(fill(endpoint("admin.category.get").path, { oid = 488, id = id })).status)
      -- the same table seen through /models
      assert.equal("Scoped", get("/models/category/" .. id).json.name)
    end)

    it("updates assessment-candidate and assessment-section-candidate records", function()
      local r = sb:request("PUT", "/models/assessment-candidate/30002", { token = sb.tok, body = { status_id = 80 } })
      assert.equal(200, r.status)
      assert.equal(80, get("/models/assessment-candidate/30002").json.status_id)
      r = sb:request("PUT", "/models/assessment-section-candidate/40002", { token = sb.tok,
        body = { end_date = "2031-01-01 00:00:00+00" } })
      assert.equal(200, r.status)
      assert.equal("2031-01-01 00:00:00+00", sb:state("assessment_section_candidate", 40002).end_date)
      assert.equal(204, sb:request("DELETE", "/models/assessment-candidate/30002", { token = sb.tok }).status)
      assert.equal(404, get("/models/assessment-candidate/30002").status)
    end)

    it("serves user/me as the authenticated user and keeps its updates", function()
      local me = get("/user/me")
      assert.equal(200, me.status)
      assert.equal(41, me.json.id)
      assert.equal(sb.credentials.password.username, me.json.username)
      local r = sb:request("PUT", "/user/me", { token = sb.tok, body = { location = "Lisbon", phone = "123" } })
      assert.equal(200, r.status)
      assert.equal("Lisbon", get("/user/me").json.location)
      local viewer = get("/user/me", { token = sb:token("viewer") })
      assert.equal(42, viewer.json.id)
      assert.are_not.equal("Lisbon", viewer.json.location)
    end)

    it("changes the password through user/me/update-password until the next reset", function()
      local creds = sb.credentials.password
      local r = sb:request("POST", "/user/me/update-password", { token = sb.tok, body = {
        current_password = "wrong", new_password = "abcdefgh1", new_password_repeat = "abcdefgh1" } })
      assert.equal(422, r.status)
      assert.equal("current_password", r.json[1].field)
      r = sb:request("POST", "/user/me/update-password", { token = sb.tok, body = {
        current_password = creds.password, new_password = "abcdefgh1", new_password_repeat = "abcdefgh1" } })
      assert.equal(200, r.status)
      local grant = { grant_type = "password", client_id = creds.client_id, client_secret = creds.client_secret,
        username = creds.username, password = "abcdefgh1" }
      assert.equal(200, sb:request("POST", "/oauth2/token", { body = grant }).status)
      sb:reset()
      assert.equal(401, sb:request("POST", "/oauth2/token", { body = grant }).status)
    end)
  end)

  describe("lists", function()
    it("pages with page and pageSize and says so in X-Pagination-* and Link headers", function()
      local total = #sb:state("candidate")
      assert.is_true(total >= 300)
      local r = get("/models/candidate", { query = { page = 2, pageSize = 25 } })
      assert.equal(200, r.status)
      assert.equal(25, #r.json)
      assert.equal(tostring(total), r.headers["x-pagination-total-count"])
      assert.equal(tostring(math.ceil(total / 25)), r.headers["x-pagination-page-count"])
      assert.equal("2", r.headers["x-pagination-current-page"])
      assert.equal("25", r.headers["x-pagination-per-page"])
      local next_url = r.headers.link:match("<([^>]+)>; rel=next")
      assert.truthy(next_url)
      assert.matches("page=3", next_url)
      assert.matches("pageSize=25", next_url)
      assert.truthy(r.headers.link:match("rel=prev"))
      -- following rel=next visits every record once
      local seen, url, pages = {}, sb.url .. "/models/candidate?pageSize=50", 0
      while url do
        local page = get(url:sub(#sb.url + 1))
        for _, c in ipairs(page.json) do
          assert.is_nil(seen[c.id])
          seen[c.id] = true
        end
        pages = pages + 1
        url = page.headers.link:match("<([^>]+)>; rel=next")
      end
      local n = 0
      for _ in pairs(seen) do n = n + 1 end
      assert.equal(total, n)
      assert.equal(math.ceil(total / 50), pages)
    end)

    it("defaults to 20 a page, caps pageSize at 50 and clamps page to the last page (Yii2)", function()
      local r = get("/models/candidate")
      assert.equal(20, #r.json)
      assert.equal("20", r.headers["x-pagination-per-page"])
      r = get("/models/candidate", { query = { pageSize = 1000 } })
      assert.equal(50, #r.json)
      local last = get("/models/candidate", { query = { page = 100000, pageSize = 50 } })
      assert.equal(last.headers["x-pagination-page-count"], last.headers["x-pagination-current-page"])
      assert.is_nil(last.headers.link:match("rel=next"))
    end)

    it("filters on record fields and on arrays written ids[0]=1&ids[1]=2", function()
      local r = get("/models/candidate?ids%5B0%5D=10003&ids%5B1%5D=10007&ids%5B2%5D=987654321")
      assert.equal(200, r.status)
      local ids = {}
      for _, c in ipairs(r.json) do ids[#ids + 1] = c.id end
      assert.same({ 10003, 10007 }, ids)
      r = get("/models/assessment-candidate", { query = { assessment_id = 1001, status_id = 70, pageSize = 50 } })
      assert.is_true(#r.json > 0)
      for _, ac in ipairs(r.json) do
        assert.equal(1001, ac.assessment_id)
        assert.equal(70, ac.status_id)
      end
      r = get("/models/candidate", { query = { email = "candidate042@example.test" } })
      assert.equal(1, #r.json)
      assert.equal("1", r.headers["x-pagination-total-count"])
    end)

    it("sorts with sort=-field", function()
      local r = get("/models/candidate", { query = { sort = "-id", pageSize = 5 } })
      for i = 2, #r.json do assert.is_true(r.json[i - 1].id > r.json[i].id) end
    end)

    it("inlines related objects with expand, nested with dots", function()
      local r = get("/models/assessment-candidate/30001",
        { query = { expand = "candidate,assessment.assessmentSections" } })
      assert.equal(200, r.status)
      assert.equal(10001, r.json.candidate.id)
      assert.equal("candidate001@example.test", r.json.candidate.email)
      assert.equal(1001, r.json.assessment.id)
      assert.equal(3, #r.json.assessment.assessmentSections)
      for _, s in ipairs(r.json.assessment.assessmentSections) do assert.equal(1001, s.assessment_id) end
      -- without expand, no related objects
      local plain = get("/models/assessment-candidate/30001")
      assert.is_nil(plain.json.candidate)
      -- expand on lists, and counts
      local list = get("/models/assessment", { query = { ids = { 1001 }, expand = "invitedCount,addedCount" } })
      assert.equal(60, list.json[1].addedCount)
      assert.is_number(list.json[1].invitedCount)
    end)
  end)

  describe("uploads", function()
    local function multipart(fields, file)
      local b = "sandbox-spec-boundary"
      local parts = {}
      for k, v in pairs(fields) do
        parts[#parts + 1] = "--" .. b .. "\r\nContent-Disposition: form-data; name=\"" .. k .. "\"\r\n\r\n"
          .. v .. "\r\n"
      end
      if file then
        parts[#parts + 1] = "--" .. b .. "\r\nContent-Disposition: form-data; name=\"" .. file.name
          .. "\"; filename=\"" .. file.filename .. "\"\r\nContent-Type: text/csv\r\n\r\n" .. file.data .. "\r\n"
      end
      parts[#parts + 1] = "--" .. b .. "--\r\n"
      return table.concat(parts), { ["Content-Type"] = "multipart/form-data; boundary=" .. b }
    end

    it("takes a multipart file and answers 422 when the file is missing", function()
      local ep = endpoint("spreadsheet.upload")
      local body, headers = multipart({ file_type_id = "3" },
        { name = ep.file_field or "file", filename = "candidates.csv", data = "email\na@example.test\n" })
      local r = sb:request("POST", ep.path, { token = sb.tok, body = body, headers = headers })
      assert.equal(201, r.status, r.body)
      assert.equal("candidates.csv", r.json[ep.file_field or "file"])
      body, headers = multipart({ file_type_id = "3" })
      r = sb:request("POST", ep.path, { token = sb.tok, body = body, headers = headers })
      assert.equal(422, r.status)
      assert.equal(ep.file_field or "file", r.json[1].field)
      r = sb:request("POST", ep.path, { token = sb.tok, body = "--x\r\nbroken", headers = headers })
      assert.equal(400, r.status)
    end)

    it("takes a base64 file and refuses data that is not base64", function()
      local ep = endpoint("models.file.upload")
      local r = sb:request("POST", ep.path, { token = sb.tok, body = { data = "aGVsbG8=", name = "hello.txt" } })
      assert.equal(201, r.status, r.body)
      assert.equal("hello.txt", r.json.name)
      r = sb:request("POST", ep.path, { token = sb.tok, body = { data = "%%% not base64 %%%", name = "x" } })
      assert.equal(422, r.status)
      assert.equal("data", r.json[1].field)
    end)

    it("keeps one display picture per user", function()
      local body, headers = multipart({}, { name = "file", filename = "me.png", data = "\137PNG..." })
      assert.equal(404, get("/user/display-picture").status)
      local r = sb:request("POST", "/user/display-picture", { token = sb.tok, body = body, headers = headers })
      assert.equal(201, r.status)
      assert.equal("me.png", get("/user/display-picture").json.file)
      assert.equal(404, get("/user/display-picture", { token = sb:token("viewer") }).status)
      assert.equal(204, sb:request("DELETE", "/user/display-picture", { token = sb.tok }).status)
      assert.equal(404, get("/user/display-picture").status)
    end)
  end)

  describe("endpoints without state", function()
    it("answer every GET in the catalogue with the seed's documented shape, never a 5xx", function()
      local checked = 0
      for _, e in ipairs(catalogue.endpoints) do
        if e.method == "GET" then
          local params = setmetatable({ oid = 2, uid = 41 }, { __index = function() return 1 end })
          local q = {}
          for _, f in ipairs(e.required or {}) do q[f] = "x" end
          local r = get(fill(e.path, params), { query = q })
          assert.is_true(r.status < 500, e.name .. " " .. tostring(r.status))
          if r.status == 200 and e.response ~= "binary" then
            assert.is_table(r.json, e.name)
            if e.response == "list" then
              assert.truthy(r.headers["x-pagination-total-count"], e.name)
            end
          end
          checked = checked + 1
        end
      end
      assert.is_true(checked > 150)
    end)

    it("answers a stateless endpoint with the seed's sample fields", function()
      local r = get("/helpers/settings")
      assert.equal(200, r.status)
      assert.equal("Timezone", r.json[1].name)
      for _, k in ipairs({ "id", "name", "description", "constrained" }) do
        assert.is_not_nil(r.json[1][k], k)
      end
      r = get("/helpers/placeholder", { query = { text = "AK" } })
      assert.equal(200, r.status)
      assert.equal("image/png", r.headers["content-type"])
      assert.equal("\137PNG", r.body:sub(1, 4))
      assert.equal(422, get("/helpers/placeholder").status)
    end)

    it("answers the user/me helpers in the seed's shapes", function()
      local r = sb:request("POST", "/user/me/password-strength",
        { token = sb.tok, body = { password = "eight wide field" } })
      assert.same({ score = 4 }, r.json) -- the seed's example
      r = sb:request("POST", "/user/me/password-strength", { token = sb.tok, body = { password = "password" } })
      assert.same({ score = 0 }, r.json)
      r = get("/user/me/generate-otp-uri")
      assert.is_string(r.json["qr-code"])
      assert.matches("^%u[%u%d]+$", r.json.secret)
      r = sb:request("POST", "/user/me/update-password", { token = sb.tok, body = {
        current_password = sb.credentials.password.password, new_password = "abc", new_password_repeat = "abc" } })
      assert.equal(422, r.status)
      assert.same({ { field = "new_password",
        message = "This is a weak password, Please set stronger password for your account" } }, r.json)
    end)
  end)
end)

