/*
 * core.h: what the concern files of assesskit.core share.
 */
#ifndef ASSESSKIT_CORE_H
#define ASSESSKIT_CORE_H

#include "compat.h"

/* The version of assesskit: the Lua module `assesskit`'s `_VERSION` (the one constant of the
 * rock), read once by luaopen_assesskit_core and kept in the registry. */
const char *ak_version(lua_State *L);

/* Each concern adds its functions to the module table on top of the stack. */
void http_open(lua_State *L);
void pkey_open(lua_State *L);
void codec_open(lua_State *L);
void json_open(lua_State *L);

/* Creates the named metatable `tname` with `methods` as __index plus the metamethods in
 * `meta`, and pops it. */
void ak_newclass(lua_State *L, const char *tname, const luaL_Reg *methods,
                 const luaL_Reg *meta);

/* Raises "bad argument #arg (field 'name': expected expected, got <type of value at idx>)". */
int ak_fielderror(lua_State *L, int arg, const char *name, const char *expected, int idx);

#endif
