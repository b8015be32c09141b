--- Generates the tables of docs/catalogue.md from lua/assesskit/talview/catalogue.lua (and
-- the seed's typos from lua/assesskit/talview/resolutions.lua), so the
-- document never drifts from the catalogue. The hand-written prose of docs/catalogue.md is
-- kept; only the text between the GENERATED markers is replaced.
--
--   lua5.4 tools/catalogue-doc.lua            rewrite docs/catalogue.md
--   lua5.4 tools/catalogue-doc.lua --check    exit 1 when docs/catalogue.md is stale
--
-- Loaded with loadfile() (as the spec does) it returns the module instead of running.
-- @script catalogue-doc

local M = {}

local BEGIN = "<!-- BEGIN GENERATED: tools/catalogue-doc.lua -->"
local END = "<!-- END GENERATED -->"

local AREA_ORDER = { "helpers", "user", "admin", "models", "actions", "mobile", "attend",
  "spreadsheet" }

local function cell(s)
  s = tostring(s)
  return (s:gsub("|", "\\|"):gsub("\n", " "))
end

local function code(s)
  if s == nil or s == "" then return "" end
  return "`" .. cell(s) .. "`"
end

local function notes(e)
  local t = {}
  if e.paged then t[#t + 1] = "paged" end
  if e.filters then t[#t + 1] = "filters" end
  if e.upload then t[#t + 1] = e.upload .. " upload (`" .. e.file_field .. "`)" end
  if e.response == "empty" then t[#t + 1] = "204"
  elseif e.response == "binary" then t[#t + 1] = "binary response" end
  if e.roles then t[#t + 1] = "roles: " .. table.concat(e.roles, ", ") end
  return table.concat(t, "; ")
end

--- Renders the generated part of docs/catalogue.md.
-- @tparam table catalogue the loaded catalogue
-- @tparam table resolutions the seed's typos and their resolutions
--   (`assesskit.talview.resolutions`)
-- @treturn string markdown, starting with the BEGIN marker and ending with the END marker
-- @usage local md = M.render(require("assesskit.talview.catalogue"),
--   require("assesskit.talview.resolutions"))
function M.render(catalogue, resolutions)
  if type(catalogue) ~= "table" then error("catalogue must be a table", 2) end
  if type(resolutions) ~= "table" then error("resolutions must be a table", 2) end
  local out = { BEGIN, "" }
  local function add(s) out[#out + 1] = s end
  local by_area = {}
  for _, e in ipairs(catalogue.endpoints) do
    local area = e.name:match("^([^.]+)")
    by_area[area] = by_area[area] or {}
    table.insert(by_area[area], e)
  end
  add(("## Endpoints (%d)"):format(#catalogue.endpoints))
  add("")
  add("`required` lists the non-path parameters the client refuses to send without and the " ..
    "sandbox answers 422 for. Seed line = the line of the request line (or heading) in " ..
    "`002_3384fbf1d7adbc06.txt`.")
  for _, area in ipairs(AREA_ORDER) do
    local list = by_area[area]
    if list then
      add("")
      add(("### %s (%d)"):format(area, #list))
      add("")
      add("| name | method and path | required | notes | seed line |")
      add("|---|---|---|---|---|")
      for _, e in ipairs(list) do
        add(("| %s | %s | %s | %s | %d |"):format(code(e.name), code(e.method .. " " .. e.path),
          cell(table.concat(e.required or {}, ", ")), cell(notes(e)), e.seed_line))
      end
    end
  end
  add("")
  add(("## Seed typos and ambiguities, and their resolutions (%d)"):format(#resolutions))
  add("")
  add("A resolved of *excluded* means the seed line is deliberately not an endpoint.")
  add("")
  add("| seed line | seed text | resolved | why |")
  add("|---|---|---|---|")
  for _, r in ipairs(resolutions) do
    add(("| %d | %s | %s | %s |"):format(r.seed_line, code(r.seed),
      r.resolved and code(r.resolved) or "*excluded*", cell(r.why)))
  end
  add("")
  add(END)
  return table.concat(out, "\n")
end

--- Replaces the generated part of a document with a fresh rendering.
-- @tparam string text the current document (must contain both markers)
-- @tparam table catalogue the loaded catalogue
-- @tparam table resolutions the loaded resolutions
-- @treturn string the document with its generated part re-rendered
function M.render_into(text, catalogue, resolutions)
  if type(text) ~= "string" then error("text must be a string", 2) end
  local s = text:find(BEGIN, 1, true)
  local _, e = text:find(END, 1, true)
  if not s or not e then error("document has no GENERATED markers", 2) end
  return text:sub(1, s - 1) .. M.render(catalogue, resolutions) .. text:sub(e + 1)
end

local function main(args)
  local root = (arg and arg[0] or ""):match("^(.*)/tools/[^/]*$") or "."
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  local catalogue = require("assesskit.talview.catalogue")
  local resolutions = require("assesskit.talview.resolutions")
  local path = root .. "/docs/catalogue.md"
  local f = assert(io.open(path, "r"))
  local text = f:read("*a")
  f:close()
  local new = M.render_into(text, catalogue, resolutions)
  if args[1] == "--check" then
    if new ~= text then
      io.stderr:write(path, " is stale: run lua5.4 tools/catalogue-doc.lua\n")
      os.exit(1)
    end
    return
  end
  if new ~= text then
    f = assert(io.open(path, "w"))
    f:write(new)
    f:close()
  end
end

if arg and arg[0] and arg[0]:match("catalogue%-doc%.lua$") then
  main(arg)
end
return M
