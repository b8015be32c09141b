-- Review aid: prints, for every request line of the Talview seed, its heading and the
-- parameter tables that follow it (label, header, one row per line with the flag column
-- decoded), so the catalogue can be checked against the seed without reading 17k lines.
--   lua5.4 tools/seed-dump.lua [seed] > /tmp/seed-dump.txt
local seed = arg[1] or "../shared/seeds/002_3384fbf1d7adbc06.txt"
local lines = {}
for l in io.lines(seed) do lines[#lines + 1] = l end
local req = {}
for i, l in ipairs(lines) do
  if l:match("^%s*GET%f[%A]") or l:match("^%s*POST%f[%A]") or l:match("^%s*PUT%f[%A]")
    or l:match("^%s*PATCH%f[%A]") or l:match("^%s*DELETE%f[%A]") then
    req[#req + 1] = i
  end
end
local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end
local function prev_text(i)
  local j = i - 1
  while j > 0 and trim(lines[j]) == "" do j = j - 1 end
  return j, trim(lines[j] or "")
end
for k, li in ipairs(req) do
  local stop = req[k + 1] or #lines + 1
  local _, head = prev_text(li)
  print(("=== %d  %s   [heading: %s]"):format(li, trim(lines[li]), head))
  local i = li + 1
  while i < stop do
    local t = trim(lines[i])
    if t:lower():match("^p*arameters?%s+type") or t:match("^Field%s+Type") then
      local _, label = prev_text(i)
      print(("  -- %d [%s] %s"):format(i, label, t))
      i = i + 1
      while i < stop and trim(lines[i]) ~= "" do
        print("     " .. trim(lines[i]):sub(1, 110))
        i = i + 1
      end
    end
    i = i + 1
  end
end
