/*
 * util.h: helpers every concern file of assesskit.core uses (version, classes, argument
 * errors).
 * Nothing here knows about HTTP, keys or encodings.
 */
#ifndef ASSESSKIT_UTIL_H
#define ASSESSKIT_UTIL_H

#include "compat.h"

/* The version of assesskit: the Lua module `assesskit`'s `_VERSION` (the one constant of the
 * rock), read once by ak_load_version (luaopen_assesskit_core) and kept in the registry. */
const char *ak_version(lua_State *L);
void ak_load_version(lua_State *L);

/* Creates the named metatable `tname` with `methods` as __index plus the metamethods in
 * `meta`, and pops it. */
void ak_newclass(lua_State *L, const char *tname, const luaL_Reg *methods,
                 const luaL_Reg *meta);

/* Raises "bad argument #arg (field 'name': expected expected, got <type of value at idx>)". */
int ak_fielderror(lua_State *L, int arg, const char *name, const char *expected, int idx);

/* Raises "bad argument #arg (unknown option 'k')" for the first key of the table at `arg`
 * that is not in the NULL-terminated list `known`. */
void ak_checkoptions(lua_State *L, int arg, const char *const known[]);

#endif
