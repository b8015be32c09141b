-- assesskit: Lua clients for the Talview v4 and InterviewMocha v2/v3 hiring-assessment APIs.
-- Builds with Debian's luarocks, offline:
--   luarocks --lua-version=5.4 --tree build/rocktree make --deps-mode=none assesskit-scm-1.rockspec
-- Every Lua module under lua/ must be listed in build.modules and every script under bin/ in
-- build.install.bin: .ci/rock-check.sh (part of `make test`) fails otherwise.
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
idiomatic Lua clients with token management, retries, paging and one error shape.]],
  license = "MIT",
  labels = { "http", "api", "jwt", "libcurl" },
}

dependencies = {
  "lua >= 5.1", -- Lua 5.4, or LuaJIT 2.1 for nginx (csrc/compat.h; PUC Lua 5.1 lacks luajit.h)
  "lua-cjson",
  "luasocket", -- sleeping between retries and a sub-second clock outside nginx
}

external_dependencies = {
  -- Debian keeps curl/curl.h in a multiarch include directory luarocks 3.8 does not search;
  -- the compiler finds it by itself, so only the library is checked.
  CURL = { library = "curl" },
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
  HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" }, -- Debian's libhiredis-dev (0.14)
}

build = {
  type = "builtin",
  modules = {
    ["assesskit.core"] = {
      sources = { "csrc/codec.c", "csrc/core.c", "csrc/crypto.c", "csrc/fileio.c", "csrc/http.c",
        "csrc/pkey.c", "csrc/redis.c" },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl", "ssl", "crypto", "hiredis" },
      incdirs = { "csrc", "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)", "$(HIREDIS_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)", "$(HIREDIS_LIBDIR)" },
    },
    ["assesskit.cli.args"] = "lua/assesskit/cli/args.lua",
    ["assesskit.cli.config"] = "lua/assesskit/cli/config.lua",
    ["assesskit.cli.dryrun"] = "lua/assesskit/cli/dryrun.lua",
    ["assesskit.cli.help"] = "lua/assesskit/cli/help.lua",
    ["assesskit.cli"] = "lua/assesskit/cli/init.lua",
    ["assesskit.cli.output"] = "lua/assesskit/cli/output.lua",
    ["assesskit.client"] = "lua/assesskit/client.lua",
    ["assesskit.endpoints"] = "lua/assesskit/endpoints.lua",
    ["assesskit.errors"] = "lua/assesskit/errors.lua",
    ["assesskit"] = "lua/assesskit/init.lua",
    ["assesskit.interviewmocha.catalogue"] = "lua/assesskit/interviewmocha/catalogue.lua",
    ["assesskit.interviewmocha"] = "lua/assesskit/interviewmocha/init.lua",
    ["assesskit.interviewmocha.normalise"] = "lua/assesskit/interviewmocha/normalise.lua",
    ["assesskit.journal"] = "lua/assesskit/journal.lua",
    ["assesskit.jwt"] = "lua/assesskit/jwt.lua",
    ["assesskit.ngx.token_cache"] = "lua/assesskit/ngx/token_cache.lua",
    ["assesskit.ngx.transport"] = "lua/assesskit/ngx/transport.lua",
    ["assesskit.redis"] = "lua/assesskit/redis.lua",
    ["assesskit.sandbox.actions"] = "lua/assesskit/sandbox/actions.lua",
    ["assesskit.sandbox.auth"] = "lua/assesskit/sandbox/auth.lua",
    ["assesskit.sandbox.callbacks"] = "lua/assesskit/sandbox/callbacks.lua",
    ["assesskit.sandbox.config"] = "lua/assesskit/sandbox/config.lua",
    ["assesskit.sandbox.control"] = "lua/assesskit/sandbox/control.lua",
    ["assesskit.sandbox.credentials"] = "lua/assesskit/sandbox/credentials.lua",
    ["assesskit.sandbox.faults"] = "lua/assesskit/sandbox/faults.lua",
    ["assesskit.sandbox.http"] = "lua/assesskit/sandbox/http.lua",
    ["assesskit.sandbox"] = "lua/assesskit/sandbox/init.lua",
    ["assesskit.sandbox.interviewmocha"] = "lua/assesskit/sandbox/interviewmocha.lua",
    ["assesskit.sandbox.json"] = "lua/assesskit/sandbox/json.lua",
    ["assesskit.sandbox.jwt"] = "lua/assesskit/sandbox/jwt.lua",
    ["assesskit.sandbox.log"] = "lua/assesskit/sandbox/log.lua",
    ["assesskit.sandbox.queue"] = "lua/assesskit/sandbox/queue.lua",
    ["assesskit.sandbox.resources"] = "lua/assesskit/sandbox/resources.lua",
    ["assesskit.sandbox.router"] = "lua/assesskit/sandbox/router.lua",
    ["assesskit.sandbox.samples"] = "lua/assesskit/sandbox/samples.lua",
    ["assesskit.sandbox.samples_gen"] = "lua/assesskit/sandbox/samples_gen.lua",
    ["assesskit.sandbox.seed"] = "lua/assesskit/sandbox/seed.lua",
    ["assesskit.sandbox.store"] = "lua/assesskit/sandbox/store.lua",
    ["assesskit.sandbox.talview"] = "lua/assesskit/sandbox/talview.lua",
    ["assesskit.talview.action_status"] = "lua/assesskit/talview/action_status.lua",
    ["assesskit.talview.auth"] = "lua/assesskit/talview/auth.lua",
    ["assesskit.talview.callback"] = "lua/assesskit/talview/callback.lua",
    ["assesskit.talview.catalogue"] = "lua/assesskit/talview/catalogue.lua",
    ["assesskit.talview.resolutions"] = "lua/assesskit/talview/resolutions.lua",
    ["assesskit.talview"] = "lua/assesskit/talview/init.lua",
    ["assesskit.url"] = "lua/assesskit/url.lua",
  },
  install = {
    bin = {
      ["assesskit"] = "bin/assesskit",
      ["assesskit-sandbox"] = "bin/assesskit-sandbox",
    },
  },
}
