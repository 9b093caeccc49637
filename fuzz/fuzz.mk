# Builds the libFuzzer harnesses into build/fuzz/ (make -f fuzz/fuzz.mk, from the repository root; `make fuzz`
# builds and runs them through fuzz/run). The core's sources are compiled into each fuzzer with coverage.
FUZZ_CC     ?= clang
FUZZ_NAMES   = fuzz_json_decode fuzz_sign fuzz_callback fuzz_response fuzz_validate
FUZZ_SRCS   := $(shell $(MAKE) -s --no-print-directory -f Makefile print-srcs) # the rockspecs' one list
FUZZ_CFLAGS  = -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
               -std=gnu99 -Wall -Wextra -Werror -Wno-missing-field-initializers \
               -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED -Isrc -I/usr/include/lua5.4 \
               -DFUZZ_DIR='"$(CURDIR)/fuzz"' -DFUZZ_LUA_DIR='"$(CURDIR)/lua"'
FUZZ_LIBS    = -llua5.4 -lcurl -lcrypto -lm

all: $(addprefix build/fuzz/,$(FUZZ_NAMES))

build/fuzz/%: fuzz/driver.c $(FUZZ_SRCS) $(wildcard src/*.h) fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DFUZZ_NAME='"$*"' -o $@ fuzz/driver.c $(FUZZ_SRCS) $(FUZZ_LIBS)

.PHONY: all
