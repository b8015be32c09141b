/*
 * core.h: what core.c needs of the concern files.
 */
#ifndef ASSESSKIT_CORE_H
#define ASSESSKIT_CORE_H

#include "util.h"

/* Each concern adds its functions to the module table on top of the stack. */
void http_open(lua_State *L);   /* session, loop */
void pkey_open(lua_State *L);
void codec_open(lua_State *L);
void json_open(lua_State *L);
void crypto_open(lua_State *L);
void redis_open(lua_State *L);
void fileio_open(lua_State *L);

#endif
