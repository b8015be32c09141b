/***
 * JSON decoding (RFC 8259) that keeps integers.
 * @submodule assesskit.core
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* Objects and arrays nested deeper than this are an error (lua-cjson's default). */
#define JSON_MAX_DEPTH 1000

/* Stack slots of json_decode: the text, the null sentinel, the scratch buffer (nil until a
 * string with an escape needs it); values are built above them. */
#define SLOT_NULL 2
#define SLOT_SCRATCH 3

/* Tables are created with room for as many entries as the last object (array) closed at the
 * same depth had (API pages hold objects of one shape), down to this depth. */
#define HINT_DEPTH 16

/* When LC_NUMERIC's decimal point is not '.', a literal for strtod is copied with the
 * locale's: on the C stack up to this size, else into a userdata. */
#define NUMBUF 64

typedef struct {
  lua_State *L;
  const unsigned char *text;  /* the text; text[len] is the '\0' Lua puts after every string */
  const unsigned char *end;   /* text + len */
  const unsigned char *p;     /* the next byte to read */
  unsigned char *scratch;     /* escaped strings are unescaped here (as long as the text) */
  int depth;
  const char *why;            /* set by fail() */
  int object_size[HINT_DEPTH], array_size[HINT_DEPTH];
} parser;

/* Classes of the bytes inside a string: 0 is an ordinary byte. Bytes from 0x80 up are
 * ordinary: strings are bytes, as lua-cjson decodes and writes them (cjson.encode passes them
 * through, and what it writes, a journal for one, must read back). */
enum { SC_PLAIN, SC_QUOTE, SC_ESCAPE, SC_CONTROL };

#define ROW(x) x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x
static const unsigned char string_class[256] = {
  ROW(SC_CONTROL), ROW(SC_CONTROL),                                  /* 0x00-0x1f */
  0, 0, SC_QUOTE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,             /* 0x20-0x2f */
  ROW(0), ROW(0),                                                    /* 0x30-0x4f */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, SC_ESCAPE, 0, 0, 0,            /* 0x50-0x5f */
  ROW(0), ROW(0),                                                    /* 0x60-0x7f */
  ROW(0), ROW(0), ROW(0), ROW(0), ROW(0), ROW(0), ROW(0), ROW(0)    /* 0x80-0xff */
};
#undef ROW

/* Powers of ten a double holds exactly. */
static const double exact_pow10[] = {
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

static int parse_value(parser *ps);

/* Records why the text is not JSON (ps->p is where) and returns -1. */
static int fail(parser *ps, const char *why)
{
  ps->why = why;
  return -1;
}

#define IS_DIGIT(c) ((unsigned char)((c) - '0') < 10)

static void skip_space(parser *ps)
{
  const unsigned char *p = ps->p;
  while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
    p++;
  ps->p = p;
}

/* 1 + the value of a hex digit; 0 for any other byte. */
static const unsigned char hex_digit[256] = {
  ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
  ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15,
  ['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16
};

/* The value of four hex digits at p, or -1. Stops at the first byte that is not one (the
 * '\0' after the text is not). */
static long hex4(const unsigned char *p)
{
  long v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    unsigned d = hex_digit[p[i]];
    if (d == 0) return -1;
    v = v * 16 + (long)(d - 1);
  }
  return v;
}

static unsigned char *put_utf8(unsigned char *o, unsigned long cp)
{
  if (cp < 0x80) {
    *o++ = (unsigned char)cp;
  } else if (cp < 0x800) {
    *o++ = (unsigned char)(0xc0 | (cp >> 6));
    *o++ = (unsigned char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    *o++ = (unsigned char)(0xe0 | (cp >> 12));
    *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    *o++ = (unsigned char)(0x80 | (cp & 0x3f));
  } else {
    *o++ = (unsigned char)(0xf0 | (cp >> 18));
    *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    *o++ = (unsigned char)(0x80 | (cp & 0x3f));
  }
  return o;
}

/* The rest of a string that holds an escape: `s` is its first byte, `q` the first backslash.
 * Unescaped into the scratch buffer (never longer than the text: every escape is at least as
 * long as what it stands for), then pushed. */
static int string_escaped(parser *ps, const unsigned char *s, const unsigned char *q)
{
  lua_State *L = ps->L;
  unsigned char *o;
  if (ps->scratch == NULL) {
    ps->scratch = lua_newuserdata(L, (size_t)(ps->end - ps->text) + 1);
    lua_replace(L, SLOT_SCRATCH);
  }
  memcpy(ps->scratch, s, (size_t)(q - s));
  o = ps->scratch + (q - s);
  for (;;) {
    while (!string_class[*q]) /* runs between escapes are short: byte by byte */
      *o++ = *q++;
    switch (string_class[*q]) {
    case SC_QUOTE:
      lua_pushlstring(L, (const char *)ps->scratch, (size_t)(o - ps->scratch));
      ps->p = q + 1;
      return 0;
    case SC_CONTROL:
      ps->p = q;
      return fail(ps, q == ps->end ? "unterminated string"
                                   : "unescaped control character in a string");
    default: { /* SC_ESCAPE */
      long cp;
      ps->p = q;
      switch (q[1]) {
      case '"': *o++ = '"'; break;
      case '\\': *o++ = '\\'; break;
      case '/': *o++ = '/'; break;
      case 'b': *o++ = '\b'; break;
      case 'f': *o++ = '\f'; break;
      case 'n': *o++ = '\n'; break;
      case 'r': *o++ = '\r'; break;
      case 't': *o++ = '\t'; break;
      case 'u':
        cp = hex4(q + 2);
        if (cp < 0)
          return fail(ps, "\\u not followed by four hex digits");
        if (cp >= 0xdc00 && cp <= 0xdfff)
          return fail(ps, "lone low surrogate (\\uDC00-\\uDFFF) in a string");
        if (cp >= 0xd800 && cp <= 0xdbff) {
          long lo = q[6] == '\\' && q[7] == 'u' ? hex4(q + 8) : -1;
          if (lo < 0xdc00 || lo > 0xdfff)
            return fail(ps, "high surrogate (\\uD800-\\uDBFF) not followed by a low one");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          q += 6;
        }
        o = put_utf8(o, (unsigned long)cp);
        q += 4;
        break;
      default:
        return fail(ps, "invalid escape in a string");
      }
      q += 2;
    }
    }
  }
}

/* A string (ps->p at its opening quote), pushed. Without escapes it is pushed straight from
 * the text. */
static int parse_string(parser *ps)
{
  const unsigned char *s = ps->p + 1, *q = s;
  while (!string_class[*q])
    q++;
  switch (string_class[*q]) {
  case SC_QUOTE:
    lua_pushlstring(ps->L, (const char *)s, (size_t)(q - s));
    ps->p = q + 1;
    return 0;
  case SC_ESCAPE:
    return string_escaped(ps, s, q);
  default:
    ps->p = q;
    return fail(ps, q == ps->end ? "unterminated string"
                                 : "unescaped control character in a string");
  }
}

/* strtod on the literal [s, e) whatever LC_NUMERIC says. The text goes to strtod as it is
 * when the locale's decimal point is '.' (no byte after a valid literal can extend it, and the
 * text ends with a '\0'); otherwise a copy with the locale's decimal point. A userdata copy
 * stays on the stack (the caller resets the top): within the 3 slots enter() checked. */
static double c_strtod(lua_State *L, const unsigned char *s, const unsigned char *e)
{
  const char *dp = localeconv()->decimal_point;
  size_t n = (size_t)(e - s), dpn = strlen(dp), i, j;
  char local[NUMBUF], *buf = local;
  if (dp[0] == '.' && dp[1] == '\0')
    return strtod((const char *)s, NULL);
  if (n + dpn + 1 > sizeof local)
    buf = lua_newuserdata(L, n + dpn + 1); /* left on the stack: the caller pops it */
  for (i = 0, j = 0; i < n; i++) {
    if (s[i] == '.') {
      memcpy(buf + j, dp, dpn);
      j += dpn;
    } else {
      buf[j++] = (char)s[i];
    }
  }
  buf[j] = '\0';
  return strtod(buf, NULL);
}

/* A number (ps->p at '-' or a digit), pushed. Without a fraction or an exponent and within
 * the range of a Lua integer it is an integer (Lua 5.4); otherwise a float, correctly
 * rounded: exactly computed when the digits and the power of ten fit a double, strtod
 * otherwise. */
static int parse_number(parser *ps)
{
  const unsigned char *s = ps->p, *p = s;
  unsigned long long m = 0;   /* the first 19 significant digits */
  int nd = 0;                 /* significant digits in m */
  int dropped = 0;            /* digits after the 19th were met */
  long exp10 = 0;             /* value = m * 10^exp10 (when nothing was dropped) */
  int neg = 0, is_float = 0, top;
  double d;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  if (*p == '0') {
    p++;
    if (IS_DIGIT(*p)) {
      ps->p = s;
      return fail(ps, "leading zero in a number");
    }
  } else if (IS_DIGIT(*p)) {
    do {
      if (nd < 19) {
        m = m * 10 + (unsigned)(*p - '0');
        nd++;
      } else {
        dropped = 1;
      }
      p++;
    } while (IS_DIGIT(*p));
  } else {
    ps->p = p;
    return fail(ps, "expected a digit in a number");
  }
  if (*p == '.') {
    is_float = 1;
    p++;
    if (!IS_DIGIT(*p)) {
      ps->p = p;
      return fail(ps, "expected a digit after the decimal point");
    }
    do {
      if (nd < 19) {
        m = m * 10 + (unsigned)(*p - '0');
        if (m != 0) nd++;
        exp10--;
      } else {
        dropped = 1;
      }
      p++;
    } while (IS_DIGIT(*p));
  }
  if (*p == 'e' || *p == 'E') {
    long e = 0;
    int eneg = 0;
    is_float = 1;
    p++;
    if (*p == '+' || *p == '-')
      eneg = *p++ == '-';
    if (!IS_DIGIT(*p)) {
      ps->p = p;
      return fail(ps, "expected a digit in an exponent");
    }
    do {
      if (e < 100000) e = e * 10 + (*p - '0');
      p++;
    } while (IS_DIGIT(*p));
    exp10 += eneg ? -e : e;
  }
  ps->p = p;
  if (!dropped) {
    if (!is_float) {
      /* -0 is the integer 0; the most negative integer has no positive counterpart */
      if (AK_INTEGERS && m <= (unsigned long long)AK_MAXINTEGER + (unsigned)neg) {
        lua_pushinteger(ps->L, !neg ? (lua_Integer)m
                                    : m == 0 ? 0 : -(lua_Integer)(m - 1) - 1);
        return 0;
      }
      d = (double)m; /* an integer conversion rounds correctly */
      lua_pushnumber(ps->L, (lua_Number)(neg ? -d : d));
      return 0;
    }
    if (m == 0 || (m <= (1ULL << 53) && exp10 >= -22 && exp10 <= 22)) {
      /* zero whatever the exponent, or both operands exact: one correctly rounded operation */
      d = m == 0 ? 0.0
        : exp10 < 0 ? (double)m / exact_pow10[-exp10] : (double)m * exact_pow10[exp10];
      lua_pushnumber(ps->L, (lua_Number)(neg ? -d : d));
      return 0;
    }
  }
  top = lua_gettop(ps->L);
  d = c_strtod(ps->L, s, p);
  lua_settop(ps->L, top);
  lua_pushnumber(ps->L, (lua_Number)d);
  return 0;
}

/* true, false or null at ps->p (its first letter already seen). */
static int parse_word(parser *ps, const char *word, size_t n)
{
  const unsigned char *p = ps->p;
  size_t i;
  for (i = 1; i < n; i++) { /* stops at the '\0' after the text */
    if (p[i] != (unsigned char)word[i])
      return fail(ps, "invalid literal (expected true, false or null)");
  }
  ps->p = p + n;
  return 0;
}

static int enter(parser *ps)
{
  if (++ps->depth > JSON_MAX_DEPTH)
    return fail(ps, "nested deeper than 1000 objects and arrays");
  /* the container, a key and a value */
  if (!lua_checkstack(ps->L, 3))
    return fail(ps, "nested too deep for the Lua stack");
  ps->p++;
  skip_space(ps);
  return 0;
}

/* Leaves a container: records its size for the next one at its depth. */
static int leave(parser *ps, int *sizes, int n)
{
  ps->p++;
  if (ps->depth < HINT_DEPTH)
    sizes[ps->depth] = n;
  ps->depth--;
  return 0;
}

static int parse_object(parser *ps)
{
  lua_State *L = ps->L;
  int n = 0;
  if (enter(ps)) return -1;
  lua_createtable(L, 0, ps->depth < HINT_DEPTH ? ps->object_size[ps->depth] : 0);
  if (*ps->p == '}')
    return leave(ps, ps->object_size, 0);
  for (;;) {
    if (*ps->p != '"')
      return fail(ps, "expected a string (an object's key)");
    if (parse_string(ps)) return -1;
    skip_space(ps);
    if (*ps->p != ':')
      return fail(ps, "expected ':' after an object's key");
    ps->p++;
    skip_space(ps);
    if (parse_value(ps)) return -1;
    lua_rawset(L, -3);
    n++;
    skip_space(ps);
    if (*ps->p == ',') {
      ps->p++;
      skip_space(ps);
    } else if (*ps->p == '}') {
      return leave(ps, ps->object_size, n);
    } else {
      return fail(ps, "expected ',' or '}' in an object");
    }
  }
}

static int parse_array(parser *ps)
{
  lua_State *L = ps->L;
  int i = 0;
  if (enter(ps)) return -1;
  lua_createtable(L, ps->depth < HINT_DEPTH ? ps->array_size[ps->depth] : 0, 0);
  if (*ps->p == ']')
    return leave(ps, ps->array_size, 0);
  for (;;) {
    if (parse_value(ps)) return -1;
    lua_rawseti(L, -2, ++i);
    skip_space(ps);
    if (*ps->p == ',') {
      ps->p++;
      skip_space(ps);
    } else if (*ps->p == ']') {
      return leave(ps, ps->array_size, i);
    } else {
      return fail(ps, "expected ',' or ']' in an array");
    }
  }
}

/* One value at ps->p (no space before it), pushed. */
static int parse_value(parser *ps)
{
  switch (*ps->p) {
  case '{':
    return parse_object(ps);
  case '[':
    return parse_array(ps);
  case '"':
    return parse_string(ps);
  case '-': case '0': case '1': case '2': case '3': case '4':
  case '5': case '6': case '7': case '8': case '9':
    return parse_number(ps);
  case 't':
    if (parse_word(ps, "true", 4)) return -1;
    lua_pushboolean(ps->L, 1);
    return 0;
  case 'f':
    if (parse_word(ps, "false", 5)) return -1;
    lua_pushboolean(ps->L, 0);
    return 0;
  case 'n':
    if (parse_word(ps, "null", 4)) return -1;
    lua_pushvalue(ps->L, SLOT_NULL);
    return 0;
  default:
    return fail(ps, "expected a value");
  }
}

/***
 * Decode a JSON text (RFC 8259, strictly: one value, whitespace only between tokens, no
 * comments, trailing commas, NaN, Infinity, hex or leading zeros; control characters in strings
 * escaped). Bytes from 0x80 up in strings are kept as they are, not checked as UTF-8 (as
 * lua-cjson: what cjson.encode writes reads back).
 *
 * Objects and arrays become tables (an empty array is an empty table; of duplicate keys the
 * last wins); strings get every escape resolved, `\u` surrogate pairs to UTF-8 (a lone
 * surrogate is an error); `null` becomes `null_value`. A number written without a fraction
 * or an exponent is an integer on Lua 5.4 when it fits one (`-0` is the integer 0), any other
 * a float (`1e400` is `math.huge`); on LuaJIT every number is a double. Nesting deeper than
 * 1000 is an error. Never raises on bad input.
 * @function json_decode
 * @string text the JSON text
 * @param[opt] null_value what JSON `null` becomes (`cjson.null` in the clients; nil if absent)
 * @return[1] the value
 * @treturn[2] nil
 * @treturn[2] string why the text is not JSON, with the byte (1-based) where it went wrong
 * @raise when `text` is not a string
 * @usage local v = assert(core.json_decode('{"id": 10001}', cjson.null)) --> v.id == 10001
 */
static int json_decode(lua_State *L)
{
  size_t len;
  const char *text;
  char where[64];
  parser ps;
  luaL_checktype(L, 1, LUA_TSTRING);
  text = lua_tolstring(L, 1, &len);
  lua_settop(L, SLOT_NULL);
  lua_pushnil(L); /* SLOT_SCRATCH */
  ps.L = L;
  ps.text = ps.p = (const unsigned char *)text;
  ps.end = ps.text + len;
  ps.scratch = NULL;
  ps.depth = 0;
  ps.why = NULL;
  memset(ps.object_size, 0, sizeof ps.object_size);
  memset(ps.array_size, 0, sizeof ps.array_size);
  skip_space(&ps);
  if (parse_value(&ps) == 0) {
    skip_space(&ps);
    if (ps.p == ps.end)
      return 1;
    fail(&ps, "expected the end of the text after the value");
  }
  lua_settop(L, SLOT_SCRATCH);
  lua_pushnil(L);
  if (ps.p >= ps.end)
    snprintf(where, sizeof where, "the end of the text (byte %lu)", (unsigned long)len + 1);
  else
    snprintf(where, sizeof where, "byte %lu", (unsigned long)(ps.p - ps.text) + 1);
  lua_pushfstring(L, "invalid JSON: %s at %s", ps.why, where);
  return 2;
}

static const luaL_Reg json_funcs[] = {
  {"json_decode", json_decode},
  {NULL, NULL}
};

void json_open(lua_State *L)
{
  luaL_setfuncs(L, json_funcs, 0);
}
