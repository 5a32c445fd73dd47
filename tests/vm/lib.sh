# Shared settings for the build-and-boot bench. Sourced by tests/vm/* scripts.
# shellcheck shell=bash

KSW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KSW_CACHE=${KSW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kstackwatch}

# Pinned toolchain (see README.md "What gets installed where").
KSW_LINUX_SOURCE_PKG=linux-source-6.12
KSW_LINUX_SOURCE_VERSION=6.12.117-1~deb12u1
KSW_RUSTC_WEB_VERSION=1.85.0+dfsg3-1~deb12u3
KSW_BINDGEN_VERSION=0.69.5
KSW_VIRTME_NG_VERSION=1.42
KSW_CARGO_FUZZ_VERSION=0.13.2

KSW_RUSTC=/usr/bin/rustc
KSW_CLIPPY_DRIVER=/usr/bin/clippy-driver
KSW_BINDGEN=$KSW_CACHE/tools/bin/bindgen
KSW_VENV=$KSW_CACHE/venv

# Kernel variant: "base" (default) or "debug" (lockdep, KASAN, atomic-sleep checks).
KSW_KERNEL_VARIANT=${KSW_KERNEL_VARIANT:-base}

ksw_log() { printf '[ksw %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
ksw_die() { printf '[ksw] error: %s\n' "$*" >&2; exit 1; }

# Run as root, through sudo when we are not root.
ksw_sudo() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
