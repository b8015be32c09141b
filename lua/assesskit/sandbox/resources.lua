--- Generic, catalogue-driven resources for the Talview emulation: which store a catalogue
-- endpoint reads and writes, sample objects from the seed, list filtering, sorting, paging
-- (`page`, `pageSize`, `X-Pagination-*`, `Link`), `expand` (comma list, dot nesting) and
-- `fields`, and create / read / update / delete over `assesskit.sandbox.store`.
--
-- Rules (all data-driven, no code per resource):
--
-- * An endpoint `<area>.<resource>.<action>` (or `<area>.<action>`) with a REST action
--   (`list`, `get`, `create`, `update`, `delete`) works on the store named after the resource
--   (`aliases` folds the `user/me` views onto their tables: `me` is the user, `me_calendar`
--   is `user_calendar`, ...), so that `/models/x` and `/admin/organization/{oid}/x` share
--   their records.
-- * Path placeholders other than `{id}` scope the records (`{oid}` is `organization_id`,
--   `{uid}` is `user_id`, any other `{name}` the field of that name); `/user/me/...` is scoped
--   to the authenticated user.
-- * List query parameters naming a record field filter on it (`ids[]` filters `id`);
--   `sort=-created_at,name` sorts; `s` searches text fields.
-- * Pages follow Yii2's `Pagination`: `page` is 1-based and clamped to the last page,
--   `pageSize` (or `per-page`) defaults to 20 and is at most 50 (see `/_sandbox/config`).
-- * `expand=a,b.c`: `a` is a related record when the record has `a_id` (camelCase names are
--   snake_cased: `assessmentCandidate` reads `assessment_candidate_id`), the records of
--   `a`'s singular that point back here when `a` is a plural (`assessmentSections` lists
--   `assessment_section` records with `assessment_id` = this id), or a count
--   (`invitedCount`, ...) from `counts`. Unknown names are ignored, as Yii2 does.
-- @module assesskit.sandbox.resources

local ngx = ngx -- luacheck: read globals ngx
local json = require("assesskit.sandbox.json")
local http = require("assesskit.sandbox.http")
local store = require("assesskit.sandbox.store")
local config = require("assesskit.sandbox.config")
local samples_src = require("assesskit.sandbox.samples")
local catalogue = require("assesskit.talview.catalogue")

local type, pairs, ipairs, tostring, tonumber, next = type, pairs, ipairs, tostring, tonumber, next
local string_gsub, string_lower, string_upper, string_find, string_sub, string_match, string_gmatch =
  string.gsub, string.lower, string.upper, string.find, string.sub, string.match, string.gmatch
local table_sort, table_concat, math_floor, math_ceil, math_min, math_huge =
  table.sort, table.concat, math.floor, math.ceil, math.min, math.huge

local M = {}

--- REST actions handled generically.
M.crud = { list = true, get = true, create = true, update = true, delete = true }

--- Resource name -> store name, for views of one table under another name.
M.aliases = {
  me = "user",
  me_calendar = "user_calendar",
  me_settings_data = "settings_data",
  me_permission = "user_permission",
  settings = "setting",
}

--- Path placeholder -> record field.
M.scope_fields = {
  oid = "organization_id", organization_id = "organization_id", uid = "user_id",
  user_id = "user_id",
}

--- Expand names that count related records: name -> {resource, fk, field, values}.
M.counts = {
  addedCount = { "assessment_candidate", "assessment_id" },
  invitedCount = { "assessment_candidate", "assessment_id", "status_id", { 10, 20 } },
  inProgressCount = { "assessment_candidate", "assessment_id", "status_id", { 30 } },
  attendedCount = { "assessment_candidate", "assessment_id", "status_id", { 50 } },
  assessedCount = { "assessment_candidate", "assessment_id", "status_id", { 60 } },
  selectedCount = { "assessment_candidate", "assessment_id", "status_id", { 70 } },
  holdCount = { "assessment_candidate", "assessment_id", "status_id", { 80 } },
  rejectedCount = { "assessment_candidate", "assessment_id", "status_id", { 90 } },
  declinedCount = { "assessment_candidate", "assessment_id", "status_id", { 100 } },
}

local reserved_params = {
  page = true, pageSize = true, ["per-page"] = true, per_page = true, expand = true,
  fields = true, sort = true, suppress_error_code = true, suppress_response_code = true,
  s = true, ids = true, _ = true, ["access-token"] = true,
}

-- Samples ------------------------------------------------------------------------------------

local decoded = {}

--- The seed's sample response of an endpoint, decoded (a fresh copy every call).
-- @tparam string name catalogue endpoint name
-- @return the value (array or object) or nil
function M.sample(name)
  local v = decoded[name]
  if v == nil then
    local s = samples_src[name]
    if not s then return nil end
    v = json.decode(s.json) or false
    decoded[name] = v
  end
  if not v then return nil end
  return json.copy(v)
end

local decoded_more = {}

--- Every example answer the seed shows for an endpoint, decoded (fresh copies): the sample of
-- `sample`, then an action's further ones (`more` in `assesskit.sandbox.samples`).
-- @tparam string name catalogue endpoint name
-- @treturn {table,...} the values (empty when the seed has none)
function M.samples(name)
  local out = {}
  local first = M.sample(name)
  if first == nil then return out end
  out[1] = first
  local more = decoded_more[name]
  if more == nil then
    more = {}
    for _, m in ipairs(samples_src[name].more or {}) do
      local v = json.decode(m.json)
      if v ~= nil then more[#more + 1] = v end
    end
    decoded_more[name] = more
  end
  for _, v in ipairs(more) do out[#out + 1] = json.copy(v) end
  return out
end

--- The store name for a resource name.
-- @tparam string resource
-- @treturn string
function M.store_name(resource)
  return M.aliases[resource] or resource
end

--- Split an endpoint name into store name and action.
-- @tparam table ep catalogue endpoint
-- @treturn ?string store name (nil for endpoints outside the REST pattern)
-- @treturn string action
function M.resource_of(ep)
  local parts = {}
  for p in string_gmatch(ep.name, "[^%.]+") do parts[#parts + 1] = p end
  if #parts == 3 then return M.store_name(parts[2]), parts[3] end
  if #parts == 2 and M.crud[parts[2]] then return M.store_name(parts[1]), parts[2] end
  return nil, parts[#parts]
end

local by_store = {}     -- store name -> { endpoints = {action -> ep}, sample_names = {...} }

for _, ep in ipairs(catalogue.endpoints) do
  local res, action = M.resource_of(ep)
  if res then
    local info = by_store[res]
    if not info then
      info = { endpoints = {}, names = {} }
      by_store[res] = info
    end
    info.endpoints[action] = info.endpoints[action] or ep
    info.names[#info.names + 1] = ep.name
  end
end

--- Whether the catalogue has a list endpoint for a store.
-- @tparam string res store name
-- @treturn boolean
function M.has_list(res)
  return by_store[res] ~= nil and by_store[res].endpoints.list ~= nil
end

--- Store names of every resource the catalogue has REST endpoints for.
-- @treturn table array
function M.store_names()
  local out = {}
  for k in pairs(by_store) do out[#out + 1] = k end
  table_sort(out)
  return out
end

local function first_object(v)
  if type(v) ~= "table" then return nil end
  if json.is_array(v) then
    for _, x in ipairs(v) do
      if type(x) == "table" and not json.is_array(x) and x ~= json.null then return x end
    end
    return nil
  end
  return v
end

--- Sample objects of a resource from its endpoints' samples (get first, then list, create,
-- update), each a fresh copy.
-- @tparam string res store name
-- @treturn table array of objects (maybe empty)
function M.resource_samples(res)
  local info = by_store[res]
  local out = {}
  if not info then return out end
  local seen = {}
  for _, action in ipairs({ "get", "list", "create", "update" }) do
    local ep = info.endpoints[action]
    local v = ep and M.sample(ep.name)
    if type(v) == "table" then
      local list = json.is_array(v) and v or { v }
      for _, obj in ipairs(list) do
        if type(obj) == "table" and not json.is_array(obj) and obj.id ~= nil and not seen[tostring(obj.id)] then
          seen[tostring(obj.id)] = true
          out[#out + 1] = obj
        end
      end
    end
  end
  if #out == 0 then
    for _, name in ipairs(info.names) do
      local obj = first_object(M.sample(name))
      if obj then out[1] = obj; break end
    end
  end
  return out
end

--- A template record for a resource: the keys of its sample with empty values.
-- @tparam string res store name
-- @treturn ?table template (nil when the seed has no sample)
-- @treturn ?table the sample it came from
function M.template(res)
  local s = M.resource_samples(res)[1]
  if not s then return nil end
  local t = json.object({}, json.order_of(s))
  for k, v in pairs(s) do
    if k == "_links" then
      t[k] = v
    elseif json.is_array(v) then
      t[k] = json.array()
    else
      t[k] = json.null
    end
  end
  return t, s
end

-- Rewrite every occurrence of the sample's id in `_links` hrefs with the record's id.
local function relink(links, old_id, new_id)
  if type(links) ~= "table" or old_id == nil then return links end
  local old = tostring(old_id)
  local pat = "([=/])" .. string_gsub(old, "%p", "%%%0") .. "(%f[%D])"
  local function walk(v)
    if type(v) == "string" then
      return (string_gsub(v, pat, "%1" .. tostring(new_id) .. "%2"))
    elseif type(v) == "table" and v ~= json.null then
      for k, x in pairs(v) do v[k] = walk(x) end
    end
    return v
  end
  return walk(links)
end

--- Now, in the seed's timestamp format ("2019-03-12 06:48:16+00").
-- @treturn string
function M.now()
  return os.date("!%Y-%m-%d %H:%M:%S+00", math_floor(ngx and ngx.now() or os.time()))
end

-- Labels and validation -----------------------------------------------------------------------

--- Yii2's attribute label: `first_name` -> "First Name", `assessmentSectionID` ->
-- "Assessment Section ID".
-- @tparam string name
-- @treturn string
function M.label(name)
  local s = string_gsub(name, "[_%-%.]", " ")
  s = string_gsub(s, "(%l)(%u)", "%1 %2")
  s = string_gsub(s, "(%u)(%u%l)", "%1 %2")
  s = string_gsub(s, "^%s+", "")
  s = string_gsub(s, "(%a)([%w]*)", function(a, b) return string_upper(a) .. b end)
  return s
end

local function blank(v)
  if v == nil or v == json.null or v == "" then return true end
  if type(v) == "table" and next(v) == nil then return true end
  return false
end

--- Check required parameters and simple formats.
-- @tparam table ep catalogue endpoint
-- @tparam table params body (POST/PUT/PATCH) or query (GET/DELETE) parameters
-- @treturn ?table list of `{field, message}`, nil when valid
function M.validate(ep, params)
  local errs = {}
  local seen = {}
  for _, name in ipairs(ep.required or {}) do
    if not seen[name] and blank(params[name]) then
      seen[name] = true
      errs[#errs + 1] = { field = name, message = M.label(name) .. " cannot be blank." }
    end
  end
  for k, v in pairs(params) do
    if type(k) == "string" and type(v) == "string" and v ~= "" and not seen[k]
      and (k == "email" or string_find(k, "_email$")) and not string_find(v, "^[^@%s]+@[^@%s]+$") then
      errs[#errs + 1] = { field = k, message = M.label(k) .. " is not a valid email address." }
    end
  end
  if #errs == 0 then return nil end
  table_sort(errs, function(a, b) return a.field < b.field end)
  return errs
end

-- Scope -------------------------------------------------------------------------------------

--- The scope of a request: field -> value the records must have (and new ones get).
-- @tparam table ep
-- @tparam table params path parameters
-- @tparam table principal
-- @treturn table
function M.scope(ep, params, principal)
  local s = {}
  for name, value in pairs(params) do
    if name ~= "id" then
      local field = M.scope_fields[name] or name
      s[field] = tonumber(value) or value
    end
  end
  if string_sub(ep.path, 1, 9) == "/user/me/" then s.user_id = principal.id end
  -- a singleton of the user (no list, no id: the display picture)
  local res = M.resource_of(ep)
  if res and not string_find(ep.path, "{", 1, true) and by_store[res] and not by_store[res].endpoints.list
    and string_sub(ep.path, 1, 6) == "/user/" then
    s.user_id = principal.id
  end
  return s
end

local function same(a, b)
  if a == b then return true end
  if a == nil or b == nil or a == json.null or b == json.null then return false end
  return tostring(a) == tostring(b)
end

local function in_scope(rec, scope)
  for k, v in pairs(scope) do
    if rec[k] ~= nil and not same(rec[k], v) then return false end
    if rec[k] == nil and k ~= "user_id" then return false end
  end
  return true
end

-- Filters, sort, search ------------------------------------------------------------------------

local function matches_filter(rec, key, want)
  local have = rec[key]
  if type(want) == "table" then
    for _, w in pairs(want) do
      if same(have, w) then return true end
    end
    return false
  end
  if type(have) == "boolean" then
    return tostring(have) == string_lower(tostring(want)) or (have and want == "1") or (not have and want == "0")
  end
  return same(have, want)
end

local text_fields = { "name", "title", "email", "first_name", "last_name", "label", "subject", "username" }

local function filter_records(list, args)
  local out = json.array()
  local ids = args.ids
  if ids ~= nil and type(ids) ~= "table" then
    local t = {}
    for x in string_gmatch(tostring(ids), "[^,]+") do t[#t + 1] = x end
    ids = t
  end
  local search = args.s
  for _, rec in ipairs(list) do
    local ok = true
    if ids and not matches_filter(rec, "id", ids) then ok = false end
    if ok then
      for k, v in pairs(args) do
        if not reserved_params[k] and rec[k] ~= nil and not matches_filter(rec, k, v) then
          ok = false
          break
        end
      end
    end
    if ok and type(search) == "string" and search ~= "" then
      local needle = string_lower(search)
      local hit = false
      for _, f in ipairs(text_fields) do
        if type(rec[f]) == "string" and string_find(string_lower(rec[f]), needle, 1, true) then
          hit = true
          break
        end
      end
      ok = hit
    end
    if ok then out[#out + 1] = rec end
  end
  return out
end

local function sort_records(list, sort)
  if type(sort) ~= "string" or sort == "" then return list end
  local keys = {}
  for part in string_gmatch(sort, "[^,]+") do
    local desc = string_sub(part, 1, 1) == "-"
    keys[#keys + 1] = { name = desc and string_sub(part, 2) or part, desc = desc }
  end
  local function cmp_val(a, b)
    if a == b then return 0 end
    if a == nil or a == json.null then return -1 end
    if b == nil or b == json.null then return 1 end
    if type(a) == "number" and type(b) == "number" then return a < b and -1 or 1 end
    a, b = tostring(a), tostring(b)
    if a == b then return 0 end
    return a < b and -1 or 1
  end
  table_sort(list, function(x, y)
    for _, k in ipairs(keys) do
      local c = cmp_val(x[k.name], y[k.name])
      if c ~= 0 then
        if k.desc then return c > 0 end
        return c < 0
      end
    end
    return (tonumber(x.id) or 0) < (tonumber(y.id) or 0)
  end)
  return list
end

-- Expand ----------------------------------------------------------------------------------------

local function snake(name)
  local s = string_gsub(name, "(%l)(%u)", "%1_%2")
  s = string_gsub(s, "(%u)(%u%l)", "%1_%2")
  return string_lower(s)
end

local function singular(name)
  if string_sub(name, -3) == "ies" then return string_sub(name, 1, -4) .. "y" end
  if string_sub(name, -1) == "s" then return string_sub(name, 1, -2) end
  return nil
end

--- Parse `expand` into a tree: "a,b.c" -> { a = {}, b = { c = {} } }.
-- @tparam ?string expand
-- @treturn table
function M.expand_tree(expand)
  local tree = {}
  if type(expand) == "table" then expand = table_concat(expand, ",") end
  if type(expand) ~= "string" then return tree end
  for item in string_gmatch(expand, "[^,]+") do
    item = string_match(item, "^%s*(.-)%s*$")
    local node = tree
    for part in string_gmatch(item, "[^%.]+") do
      node[part] = node[part] or {}
      node = node[part]
    end
  end
  return tree
end

local present

--- Expand one relation of a record (which is a copy, safe to change).
-- @tparam string res store name of the record
-- @tparam table rec
-- @tparam string name expand name
-- @tparam table sub nested expand tree
-- @tparam number depth
local function expand_one(res, rec, name, sub, depth)
  local count = M.counts[name]
  if count then
    local target, fk, field, values = count[1], count[2], count[3], count[4]
    rec[name] = store.count(target, function(r)
      if not same(r[fk], rec.id) then return false end
      if not field then return true end
      for _, v in ipairs(values) do
        if same(r[field], v) then return true end
      end
      return false
    end)
    return
  end
  local sn = snake(name)
  local fk = rec[sn .. "_id"]
  if fk ~= nil and fk ~= json.null and store.has(sn) then
    local other = store.get(sn, fk)
    rec[name] = other and present(sn, other, sub, depth + 1) or json.null
    return
  end
  if rec[name .. "_id"] ~= nil and store.has(name) then
    local other = store.get(name, rec[name .. "_id"])
    rec[name] = other and present(name, other, sub, depth + 1) or json.null
    return
  end
  local one = singular(sn)
  if one and store.has(one) then
    local back = res .. "_id"
    local list = json.array()
    for _, r in ipairs(store.list(one, function(r) return same(r[back], rec.id) end)) do
      list[#list + 1] = present(one, r, sub, depth + 1)
    end
    rec[name] = list
  end
end

--- A record as the API shows it: a copy with `expand` applied and `fields` kept.
-- @tparam string res store name
-- @tparam table rec stored record
-- @tparam ?table tree expand tree
-- @tparam[opt] number depth
-- @tparam[opt] table fields field name -> true
-- @treturn table
present = function(res, rec, tree, depth, fields)
  local out = json.copy(rec)
  for k in pairs(out) do
    if type(k) == "string" and string_sub(k, 1, 2) == "__" then out[k] = nil end
  end
  if fields then
    for k in pairs(out) do
      if not fields[k] and k ~= "_links" then out[k] = nil end
    end
  end
  depth = depth or 0
  if tree and depth < 5 then
    for name, sub in pairs(tree) do expand_one(res, out, name, sub, depth) end
  end
  return out
end
M.present = present

local function fields_set(args)
  local f = args.fields
  if type(f) == "table" then f = table_concat(f, ",") end
  if type(f) ~= "string" or f == "" then return nil end
  local set = {}
  for name in string_gmatch(f, "[^,%s]+") do set[name] = true end
  return set
end

-- Paging --------------------------------------------------------------------------------------

local function encode_args(args, page, size)
  local parts = {}
  local keys = {}
  for k in pairs(args) do
    if k ~= "page" and k ~= "pageSize" and k ~= "per-page" then keys[#keys + 1] = k end
  end
  table_sort(keys)
  local function add(k, v)
    parts[#parts + 1] = ngx.escape_uri(k) .. "=" .. ngx.escape_uri(tostring(v))
  end
  for _, k in ipairs(keys) do
    local v = args[k]
    if type(v) == "table" then
      local i = 0
      for _, x in ipairs(v) do add(k .. "[" .. i .. "]", x); i = i + 1 end
    else
      add(k, v)
    end
  end
  add("page", page)
  add("pageSize", size)
  return table_concat(parts, "&")
end

-- A query value as a whole number; nil for anything else, NaN and the infinities included
-- (LuaJIT's tonumber reads "nan" and "inf", and a NaN page size broke the page arithmetic).
local function whole(v)
  local n = tonumber(v)
  if not n or n ~= n or n == math_huge or n == -math_huge then return nil end
  return math_floor(n)
end

--- Work out the page a list request asks for (Yii2's Pagination: 1-based, clamped to the
-- last page; `pageSize` or `per-page`, default and maximum from the settings).
-- @tparam table args query parameters
-- @tparam number total number of records
-- @treturn number page
-- @treturn number page count
-- @treturn number page size
function M.paging(args, total)
  local settings = config.settings
  local size = whole(args.pageSize or args["per-page"] or args.per_page) or settings.default_page_size
  if size < 1 then size = settings.default_page_size end
  size = math_min(size, settings.max_page_size)
  local pages = math_ceil(total / size)
  local page = whole(args.page) or 1
  if page < 1 then page = 1 end
  if pages > 0 and page > pages then page = pages end
  return page, pages, size
end

--- Send one page of a list with the pagination headers and a `Link` header.
-- @tparam table req
-- @tparam table list the full (filtered, sorted) list
-- @tparam[opt] function show `show(record) -> presented record`, applied to the page only
function M.send_page(req, list, show)
  local args = req.args
  local total = #list
  local page, pages, size = M.paging(args, total)
  local out = json.array()
  local first = (page - 1) * size + 1
  for i = first, math_min(total, first + size - 1) do
    out[#out + 1] = show and show(list[i]) or list[i]
  end
  local base = (req.scheme or "http") .. "://" .. (req.host or "127.0.0.1") .. req.path .. "?"
  local links = { "<" .. base .. encode_args(args, page, size) .. ">; rel=self" }
  if pages > 0 then
    links[#links + 1] = "<" .. base .. encode_args(args, 1, size) .. ">; rel=first"
    if page > 1 then links[#links + 1] = "<" .. base .. encode_args(args, page - 1, size) .. ">; rel=prev" end
    if page < pages then links[#links + 1] = "<" .. base .. encode_args(args, page + 1, size) .. ">; rel=next" end
    links[#links + 1] = "<" .. base .. encode_args(args, pages, size) .. ">; rel=last"
  end
  return http.json(req, 200, out, {
    ["X-Pagination-Total-Count"] = tostring(total),
    ["X-Pagination-Page-Count"] = tostring(pages),
    ["X-Pagination-Current-Page"] = tostring(page),
    ["X-Pagination-Per-Page"] = tostring(size),
    ["Link"] = table_concat(links, ", "),
  })
end

-- CRUD ------------------------------------------------------------------------------------------

local function not_found(req, id)
  return http.error(req, 404, "Object not found: " .. tostring(id))
end

local function accepted_fields(ep, template)
  local set = {}
  for _, f in ipairs(ep.body or {}) do set[f] = true end
  for _, f in ipairs(ep.required or {}) do set[f] = true end
  if template then
    for k in pairs(template) do if k ~= "_links" and k ~= "id" then set[k] = true end end
  end
  return set
end

local function assign(rec, body, allowed, open)
  for k, v in pairs(body) do
    if type(k) == "string" and k ~= "id" and k ~= "_links" and (open or allowed[k]) then
      rec[k] = v
    end
  end
end

--- A new record for a resource built like the seed's: the sample's keys, empty, then the
-- given fields, an id, timestamps, links.
-- @tparam string res store name
-- @tparam table fields
-- @tparam[opt] table principal
-- @treturn table the stored record
function M.create_record(res, fields, principal)
  local template, sample = M.template(res)
  local rec = template or json.object({})
  for k, v in pairs(fields) do rec[k] = v end
  if rec.id == json.null then rec.id = nil end
  local now = M.now()
  if blank(rec.created_at) then rec.created_at = now end
  if (template == nil or template.updated_at ~= nil) and blank(rec.updated_at) then rec.updated_at = now end
  if principal then
    if template and template.created_by ~= nil and blank(rec.created_by) then rec.created_by = principal.id end
    if template and template.updated_by ~= nil and blank(rec.updated_by) then rec.updated_by = principal.id end
    if template and template.organization_id ~= nil and blank(rec.organization_id) then
      rec.organization_id = principal.organization_id
    end
  end
  rec = store.insert(res, rec)
  if sample and type(rec._links) == "table" then
    local links = json.copy(rec._links)
    -- the sample's ids (its own and its foreign keys) become the record's
    for k, v in pairs(sample) do
      if (k == "id" or string_sub(k, -3) == "_id") and tonumber(v) and tonumber(rec[k]) then
        links = relink(links, v, rec[k])
      end
    end
    rec._links = links
  end
  return rec
end

--- Serve a REST endpoint generically.
-- @tparam table req
-- @tparam table ep catalogue endpoint
-- @tparam table params path parameters
-- @tparam table principal
-- @tparam table body parsed body (or {})
-- @tparam string res store name
-- @tparam string action list|get|create|update|delete
function M.serve(req, ep, params, principal, body, res, action)
  local scope = M.scope(ep, params, principal)
  local id = params.id
  if res == "user" and ep.path == "/user/me" then id = principal.id end
  local tree = M.expand_tree(req.args.expand)
  local fields = fields_set(req.args)
  if not store.has(res) then store.define(res) end

  if action == "list" then
    local list = store.list(res, function(r) return in_scope(r, scope) end)
    list = filter_records(list, req.args)
    list = sort_records(list, req.args.sort)
    return M.send_page(req, list, function(r) return present(res, r, tree, 0, fields) end)
  end

  if action == "get" then
    local rec
    if id == nil then
      rec = store.find(res, function(r) return in_scope(r, scope) end)
      if not rec then return http.error(req, 404, "Object not found.") end
    else
      rec = store.get(res, id)
      if not rec or not in_scope(rec, scope) then return not_found(req, id) end
    end
    return http.json(req, 200, present(res, rec, tree, 0, fields))
  end

  local template = M.template(res)
  local allowed = accepted_fields(ep, template)
  local open = template == nil

  if action == "create" then
    local old = id == nil and not by_store[res].endpoints.list
      and store.find(res, function(r) return in_scope(r, scope) end)
    if old then
      -- a singleton under its parent (e.g. the display picture): replace it
      store.delete(res, old.id)
    end
    local fields_in = {}
    assign(fields_in, body, allowed, open)
    for k, v in pairs(scope) do fields_in[k] = v end
    local rec = M.create_record(res, fields_in, principal)
    local location = (req.scheme or "http") .. "://" .. (req.host or "127.0.0.1") .. ep.path
    location = string_gsub(location, "{([%w_]+)}", function(n) return tostring(params[n] or "") end)
    if by_store[res].endpoints.get then
      location = string_gsub(location, "/+$", "") .. "/" .. tostring(rec.id)
    end
    return http.json(req, 201, present(res, rec, tree, 0, fields), { Location = location })
  end

  local rec
  if id ~= nil then
    rec = store.get(res, id)
    if not rec or not in_scope(rec, scope) then return not_found(req, id) end
  else
    -- a singleton (no list: the display picture) is the one in scope; an update or delete
    -- on a collection (e.g. rbac) is of the record the parameters name
    local singleton = not by_store[res].endpoints.list
    local src = (action == "delete" and next(req.args) ~= nil) and req.args or body
    rec = store.find(res, function(r)
      if singleton then return in_scope(r, scope) end
      if not in_scope(r, scope) then return false end
      local any = false
      for k, v in pairs(src) do
        if not reserved_params[k] and r[k] ~= nil and type(v) ~= "table" then
          if not same(r[k], v) then return false end
          any = true
        end
      end
      return any
    end)
    if not rec then return http.error(req, 404, "Object not found.") end
  end

  if action == "update" then
    assign(rec, body, allowed, open)
    if rec.updated_at ~= nil then rec.updated_at = M.now() end
    if rec.updated_by ~= nil then rec.updated_by = principal.id end
    return http.json(req, 200, present(res, rec, tree, 0, fields))
  end

  if action == "delete" then
    store.delete(res, rec.id)
    return http.send(req, 204, "")
  end
  return http.error(req, 500, "unhandled action " .. tostring(action))
end

return M
