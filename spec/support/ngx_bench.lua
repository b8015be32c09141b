--- Former name of the test bench's nginx launcher, now `support.nginx` (which took over its
-- options: `ports`, `vars`, `servers`, `certs`, `workers`, `env`, `environ`, `conf`, `pid`,
-- and `srv:http()`). Kept so that bench/talview.lua, which still requires this name, runs;
-- new code requires "support.nginx".
-- @module support.ngx_bench

return require "support.nginx"
