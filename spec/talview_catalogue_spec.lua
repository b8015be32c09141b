-- The Talview v4 catalogue (lua/assesskit/talview/catalogue.lua) against the seed it was
-- read from: every request line of the seed maps to an entry (after the documented
-- resolutions), and every entry is well-formed for the client and the sandbox that are
-- built from it. spec/fixtures/talview_seed_requests.txt holds the seed's request lines
-- (tools/seed-requests.sh); when the seed itself is present (../shared/seeds/ from the repo
-- root) the fixture is also checked against it.

local catalogue = require("assesskit.talview.catalogue")
local resolutions = require("assesskit.talview.resolutions")

local here = debug.getinfo(1, "S").source:match("^@(.*)[/\\][^/\\]*$") or "spec"
local root = here:match("^(.*)[/\\]spec$") or "."
local FIXTURE = here .. "/fixtures/talview_seed_requests.txt"
local SEED = root .. "/../shared/seeds/002_3384fbf1d7adbc06.txt"
local DOC = root .. "/docs/catalogue.md"
local DOC_TOOL = root .. "/tools/catalogue-doc.lua"

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true }
local AREAS = { helpers = true, user = true, admin = true, models = true, actions = true,
  mobile = true, attend = true, spreadsheet = true }
local REST = { list = true, get = true, create = true, update = true, delete = true }
local CLIENT_METHODS = { list = true, each = true, get = true, create = true, update = true,
  delete = true }
local RESPONSES = { list = true, object = true, empty = true, binary = true }
local LUA_KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do LUA_KEYWORDS[w] = true end

local function read_lines(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local t = {}
  for l in f:lines() do t[#t + 1] = l end
  f:close()
  return t
end

local function fixture()
  local lines = assert(read_lines(FIXTURE), "missing " .. FIXTURE)
  local t = {}
  for _, l in ipairs(lines) do
    local n, text = l:match("^(%d+)\t(.+)$")
    assert(n, "malformed fixture line: " .. l)
    t[#t + 1] = { line = tonumber(n), text = text }
  end
  return t
end

-- The only rewriting a seed request line gets without a resolution.
local function mechanical(text)
  text = text:gsub(" HTTP/1%.1$", "")
  return (text:gsub("<id>", "{id}"):gsub("<oid>", "{oid}"))
end

local function key(e) return e.method .. " " .. e.path end

local function index()
  local by_key, by_name = {}, {}
  for _, e in ipairs(catalogue.endpoints) do
    by_key[key(e)] = e
    by_name[e.name] = e
  end
  local res_by_line = {}
  for _, r in ipairs(resolutions) do
    res_by_line[r.seed_line] = res_by_line[r.seed_line] or {}
    table.insert(res_by_line[r.seed_line], r)
  end
  return by_key, by_name, res_by_line
end

local function placeholders(path)
  local t = {}
  for p in path:gmatch("{([^}]*)}") do t[p] = true end
  return t
end

local function set(list)
  local t = {}
  for _, v in ipairs(list or {}) do t[v] = true end
  return t
end

-- Maps one seed request line to its entry key (or false when deliberately excluded).
local function resolve(req, res_by_line)
  for _, r in ipairs(res_by_line[req.line] or {}) do
    if req.text:find(r.seed, 1, true) then
      return r.resolved or false, r
    end
  end
  return mechanical(req.text)
end

describe("Talview catalogue", function()
  describe("#luajit as plain data", function()
    it("loads without requires or globals and returns the documented shape", function()
      local f = assert(io.open(root .. "/lua/assesskit/talview/catalogue.lua", "r"))
      local src = f:read("*a")
      f:close()
      local env = {}
      local chunk = assert(load(src, "=catalogue", "t", env))
      if setfenv then setfenv(chunk, env) end
      local t = chunk()
      assert.is_table(t)
      assert.equals("https://apiv4.talview.com", t.base_url)
      assert.is_true(#t.endpoints > 300)
      assert.is_nil(t.resolutions) -- prose for people: assesskit.talview.resolutions
      assert.same({}, env)
    end)
  end)

  describe("against the seed's request lines", function()
    local by_key, _, res_by_line = index()

    it("maps every request line of the seed to an entry or to a documented exclusion", function()
      local missing = {}
      for _, req in ipairs(fixture()) do
        local k = resolve(req, res_by_line)
        if k ~= false and not by_key[k] then
          missing[#missing + 1] = req.line .. ": " .. req.text .. " -> " .. tostring(k)
        end
      end
      assert.same({}, missing)
    end)

    it("gives every exclusion a reason", function()
      local n = 0
      for _, req in ipairs(fixture()) do
        local k, r = resolve(req, res_by_line)
        if k == false then
          n = n + 1
          assert.is_string(r.why)
          assert.is_true(#r.why > 20, "exclusion of line " .. req.line .. " needs a why")
        end
      end
      assert.is_true(n > 0)
    end)

    it("reaches every entry from some seed line, and its seed_line is that line or a heading", function()
      local fix, reached = {}, {}
      for _, req in ipairs(fixture()) do
        fix[req.line] = req
        local k = resolve(req, res_by_line)
        if k then reached[k] = reached[k] or {}; reached[k][req.line] = true end
      end
      for _, r in ipairs(resolutions) do
        if r.resolved and by_key[r.resolved] and not fix[r.seed_line] then
          reached[r.resolved] = reached[r.resolved] or {}
          reached[r.resolved][r.seed_line] = true
        end
      end
      local bad = {}
      for _, e in ipairs(catalogue.endpoints) do
        local from = reached[key(e)]
        if not from then
          bad[#bad + 1] = e.name .. " is not documented by any seed line"
        elseif fix[e.seed_line] and not from[e.seed_line] then
          bad[#bad + 1] = e.name .. ": seed_line " .. e.seed_line .. " is a request line of another endpoint"
        end
      end
      assert.same({}, bad)
    end)

    it("keeps resolutions of request lines pointing at real entries", function()
      local fix = {}
      for _, req in ipairs(fixture()) do fix[req.line] = req.text end
      for _, r in ipairs(resolutions) do
        if fix[r.seed_line] then
          assert.is_truthy(fix[r.seed_line]:find(r.seed, 1, true),
            "resolution " .. r.seed_line .. " quotes text that is not on that line")
          if r.resolved ~= nil then
            assert.is_truthy(by_key[r.resolved], "resolution " .. r.seed_line .. " -> " .. r.resolved)
          end
        elseif r.resolved and r.resolved:match("^%u+ /") then
          assert.is_truthy(by_key[r.resolved], "resolution " .. r.seed_line .. " -> " .. r.resolved)
        end
      end
    end)
  end)

  describe("entries", function()
    it("have unique, well-formed names that follow the path", function()
      local seen, bad = {}, {}
      for _, e in ipairs(catalogue.endpoints) do
        local name = e.name
        if seen[name] then bad[#bad + 1] = "duplicate " .. name end
        seen[name] = true
        local parts = {}
        for p in name:gmatch("[^.]+") do parts[#parts + 1] = p end
        if #parts < 2 or #parts > 3 then bad[#bad + 1] = "shape " .. name end
        for _, p in ipairs(parts) do
          if not p:match("^[a-z][a-z0-9_]*$") or LUA_KEYWORDS[p] then
            bad[#bad + 1] = "identifier " .. name
          end
        end
        local area = e.path:match("^/([^/]+)")
        if parts[1] ~= area or not AREAS[area] then bad[#bad + 1] = "area " .. name end
      end
      assert.same({}, bad)
    end)

    it("use REST action names only with their REST meaning", function()
      local bad = {}
      for _, e in ipairs(catalogue.endpoints) do
        local action = e.name:match("([^.]+)$")
        local one = e.path:match("/{id}$") ~= nil
        if action == "list" and not (e.method == "GET" and not one and e.paged) then
          bad[#bad + 1] = e.name
        elseif action == "get" and e.method ~= "GET" then
          bad[#bad + 1] = e.name
        elseif action == "create" and e.method ~= "POST" then
          bad[#bad + 1] = e.name
        elseif action == "update" and not (e.method == "PUT" or e.method == "PATCH") then
          bad[#bad + 1] = e.name
        elseif action == "delete" and e.method ~= "DELETE" then
          bad[#bad + 1] = e.name
        elseif not REST[action] and CLIENT_METHODS[action] then
          bad[#bad + 1] = e.name .. " uses a client method name"
        end
        -- a GET of one record in a collection is always `get`, a GET of a collection `list`
        if e.method == "GET" and one and action ~= "get" then bad[#bad + 1] = e.name end
      end
      assert.same({}, bad)
    end)

    it("do not give a resource and an action of the same area the same name", function()
      local resources, actions = {}, {}
      for _, e in ipairs(catalogue.endpoints) do
        local a, b, c = e.name:match("^([^.]+)%.([^.]+)%.?([^.]*)$")
        if c ~= "" then resources[a .. "." .. b] = true else actions[a .. "." .. b] = true end
      end
      for k in pairs(actions) do assert.is_nil(resources[k], k) end
    end)

    it("have a valid method, a rooted path and well-formed placeholders", function()
      for _, e in ipairs(catalogue.endpoints) do
        assert.is_true(METHODS[e.method] == true, e.name)
        assert.is_truthy(e.path:match("^/[a-z]"), e.name)
        assert.is_nil(e.path:find("[%s<>?#]"), e.name)
        assert.is_nil(e.path:find("//", 1, true), e.name)
        assert.is_nil(e.path:find("/$"), e.name)
        for seg in e.path:gmatch("[^/]+") do
          assert.is_truthy(seg:match("^[a-z][a-z0-9_-]*$") or seg:match("^{[a-z][a-z_]*}$"),
            e.name .. ": segment " .. seg)
        end
      end
    end)

    it("use {id} for the record and named placeholders for parents", function()
      for _, e in ipairs(catalogue.endpoints) do
        local ph = placeholders(e.path)
        for p in pairs(ph) do
          assert.is_truthy(p == "id" or p == "oid" or p == "uid" or p == "settings_id", e.name .. " {" .. p .. "}")
        end
        if ph.uid then assert.is_truthy(e.path:find("/organization/{oid}/user/{uid}/", 1, true), e.name) end
        if ph.oid then assert.is_truthy(e.path:find("^/admin/organization/{oid}"), e.name) end
      end
    end)

    it("list only non-path parameters in query, body and required, each once", function()
      for _, e in ipairs(catalogue.endpoints) do
        local ph = placeholders(e.path)
        for _, field in ipairs({ "query", "body", "required" }) do
          local seen = {}
          for _, p in ipairs(e[field] or {}) do
            assert.is_string(p)
            assert.is_truthy(p:match("^[%a_][%w_]*$"), e.name .. "." .. field .. ": " .. p)
            assert.is_nil(ph[p], e.name .. ": path parameter " .. p .. " in " .. field)
            assert.is_nil(seen[p], e.name .. ": " .. p .. " twice in " .. field)
            seen[p] = true
          end
        end
      end
    end)

    it("require only documented parameters (required is a subset of query and body)", function()
      for _, e in ipairs(catalogue.endpoints) do
        local q, b = set(e.query), set(e.body)
        for _, r in ipairs(e.required or {}) do
          assert.is_true(q[r] or b[r] or false, e.name .. ": required " .. r .. " is not documented")
        end
      end
    end)

    it("send a body only with methods that carry one", function()
      for _, e in ipairs(catalogue.endpoints) do
        if e.method == "GET" or e.method == "DELETE" then assert.is_nil(e.body, e.name) end
      end
    end)

    it("name a file field for every upload, in the body, and required", function()
      local n = 0
      for _, e in ipairs(catalogue.endpoints) do
        if e.upload then
          n = n + 1
          assert.is_true(e.upload == "multipart" or e.upload == "base64", e.name)
          assert.is_string(e.file_field, e.name)
          assert.is_true(set(e.body)[e.file_field] or false, e.name .. ": file_field not in body")
          assert.is_true(set(e.required)[e.file_field] or false, e.name .. ": file_field not required")
          assert.equals("POST", e.method, e.name)
          if e.upload == "base64" then assert.equals("data", e.file_field, e.name) end
        else
          assert.is_nil(e.file_field, e.name)
        end
      end
      assert.is_true(n >= 7)
    end)

    it("mark uploads where the seed sends files", function()
      local multipart = { "/spreadsheet", "/models/file", "/user/display-picture",
        "/mobile/answer-file", "/mobile/answer-recording" }
      local base64 = { "/models/file-upload", "/mobile/file-upload" }
      local by_key = index()
      for _, p in ipairs(multipart) do
        assert.equals("multipart", (by_key["POST " .. p] or {}).upload, p)
      end
      for _, p in ipairs(base64) do
        assert.equals("base64", (by_key["POST " .. p] or {}).upload, p)
      end
    end)

    it("describe responses: list pages, DELETE is empty", function()
      for _, e in ipairs(catalogue.endpoints) do
        assert.is_true(RESPONSES[e.response] or false, e.name)
        local action = e.name:match("([^.]+)$")
        if action == "list" then
          assert.equals("list", e.response, e.name)
          assert.is_true(e.paged, e.name)
        else
          assert.is_nil(e.paged, e.name)
        end
        if e.method == "DELETE" then assert.equals("empty", e.response, e.name) end
      end
    end)

    it("carry a summary, a seed line and, where restricted, role names", function()
      for _, e in ipairs(catalogue.endpoints) do
        assert.is_string(e.summary)
        assert.is_true(#e.summary > 3, e.name)
        assert.is_true(math.type and math.type(e.seed_line) == "integer" or e.seed_line % 1 == 0, e.name)
        if e.roles then
          assert.is_true(#e.roles > 0, e.name)
          for _, r in ipairs(e.roles) do assert.is_truthy(r:match("^%u[%a ]+$"), e.name) end
        end
      end
    end)

    it("only use fields of the documented shape", function()
      local allowed = set({ "name", "method", "path", "summary", "seed_line", "query", "body",
        "required", "paged", "filters", "upload", "file_field", "roles", "response" })
      for _, e in ipairs(catalogue.endpoints) do
        for k in pairs(e) do assert.is_true(allowed[k] or false, e.name .. ": " .. tostring(k)) end
      end
      for _, r in ipairs(resolutions) do
        for k in pairs(r) do
          assert.is_true(k == "seed_line" or k == "seed" or k == "resolved" or k == "why", tostring(k))
        end
        assert.is_string(r.seed)
        assert.is_string(r.why)
      end
    end)
  end)

  describe("the Lua API it yields", function()
    local _, by_name = index()
    it("names the examples of the design as documented", function()
      local expect = {
        ["models.candidate.list"] = "GET /models/candidate",
        ["models.candidate.get"] = "GET /models/candidate/{id}",
        ["admin.category.list"] = "GET /admin/organization/{oid}/category",
        ["admin.user_category.list"] = "GET /admin/organization/{oid}/user/{uid}/category",
        ["user.me.update_password"] = "POST /user/me/update-password",
        ["actions.invite"] = "POST /actions/invite",
        ["spreadsheet.upload"] = "POST /spreadsheet",
        ["admin.custom_field_master.update"] = "PUT /admin/organization/{oid}/custom-field-master/{id}",
        ["models.evaluation.update"] = "PUT /models/evaluation/{id}",
      }
      for name, k in pairs(expect) do
        assert.is_table(by_name[name], name)
        assert.equals(k, key(by_name[name]))
      end
    end)
  end)

  describe("resolutions", function()
    local seed = read_lines(SEED)

    it("refer to real seed lines", function()
      if not seed then
        pending("needs the API documents (../shared/seeds/002_*.txt) beside the checkout: checks that "
          .. "every resolution's seed_line holds the seed text it resolves, and every endpoint's seed_line is "
          .. "a line of the seed")
        return
      end
      for _, r in ipairs(resolutions) do
        local line = seed[r.seed_line]
        assert.is_string(line, "no seed line " .. r.seed_line)
        assert.is_truthy(line:find(r.seed, 1, true),
          "seed line " .. r.seed_line .. " does not contain: " .. r.seed)
      end
      for _, e in ipairs(catalogue.endpoints) do
        assert.is_truthy(seed[e.seed_line] and seed[e.seed_line]:match("%S"), e.name)
      end
    end)

    it("are all listed in docs/catalogue.md, which is generated from the catalogue", function()
      local doc = assert(io.open(DOC, "r"), "missing docs/catalogue.md")
      local text = doc:read("*a")
      doc:close()
      local tool = assert(loadfile(DOC_TOOL))()
      assert.equals(tool.render_into(text, catalogue, resolutions), text,
        "docs/catalogue.md is stale: run lua5.4 tools/catalogue-doc.lua")
      for _, r in ipairs(resolutions) do
        assert.is_truthy(text:find("| " .. r.seed_line .. " |", 1, true), "line " .. r.seed_line)
      end
    end)
  end)

  describe("fixture", function()
    it("is in sync with the seed", function()
      local seed = read_lines(SEED)
      if not seed then
        pending("needs the API documents (../shared/seeds/002_*.txt) beside the checkout: checks that "
          .. "spec/fixtures/talview_seed_requests.txt lists the seed's request lines as the seed has them")
        return
      end
      local want = {}
      for i, l in ipairs(seed) do
        local m = l:match("^%s*(%u+)%f[^%w]")
        if METHODS[m] then
          want[#want + 1] = { line = i, text = (l:gsub("^%s+", ""):gsub("%s+$", "")) }
        end
      end
      assert.same(want, fixture())
    end)
  end)
end)
