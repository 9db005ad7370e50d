# cmc: offline-first sync of urgent and end-of-life care plans.
#
#   make                      build cmc-agent and cmc-hub
#   make check                install missing dependencies, build, run every test
#   make check SANITIZE=address,undefined
#   make demo                 hub + synthetic plans + enrolled device + sync + offline lookup
#   make bench                benchmarks (see docs/BENCHMARKS.md)
#
# Sources are found by folder: every platform/ crypto/ sync/ agent/ hub/ .c file is built.
# Unit tests are tests/unit/test_<module>_*.c; <module> picks which libraries they link.

BUILD    ?= build
CC       ?= cc
SANITIZE ?=
PKGS     := sqlcipher libsodium msgpack libcurl zlib libmicrohttpd gnutls jansson libbrotlienc libbrotlidec libpq
DEPS_OK  := $(shell pkg-config --exists $(PKGS) cmocka 2>/dev/null && echo yes)

WARN   := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
          -Wswitch-enum -Wformat=2 -Wno-format-nonliteral -Werror
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -I. \
          -fno-strict-aliasing -fstack-protector-strong -D_FORTIFY_SOURCE=2 -MMD -MP
ifneq ($(DEPS_OK),)
CFLAGS += $(shell pkg-config --cflags $(PKGS))
LDLIBS += $(shell pkg-config --libs $(PKGS))
TEST_LDLIBS := $(shell pkg-config --libs cmocka)
endif
LDLIBS += -lpthread
# tpm2-tss (a key slot sealed to a TPM 2.0: crypto/tpm.c): cmc-agent and the tests, never cmc-hub
TPM_LDLIBS := $(shell pkg-config --libs tss2-esys tss2-tctildr tss2-mu 2>/dev/null)
ifneq ($(SANITIZE),)
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all -U_FORTIFY_SOURCE
LDFLAGS += -fsanitize=$(SANITIZE)
endif

MODULES := platform crypto sync agent hub
# Which libraries each module's tests link, in link order.
LINK_platform := platform
LINK_crypto   := crypto platform
LINK_sync     := sync crypto platform
LINK_agent    := agent sync crypto platform
LINK_hub      := hub sync crypto platform
LINK_e2e      := agent hub sync crypto platform

lib_srcs = $(filter-out $(1)/main.c,$(wildcard $(1)/*.c))
lib_objs = $(patsubst %.c,$(BUILD)/%.o,$(call lib_srcs,$(1)))
LIBS    := $(foreach m,$(MODULES),$(BUILD)/lib$(m).a)

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
TEST_SUPPORT := $(wildcard tests/support/*.c)
TEST_SUPPORT_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(TEST_SUPPORT))
# Archived, so a test links only the fixtures it calls (a hub fixture needs libhub).
TEST_SUPPORT_LIB := $(BUILD)/libtestsupport.a
PROGS := $(BUILD)/cmc-agent $(BUILD)/cmc-hub
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRCS))

.PHONY: all deps check unit unit-pg e2e demo bench clean fuzz torture
all: $(PROGS)

deps:
	@scripts/install-deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

define module_lib
$(BUILD)/lib$(1).a: $(call lib_objs,$(1))
	@mkdir -p $$(dir $$@)
	@rm -f $$@
	$$(AR) rcs $$@ $$^ $$(if $$^,,$$(BUILD)/empty.o)
endef
$(foreach m,$(MODULES),$(eval $(call module_lib,$(m))))
$(TEST_SUPPORT_LIB): $(TEST_SUPPORT_OBJS) $(BUILD)/empty.o
	@rm -f $@
	$(AR) rcs $@ $^

# An empty object so a module with no sources yet still has a library.
$(BUILD)/empty.o:
	@mkdir -p $(BUILD)
	echo 'typedef int cmc_empty_unit;' | $(CC) -x c -c - -o $@

$(BUILD)/cmc-agent: $(BUILD)/agent/main.o $(foreach l,$(LINK_agent),$(BUILD)/lib$(l).a)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(TPM_LDLIBS)

$(BUILD)/cmc-hub: $(BUILD)/hub/main.o $(foreach l,$(LINK_hub),$(BUILD)/lib$(l).a)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

test_module = $(word 2,$(subst _, ,$(notdir $(1))))
.SECONDEXPANSION:
$(BUILD)/tests/%: tests/unit/%.c $(TEST_SUPPORT_LIB) $$(foreach l,$$(LINK_$$(call test_module,$$*)),$(BUILD)/lib$$(l).a)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT_LIB) \
	  $(foreach l,$(LINK_$(call test_module,$*)),$(BUILD)/lib$(l).a) $(LDLIBS) $(TPM_LDLIBS) $(TEST_LDLIBS)

# Test tools (decrypting scanners, fault proxies) link everything, plus OpenSSL's libcrypto.
$(BUILD)/tests/tools/%: tests/tools/%.c $(foreach l,$(LINK_e2e),$(BUILD)/lib$(l).a)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(foreach l,$(LINK_e2e),$(BUILD)/lib$(l).a) $(LDLIBS) $(TPM_LDLIBS) \
	  $(shell pkg-config --libs libcrypto 2>/dev/null)

# `make check` installs what is missing (the script is a no-op when all is present),
# then builds and runs every unit test and every end-to-end test.
# Without SANITIZE it then runs the hardened pass (scripts/check-hardened.sh: everything again
# under AddressSanitizer and UndefinedBehaviorSanitizer in build-asan, valgrind over the unit
# tests) and a short libFuzzer pass over every target (CHECK_FUZZ_SECONDS each).
CHECK_FUZZ_SECONDS ?= 10
# builds, end-to-end scripts and valgrind runs use this many cores at once
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
check:
	@scripts/install-deps.sh
	@rm -f $(BUILD)/test-logs/summary-* $(FUZZ_BUILD)/test-logs/summary-*
	@t0=$$(date +%s); $(MAKE) --no-print-directory -j$(JOBS) unit; u=$$?; \
	  $(MAKE) --no-print-directory -j$(JOBS) e2e; e=$$?; h=0; z=0; \
	  echo "check: normal build, unit and e2e took $$(( $$(date +%s) - t0 ))s"; \
	  if [ -z "$(SANITIZE)" ]; then \
	    BUILD=$(BUILD) JOBS=$(JOBS) scripts/check-hardened.sh; h=$$?; t1=$$(date +%s); \
	    $(MAKE) --no-print-directory -j$(JOBS) fuzz FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS); z=$$?; \
	    echo "check: fuzz build and runs took $$(( $$(date +%s) - t1 ))s"; \
	  fi; \
	  cat $(BUILD)/test-logs/summary-* $(FUZZ_BUILD)/test-logs/summary-* 2>/dev/null | \
	    awk '{p+=$$1; f+=$$2; s+=$$3} END {printf "check: %d passed, %d failed, %d skipped\n", p, f, s}'; \
	  test $$u -eq 0 -a $$e -eq 0 -a $$h -eq 0 -a $$z -eq 0

# The hub's unit tests run twice: on SQLCipher, then on a throwaway PostgreSQL (unit-pg).
HUB_UNIT_BINS := $(filter $(BUILD)/tests/test_hub_%,$(UNIT_BINS))
unit: $(UNIT_BINS) $(PROGS)
	@BUILD=$(BUILD) scripts/run-tests.sh unit $(UNIT_BINS); u=$$?; \
	  BUILD=$(BUILD) tests/support/pg_run.sh unit-pg $(HUB_UNIT_BINS); p=$$?; test $$u -eq 0 -a $$p -eq 0

unit-pg: $(HUB_UNIT_BINS) $(PROGS)
	@BUILD=$(BUILD) tests/support/pg_run.sh unit-pg $(HUB_UNIT_BINS)

e2e: $(PROGS) $(TOOLS)
	@BUILD=$(BUILD) scripts/run-tests.sh e2e $(wildcard tests/e2e/test_*.sh)

demo:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) scripts/demo.sh

bench:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bench/run.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- fault, attack and fuzz tests (docs/TESTING.md) -----------------------------------------
# tests/fault/*.c are test programs (fault proxy, hostile hub, power-loss and out-of-memory
# harnesses) linked like the tools; the e2e drivers tests/e2e/test_fault_*.sh run them, so
# `make e2e` builds them first. tests/fuzz/fuzz_*.c are libFuzzer targets: `make fuzz` builds
# them with clang into $(FUZZ_BUILD) and runs each for FUZZ_SECONDS; the same targets, linked
# with tests/fuzz/replay.c instead of libFuzzer, replay the seed corpora and every crash kept
# as a regression in `make check` (the fuzz_replay e2e driver).
FAULT_SRCS := $(wildcard tests/fault/*.c)
FAULT_BINS := $(patsubst tests/fault/%.c,$(BUILD)/tests/fault/%,$(FAULT_SRCS))
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/fuzz/replay_%,$(FUZZ_SRCS))
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
ifneq ($(FUZZ_WARNINGS_NOT_ERRORS),)
CFLAGS += -Wno-error
endif

$(BUILD)/tests/fault/%: tests/fault/%.c $(foreach l,$(LINK_e2e),$(BUILD)/lib$(l).a)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(foreach l,$(LINK_e2e),$(BUILD)/lib$(l).a) $(LDLIBS) $(TPM_LDLIBS)

$(BUILD)/tests/fuzz/replay_%: tests/fuzz/%.c tests/fuzz/replay.c $(foreach l,$(LINK_e2e),$(BUILD)/lib$(l).a)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay.c $(foreach l,$(LINK_e2e),$(BUILD)/lib$(l).a) $(LDLIBS) $(TPM_LDLIBS)

# libFuzzer binaries: only inside the fuzz build (CC=clang, SANITIZE=fuzzer-no-link,...).
$(BUILD)/tests/fuzz/%: tests/fuzz/%.c $(foreach l,$(LINK_e2e),$(BUILD)/lib$(l).a)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(foreach l,$(LINK_e2e),$(BUILD)/lib$(l).a) $(LDLIBS) $(TPM_LDLIBS)

# test_card_terminal.sh and test_web_page.sh render the card states with the unit test program
e2e: $(FAULT_BINS) $(FUZZ_REPLAY_BINS) $(BUILD)/tests/test_agent_card

.PHONY: fault-bins fuzz-bins
fault-bins: $(FAULT_BINS) $(FUZZ_REPLAY_BINS) $(PROGS) $(TOOLS)
fuzz-bins: $(patsubst tests/fuzz/%.c,$(BUILD)/tests/fuzz/%,$(FUZZ_SRCS))

# make fuzz [FUZZ_SECONDS=60]: every target for FUZZ_SECONDS, from a copy of its seed corpus;
# crashes land in $(FUZZ_BUILD)/crashes/<target>/ (copy each into tests/fuzz/corpus/<target>/
# once fixed: the replay in `make check` then keeps it fixed). Warnings are not errors here:
# clang warns about things gcc does not, and the gcc build already enforces -Werror.
fuzz:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) FUZZ_WARNINGS_NOT_ERRORS=1 \
	  SANITIZE=fuzzer-no-link,address,undefined fuzz-bins
	@BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(basename $(notdir $(FUZZ_SRCS)))

# make torture: the fault families with long iteration counts (CMC_TORTURE=1), then fuzzing.
torture:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory all fault-bins
	@rm -f $(BUILD)/test-logs/summary-*
	@CMC_TORTURE=1 BUILD=$(BUILD) scripts/run-tests.sh e2e $(wildcard tests/e2e/test_fault_*.sh)
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(if $(TORTURE_FUZZ_SECONDS),$(TORTURE_FUZZ_SECONDS),300)

# Benchmark drivers (bench/*.c) link every library, like the test tools; bench/run.sh builds
# them with `make bench-bins`.
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
.PHONY: bench-bins
bench-bins: $(PROGS) $(BENCH_BINS)
$(BUILD)/bench/%: bench/%.c $(foreach l,$(LINK_e2e),$(BUILD)/lib$(l).a)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(foreach l,$(LINK_e2e),$(BUILD)/lib$(l).a) $(LDLIBS) $(TPM_LDLIBS)

# ---- version, man pages, install (docs/OPERATIONS.md) ---------------------------------------
# The version is `git describe` at build time; the two objects that print it are rebuilt
# when it changes (the stamp file is rewritten only then).
CMC_VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/version.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo '$(CMC_VERSION)' | cmp -s - $@ || echo '$(CMC_VERSION)' > $@
$(BUILD)/hub/cli.o $(BUILD)/agent/cli_help.o: $(BUILD)/version.stamp
$(BUILD)/hub/cli.o $(BUILD)/agent/cli_help.o: CFLAGS += -DCMC_VERSION='"$(CMC_VERSION)"'
.PHONY: FORCE man install uninstall
FORCE:

MAN_SRCS  := $(wildcard man/*.scd)
MAN_PAGES := $(patsubst man/%.scd,$(BUILD)/man/%,$(MAN_SRCS))
man: $(MAN_PAGES)
$(BUILD)/man/%: man/%.scd
	@mkdir -p $(dir $@)
	scdoc < $< > $@

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
SYSCONFDIR ?= /etc
DESTDIR    ?=
INSTALLED := $(DESTDIR)$(BINDIR)/cmc-hub $(DESTDIR)$(BINDIR)/cmc-agent \
  $(DESTDIR)$(MANDIR)/man1/cmc-agent.1 $(DESTDIR)$(MANDIR)/man8/cmc-hub.8 \
  $(DESTDIR)$(UNITDIR)/cmc-hub.service $(DESTDIR)$(USERUNITDIR)/cmc-agent-sync.service

# The units name the installed paths; the settings file is an example and never overwritten.
install: $(PROGS) $(MAN_PAGES)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(USERUNITDIR) $(DESTDIR)$(SYSCONFDIR)/cmc
	install -m 0755 $(PROGS) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(BUILD)/man/cmc-agent.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(BUILD)/man/cmc-hub.8 $(DESTDIR)$(MANDIR)/man8/
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	  dist/systemd/cmc-hub.service.in > $(DESTDIR)$(UNITDIR)/cmc-hub.service
	sed -e 's|@BINDIR@|$(BINDIR)|g' dist/systemd/cmc-agent-sync.service.in \
	  > $(DESTDIR)$(USERUNITDIR)/cmc-agent-sync.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/cmc-hub.service $(DESTDIR)$(USERUNITDIR)/cmc-agent-sync.service
	test -e $(DESTDIR)$(SYSCONFDIR)/cmc/hub.conf || \
	  install -m 0640 dist/hub.conf $(DESTDIR)$(SYSCONFDIR)/cmc/hub.conf

# Leaves the settings file and the hub's state (/var/lib/cmc-hub) alone.
uninstall:
	rm -f $(INSTALLED)
