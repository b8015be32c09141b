-- bin/assesskit-sandbox: start, status, stop, TLS, foreground, run directory, and the
-- spec/support/sandbox.lua harness itself.
local sandbox = require("support.sandbox")
local sys = require("support.sys")
local cjson = require("cjson")

local script = sandbox.script
local q, read = sys.quote, sys.read

-- Runs a shell command: its exit status, then its output and error.
local function sh(cmd)
  local _, out, rc = sys.run(cmd)
  return rc, out
end

local function mkdtemp() return sys.tmpdir("sandbox-spec") end

local function proc_state(pid)
  local s = read("/proc/" .. pid .. "/stat")
  return s and s:match("^%d+ %b() (%a)")
end

local function gone(pid)
  local st = proc_state(pid)
  return st == nil or st == "Z"
end

-- every live nginx process whose command line names this directory
local function nginx_procs(dir)
  local out = {}
  local p = io.popen("ls /proc")
  for name in p:lines() do
    if name:match("^%d+$") then
      local cmd = read("/proc/" .. name .. "/cmdline")
      if cmd and cmd:find(dir, 1, true) and cmd:find("nginx", 1, true) and not gone(name) then
        out[#out + 1] = tonumber(name)
      end
    end
  end
  p:close()
  return out
end

local function children(pid)
  local out = {}
  local p = io.popen("ls /proc")
  for name in p:lines() do
    local stat = name:match("^%d+$") and read("/proc/" .. name .. "/stat")
    local ppid = stat and stat:match("^%d+ %b() %a (%d+)")
    if ppid and tonumber(ppid) == pid and not gone(name) then out[#out + 1] = tonumber(name) end
  end
  p:close()
  return out
end

local function owner(pid)
  local s = read("/proc/" .. pid .. "/status") or ""
  return tonumber(s:match("Uid:%s+(%d+)"))
end

describe("bin/assesskit-sandbox", function()
  it("starts, reports, refuses a second start, and stops leaving no process", function()
    local dir = mkdtemp()
    local rc, out = sh(q(script) .. " start --port 0 --dir " .. q(dir))
    local ok, err = pcall(function()
      assert.equal(0, rc, out)
      local url = out:match("(http://127%.0%.0%.1:%d+)%s*$")
      assert.truthy(url, out)
      assert.matches("client_id=sandbox%-client", out)
      assert.matches("x%-api%-key", out)
      assert.matches("sandbox demo key", out, 1, true)
      for _, f in ipairs({ "nginx.conf", "nginx.pid", "credentials.json", "credentials.txt", "logs/error.log" }) do
        assert.truthy(read(dir .. "/" .. f), f)
      end
      local creds = cjson.decode(read(dir .. "/credentials.json"))
      assert.equal(url, creds.base_url)
      for _, k in ipairs({ "client_id", "client_secret", "username", "password" }) do
        assert.is_string(creds.password[k], k)
      end
      for _, k in ipairs({ "client_id", "issuer", "audience", "scope", "private_key_file" }) do
        assert.is_string(creds.jwt[k], k)
      end
      assert.truthy(read(creds.jwt.private_key_file))
      assert.is_string(creds.interviewmocha.api_key)
      -- listens on loopback only
      assert.matches("listen 127%.0%.0%.1:", read(dir .. "/nginx.conf"))

      local src, sout = sh(q(script) .. " status --dir " .. q(dir))
      assert.equal(0, src)
      assert.matches("running", sout)

      local again, aout = sh(q(script) .. " start --port 0 --dir " .. q(dir))
      assert.are_not.equal(0, again)
      assert.matches("already running", aout)

      local pid = tonumber(read(dir .. "/nginx.pid"):match("%d+"))
      local workers = children(pid)
      assert.equal(1, #workers) -- worker_processes 1
      -- the worker runs as the caller (root keeps root: `user root root;`)
      assert.equal(owner(pid), owner(workers[1]))

      local stop_rc = sh(q(script) .. " stop --dir " .. q(dir))
      assert.equal(0, stop_rc)
      assert.is_true(gone(pid))
      for _, w in ipairs(workers) do assert.is_true(gone(w)) end
      assert.same({}, nginx_procs(dir))
      local st = sh(q(script) .. " status --dir " .. q(dir))
      assert.equal(3, st)
      -- stop again is harmless
      assert.equal(0, (sh(q(script) .. " stop --dir " .. q(dir))))
    end)
    sh(q(script) .. " stop --dir " .. q(dir))
    sys.rmdir(dir)
    assert(ok, err)
  end)

  it("never stops a process a stale pid file names, not even another sandbox's", function()
    local outer = mkdtemp()
    -- `mine`'s path ends the other sandbox's path: ".../nginx.conf" of one is inside the other's
    local mine = outer .. "/run"
    local other = outer .. "/other" .. mine
    assert(sys.run("mkdir -p " .. q(mine) .. " " .. q(other)))
    local p = io.popen("sleep 60 >/dev/null 2>&1 & echo $!")
    local bystander = tonumber(p:read("*l"))
    p:close()
    local ok, err = pcall(function()
      assert.equal(0, (sh(q(script) .. " start --port 0 --dir " .. q(other))))
      local other_pid = tonumber(read(other .. "/nginx.pid"):match("%d+"))
      for _, pid in ipairs({ bystander, other_pid }) do
        sys.write(mine .. "/nginx.pid", pid .. "\n")
        local rc, out = sh(q(script) .. " stop --dir " .. q(mine))
        assert.equal(0, rc)
        assert.matches("not running", out)
        assert.equal(3, (sh(q(script) .. " status --dir " .. q(mine))))
        assert.is_false(gone(pid))
      end
      assert.equal(0, (sh(q(script) .. " status --dir " .. q(other))))
      -- a start over the stale pid file works, and its stop stops only itself
      sys.write(mine .. "/nginx.pid", other_pid .. "\n")
      assert.equal(0, (sh(q(script) .. " start --port 0 --dir " .. q(mine))))
      assert.equal(0, (sh(q(script) .. " stop --dir " .. q(mine))))
      assert.same({}, nginx_procs(" -c " .. mine .. "/nginx.conf"))
      assert.is_false(gone(other_pid))
    end)
    sh(q(script) .. " stop --dir " .. q(mine))
    sh(q(script) .. " stop --dir " .. q(other))
    sh("kill " .. bystander)
    sys.rmdir(outer)
    assert(ok, err)
  end)

  it("refuses bad options", function()
    assert.equal(2, (sh(q(script) .. " start --bogus")))
    assert.are_not.equal(0, (sh(q(script) .. " start --port 99999 --dir /tmp/x-not-used")))
    assert.equal(2, (sh(q(script) .. " frobnicate")))
  end)

  it("runs in the foreground and stops when asked", function()
    local dir = mkdtemp()
    local log = dir .. ".fg.out"
    os.execute(q(script) .. " start --foreground --port 0 --dir " .. q(dir) .. " >" .. q(log) .. " 2>&1 &")
    local url
    for _ = 1, 100 do
      url = (read(log) or ""):match("(http://127%.0%.0%.1:%d+)\n")
      if url then break end
      os.execute("sleep 0.1")
    end
    local ok, err = pcall(function()
      assert.truthy(url, read(log))
      assert.equal(0, (sh("curl -fsS " .. q(url .. "/_sandbox/health"))))
      local pid = tonumber(read(dir .. "/nginx.pid"):match("%d+"))
      assert.equal(0, (sh(q(script) .. " stop --dir " .. q(dir))))
      assert.is_true(gone(pid))
      assert.same({}, nginx_procs(dir))
    end)
    sh(q(script) .. " stop --dir " .. q(dir))
    sys.rmdir(dir)
    os.remove(log)
    assert(ok, err)
  end)

  it("starts as an unprivileged user in a directory that user owns", function()
    if (owner("self") or 0) ~= 0 then
      return pending("runs only as root (unprivileged, the other specs cover it)")
    end
    if sh("command -v setpriv") ~= 0 then return pending("needs setpriv (util-linux)") end
    -- `nobody` may not enter the checkout (a clone under /root is mode 0700): it runs a copy of
    -- the script and the Lua tree, laid out as in the repository, from a directory it can read
    local install = mkdtemp()
    assert.equal(0, (sh("mkdir " .. q(install .. "/bin") .. " && cp " .. q(script) .. " " .. q(install .. "/bin/")
      .. " && cp -R " .. q(sandbox.root .. "/lua") .. " " .. q(install .. "/")
      .. " && chmod -R a+rX " .. q(install))))
    local dir = mkdtemp()
    sh("chown nobody:nogroup " .. q(dir))
    local as_nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp "
    local staged = install .. "/bin/assesskit-sandbox"
    local rc, out = sh(as_nobody .. q(staged) .. " start --port 0 --dir " .. q(dir))
    local ok, err = pcall(function()
      assert.equal(0, rc, out)
      local pid = tonumber(read(dir .. "/nginx.pid"):match("%d+"))
      assert.equal(65534, owner(pid))
      for _, w in ipairs(children(pid)) do assert.equal(65534, owner(w)) end
      local url = out:match("(http://127%.0%.0%.1:%d+)%s*$")
      assert.equal(0, (sh("curl -fsS " .. q(url .. "/_sandbox/health"))))
      assert.equal(0, (sh(as_nobody .. q(staged) .. " stop --dir " .. q(dir))))
      assert.is_true(gone(pid))
    end)
    sh(as_nobody .. q(staged) .. " stop --dir " .. q(dir))
    sys.rmdir(dir)
    sys.rmdir(install)
    assert(ok, err)
  end)
end)

describe("the sandbox over TLS", function()
  local sb = sandbox.fixture({ tls = true })

  it("serves HTTPS with its own CA, whose file it names", function()
    assert.matches("^https://127%.0%.0%.1:%d+$", sb.url)
    assert.truthy(read(sb.ca_file))
    assert.equal(sb.ca_file, sb.credentials.ca_file)
    assert.matches("trust this CA", sb.output, 1, true)
    local r = sb:request("GET", "/models/candidate", { token = sb:token() })
    assert.equal(200, r.status)
    assert.equal(20, #r.json)
  end)

  it("is refused by a client that does not trust the CA", function()
    local rc = sh("curl -sS -o /dev/null " .. q(sb.url .. "/_sandbox/health"))
    assert.are_not.equal(0, rc)
    assert.equal(0, (sh("curl -fsS -o /dev/null --cacert " .. q(sb.ca_file) .. " " .. q(sb.url .. "/_sandbox/health"))))
  end)

  it("keeps its CA across restarts in the same directory", function()
    local dir = mkdtemp()
    local ok, err = pcall(function()
      assert.equal(0, (sh(q(script) .. " start --tls --port 0 --dir " .. q(dir))))
      local ca1 = read(dir .. "/tls/ca.pem")
      assert.equal(0, (sh(q(script) .. " stop --dir " .. q(dir))))
      assert.equal(0, (sh(q(script) .. " start --tls --port 0 --dir " .. q(dir))))
      assert.equal(ca1, read(dir .. "/tls/ca.pem"))
    end)
    sh(q(script) .. " stop --dir " .. q(dir))
    sys.rmdir(dir)
    assert(ok, err)
  end)
end)

describe("spec/support/sandbox.lua", function()
  it("starts on a free port in a fresh directory and stops by pid, removing the directory", function()
    local a = sandbox.start()
    local b = sandbox.start()
    local ok, err = pcall(function()
      assert.are_not.equal(a.url, b.url)
      assert.are_not.equal(a.dir, b.dir)
      assert.is_true(a:running())
      assert.is_number(a.pid)
    end)
    a:stop()
    b:stop()
    assert(ok, err)
    assert.is_false(a:running())
    assert.is_true(gone(a.pid))
    assert.is_nil(read(a.dir .. "/nginx.conf"))
    a:stop() -- idempotent
  end)
end)
