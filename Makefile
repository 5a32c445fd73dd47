# KStackWatch: see README.md. Everything runs from a fresh Debian 12 clone:
# `make demo` shows the tool catching a silent stack corruption, `make check`
# runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VM := tests/vm
KSW_MODULES := --module kmod/kstackwatch/kstackwatch.ko --module kmod/kstackwatch_test/kstackwatch_test.ko

.PHONY: help deps kernel kbuild-dir modules tools host-test fuzz objcheck dwarfcheck vm-test check demo bench stress clean

help:
	@echo "make deps        install toolchains (apt, bindgen, cargo-fuzz, virtme-ng); idempotent"
	@echo "make kernel      build or reuse the Rust-enabled 6.12 bench kernel (KSW_KERNEL_VARIANT=base|debug|kasan)"
	@echo "make modules     build kstackwatch, kstackwatch_test and the bench self-test modules"
	@echo "make tools       build ksw, ksw-report and the perf/trace-cmd plugin (release)"
	@echo "make kbuild-dir  print the kernel build dir (make -C <dir> M=... for other modules)"
	@echo "make demo        boot the VM, catch the silent cross-thread corruption, print ksw report"
	@echo "make check       every test: host cargo tests, a short fuzz run, objcheck, the VM suite"
	@echo "make objcheck    the x86 decoder and stack-layout analysis against objdump and ORC over vmlinux and the modules"
	@echo "make dwarfcheck  ksw watch (DWARF) against the marker oracle and llvm-dwarfdump on the built module and vmlinux"
	@echo "make stress      config storm, call storm, ksw record under load, in the VM on the debug kernel (KSW_STRESS_SCALE=full|short|F; KSW_KERNEL_VARIANT=base)"
	@echo "make bench       the cost of watching, side by side (VM + host); builds a KASAN kernel too"

deps:
	@$(VM)/deps

kernel: deps
	@$(VM)/build-kernel

kbuild-dir:
	@$(VM)/kbuild-dir

modules: kernel
	@$(VM)/build-modules

tools:
	cargo build --release -p ksw -p ksw-tep-plugin

host-test: deps
	cargo fmt --all -- --check
	@# The module crates build with Kbuild, not cargo: check their format directly.
	rustfmt --check --edition 2021 kmod/kstackwatch/*.rs kmod/kstackwatch_test/*.rs
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace
	@# The core is also compiled by the kernel's rustc 1.85: test it there too.
	@mkdir -p target/rustc-1.85
	/usr/bin/rustc --edition 2021 --test kmod/core/src/lib.rs -o target/rustc-1.85/ksw-core-tests
	target/rustc-1.85/ksw-core-tests -q

fuzz: deps
	tests/fuzz-smoke

# The decoder and the layout analysis the module relies on, checked over
# every function of the built kernel and modules (objdump, ORC).
objcheck: modules
	tests/objcheck/run

# ksw watch's probe points and sp offsets from DWARF, against the
# marker-based oracle (trace-scripts/ksw-probe-point) and llvm-dwarfdump.
dwarfcheck: modules tools
	tests/dwarfcheck

vm-test: modules tools
	tests/run-vm-tests

check: host-test fuzz objcheck dwarfcheck vm-test

demo: modules tools
	$(VM)/run $(KSW_MODULES) -- bash trace-scripts/demo-silent.sh

bench: modules
	tests/bench/run

# 10^5 config writes, 10^6 watched calls, 100 unloads while armed and 100
# CPU hotplug cycles, ksw record under load: in the VM, on the debug kernel
# unless KSW_KERNEL_VARIANT says otherwise. The modules are built into
# target/stress/ (the tree's own are for the base kernel). The short form
# runs in make check (tests/cases/stress-10-short.sh).
stress: deps tools
	KSW_KERNEL_VARIANT=$(or $(KSW_KERNEL_VARIANT),debug) tests/stress/run --scale $(or $(KSW_STRESS_SCALE),full)

clean:
	cargo clean
	for d in kmod/kstackwatch kmod/kstackwatch_test $(VM)/modules; do \
		$(MAKE) -s -C $$($(VM)/kbuild-dir) M=$(CURDIR)/$$d clean 2>/dev/null || true; done
