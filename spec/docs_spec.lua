-- The LDoc reference (`make docs`): the index puts the public API first, then the guides
-- (README.md and docs/*.md) as topics, the examples, and the internal modules last; the
-- sandbox's modules are not in it; Markdown is rendered (text such as
-- `<area>.<resource>.<action>` shows, instead of being swallowed as an HTML tag); every
-- function a documented module exports has its entry.

local sys = require "support.sys"
local nginx = require "support.nginx"

local q = sys.quote
local REPO = nginx.repo

local PUBLIC = { "assesskit", "assesskit.talview", "assesskit.interviewmocha", "assesskit.errors",
  "assesskit.jwt", "assesskit.ngx.transport", "assesskit.ngx.token_cache", "assesskit.local_sandbox",
  "assesskit.store" }

-- the classes whose objects users get (the other classes in these files are private helpers:
-- the nginx transport's Transfer, the CLI's Ctx and Bar, InterviewMocha's KeyAuth...)
local CLASSES = { TV = true, IM = true, Reports = true, Client = true, Binding = true, Error = true,
  Auth = true }

describe("make docs", function()
  local out, log

  setup(function()
    out = sys.tmpdir("doc")
    log = sys.must("cd " .. q(REPO) .. " && ldoc -d " .. q(out) .. " . 2>&1")
  end)

  teardown(function()
    sys.rmdir(out)
  end)

  -- the index's sections, in order: { {title, {hrefs}} }
  local function sections()
    local index = assert(sys.read(out .. "/index.html"))
    local nav = assert(index:match('<div id="navigation">(.-)<div id="content">'))
    local list = {}
    for title, body in nav:gmatch("<h2>([^<]*)</h2>(.-)</ul>") do
      local hrefs = {}
      for h in body:gmatch('href="([^"]*)"') do hrefs[#hrefs + 1] = h end
      list[#list + 1] = { title, hrefs }
    end
    return list
  end

  it("runs without warnings, with Markdown rendered", function()
    assert.not_matches("not found", log)
    assert.not_matches("warning", log:lower())
    local page = sys.read(out .. "/modules/assesskit.talview.html")
    assert.matches("<strong>Naming%.</strong>", page)
  end)

  it("puts the public API first, then topics, examples, and the internals last", function()
    local s = sections()
    local titles = {}
    for i, sec in ipairs(s) do titles[i] = sec[1] end
    assert.same({ "Modules", "Topics", "Examples", "Internals" }, titles)
    local mods = {}
    for i, h in ipairs(s[1][2]) do mods[i] = h:match("^modules/(.*)%.html$") end
    assert.same(PUBLIC, mods)
    local topics = table.concat(s[2][2], " ")
    for _, t in ipairs({ "README", "talview", "interviewmocha", "cli", "openresty", "catalogue",
      "CHANGELOG", "DESIGN" }) do
      assert.matches("topics/" .. t .. "%.md%.html", topics)
    end
    local examples = table.concat(s[3][2], " ")
    for _, e in ipairs({ "quickstart", "bulk_invite", "export_reports", "error_handling",
      "password_refresh" }) do
      assert.matches("examples/" .. e .. "%.lua%.html", examples)
    end
    local internals = table.concat(s[4][2], " ")
    for _, m in ipairs({ "assesskit.core", "assesskit.client", "assesskit.endpoints", "assesskit.cli" }) do
      assert.matches("internals/" .. m:gsub("%.", "%%.") .. "%.html", internals)
    end
  end)

  it("leaves the sandbox's modules out", function()
    assert.not_matches("assesskit%.sandbox", assert(sys.read(out .. "/index.html")))
    assert.same({}, (function()
      local found = {}
      for _, dir in ipairs({ "modules", "internals" }) do
        for _, f in ipairs(sys.ls(out .. "/" .. dir)) do
          if f:match("^assesskit%.sandbox") then found[#found + 1] = f end
        end
      end
      return found
    end)())
  end)

  it("shows <area>.<resource>.<action> as text, not as an HTML tag", function()
    local pages = { "modules/assesskit.talview.html", "topics/README.md.html", "topics/talview.md.html",
      "topics/catalogue.md.html", "topics/DESIGN.md.html" }
    for _, p in ipairs(pages) do
      local html = assert(sys.read(out .. "/" .. p), p)
      assert.matches("&lt;area&gt;%.&lt;resource&gt;%.&lt;action&gt;", html, p)
      assert.not_matches("<area>", html, p)
      assert.not_matches("<resource>", html, p)
    end
  end)

  it("documents every function the documented modules export", function()
    -- module name -> source file, from config.ld's list
    local config = assert(sys.read(REPO .. "/config.ld"))
    local checked = 0
    for file in config:gmatch('"(lua/[^"]+%.lua)"') do
      local src = assert(sys.read(REPO .. "/" .. file))
      local kind, name = src:match("\n%-%- @(%a+) (assesskit[%w_.]*)\n")
      assert(name, file .. " has no @module or @internal line")
      local page = assert(sys.read(out .. "/" .. (kind == "module" and "modules" or "internals") .. "/"
        .. name .. ".html"), name)
      -- what the module table exports as functions
      local names = {}
      local ok, mod = pcall(require, name)
      assert(ok, name .. " does not load: " .. tostring(mod))
      for k, v in pairs(mod) do
        if type(v) == "function" and type(k) == "string" and not k:match("^_") then names[#names + 1] = k end
      end
      for cls, fn in src:gmatch("\nfunction (%u[%w_]*):([%w_]+)%(") do
        if cls == "M" then
          names[#names + 1] = fn -- methods on the module table itself (LDoc names them plainly)
        elseif CLASSES[cls] and not fn:match("^__") then
          names[#names + 1] = cls .. ":" .. fn
        end
      end
      for _, fn in ipairs(names) do
        assert(page:find('<a name = "' .. fn .. '"></a>', 1, true), name .. ": " .. fn .. " has no doc")
        checked = checked + 1
      end
    end
    assert.truthy(checked > 60, "checked only " .. checked)
    -- the three the issue names (scalar and url_encode are now assesskit.url.scalar and .encode)
    local client = sys.read(out .. "/internals/assesskit.client.html")
    for _, fn in ipairs({ "json_decode", "json_encode" }) do
      assert(client:find('<a name = "' .. fn .. '"></a>', 1, true), "assesskit.client." .. fn .. " has no doc")
    end
    local url = sys.read(out .. "/internals/assesskit.url.html")
    for _, fn in ipairs({ "scalar", "encode" }) do
      assert(url:find('<a name = "' .. fn .. '"></a>', 1, true), "assesskit.url." .. fn .. " has no doc")
    end
  end)
end)

describe("the guides", function()
  it("cite no path of the build machine", function()
    local files = { "README.md", "CHANGELOG.md", "lua/assesskit/talview/catalogue.lua",
      "lua/assesskit/interviewmocha/catalogue.lua" }
    for _, f in ipairs(sys.ls(REPO .. "/docs")) do files[#files + 1] = "docs/" .. f end
    for _, f in ipairs(files) do
      assert.is_nil(assert(sys.read(REPO .. "/" .. f)):find("/work/", 1, true), f)
    end
  end)

  it("show in the README's quickstart only the calls examples/quickstart.lua makes", function()
    local readme = assert(sys.read(REPO .. "/README.md"))
    local snippet = assert(readme:match("## Quickstart.-```lua\n(.-)```"), "no quickstart snippet")
    local example = assert(sys.read(REPO .. "/examples/quickstart.lua"))
    local n = 0
    for call in snippet:gmatch("[%w_]+%.[%w_.]+:[%w_]+") do -- tv.models.candidate:list, im.tests:links
      n = n + 1
      local method = call:match(":([%w_]+)$")
      assert.truthy(example:find(":" .. method .. "(", 1, true) or example:find(":" .. method .. "{", 1, true),
        "README's quickstart calls " .. call .. ", examples/quickstart.lua does not")
    end
    assert.is_true(n >= 5)
  end)

  it("say that the command line's --save streams to a unique temporary file, not FILE.part", function()
    local doc = assert(sys.read(REPO .. "/docs/cli.md"))
    assert.is_nil(doc:find("streamed to `FILE.part`", 1, true))
  end)

  it("say what the catalogue does with list filters: none is required", function()
    local cat = require "assesskit.talview.catalogue"
    for _, e in ipairs(cat.endpoints) do
      if e.name:match("%.list$") then assert.is_nil(e.required, e.name) end
    end
    local doc = sys.read(REPO .. "/docs/catalogue.md")
    assert.matches("A list filter is never required", doc)
    assert.not_matches("keep\n?%s*them", doc)
  end)

  it("have the InterviewMocha catalogue cite lines its seeds have", function()
    local dir = REPO .. "/../shared/seeds/"
    if not sys.read(dir .. "001_c95dd0603bbe8262.txt") then
      return pending("needs the API documents (../shared/seeds/) beside the checkout: checks that "
        .. "every seed_line of assesskit.interviewmocha.catalogue is a line of its seed saying what is cited")
    end
    local cat = require "assesskit.interviewmocha.catalogue"
    local function line(seed, n)
      local i = 0
      for l in io.lines(dir .. seed) do
        i = i + 1
        if i == n then return l end
      end
    end
    for _, e in ipairs(cat.endpoints) do
      local l = line(e.seed, e.seed_line)
      assert(l and l:find(e.path:match("^(/[%w]+)"), 1, true), e.name .. ": seed line " .. e.seed_line)
    end
    -- each resolution's line holds a word of what it cites
    local words = { "reportType", "Status", "sectionId", "Skill", "testId", "curl" }
    for _, r in ipairs(cat.resolutions) do
      if r.seed_line then
        local l = line(r.seed, r.seed_line)
        assert(l, r.seed .. " has no line " .. r.seed_line)
        local found = false
        for _, w in ipairs(words) do
          if l:find(w, 1, true) and r.text:find(w, 1, true) then found = true end
        end
        assert(found, r.seed .. ":" .. r.seed_line .. " does not say what is cited: " .. r.text)
      end
    end
  end)
end)
