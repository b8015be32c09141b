# assesskit: build, test, demo. See README.md; docs/DESIGN.md for the layout.
#
#   make                 build build/lua5.4/assesskit/core.so
#   make LUA=luajit      build build/luajit/assesskit/core.so (OpenResty's LuaJIT 2.1)
#   make test            install missing Debian packages, build both, run every spec
#   make demo            install, build, start the sandbox, run examples/quickstart.lua, stop it
#   make dist            the source rocks of both rockspecs (luarocks pack) in build/dist/
#   make docs            the LDoc reference in doc/
#   make annotations     regenerate the LuaLS annotation files in types/ from the catalogues

LUA        ?= lua5.4
BUILD      := build/$(LUA)
CORE       := $(BUILD)/assesskit/core.so
LUA_PC      = $(if $(filter luajit,$(LUA)),luajit,lua5.4)
BUSTED     := /usr/bin/busted

CFLAGS     ?= -O2 -g
WARNFLAGS  := -std=c99 -Wall -Wextra -Werror -pedantic -Wshadow
# core.so exports only luaopen_assesskit_core (AK_EXPORT in csrc/compat.h).
VISFLAGS   := -fvisibility=hidden
# Recursive (=) so that pkg-config runs when a recipe needs it, after `make deps`.
# LUA_CFLAGS: where lua.h is; `make rock` (luarocks) sets it from luarocks' LUA_INCDIR.
LUA_CFLAGS   = $(shell pkg-config --cflags $(LUA_PC))
CPPFLAGS_ALL = -D_POSIX_C_SOURCE=200809L $(LUA_CFLAGS) $(shell pkg-config --cflags libcurl openssl hiredis)
LDLIBS_ALL   = $(shell pkg-config --libs libcurl openssl hiredis)
LDFLAGS_SO  := -shared

SRCS := $(wildcard csrc/*.c)
HDRS := $(wildcard csrc/*.h)
OBJS := $(SRCS:csrc/%.c=$(BUILD)/obj/%.o)

export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;
export LUA_CPATH := $(CURDIR)/build/lua5.4/?.so;;

.PHONY: all build deps test test-lua54 test-luajit rock-check lint memcheck sanitize fuzz bench demo \
  sandbox docs dist annotations rock rock-install clean

all: build
build: $(CORE)

$(BUILD)/obj/%.o: csrc/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) $(CPPFLAGS) $(WARNFLAGS) $(VISFLAGS) $(CFLAGS) -fPIC -c $< -o $@

$(CORE): $(OBJS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_SO) $(LDFLAGS) -o $@ $(OBJS) $(LDLIBS_ALL)

deps:
	@.ci/deps.sh

test: deps
	$(MAKE) build LUA=lua5.4
	$(MAKE) build LUA=luajit
	$(MAKE) test-lua54 test-luajit rock-check

test-lua54:
	lua5.4 $(BUSTED) --run=default

test-luajit:
	LUA_CPATH="$(CURDIR)/build/luajit/?.so;;" luajit $(BUSTED) --run=luajit

rock-check:
	.ci/rock-check.sh

lint: deps
	luacheck bin examples bench spec lua

memcheck: deps
	$(MAKE) build LUA=lua5.4 BUILD=build/memcheck CFLAGS="-O0 -g"
	.ci/memcheck.sh

# The core's specs against a core built with ASan + UBSan (clang), LeakSanitizer at exit.
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
sanitize: deps
	$(MAKE) build LUA=lua5.4 BUILD=build/sanitize CC=clang CFLAGS="-O1 -g $(SANFLAGS)"
	.ci/sanitize.sh

# Bounded-time libFuzzer runs of every C entry point that takes outside bytes (fuzz/*.c),
# then every fuzz/*.lua with luajit. FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 10
fuzz: deps
	.ci/fuzz.sh $(FUZZ_SECONDS)

bench: deps build
	bench/run.sh

sandbox: deps
	bin/assesskit-sandbox start --foreground

demo: deps build
	.ci/demo.sh

docs: deps
	ldoc .

dist: deps
	.ci/dist.sh build/dist

# types/ from the catalogues; first lua/assesskit/talview/params.lua from the seed when the API
# documents are beside the checkout (../shared/seeds)
SEED_TALVIEW := ../shared/seeds/002_3384fbf1d7adbc06.txt
annotations:
	@if [ -f $(SEED_TALVIEW) ]; then lua5.4 tools/seed-params.lua $(SEED_TALVIEW); fi
	rm -rf types
	lua5.4 tools/annotations.lua types

# --- luarocks ---------------------------------------------------------------------------------
# The rockspecs build with `build.type = "make"`: luarocks runs `make rock` then
# `make rock-install` with its own variables (ROCK_LUA: the interpreter of the Lua version it
# targets, LUA_INCDIR, CC, CFLAGS, LIBFLAG; INST_LIBDIR). The core is built in build/rock and that
# directory is removed once installed, so `luarocks make` leaves nothing beside the sources.
# .ci/rock-lua.sh decides the Lua headers: Lua 5.4, or LuaJIT 2.1 for luarocks' 5.1 (found
# through LUA_INCDIR or pkg-config); any other Lua stops with a message saying what to do.
ROCK_LUA   ?= lua5.4
ROCK_BUILD := build/rock

rock:
	@flags=$$(.ci/rock-lua.sh '$(ROCK_LUA)' '$(LUA_INCDIR)') && \
	  $(MAKE) --no-print-directory build BUILD=$(ROCK_BUILD) LUA_CFLAGS="$$flags" \
	    $(if $(LIBFLAG),LDFLAGS_SO="$(LIBFLAG)")

rock-install:
	@test -n '$(INST_LIBDIR)' || { echo "make rock-install: INST_LIBDIR is not set (luarocks sets it)" >&2; exit 1; }
	mkdir -p '$(INST_LIBDIR)/assesskit'
	cp $(ROCK_BUILD)/assesskit/core.so '$(INST_LIBDIR)/assesskit/core.so'
	rm -rf $(ROCK_BUILD)
	-@rmdir build 2>/dev/null || true

clean:
	rm -rf build doc
