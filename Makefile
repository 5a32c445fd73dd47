# KStackWatch: see README.md. Everything runs from a fresh Debian 12 clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VM := tests/vm

.PHONY: help deps kernel kbuild-dir modules tools host-test vm-test check demo clean

help:
	@echo "make deps       install toolchains (apt, bindgen, virtme-ng); idempotent"
	@echo "make kernel     build or reuse the Rust-enabled 6.12 bench kernel"
	@echo "make modules    build kstackwatch, kstackwatch_test and bench modules"
	@echo "make kbuild-dir print the kernel build dir (make -C <dir> M=... for other modules)"
	@echo "make check      every test: host cargo tests + the VM suite"

deps:
	@$(VM)/deps

kernel: deps
	@$(VM)/build-kernel

kbuild-dir:
	@$(VM)/kbuild-dir

modules: kernel
	@$(VM)/build-modules

host-test:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace
	@# The core is also compiled by the kernel's rustc 1.85: test it there too.
	@mkdir -p target/rustc-1.85
	/usr/bin/rustc --edition 2021 --test kmod/core/src/lib.rs -o target/rustc-1.85/ksw-core-tests
	target/rustc-1.85/ksw-core-tests -q

vm-test: modules
	tests/run-vm-tests

check: deps host-test vm-test

clean:
	cargo clean
	for d in kmod/kstackwatch kmod/kstackwatch_test $(VM)/modules; do \
		$(MAKE) -s -C $$($(VM)/kbuild-dir) M=$(CURDIR)/$$d clean 2>/dev/null || true; done
