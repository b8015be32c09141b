-- Release 0.2.0 of the rockspec assesskit-sandbox-scm-1.rockspec (the same apart from version,
-- source and the assesskit dependency's version; .ci/rock-check.sh compares them).
--
-- assesskit-sandbox: the local emulator of the Talview v4 and InterviewMocha v2/v3 APIs
-- (nginx + its Lua module), its `assesskit-sandbox` command and its demo service-account key.
-- It runs inside nginx, so much of what it needs are system packages that luarocks cannot
-- express; they are named in description.detailed and checked by `assesskit-sandbox start`.
--
--   luarocks --lua-version=5.4 --tree T make --deps-mode=none assesskit-sandbox-scm-1.rockspec
--
-- Install it into the same tree as the assesskit rock: nginx loads both from there (the
-- sandbox serves the Talview catalogue of assesskit.talview.catalogue). Nothing is compiled.
-- Every file under lua/assesskit/sandbox/ is listed below, data files too (the nginx
-- configuration template, the demo key pair, the README of its control API): they are
-- installed beside the modules, where the sandbox reads them. .ci/rock-check.sh checks the
-- listing; assesskit-sandbox-0.2.0-1.rockspec is this file with its version and source.
rockspec_format = "3.0"
package = "assesskit-sandbox"
version = "0.2.0-1"

source = {
  url = "https://github.com/assesskit/assesskit/archive/refs/tags/v0.2.0.tar.gz",
  file = "assesskit-0.2.0.tar.gz",
  dir = "assesskit-0.2.0",
}

description = {
  summary = "A local stateful emulator of the Talview v4 and InterviewMocha v2/v3 APIs",
  detailed = [[
The assesskit sandbox: an nginx + Lua emulator of Talview v4 and InterviewMocha v2/v3 on
127.0.0.1 (OAuth2 grants, every catalogue path, stateful resources, paging, fault injection, a
request log), started and stopped by the `assesskit-sandbox` command.

System requirements luarocks cannot install (Debian 12 package names):
  nginx with its Lua module, which runs LuaJIT: nginx-light (or nginx) and
    libnginx-mod-http-lua (ASSESSKIT_NGINX and ASSESSKIT_NGINX_MODULES point elsewhere);
  luaossl for that LuaJIT (the Lua 5.1 build of lua-luaossl: nginx loads it, not this tree's);
  lua5.4 (the command finds the installed modules with it), curl and openssl (commands).]],
  homepage = "https://github.com/assesskit/assesskit",
  license = "MIT",
  labels = { "sandbox", "mock", "nginx", "openresty", "testing" },
}

dependencies = {
  "lua >= 5.1, < 5.5",
  "assesskit == 0.2.0", -- the sandbox serves its Talview catalogue
  -- luaossl verifies JWT assertions inside nginx; the build nginx's LuaJIT loads is the Lua 5.1
  -- one of Debian's lua-luaossl (see description.detailed).
  "luaossl",
}

build = {
  type = "none",
  install = {
    -- data files get a key of their own (their directory as a module path, then any name):
    -- they are installed under that directory with their file name
    lua = {
      ["assesskit.sandbox.README_md"] = "lua/assesskit/sandbox/README.md",
      ["assesskit.sandbox.actions"] = "lua/assesskit/sandbox/actions.lua",
      ["assesskit.sandbox.auth"] = "lua/assesskit/sandbox/auth.lua",
      ["assesskit.sandbox.callbacks"] = "lua/assesskit/sandbox/callbacks.lua",
      ["assesskit.sandbox.config"] = "lua/assesskit/sandbox/config.lua",
      ["assesskit.sandbox.control"] = "lua/assesskit/sandbox/control.lua",
      ["assesskit.sandbox.credentials"] = "lua/assesskit/sandbox/credentials.lua",
      ["assesskit.sandbox.demo_service_account_key_pem"] = "lua/assesskit/sandbox/demo-service-account.key.pem",
      ["assesskit.sandbox.demo_service_account_pub_pem"] = "lua/assesskit/sandbox/demo-service-account.pub.pem",
      ["assesskit.sandbox.faults"] = "lua/assesskit/sandbox/faults.lua",
      ["assesskit.sandbox.http"] = "lua/assesskit/sandbox/http.lua",
      ["assesskit.sandbox.init"] = "lua/assesskit/sandbox/init.lua",
      ["assesskit.sandbox.interviewmocha"] = "lua/assesskit/sandbox/interviewmocha.lua",
      ["assesskit.sandbox.json"] = "lua/assesskit/sandbox/json.lua",
      ["assesskit.sandbox.jwt"] = "lua/assesskit/sandbox/jwt.lua",
      ["assesskit.sandbox.log"] = "lua/assesskit/sandbox/log.lua",
      ["assesskit.sandbox.nginx_conf_in"] = "lua/assesskit/sandbox/nginx.conf.in",
      ["assesskit.sandbox.queue"] = "lua/assesskit/sandbox/queue.lua",
      ["assesskit.sandbox.resources"] = "lua/assesskit/sandbox/resources.lua",
      ["assesskit.sandbox.router"] = "lua/assesskit/sandbox/router.lua",
      ["assesskit.sandbox.samples"] = "lua/assesskit/sandbox/samples.lua",
      ["assesskit.sandbox.samples_gen"] = "lua/assesskit/sandbox/samples_gen.lua",
      ["assesskit.sandbox.seed"] = "lua/assesskit/sandbox/seed.lua",
      ["assesskit.sandbox.store"] = "lua/assesskit/sandbox/store.lua",
      ["assesskit.sandbox.talview"] = "lua/assesskit/sandbox/talview.lua",
    },
    bin = {
      ["assesskit-sandbox"] = "bin/assesskit-sandbox",
    },
  },
}
