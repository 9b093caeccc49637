# essbasic: `make` builds the C core for Lua 5.4, LuaJIT and PUC Lua 5.1; `make test` runs every suite; `make demo`
# runs the sandbox demo; `make rock-check` packs the source rock, installs it for each supported Lua and calls the
# sandbox. Targets that need system packages check for them (commands, headers, files) and install only what is
# missing (tools/install-deps): with everything present they need no network and no root. `make deps` on a fresh
# machine installs everything at once, the browser test's driver included.

LUA54_INC   ?= /usr/include/lua5.4
LUAJIT_INC  ?= /usr/include/luajit-2.1
LUA51_INC   ?= /usr/include/lua5.1
CC          ?= cc
OPTFLAGS    ?= -O2 -g
WARNFLAGS    = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers
CFLAGS_CORE  = -std=gnu99 -fPIC -fvisibility=hidden $(OPTFLAGS) $(WARNFLAGS) \
               -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED $(EXTRA_CFLAGS)
LDLIBS_CORE  = -lcurl -lcrypto $(EXTRA_LDFLAGS)

# The C sources: the rockspecs' list (one list; spec/rockspec_spec.lua holds the two rockspecs to the same one).
SRCS := $(shell sed -n 's/^ *sources = { *\(.*[^ ]\) *},* *$$/\1/p' essbasic-scm-1.rockspec | tr -d '",')
HDRS = $(wildcard src/*.h)

CORE54 = build/5.4/essbasic/core.so
CORE51 = build/5.1/essbasic/core.so
CORE51PUC = build/puc5.1/essbasic/core.so

.PHONY: all print-srcs deps browser-driver dist test rock-check check fuzz fuzz-ci bench demo sandbox schema lint clean

all: $(CORE54) $(CORE51) $(CORE51PUC)

# `make -s print-srcs`: the list, for the tools that read the sources themselves (tools/check's clang-tidy).
print-srcs:
	@echo $(SRCS)

$(CORE54): $(SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_CORE) -I$(LUA54_INC) -shared -o $@ $(SRCS) $(LDLIBS_CORE)

$(CORE51): $(SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_CORE) -I$(LUAJIT_INC) -shared -o $@ $(SRCS) $(LDLIBS_CORE)

# PUC Lua 5.1's headers: what Debian's luarocks builds by default (the result loads in LuaJIT too).
$(CORE51PUC): $(SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_CORE) -I$(LUA51_INC) -shared -o $@ $(SRCS) $(LDLIBS_CORE)

# A fresh machine: every package of every target (tools/install-deps check), and the browser test's driver.
deps:
	@tools/install-deps check
	@tools/install-browser-driver

# The browser test's driver (puppeteer-core from npm into build/browser), for the suites only; a no-op once there.
browser-driver:
	@tools/install-browser-driver

# The local essbasic sandbox in the foreground (Ctrl-C stops it); SANDBOX_ARGS="--port 8780 --data DIR --config F".
SANDBOX_ARGS ?= --port 8780
# The sandbox refuses root (its nginx workers would run as root too: sandbox/README.md). These two checkout targets
# are what a fresh machine, often a root shell in a throwaway container, runs first: as root they say so and allow it.
AS_ROOT = $(if $(filter 0,$(shell id -u)),ESSBASIC_SANDBOX_AS_ROOT=1)
ROOT_NOTE = @[ "$$(id -u)" != 0 ] || echo "make: running the sandbox as root (its workers too): for a throwaway machine only"
sandbox:
	@tools/install-deps run
	@$(MAKE) --no-print-directory all
	$(ROOT_NOTE)
	@$(AS_ROOT) sandbox/run foreground $(SANDBOX_ARGS)

# The README's first command: a fresh sandbox, examples/demo.lua against it under lua5.4, the sandbox stopped.
demo:
	@tools/install-deps run
	@$(MAKE) --no-print-directory all
	$(ROOT_NOTE)
	@$(AS_ROOT) sandbox/run demo

lint:
	@tools/install-deps test
	luacheck -q lua bin spec examples bench tools sandbox

test:
	@tools/install-deps test
	@tools/install-browser-driver
	@$(MAKE) --no-print-directory all
	@tools/run-tests

# The release from this checkout, offline: dist/essbasic-<version>-1.src.rock (`luarocks install` builds it with no
# network) and the public-URL rockspec beside it (tools/dist).
dist:
	@tools/dist

# The rock as users install it: make dist's rock installed with luarocks for Lua 5.4, 5.3, 5.1 and LuaJIT into fresh
# trees, luarocks make, the sandbox started from an installed tree and a signed call from each (tools/rock-check).
rock-check:
	@tools/install-deps test
	@$(MAKE) --no-print-directory all
	@tools/rock-check

# Every benchmark (bench/README.md) within a 280 s budget; the C baseline of the sequential benchmark is built here.
bench:
	@tools/install-deps test
	@$(MAKE) --no-print-directory all
	@mkdir -p build/bench
	$(CC) -O2 -g $(WARNFLAGS) -o build/bench/c_baseline bench/c_baseline.c -lcurl -lcrypto
	@bench/run

# Regenerates the schema, the reference, the test facts and the LuaCATS annotations (library/) from the official spec (development time only):
# SPEC_DIR=folder holding essbasic-2021-05-26.api.json and essbasic-2021-05-26.action-errors.json.
SPEC_DIR ?= $(error set SPEC_DIR to the folder holding essbasic-2021-05-26.api.json)
schema: $(CORE54)
	LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so;;' lua5.4 tools/gen_schema.lua \
	  $(SPEC_DIR)/essbasic-2021-05-26.api.json --errors $(SPEC_DIR)/essbasic-2021-05-26.action-errors.json \
	  --schema lua/essbasic/schema.lua --reference docs/reference.md --facts spec/data/schema_facts.lua \
	  --error-texts sandbox/error_texts.lua --types library/essbasic.lua

clean:
	rm -rf build

# libFuzzer harnesses (fuzz/README.md). Both replay fuzz/regressions/ first. `make fuzz` explores: each harness
# FUZZ_SECONDS seconds from a new random seed. `make fuzz-ci` (what CI runs) fuzzes each harness from a fixed seed
# for a fixed number of executions, so the same tree gives the same result on every run.
FUZZ_SECONDS ?= 30
fuzz:
	@tools/install-deps check
	@FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run

fuzz-ci:
	@tools/install-deps check
	@FUZZ_MODE=fixed fuzz/run

# The suite under ASan+UBSan and under valgrind, plus cppcheck and clang-tidy (tools/check).
check:
	@tools/install-deps check
	@tools/install-browser-driver
	@$(MAKE) --no-print-directory all
	@tools/check
