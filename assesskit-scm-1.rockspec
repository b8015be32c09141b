-- assesskit: Lua clients for the Talview v4 and InterviewMocha v2/v3 hiring-assessment APIs:
-- the C core, the clients, the nginx transport and the `assesskit` command. The sandbox (the
-- API emulator) is its own rock, assesskit-sandbox-scm-1.rockspec.
--
-- Builds with Debian's luarocks, offline (the dependencies below come from Debian packages,
-- which luarocks does not see, hence --deps-mode=none; README.md, "Installing"):
--   luarocks --lua-version=5.4 --tree T make --deps-mode=none assesskit-scm-1.rockspec
-- The core is built by the Makefile's `rock` target in build/rock, installed, and that
-- directory removed: nothing is left beside the sources. Lua 5.4, or LuaJIT 2.1 through
-- luarocks' 5.1 (--lua-version=5.1 takes LuaJIT's headers by itself: .ci/rock-lua.sh).
--
-- Every file under lua/ is in build.install.lua of exactly one of the two rockspecs, every
-- script under bin/ in one build.install.bin: .ci/rock-check.sh (part of `make test`) fails
-- otherwise, and prints the line to add. assesskit-0.2.0-1.rockspec is this file with its
-- version and source (also checked there).
rockspec_format = "3.0"
package = "assesskit"
version = "scm-1"

source = {
  url = "git+https://github.com/assesskit/assesskit.git",
}

description = {
  summary = "Talview v4 and InterviewMocha v2/v3 API clients over a libcurl/OpenSSL core",
  detailed = [[
assesskit drives the Talview v4 and InterviewMocha v2/v3 hiring-assessment APIs from Lua:
a small C core (libcurl transfers with connection reuse, OpenSSL RS256 signatures) wrapped by
idiomatic Lua clients with token management, retries, paging and one error shape; a cosocket
transport for OpenResty/nginx; the `assesskit` command. Runs on Lua 5.4 and on LuaJIT 2.1. Annotations for editors
(Lua Language Server) of every endpoint are in the rock's types/ directory.]],
  homepage = "https://github.com/assesskit/assesskit",
  license = "MIT",
  labels = { "http", "api", "jwt", "libcurl", "openresty" },
}

dependencies = {
  -- Lua 5.4, or LuaJIT 2.1 (luarocks' "5.1"): PUC Lua 5.1, 5.2 and 5.3 are refused by the
  -- build with a message (.ci/rock-lua.sh). A version range cannot say "5.1 only as LuaJIT".
  "lua >= 5.1, < 5.5",
  "lua-cjson",
  "luasocket", -- sleeping between retries and a sub-second clock outside nginx
}

external_dependencies = {
  -- Debian keeps curl/curl.h in a multiarch include directory luarocks 3.8 does not search;
  -- the compiler finds it by itself (pkg-config), so only the library is checked.
  CURL = { library = "curl" },
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
  HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" }, -- Debian's libhiredis-dev (0.14)
}

build = {
  type = "make",
  build_target = "rock",
  build_variables = {
    ROCK_LUA = "$(LUA)", LUA_INCDIR = "$(LUA_INCDIR)",
    CC = "$(CC)", CFLAGS = "$(CFLAGS)", LIBFLAG = "$(LIBFLAG)",
  },
  install_target = "rock-install",
  install_variables = { INST_LIBDIR = "$(LIBDIR)" },
  install = {
    -- keys ending in .init keep the source layout (assesskit/cli/init.lua)
    lua = {
      ["assesskit.bulk"] = "lua/assesskit/bulk.lua",
      ["assesskit.cli.args"] = "lua/assesskit/cli/args.lua",
      ["assesskit.cli.config"] = "lua/assesskit/cli/config.lua",
      ["assesskit.cli.dryrun"] = "lua/assesskit/cli/dryrun.lua",
      ["assesskit.cli.each"] = "lua/assesskit/cli/each.lua",
      ["assesskit.cli.help"] = "lua/assesskit/cli/help.lua",
      ["assesskit.cli.init"] = "lua/assesskit/cli/init.lua",
      ["assesskit.cli.output"] = "lua/assesskit/cli/output.lua",
      ["assesskit.client"] = "lua/assesskit/client.lua",
      ["assesskit.endpoints"] = "lua/assesskit/endpoints.lua",
      ["assesskit.errors"] = "lua/assesskit/errors.lua",
      ["assesskit.init"] = "lua/assesskit/init.lua",
      ["assesskit.interviewmocha.catalogue"] = "lua/assesskit/interviewmocha/catalogue.lua",
      ["assesskit.interviewmocha.init"] = "lua/assesskit/interviewmocha/init.lua",
      ["assesskit.interviewmocha.normalise"] = "lua/assesskit/interviewmocha/normalise.lua",
      ["assesskit.interviewmocha.params"] = "lua/assesskit/interviewmocha/params.lua",
      ["assesskit.journal"] = "lua/assesskit/journal.lua",
      ["assesskit.jwt"] = "lua/assesskit/jwt.lua",
      ["assesskit.local_sandbox"] = "lua/assesskit/local_sandbox.lua",
      ["assesskit.ngx.token_cache"] = "lua/assesskit/ngx/token_cache.lua",
      ["assesskit.ngx.transport"] = "lua/assesskit/ngx/transport.lua",
      ["assesskit.options"] = "lua/assesskit/options.lua",
      ["assesskit.redis"] = "lua/assesskit/redis.lua",
      ["assesskit.talview.action_status"] = "lua/assesskit/talview/action_status.lua",
      ["assesskit.scheduler"] = "lua/assesskit/scheduler.lua",
      ["assesskit.store"] = "lua/assesskit/store.lua",
      ["assesskit.talview.auth"] = "lua/assesskit/talview/auth.lua",
      ["assesskit.talview.callback"] = "lua/assesskit/talview/callback.lua",
      ["assesskit.talview.catalogue"] = "lua/assesskit/talview/catalogue.lua",
      ["assesskit.talview.init"] = "lua/assesskit/talview/init.lua",
      ["assesskit.talview.params"] = "lua/assesskit/talview/params.lua",
      ["assesskit.talview.resolutions"] = "lua/assesskit/talview/resolutions.lua",
      ["assesskit.url"] = "lua/assesskit/url.lua",
    },
    bin = {
      ["assesskit"] = "bin/assesskit",
    },
  },
  -- LuaLS annotation files (`---@meta`, made by `make annotations`): <rock dir>/types, see
  -- README.md ("Editor support")
  copy_directories = { "types" },
}
