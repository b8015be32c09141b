-- One-off helper used to bootstrap lua/assesskit/talview/catalogue.lua: reads the seed,
-- and for every request line prints a draft entry (normalised path, derived name, query /
-- body / required from the parameter tables that follow it). The draft was then reviewed
-- by hand against the seed; the catalogue, not this script, is the source of truth.
--   lua5.4 tools/seed-draft.lua [seed] > /tmp/draft.lua
local seed = arg[1] or "../shared/seeds/002_3384fbf1d7adbc06.txt"
local lines = {}
for l in io.lines(seed) do lines[#lines + 1] = l end
local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end
local req = {}
for i, l in ipairs(lines) do
  local m = l:match("^%s*(%u+)%s")
  if m == "GET" or m == "POST" or m == "PUT" or m == "PATCH" or m == "DELETE" then
    req[#req + 1] = i
  end
end
local function prev_text(i)
  local j = i - 1
  while j > 0 and trim(lines[j]) == "" do j = j - 1 end
  return j, trim(lines[j] or "")
end
local VERBS = { ["update-password"] = 1, ["password-strength"] = 1, ["generate-otp-uri"] = 1,
  resend = 1, ["tbi-generate"] = 1, ["process-spt"] = 1, ["process-async"] = 1,
  change = 1, ["verify-link"] = 1 }
local function norm(path)
  path = path:gsub("%?.*$", ""):gsub("/$", "")
  if path:sub(1, 1) ~= "/" then path = "/" .. path end
  path = path:gsub("<organization_id>", "{oid}"):gsub("<oid>", "{oid}"):gsub("<id>", "{id}")
  path = path:gsub("^/admin/organization/%d+", "/admin/organization/{oid}")
  path = path:gsub("/user/%d+/", "/user/{uid}/")
  path = path:gsub("/%d+$", "/{id}"):gsub("/id$", "/{id}")
  return path
end
local function name_of(method, path)
  local segs = {}
  for s in path:gmatch("[^/]+") do segs[#segs + 1] = s end
  local area = segs[1]
  local rest = {}
  local i = 2
  if area == "admin" and segs[2] == "organization" and segs[3] == "{oid}" and segs[4] then i = 4 end
  local last_ph = false
  for k = i, #segs do
    if segs[k]:match("^{") then last_ph = true else rest[#rest + 1] = segs[k]; last_ph = false end
  end
  local action
  if area == "actions" or VERBS[rest[#rest]] then
    action = table.remove(rest)
  elseif method == "GET" then action = last_ph and "get" or "list"
  elseif method == "POST" then action = "create"
  elseif method == "PUT" or method == "PATCH" then action = "update"
  else action = "delete" end
  local parts = { area }
  if #rest > 0 then parts[#parts + 1] = table.concat(rest, "_") end
  parts[#parts + 1] = action
  return (table.concat(parts, "."):gsub("-", "_")), action
end
local FLAGS = { yes = true, ["true"] = true, no = false, ["false"] = false, flase = false }
local function q(list)
  local o = {}
  for _, v in ipairs(list) do o[#o + 1] = ("%q"):format(v) end
  return "{ " .. table.concat(o, ", ") .. " }"
end
for k, li in ipairs(req) do
  local stop = req[k + 1] or #lines + 1
  local raw = trim(lines[li])
  local method, path = raw:match("^(%u+)%s+(%S+)")
  if path == "HTTP/1.1" then path = nil end
  local _, head = prev_text(li)
  local query, body, required = {}, {}, {}
  local i = li + 1
  while i < stop do
    local t = trim(lines[i])
    if t:lower():match("^p*arameters?%s+type") then
      local _, label = prev_text(i)
      local kind = label:lower():match("^query") and "query" or label:lower():match("^body") and "body"
        or label:match("^[Uu][Rr][Ll]") and "url" or nil
      local hdr = t:lower()
      local optional_col = hdr:match("optional")
      local flag_last = hdr:match("description%s+is optional") or hdr:match("description%s+required")
      local last, last_flag
      i = i + 1
      while i < stop and trim(lines[i]) ~= "" do
        local row = trim(lines[i])
        local toks = {}
        for w in row:gmatch("%S+") do toks[#toks + 1] = w end
        local pname = toks[1]
        local cont = FLAGS[pname:lower()] ~= nil or pname:match("^%[") or pname:match("^%u%l")
          or not pname:match("^[%w_]+$")
        local flag
        if flag_last then
          for n = #toks, 2, -1 do
            local f = FLAGS[toks[n]:lower()]
            if f ~= nil then flag = f; break end
          end
        else
          for n = cont and 1 or 2, #toks do
            local f = FLAGS[toks[n]:lower()]
            if f ~= nil then flag = f; break end
          end
        end
        local req_ = flag
        if optional_col and flag ~= nil then req_ = not flag end
        if cont then
          -- continuation of the previous row (multi-line type or description)
          if req_ and (kind == "query" or kind == "body") and last and not last_flag then
            required[#required + 1] = last; last_flag = true
          end
        else
          if kind == "query" then query[#query + 1] = pname
          elseif kind == "body" then body[#body + 1] = pname end
          if (kind == "query" or kind == "body") and req_ then required[#required + 1] = pname end
          last, last_flag = pname, flag ~= nil
        end
        i = i + 1
      end
    end
    i = i + 1
  end
  local np = path and norm(path)
  local name = np and name_of(method, np) or "?"
  io.write(("  { name = %q, method = %q, path = %q,\n    summary = %q, seed_line = %d,\n")
    :format(name, method, np or "?", head, li))
  if #query > 0 then io.write("    query = ", q(query), ",\n") end
  if #body > 0 then io.write("    body = ", q(body), ",\n") end
  if #required > 0 then io.write("    required = ", q(required), ",\n") end
  local act = name:match("%.([%w_]+)$")
  if act == "list" then io.write("    paged = true,\n") end
  local resp = method == "DELETE" and "empty" or act == "list" and "list" or "object"
  local roles = {}
  for j = li - 1, math.max(1, li - 8), -1 do
    if lines[j]:match("accessed by the following roles") then
      for r = j + 1, li - 1 do
        local role = trim(lines[r]):match("^%d+%.%s+(.+)$")
        if role then roles[#roles + 1] = role end
      end
      break
    end
  end
  if #roles > 0 then io.write("    roles = ", q(roles), ",\n") end
  io.write(("    response = %q,\n"):format(resp))
  io.write("  },\n")
end
