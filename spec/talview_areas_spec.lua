-- Every area of the Talview catalogue makes a real request to the sandbox (helpers, user/me,
-- user, admin, models, actions, mobile, attend, spreadsheet), and the results behave as
-- documented: JSON with the null sentinel, paging metadata, lazy `each`, 204 as true,
-- created records, 422 fields, the suppress_error_code envelope, and uploads.
--
-- Seeded sandbox data used here (assesskit.sandbox.seed): organisation 2, the recruiter user
-- 41, candidates 10001-10300, assessment 1001 with section 2001, setting 1.

local sandbox = require("support.sandbox")
local sys = require("support.sys")
local talview = require("assesskit.talview")
local core = require("assesskit.core")
local cjson = require("cjson")

local tmpfile = sys.tmpfile

describe("talview areas", function()
  local sb = sandbox.fixture({ reset = true, clear = true })
  local tv, creds

  setup(function()
    creds = sb.credentials.password
    tv = sb:talview()
  end)

  teardown(function()
    if tv then tv:close() end
  end)

  local function last_api(path)
    local log = sb:requests({ path = path })
    return log[#log]
  end

  describe("helpers", function()
    it("lists settings and gets one", function()
      local settings, err, res = tv.helpers.settings:list()
      assert.is_nil(err)
      assert.is_true(#settings >= 1)
      assert.equal(#settings, res.paging.total)
      local one = assert(tv.helpers.settings:get(settings[1].id))
      assert.equal(settings[1].name, one.name)
    end)

    it("returns the placeholder image as bytes, not JSON", function()
      local png, err = tv.helpers:placeholder({ text = "AB", width = 64 })
      assert.is_nil(err)
      assert.is_string(png)
      assert.equal("\137PNG", png:sub(1, 4))
      assert.equal("text=AB&width=64", last_api("/helpers/placeholder").query)
    end)

    it("checks the required text before sending", function()
      local _, err = tv.helpers:placeholder({ width = 64 })
      assert.equal("validation", err.kind)
      assert.equal("text", err.fields[1].field)
      assert.equal(0, #sb:requests({ path = "/helpers/placeholder" }))
    end)
  end)

  describe("user/me and user", function()
    it("gets me, with JSON null as talview.null", function()
      local me, err = tv.user.me:get()
      assert.is_nil(err)
      assert.equal(creds.username, me.username)
      assert.equal(talview.null, me.phone)
    end)

    it("lists users and gets one", function()
      local users = assert(tv.user:list())
      local found
      for _, u in ipairs(users) do if u.id == 41 then found = u end end
      assert.is_table(found)
      local u = assert(tv.user:get(41))
      assert.equal(found.username, u.username)
    end)
  end)

  describe("admin", function()
    it("lists the categories of an organisation and gets one", function()
      local cats, err, res = tv.admin.category:list(2)
      assert.is_nil(err)
      assert.is_true(#cats >= 1)
      assert.equal("/admin/organization/2/category", last_api("/admin/organization/2/category").path)
      assert.equal(1, res.paging.page)
      local one = assert(tv.admin.category:get(2, cats[1].id))
      assert.equal(cats[1].id, one.id)
    end)
  end)

  describe("models", function()
    it("lists with the paging metadata of the headers", function()
      local items, err, res = tv.models.candidate:list({ page = 2, pageSize = 5 })
      assert.is_nil(err)
      assert.equal(5, #items)
      local p = res.paging
      assert.equal(2, p.page)
      assert.equal(5, p.per_page)
      assert.is_true(p.total >= 300)
      assert.equal(math.ceil(p.total / 5), p.page_count)
      assert.matches("page=3", p.next)
      assert.equal(res, talview.response(items))
    end)

    it("walks every page lazily with each", function()
      local _, _, res = tv.models.candidate:list({ pageSize = 40 })
      local total, per_page = res.paging.total, res.paging.per_page
      sb:clear_requests()
      local it = tv.models.candidate:each({ pageSize = 40 })
      local first = it()
      assert.is_table(first)
      assert.equal(1, #sb:requests({ path = "/models/candidate" }))
      local n, seen, dup = 1, { [first.id] = true }, false
      for c, e in it do
        assert.is_nil(e)
        if seen[c.id] then dup = true end
        seen[c.id] = true
        n = n + 1
      end
      assert.equal(total, n)
      assert.is_false(dup)
      assert.equal(math.ceil(total / per_page), #sb:requests({ path = "/models/candidate" }))
    end)

    it("walks page by page with pages", function()
      local sizes = {}
      local total
      for items, err, res in tv.models.candidate:pages({ pageSize = 40 }) do
        assert.is_nil(err)
        sizes[#sizes + 1] = #items
        assert.equal(#sizes, res.paging.page)
        total = res.paging.total
      end
      assert.equal(40, sizes[1])
      assert.equal(math.ceil(total / 40), #sizes)
      assert.equal(total - 40 * (#sizes - 1), sizes[#sizes])
    end)

    it("gets with expand sent as a comma list", function()
      local c, err = tv.models.candidate:get(10001, { expand = { "status", "assessmentCandidates" } })
      assert.is_nil(err)
      assert.equal(10001, c.id)
      assert.equal("expand=status%2CassessmentCandidates", last_api("/models/candidate/10001").query)
    end)

    it("creates, updates and deletes; a delete gives true (204); the record is then gone", function()
      local c, err, res = tv.models.candidate:create({ first_name = "Ada", last_name = "Lovelace",
        email = "ada@example.test" })
      assert.is_nil(err)
      assert.equal(201, res.status)
      assert.is_number(c.id)
      local body = cjson.decode(last_api("/models/candidate").body)
      assert.equal("ada@example.test", body.email)
      local u
      u, err = tv.models.candidate:update(c.id, { phone = "12345" })
      assert.is_nil(err)
      assert.equal("12345", u.phone)
      local ok, _, dres = tv.models.candidate:delete(c.id)
      assert.is_true(ok)
      assert.equal(204, dres.status)
      local gone
      gone, err = tv.models.candidate:get(c.id)
      assert.is_nil(gone)
      assert.equal("http", err.kind)
      assert.equal(404, err.status)
    end)

    it("gives the fields of a 422", function()
      local _, err = tv.models.candidate:create({ first_name = "X", email = "not-an-email" })
      assert.equal("http", err.kind)
      assert.equal(422, err.status)
      assert.equal("email", err.fields[1].field)
      assert.is_string(err.fields[1].message)
    end)

    it("turns a suppress_error_code envelope back into the value or the error", function()
      local c, err = tv.models.candidate:get(10001, { suppress_error_code = true })
      assert.is_nil(err)
      assert.equal(10001, c.id)
      local e = last_api("/models/candidate/10001")
      assert.equal("suppress_error_code=true", e.query)
      assert.equal(200, e.status)
      local v
      v, err = tv.models.candidate:get(99999, { suppress_error_code = true })
      assert.is_nil(v)
      assert.equal("http", err.kind)
      assert.equal(404, err.status)
      assert.equal(200, last_api("/models/candidate/99999").status)
      assert.matches("^http 404 ", tostring(err))
    end)

    it("uploads a file as base64 data, from a path or a string", function()
      local path = tmpfile("name,email\nA,a@example.test\n")
      local v, err = tv.models.file:upload({ file = path })
      assert.is_nil(err)
      assert.is_table(v)
      local body = cjson.decode(last_api("/models/file-upload").body)
      local b64url = (body.data:gsub("%+", "-"):gsub("/", "_"))
      assert.equal("name,email\nA,a@example.test\n", core.b64url_decode(b64url))
      assert.equal(path:match("[^/]+$"), body.name)
      v, err = tv.models.file:upload({ content = "\0\1\2binary\255", name = "b.bin" })
      assert.is_nil(err)
      assert.is_table(v)
      body = cjson.decode(last_api("/models/file-upload").body)
      assert.equal("AAECYmluYXJ5/w==", body.data)
      assert.equal("b.bin", body.name)
      os.remove(path)
    end)

    it("uploads a file as multipart, with the other fields", function()
      local path = tmpfile("resume text")
      local f, err, res = tv.models.file:create({ file = path, file_type_id = 15 })
      assert.is_nil(err)
      assert.is_table(f)
      assert.equal(201, res.status)
      local e = last_api("/models/file")
      assert.matches("^multipart/form%-data", e.content_type)
      assert.matches('name="file"', e.body)
      assert.matches("resume text", e.body)
      assert.matches('name="file_type_id"', e.body)
      os.remove(path)
    end)

    it("uploads the display picture from a path", function()
      local path = tmpfile("\137PNG fake")
      local v, err = tv.user.display_picture:create({ file = path }, { filename = "me.png",
        content_type = "image/png" })
      assert.is_nil(err)
      assert.is_table(v)
      local e = last_api("/user/display-picture")
      assert.matches('filename="me.png"', e.body)
      assert.matches("Content%-Type: image/png", e.body)
      os.remove(path)
    end)
  end)

  describe("actions", function()
    it("invites a candidate to an assessment section", function()
      local v, err = tv.actions:invite({ assessmentSectionID = 2001, candidates = { 10200 },
        endDate = "2030-01-31 23:59:59" })
      assert.is_nil(err)
      assert.is_table(v)
      local e = last_api("/actions/invite")
      assert.equal(200, e.status)
      assert.same({ 10200 }, cjson.decode(e.body).candidates)
    end)

    it("names the field of an unknown reference (422)", function()
      local _, err = tv.actions:invite({ assessmentSectionID = 99, candidates = { 10200 },
        endDate = "2030-01-31 23:59:59" })
      assert.equal(422, err.status)
      assert.equal("assessmentSectionID", err.fields[1].field)
    end)
  end)

  describe("mobile", function()
    it("lists forms", function()
      local forms, err, res = tv.mobile.form:list()
      assert.is_nil(err)
      assert.is_table(forms)
      assert.is_number(res.paging.total)
    end)

    it("uploads a file as base64 data", function()
      local v, err = tv.mobile.file:upload({ content = "hello", name = "h.txt", file_type_id = 25 })
      assert.is_nil(err)
      assert.is_truthy(v)
      local body = cjson.decode(last_api("/mobile/file-upload").body)
      assert.equal("aGVsbG8=", body.data)
      assert.equal(25, body.file_type_id)
    end)

    it("posts an answer file as multipart", function()
      local path = tmpfile("essay attachment")
      local v, err = tv.mobile.answer_file:create({ file = path, answer_id = 1, sequence = 1 })
      assert.is_nil(err)
      assert.is_table(v)
      assert.matches("essay attachment", last_api("/mobile/answer-file").body)
      os.remove(path)
    end)
  end)

  describe("attend", function()
    it("lists answers", function()
      local answers, err = tv.attend.answer:list()
      assert.is_nil(err)
      assert.is_true(#answers >= 1)
      assert.equal("/attend/answer", last_api("/attend/answer").path)
    end)
  end)

  describe("spreadsheet", function()
    it("uploads a CSV from a path as multipart", function()
      local path = tmpfile("name,email\nAda,ada@example.test\n")
      local v, err = tv.spreadsheet:upload({ file = path })
      assert.is_nil(err)
      assert.is_truthy(v)
      local e = last_api("/spreadsheet")
      assert.matches("^multipart/form%-data", e.content_type)
      assert.matches("Ada,ada@example.test", e.body)
      os.remove(path)
    end)

    it("requires the file", function()
      local _, err = tv.spreadsheet:upload({})
      assert.equal("validation", err.kind)
      assert.equal("file", err.fields[1].field)
    end)
  end)
end)
