-- Editor support: the LuaLS annotation files in types/ are what tools/annotations.lua makes
-- from the catalogues (regenerate with `make annotations`), they annotate every endpoint with
-- its parameters, and they hold together (each file is Lua, every type named is declared,
-- every @param is an argument). No language server is packaged for Debian 12 or found on npm
-- here, so this structural check stands in for one. Also: `endpoints()` rows carry each
-- endpoint's parameters, from the same data.

local sys = require "support.sys"
local nginx = require "support.nginx"

local q = sys.quote
local REPO = nginx.repo
local SEED = REPO .. "/../shared/seeds/002_3384fbf1d7adbc06.txt"

local FILES = { "assesskit/errors.lua", "assesskit/init.lua", "assesskit/interviewmocha.lua",
  "assesskit/jwt.lua", "assesskit/local_sandbox.lua", "assesskit/talview.lua" }

local function committed(path) return sys.read(REPO .. "/types/" .. path) end

describe("the annotation files", function()
  local tmp
  after_each(function()
    if tmp then sys.rmdir(tmp) end
    tmp = nil
  end)

  it("are what tools/annotations.lua makes from the catalogues (make annotations)", function()
    tmp = sys.tmpdir("types")
    sys.must("cd " .. q(REPO) .. " && lua5.4 tools/annotations.lua " .. q(tmp))
    local made = sys.must("cd " .. q(tmp) .. " && find . -type f | LC_ALL=C sort")
    local have = sys.must("cd " .. q(REPO .. "/types") .. " && find . -type f | LC_ALL=C sort")
    assert.equal(made, have, "types/ holds other files than the generator writes")
    for _, f in ipairs(FILES) do
      assert.is_true(sys.read(tmp .. "/" .. f) == committed(f),
        "types/" .. f .. " is stale: run make annotations")
    end
  end)

  it("change when the catalogue does (a renamed endpoint is seen)", function()
    tmp = sys.tmpdir("types")
    sys.must("mkdir -p " .. q(tmp .. "/lua/assesskit/talview") .. " && cp -r " .. q(REPO .. "/lua") .. " "
      .. q(REPO .. "/tools") .. " " .. q(tmp))
    local cat = tmp .. "/lua/assesskit/talview/catalogue.lua"
    local text = sys.read(cat):gsub('name = "models%.candidate%.get"', 'name = "models.candidate.fetch"', 1)
    sys.write(cat, text)
    sys.must("cd " .. q(tmp) .. " && lua5.4 tools/annotations.lua out")
    local made = sys.read(tmp .. "/out/assesskit/talview.lua")
    assert.matches("function models_candidate:fetch%(id, params, opts%) end", made)
    assert.is_not.equal(committed("assesskit/talview.lua"), made)
  end)

  it("annotate every Talview endpoint once, with its summary, path values and parameters", function()
    local text = committed("assesskit/talview.lua")
    local cat = require "assesskit.talview.catalogue"
    local count = select(2, text:gsub("\nfunction [%w_]+:[%w_]+%(", ""))
      - select(2, text:gsub("\nfunction Client:[%w_]+%(", ""))
    local expected = #cat.endpoints
    for _, e in ipairs(cat.endpoints) do
      if e.paged and e.name:match("%.list$") then expected = expected + 2 end -- each, pages
    end
    assert.equal(expected, count)
    for _, e in ipairs(cat.endpoints) do
      local res, action = e.name:match("^(.*)%.([%w_]+)$")
      local var = res:gsub("%.", "_")
      local args = {}
      for name in e.path:gmatch("{([%w_]+)}") do args[#args + 1] = name end
      args[#args + 1] = "params"
      args[#args + 1] = "opts"
      local fn = ("\nfunction %s:%s(%s) end\n"):format(var, action, table.concat(args, ", "))
      local at = text:find(fn, 1, true)
      assert(at, "no annotated function for " .. e.name .. ": " .. fn)
      -- the comment block above it starts with the summary and the request line
      local block = text:sub(1, at):match("\n\n(%-%-%-[^\n]*[^\n]*.-)$")
      assert(block and block:find(e.summary, 1, true), e.name .. ": summary missing")
      assert(block:find("`" .. e.method .. " " .. e.path .. "`", 1, true), e.name .. ": request line missing")
      -- required fields have no ?, optional ones do
      local required = {}
      for _, r in ipairs(e.required or {}) do required[r] = true end
      for _, p in ipairs(e.body or {}) do
        local cls = text:match("\n%-%-%-@class assesskit%.talview%." .. e.name:gsub("%.", "%%.")
          .. "%.Params\n(.-)\n\n")
        assert(cls, e.name .. ": no Params class")
        local mark = cls:match("%-%-%-@field " .. p:gsub("[%-%.]", "%%%0") .. "(%??) ")
          or cls:match('%-%-%-@field %["' .. p:gsub("[%-%.]", "%%%0") .. '"%](%??) ')
        assert(mark, e.name .. ": no field " .. p)
        assert.equal(required[p] and "" or "?", mark, e.name .. "." .. p)
      end
    end
    -- a documented type and description reach the editor
    assert.matches("%-%-%-@field email string %(body, required%) The email of the candidate", text)
    assert.matches("%-%-%-@field ids%? integer%[%] %(query%)", text)
  end)

  it("annotate the option tables of new, each and map, and the error object", function()
    local tv = committed("assesskit/talview.lua")
    local im = committed("assesskit/interviewmocha.lua")
    local errs = committed("assesskit/errors.lua")
    local gen = dofile(REPO .. "/tools/annotations.lua")
    -- every option the API clients pass on to assesskit.client is annotated on both
    local endpoints = require "assesskit.endpoints"
    for _, name in ipairs(endpoints.CLIENT_OPTIONS) do
      assert.matches("\n%-%-%-@field " .. name .. "%? ", tv, "talview option " .. name)
      assert.matches("\n%-%-%-@field " .. name .. "%? ", im, "interviewmocha option " .. name)
    end
    assert.truthy(#gen.CLIENT_OPTIONS >= #endpoints.CLIENT_OPTIONS)
    for _, name in ipairs({ "auth", "token_url", "token_store" }) do
      assert.matches("\n%-%-%-@field " .. name .. "%? ", tv)
    end
    for _, name in ipairs({ "api_key", "v2_url", "v3_url" }) do
      assert.matches("\n%-%-%-@field " .. name .. "%? ", im)
    end
    for _, name in ipairs({ "concurrency", "on_result", "on_progress", "stop_on_error", "max_rate",
      "journal", "key", "reconcile", "retry_failed" }) do
      assert.matches("@class assesskit%.MapOptions\n.-%-%-%-@field " .. name .. "%? ", errs)
    end
    assert.matches("@class assesskit%.EachOptions: assesskit%.CallOptions\n%-%-%-@field concurrency%? integer", errs)
    -- the error kinds are assesskit.errors.KINDS, every one
    local kinds = {}
    for k in pairs(require("assesskit.errors").KINDS) do kinds[#kinds + 1] = '"' .. k .. '"' end
    table.sort(kinds)
    assert.matches("---@alias assesskit.ErrorKind " .. table.concat(kinds, "|"):gsub("%p", "%%%0"), errs)
    for _, f in ipairs({ "kind", "status", "name", "message", "code", "fields", "retryable",
      "retry_after", "method", "url", "sent" }) do
      assert.matches("@class assesskit%.Error\n.-%-%-%-@field " .. f .. " ", errs)
    end
  end)

  it("annotate the grants and the per-call options as the library takes them", function()
    local tv = committed("assesskit/talview.lua")
    local errs = committed("assesskit/errors.lua")
    -- every per-call option of both clients is a field of CallOptions
    for _, mod in ipairs({ "assesskit.talview", "assesskit.interviewmocha" }) do
      for _, name in ipairs(require(mod).CALL_OPTIONS) do
        assert.matches("@class assesskit%.CallOptions\n.-%-%-%-@field " .. name .. "%? ", errs, mod .. " " .. name)
      end
    end
    -- the jwt grant takes issuer alone: client_id is optional in JwtGrant
    local jwt = tv:match("@class assesskit%.talview%.JwtGrant\n(.-)\n\n")
    assert.matches("%-%-%-@field client_id%? string", jwt)
    assert.matches("%-%-%-@field wait_timeout%? number", jwt)
    assert.matches("%-%-%-@field wait_timeout%? number", tv:match("@class assesskit%.talview%.PasswordGrant\n(.-)\n\n"))
    local c = require("assesskit.talview").new({ auth = { grant = "jwt", issuer = "svc@example.test",
      private_key = "-----BEGIN PRIVATE KEY-----\nnot used before a call\n-----END PRIVATE KEY-----\n" } })
    c:close()
    -- a list that takes filters says so in its Params class
    assert.matches("@class assesskit%.talview%.models%.candidate%.list%.Params\n.-%-%-%-@field %[string%] any", tv)
  end)

  it("are Lua, declare every type they name and annotate only real arguments", function()
    local declared = {}
    local texts = {}
    for _, f in ipairs(FILES) do
      local text = committed(f)
      texts[f] = text
      assert(load(text, "=" .. f, "t", {}), f .. " does not parse as Lua")
      assert.matches("^%-%-%-@meta assesskit", text)
      for name in text:gmatch("%-%-%-@class ([%w_.]+)") do
        assert.is_nil(declared[name], "declared twice: " .. name)
        declared[name] = true
      end
      for name in text:gmatch("%-%-%-@alias ([%w_.]+)") do declared[name] = true end
    end
    -- the type expression of each annotation line (after the name, for @field and @param)
    local function type_of(line)
      local tag, rest = line:match("^%-%-%-@(%a+)%s+(.*)$")
      if tag == "field" or tag == "param" then
        return rest:match("^[%w_%[%]\"]+%??%s+(%S+)")
      elseif tag == "return" or tag == "type" then
        return rest:match("^(%S+)")
      elseif tag == "class" then
        return rest:match(":%s*(%S+)") or ""
      elseif tag == "alias" then
        return rest:match("^%S+%s+(.*)$")
      elseif tag == "overload" then
        return rest
      end
    end
    local checked_types, checked_params = 0, 0
    for f, text in pairs(texts) do
      local comments = {}
      for line in text:gmatch("[^\n]*") do
        if line:match("^%-%-%-@") and not line:match("^%-%-%-@meta ") then
          local ty = type_of(line)
          assert(ty, f .. ": cannot read the type of: " .. line)
          for name in ty:gmatch("assesskit%.[%w_.]*[%w_]") do
            assert(declared[name], f .. " names an undeclared type " .. name .. " in: " .. line)
            checked_types = checked_types + 1
          end
        end
        if line:match("^%-%-%-") then
          comments[#comments + 1] = line
        else
          local args = line:match("^function [%w_.:]+%(([^)]*)%) end$")
          if args then
            -- each ---@param above it names one of its arguments
            local set = {}
            for a in args:gmatch("[%w_]+") do set[a] = true end
            for _, c in ipairs(comments) do
              local p = c:match("^%-%-%-@param ([%w_]+)")
              if p then
                assert(set[p], f .. ": @param " .. p .. " is not an argument of (" .. args .. ")")
                checked_params = checked_params + 1
              end
            end
          end
          comments = {}
        end
      end
    end
    assert.truthy(checked_types > 1000 and checked_params > 1000, "the checks ran over too little")
  end)

  it("are shipped in the rock (copy_directories) under a documented path", function()
    for _, f in ipairs({ "assesskit-scm-1.rockspec", "assesskit-0.2.0-1.rockspec" }) do
      local env = {}
      assert(loadfile(REPO .. "/" .. f, "t", env))()
      assert.same({ "types" }, env.build.copy_directories)
    end
    local readme = sys.read(REPO .. "/README.md")
    assert.matches("show %-%-rock%-dir assesskit", readme)
    assert.matches('"workspace%.library"', readme)
  end)

  it("carry the seed's parameter documentation as tools/seed-params.lua reads it", function()
    if not sys.read(SEED) then
      return pending("needs the API documents (../shared/seeds/) beside the checkout: regenerates "
        .. "lua/assesskit/talview/params.lua from the seed and compares")
    end
    tmp = sys.tmpdir("params")
    sys.must("cd " .. q(REPO) .. " && lua5.4 tools/seed-params.lua " .. q(SEED) .. " " .. q(tmp .. "/params.lua"))
    assert.is_true(sys.read(tmp .. "/params.lua") == sys.read(REPO .. "/lua/assesskit/talview/params.lua"),
      "lua/assesskit/talview/params.lua is stale: run lua5.4 tools/seed-params.lua")
  end)
end)

describe("endpoints()", function()
  local function find(list, name)
    for _, e in ipairs(list) do if e.name == name then return e end end
  end
  local function param(e, name, where)
    for _, p in ipairs(e.params) do
      if p.name == name and (not where or p["in"] == where) then return p end
    end
  end

  it("lists each Talview endpoint's parameters: place, required, type, description", function()
    local tv = require("assesskit.talview").new{ auth = { access_token = "t" } }
    local list = tv:endpoints()
    local create = find(list, "models.candidate.create")
    assert.equal("Create a Candidate", create.summary)
    assert.same({ name = "email", ["in"] = "body", required = true, type = "string",
      description = "The email of the candidate" }, param(create, "email"))
    assert.is_false(param(create, "phone").required)
    local get = find(list, "models.candidate.get")
    assert.same({ name = "id", ["in"] = "path", required = true, type = "string|integer",
      description = param(get, "id").description }, param(get, "id"))
    local upload = find(list, "spreadsheet.upload")
    assert.equal("file", param(upload, "file")["in"])
    assert.equal("integer[]", param(find(list, "models.candidate.list"), "ids", "query").type)
    -- every placeholder, query and body name of the catalogue is there, in that order
    local cat = require "assesskit.talview.catalogue"
    for i, e in ipairs(cat.endpoints) do
      local names = {}
      for n in e.path:gmatch("{([%w_]+)}") do names[#names + 1] = n end
      for _, n in ipairs(e.query or {}) do names[#names + 1] = n end
      for _, n in ipairs(e.body or {}) do names[#names + 1] = n end
      local got = {}
      for k, p in ipairs(list[i].params) do
        got[k] = p.name
        assert.is_string(p.type)
        assert.is_string(p.description)
        assert.is_boolean(p.required)
      end
      assert.same(names, got, e.name)
    end
    tv:close()
  end)

  it("lists each InterviewMocha endpoint's parameters", function()
    local im = require("assesskit.interviewmocha").new{ api_key = "k" }
    local rep = find(im:endpoints(), "reports.get")
    assert.same({ name = "testInvitationId", ["in"] = "path", required = true, type = "integer",
      description = "testInvitationId associated with candidate giving particular test" }, rep.params[1])
    assert.same("reportType", rep.params[2].name)
    assert.same("query", rep.params[2]["in"])
    assert.is_false(rep.params[2].required)
    assert.equal("integer", rep.params[2].type)
    im:close()
  end)
end)
