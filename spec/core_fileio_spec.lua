-- assesskit.core's durable-file helpers (csrc/fileio.c), which assesskit.journal stands on:
-- fdatasync, an exclusive lock per open file, truncation, a directory's fsync, misuse.
local core = require("assesskit.core")
local sys = require("support.sys")

describe("assesskit.core durable files #luajit", function()
  local dir
  before_each(function() dir = sys.tmpdir("fileio") end)
  after_each(function() sys.rmdir(dir) end)

  it("flushes what was written, so another reader sees it", function()
    local f = assert(io.open(dir .. "/a", "a+b"))
    f:write("one\n")
    assert.is_nil(sys.read(dir .. "/a"):find("one", 1, true)) -- still in Lua's buffer
    assert.is_true(core.file_sync(f))
    assert.equal("one\n", sys.read(dir .. "/a"))
    f:close()
  end)

  it("locks a file for one open handle: a second one, here or in another process, is busy",
    function()
      local path = dir .. "/a"
      local f = assert(io.open(path, "a+b"))
      assert.is_true(core.file_lock(f))
      local g = assert(io.open(path, "a+b"))
      local ok, msg, kind = core.file_lock(g)
      assert.is_nil(ok)
      assert.matches("^lock: ", msg)
      assert.equal("busy", kind)
      -- the interpreter of this run (make sanitize: its ASan host)
      local lua = os.getenv("ASSESSKIT_SPEC_LUA") or (rawget(_G, "jit") and "luajit" or "lua5.4")
      local script = ("package.path=%q package.cpath=%q local c = require('assesskit.core') "
        .. "local f = io.open(%q, 'a+b') local ok, _, kind = c.file_lock(f) io.write(tostring(ok or kind))")
        :format(sys.repo .. "/lua/?.lua;" .. sys.repo .. "/lua/?/init.lua;" .. package.path, package.cpath, path)
      local _, out, err = sys.exec(lua .. " -", { stdin = script })
      assert.equal("busy", out, err)
      f:close() -- the lock goes with the handle
      assert.is_true(core.file_lock(g))
      g:close()
    end)

  it("cuts a file, and appends after the new end", function()
    local f = assert(io.open(dir .. "/a", "a+b"))
    f:write("hello world\n")
    assert.is_true(core.file_truncate(f, 5))
    f:write("!\n")
    assert.is_true(core.file_sync(f))
    f:close()
    assert.equal("hello!\n", sys.read(dir .. "/a"))
  end)

  it("syncs a directory, and says why it cannot", function()
    assert.is_true(core.dir_sync(dir))
    local ok, msg, kind = core.dir_sync(dir .. "/missing")
    assert.is_nil(ok)
    assert.matches("missing: No such file or directory", msg, 1, true)
    assert.equal("io", kind)
  end)

  it("raises on misuse: not a file, a closed file, a bad size", function()
    local f = assert(io.open(dir .. "/a", "a+b"))
    assert.has_error(function() core.file_truncate(f, -1) end)
    assert.has_error(function() core.file_truncate(f, 1.5) end)
    assert.has_error(function() core.file_sync({}) end)
    assert.has_error(function() core.file_lock("x") end)
    f:close()
    assert.has_error(function() core.file_sync(f) end, nil)
    local ok, msg = pcall(core.file_sync, f)
    assert.is_false(ok)
    assert.matches("closed file", msg)
  end)
end)
