# assesskit: build, test, demo. See README.md; docs/DESIGN.md for the layout.
#
#   make                 build build/lua5.4/assesskit/core.so
#   make LUA=luajit      build build/luajit/assesskit/core.so (OpenResty's LuaJIT 2.1)
#   make test            install missing Debian packages, build both, run every spec
#   make demo            install, build, start the sandbox, run examples/quickstart.lua, stop it

LUA        ?= lua5.4
BUILD      := build/$(LUA)
CORE       := $(BUILD)/assesskit/core.so
LUA_PC      = $(if $(filter luajit,$(LUA)),luajit,lua5.4)
BUSTED     := /usr/bin/busted

CFLAGS     ?= -O2 -g
WARNFLAGS  := -std=c99 -Wall -Wextra -Werror -pedantic -Wshadow
# Recursive (=) so that pkg-config runs when a recipe needs it, after `make deps`.
CPPFLAGS_ALL = -D_POSIX_C_SOURCE=200809L $(shell pkg-config --cflags $(LUA_PC) libcurl openssl hiredis)
LDLIBS_ALL   = $(shell pkg-config --libs libcurl openssl hiredis)
LDFLAGS_SO  := -shared

SRCS := $(wildcard csrc/*.c)
HDRS := $(wildcard csrc/*.h)
OBJS := $(SRCS:csrc/%.c=$(BUILD)/obj/%.o)

export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;
export LUA_CPATH := $(CURDIR)/build/lua5.4/?.so;;

.PHONY: all build deps test test-lua54 test-luajit rock-check lint memcheck bench demo sandbox docs clean

all: build
build: $(CORE)

$(BUILD)/obj/%.o: csrc/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) $(CPPFLAGS) $(WARNFLAGS) $(CFLAGS) -fPIC -c $< -o $@

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

bench: deps build
	bench/run.sh

sandbox: deps
	bin/assesskit-sandbox start --foreground

demo: deps build
	.ci/demo.sh

docs: deps
	ldoc .

clean:
	rm -rf build doc
