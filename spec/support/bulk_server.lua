--- A small Talview-shaped API inside nginx that watches how a bulk job treats it: requests in
-- flight, connections, token requests, arrival times, all taken server-side. Used by
-- spec/bulk_map_spec.lua and the bulk benches.
--
-- `start(opts)` (from the spec's Lua) starts one nginx (one worker) with two servers: the API
-- (`api` port) and a driver (`driver` port) that runs a spec file's cases inside nginx
-- (`GET /case?file=...&name=...`). `env(api_url)` gives a case what it needs in either
-- world: `talview(opts)` (a client with the password grant), `reset(cfg)`, `stats()`.
--
-- The API (all JSON):
--
-- * `POST /oauth2/token`: counts, waits `cfg.token_delay` (0.05 s), answers the current token;
-- * `GET /models/candidate/{id}`: waits `cfg.delay` seconds (or `cfg.delays[id]`), answers
--   `{id =}`; `cfg.missing[id]` answers 404; the arrivals numbered `cfg.pushback.from` to
--   `.to` are answered `cfg.pushback.status` (with `Retry-After: cfg.pushback.retry_after`
--   when given; an array gives one value per arrival from `.from` on);
-- * `GET /models/candidate?page=&pageSize=`: `cfg.total` candidates, Yii2 paging headers,
--   after `cfg.delay` seconds (or `cfg.page_delays[page]`);
-- * `POST /models/candidate`: `{id =, email =}`;
-- * every API call needs `Authorization: Bearer <current token>` (401 otherwise);
--   `POST /_expire` makes the current token refused from now on;
-- * `POST /_reset` (body: cfg as JSON) and `GET /_stats`: `{tokens =, max_in_flight =,
--   connections =, arrivals = {{t =, in_flight =, status =, uri =, conn =}, ...}}`.
-- @module support.bulk_server
-- luacheck: globals ngx
local M = {}

-- ------------------------------------------------------------------------------------------
-- Inside nginx: the API's handlers (state in this module: the server has one worker)

local state

local function reset(cfg)
  state = {
    cfg = cfg or {}, tokens = 0, generation = 1, in_flight = 0, max_in_flight = 0,
    arrivals = {}, conns = {}, nconns = 0,
  }
end
reset()

local function now()
  ngx.update_time()
  return ngx.now()
end

local function reply(status, value, headers)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  for k, v in pairs(headers or {}) do ngx.header[k] = v end
  ngx.print(require("cjson").encode(value))
end

local function pause(s)
  if s and s > 0 then ngx.sleep(s) end
end

local function current_token()
  return "tok-" .. state.generation
end

--- The content handler of the API server (nginx `content_by_lua_block`).
function M.handle()
  local cjson = require("cjson")
  local method, uri = ngx.req.get_method(), ngx.var.uri
  if uri == "/_reset" then
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    reset(body and body ~= "" and cjson.decode(body) or {})
    return reply(200, { ok = true })
  elseif uri == "/_stats" then
    local arrivals = state.arrivals
    return reply(200, { tokens = state.tokens, max_in_flight = state.max_in_flight,
      connections = state.nconns, arrivals = #arrivals > 0 and arrivals or cjson.empty_array })
  elseif uri == "/_expire" then
    state.generation = state.generation + 1
    return reply(200, { ok = true })
  elseif uri == "/oauth2/token" then
    state.tokens = state.tokens + 1
    pause(state.cfg.token_delay or 0.05)
    return reply(200, { access_token = current_token(), expires_in = 3600, token_type = "Bearer" })
  end
  local cfg = state.cfg
  local conn = tonumber(ngx.var.connection)
  if not state.conns[conn] then
    state.conns[conn] = true
    state.nconns = state.nconns + 1
  end
  state.in_flight = state.in_flight + 1
  if state.in_flight > state.max_in_flight then state.max_in_flight = state.in_flight end
  local n = #state.arrivals + 1
  local arrival = { t = now(), in_flight = state.in_flight, uri = ngx.var.request_uri, conn = conn }
  state.arrivals[n] = arrival
  local status, value, headers = 200
  if ngx.var.http_authorization ~= "Bearer " .. current_token() then
    status, value = 401, { name = "Unauthorized", message = "token refused", status = 401 }
  else
    local pb = cfg.pushback
    local id = tonumber(uri:match("^/models/candidate/(%d+)$"))
    if pb and n >= pb.from and n <= pb.to then
      status, value = pb.status, { name = "Busy", message = "slow down", status = pb.status }
      local ra = pb.retry_after
      if type(ra) == "table" then ra = ra[n - pb.from + 1] end
      if ra then headers = { ["Retry-After"] = tostring(ra) } end
    elseif id then
      pause((cfg.delays and cfg.delays[tostring(id)]) or cfg.delay)
      if cfg.missing and cfg.missing[tostring(id)] then
        status, value = 404, { name = "Not Found", message = "no candidate " .. id, status = 404 }
      else
        value = { id = id }
      end
    elseif uri == "/models/candidate" and method == "GET" then
      local args = ngx.req.get_uri_args()
      local size = tonumber(args.pageSize) or 20
      local page = tonumber(args.page) or 1
      pause((cfg.page_delays and cfg.page_delays[tostring(page)]) or cfg.delay)
      local total = cfg.total or 0
      local pages = math.max(1, math.ceil(total / size))
      value = {}
      for i = (page - 1) * size + 1, math.min(total, page * size) do value[#value + 1] = { id = i } end
      if #value == 0 then value = cjson.empty_array end
      headers = {
        ["X-Pagination-Total-Count"] = total, ["X-Pagination-Page-Count"] = pages,
        ["X-Pagination-Current-Page"] = page, ["X-Pagination-Per-Page"] = size,
      }
    elseif uri == "/models/candidate" and method == "POST" then
      ngx.req.read_body()
      local body = cjson.decode(ngx.req.get_body_data() or "{}")
      pause(cfg.delay)
      status, value = 201, { id = n, email = body.email }
    else
      status, value = 404, { name = "Not Found", message = "no route", status = 404 }
    end
  end
  arrival.status = status
  state.in_flight = state.in_flight - 1
  return reply(status, value, headers)
end

--- The driver's handler: runs one case of a spec file inside nginx and answers "ok" or the
-- failure (with its traceback).
function M.run_case()
  local args = ngx.req.get_uri_args()
  local cases = dofile(args.file)
  local case
  for _, c in ipairs(cases) do if c.name == args.name then case = c end end
  if not case then
    ngx.say("no case named ", tostring(args.name))
    return
  end
  local env = M.env(args.api)
  local ok, err = xpcall(case.fn, debug.traceback, env)
  env.close()
  ngx.say(ok and "ok" or tostring(err))
end

-- ------------------------------------------------------------------------------------------
-- Either world: what a case uses

--- What a case gets: `api` (the API's URL), `inside_nginx`, `talview(opts)`, `reset(cfg)`,
-- `stats()`, `expire()`, `close()` (closes the clients it made).
-- @string api the API server's base URL
-- @treturn table
function M.env(api)
  local cjson = require("cjson")
  local talview = require("assesskit.talview")
  local in_ngx = type(rawget(_G, "ngx")) == "table" and ngx.get_phase ~= nil
  local transport
  if in_ngx then
    transport = require("assesskit.ngx.transport").new()
  else
    transport = require("assesskit.core").session()
  end
  local made = {}
  local env = { api = api, inside_nginx = in_ngx }
  local function call(method, path, body)
    local status, _, rbody = transport:request({ method = method, url = api .. path, body = body,
      headers = body and { ["content-type"] = "application/json" } or nil, timeout = 30 })
    assert(status == 200, "control call " .. path .. " failed: " .. tostring(rbody))
    return cjson.decode(rbody)
  end
  function env.reset(cfg) return call("POST", "/_reset", cjson.encode(cfg or {})) end
  function env.stats() return call("GET", "/_stats") end
  function env.expire() return call("POST", "/_expire", "{}") end
  function env.talview(opts)
    opts = opts or {}
    opts.base_url = api
    opts.auth = opts.auth or { grant = "password", client_id = "bulk", client_secret = "bulk-secret",
      username = "bulk", password = "bulk-password" }
    local tv = talview.new(opts)
    made[#made + 1] = tv
    return tv
  end
  function env.close()
    for _, tv in ipairs(made) do tv:close() end
    if transport.close then transport:close() end
  end
  return env
end

-- ------------------------------------------------------------------------------------------
-- From the spec: start the server

--- Start the API and the driver in one nginx (one worker), on free loopback ports.
-- @treturn table the server (support.nginx), with `api` (URL) and `driver(file, name)` (runs a
--   case inside nginx: "ok" or the failure)
function M.start()
  local nginx = require("support.nginx")
  local http = require("support.http")
  local srv = nginx.start({
    ports = { "API", "DRIVER" },
    http = [[
      init_by_lua_block { package.path = "@REPO@/spec/?.lua;" .. package.path }
      lua_socket_pool_size 64;
    ]],
    servers = [[
      server {
        listen 127.0.0.1:@API@ backlog=512;
        keepalive_requests 1000000;
        location / { content_by_lua_block { require("support.bulk_server").handle() } }
      }
      server {
        listen 127.0.0.1:@DRIVER@;
        location = /case {
          lua_socket_read_timeout 120s;
          content_by_lua_block { require("support.bulk_server").run_case() }
        }
      }
    ]],
  })
  srv.api = "http://127.0.0.1:" .. srv.ports.API
  function srv.driver(file, name)
    local q = require("support.sandbox").query_string({ file = file, name = name, api = srv.api })
    local status, _, body = http.request("GET", "http://127.0.0.1:" .. srv.ports.DRIVER
      .. "/case?" .. q, { timeout = 120 })
    if status ~= 200 then return "driver answered " .. tostring(status) .. ": " .. tostring(body) end
    return (body:gsub("\n$", ""))
  end
  return srv
end

return M
