-- make bench: the nginx transport (assesskit.ngx.transport, inside nginx) beside the core
-- (assesskit.core, libcurl) reading the same responses: a 2 MiB body in one chunk and the same
-- body in 1-byte chunks (the cost of chunked framing: it must follow the bytes, not the number
-- of chunks). Prints seconds per response, best of a few rounds; asserts nothing.
-- Run: lua5.4 bench/ngx.lua

local bench = dofile((debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") or ".") .. "/support.lua")
local core = require("assesskit.core")
local socket = require("socket")

local ROUNDS = 3
local N = 2 * 1024 * 1024

local srv = bench.start_server({
  locations = [[
    # /body?chunk=1: N bytes as 1-byte chunks; /body: the same N bytes in one chunk
    location = /body {
      content_by_lua_block {
        local n = ]] .. N .. [[
        local cache = package.loaded["bench.ngx.bodies"] or {}
        package.loaded["bench.ngx.bodies"] = cache
        local key = ngx.var.arg_chunk and "small" or "one"
        if not cache[key] then
          if key == "small" then
            cache[key] = string.rep("1\r\nx\r\n", n) .. "0\r\n\r\n"
          else
            cache[key] = string.format("%x\r\n", n) .. string.rep("x", n) .. "\r\n0\r\n\r\n"
          end
        end
        local sock = ngx.req.socket(true)
        sock:send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        sock:send(cache[key])
      }
    }
    # /time?path=P&n=R: the best of R requests of P through the ngx transport, in seconds
    location = /time {
      content_by_lua_block {
        local t = require("assesskit.ngx.transport").new()
        local url = "http://127.0.0.1:" .. ngx.var.server_port .. ngx.unescape_uri(ngx.var.arg_path)
        local best = math.huge
        for _ = 1, tonumber(ngx.var.arg_n) do
          ngx.update_time()
          local t0 = ngx.now()
          local status, _, body = t:request({ url = url, timeout = 120 })
          ngx.update_time()
          if status ~= 200 or #body ~= ]] .. N .. [[ then
            ngx.say("failed: ", tostring(status), " ", tostring(_))
            return
          end
          best = math.min(best, ngx.now() - t0)
        end
        ngx.say(best)
      }
    }
  ]],
})

local function core_best(path)
  local s = core.session()
  local best = math.huge
  for _ = 1, ROUNDS do
    local t0 = socket.gettime()
    local status, _, body = s:request({ url = srv:url(path), timeout = 120 })
    assert(status == 200 and #body == N, "core: " .. tostring(status))
    best = math.min(best, socket.gettime() - t0)
  end
  s:close()
  return best
end

local function ngx_best(path)
  local status, body = srv:http("GET", "/time?n=" .. ROUNDS .. "&path=" .. path:gsub("[?&=]", function(c)
    return string.format("%%%02X", c:byte())
  end))
  local secs = status == 200 and tonumber(body)
  assert(secs, "ngx transport: " .. tostring(body))
  return secs
end

local function line(label, secs, ref)
  local s = string.format("  %-44s %10.3f s", label, secs)
  if ref then s = s .. string.format("   (%.1fx core: %.3f s)", secs / ref, ref) end
  print(s)
end

for _, case in ipairs({ { "2 MiB body, one chunk", "/body" }, { "2 MiB body, 1-byte chunks", "/body?chunk=1" } }) do
  local c = core_best(case[2])
  line("core.session: " .. case[1], c)
  line("ngx transport: " .. case[1], ngx_best(case[2]), c)
end
srv:stop()
