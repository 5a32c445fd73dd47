# Cache key and paths of the bench kernel. Sourced after lib.sh.
# shellcheck shell=bash

ksw_kernel_src_dir() {
	echo "$KSW_CACHE/src/linux-$KSW_LINUX_SOURCE_VERSION"
}

ksw_kernel_key() {
	{
		echo "source $KSW_LINUX_SOURCE_PKG $KSW_LINUX_SOURCE_VERSION"
		echo "variant $KSW_KERNEL_VARIANT"
		cat "$KSW_ROOT/tests/vm/config/base.config"
		[ "$KSW_KERNEL_VARIANT" = base ] || cat "$KSW_ROOT/tests/vm/config/$KSW_KERNEL_VARIANT.config"
		"$KSW_RUSTC" --version 2>/dev/null || echo "no rustc"
		"$KSW_BINDGEN" --version 2>/dev/null || echo "no bindgen"
		clang --version 2>/dev/null | head -1 || echo "no clang"
	} | sha256sum | cut -c1-12
}

ksw_kernel_build_dir() {
	echo "$KSW_CACHE/kernel/$KSW_KERNEL_VARIANT-$(ksw_kernel_key)"
}
