--- The sandbox's record store: records per resource, in the worker's memory (the sandbox runs
-- one nginx worker, so this is the one consistent state). Records are JSON-ready tables with a
-- numeric `id`; lists come back in id order.
-- @module assesskit.sandbox.store

local json = require("assesskit.sandbox.json")

local type, pairs, ipairs, tonumber, error = type, pairs, ipairs, tonumber, error
local table_sort, math_max = table.sort, math.max

local M = {}

local tables = {}  -- resource -> { rows = {id -> record}, ids = sorted array, dirty, next_id }

local function tbl(resource, create)
  local t = tables[resource]
  if not t and create then
    t = { rows = {}, ids = {}, dirty = false, next_id = 1 }
    tables[resource] = t
  end
  return t
end

local function sorted_ids(t)
  if t.dirty then
    local ids = {}
    for id in pairs(t.rows) do ids[#ids + 1] = id end
    table_sort(ids)
    t.ids, t.dirty = ids, false
  end
  return t.ids
end

--- Drop every record of every resource.
function M.clear()
  tables = {}
end

--- Declare a resource (so that it exists, empty).
-- @tparam string resource
function M.define(resource)
  tbl(resource, true)
end

--- Whether a resource exists.
-- @tparam string resource
-- @treturn boolean
function M.has(resource)
  return tables[resource] ~= nil
end

--- Names of every resource.
-- @treturn table array of names
function M.resources()
  local out = {}
  for k in pairs(tables) do out[#out + 1] = k end
  table_sort(out)
  return out
end

--- Insert a record; assigns `id` when it has none.
-- @tparam string resource
-- @tparam table record
-- @treturn table the stored record
function M.insert(resource, record)
  if type(record) ~= "table" then error("store.insert: record table expected", 2) end
  local t = tbl(resource, true)
  local id = tonumber(record.id)
  if not id then
    id = t.next_id
    record.id = id
  end
  record.id = id
  t.next_id = math_max(t.next_id, id + 1)
  t.rows[id] = record
  t.dirty = true
  return record
end

--- Set the next id a resource hands out (so new ids look like the seed's).
-- @tparam string resource
-- @tparam number id
function M.set_next_id(resource, id)
  local t = tbl(resource, true)
  t.next_id = math_max(t.next_id, id)
end

--- One record by id.
-- @tparam string resource
-- @param id number or numeric string
-- @treturn ?table the record (the stored table itself)
function M.get(resource, id)
  local t = tbl(resource)
  if not t then return nil end
  return t.rows[tonumber(id) or id]
end

--- Every record of a resource, in id order, optionally filtered.
-- @tparam string resource
-- @tparam[opt] function pred `pred(record) -> boolean`
-- @treturn table array of records
function M.list(resource, pred)
  local t = tbl(resource)
  local out = json.array()
  if not t then return out end
  for _, id in ipairs(sorted_ids(t)) do
    local rec = t.rows[id]
    if rec and (not pred or pred(rec)) then out[#out + 1] = rec end
  end
  return out
end

--- The first record matching a predicate.
-- @tparam string resource
-- @tparam function pred
-- @treturn ?table
function M.find(resource, pred)
  local t = tbl(resource)
  if not t then return nil end
  for _, id in ipairs(sorted_ids(t)) do
    local rec = t.rows[id]
    if rec and pred(rec) then return rec end
  end
  return nil
end

--- Count records, optionally filtered.
-- @tparam string resource
-- @tparam[opt] function pred
-- @treturn number
function M.count(resource, pred)
  local t = tbl(resource)
  if not t then return 0 end
  local n = 0
  for _, rec in pairs(t.rows) do
    if not pred or pred(rec) then n = n + 1 end
  end
  return n
end

--- Merge fields into a record.
-- @tparam string resource
-- @param id
-- @tparam table fields
-- @treturn ?table the updated record, nil when there is none
function M.update(resource, id, fields)
  local rec = M.get(resource, id)
  if not rec then return nil end
  for k, v in pairs(fields) do
    if k ~= "id" then rec[k] = v end
  end
  return rec
end

--- Delete a record.
-- @tparam string resource
-- @param id
-- @treturn boolean whether it existed
function M.delete(resource, id)
  local t = tbl(resource)
  id = tonumber(id) or id
  if not t or not t.rows[id] then return false end
  t.rows[id] = nil
  t.dirty = true
  return true
end

return M
