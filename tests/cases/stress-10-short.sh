# The short form of `make stress` on the base kernel with the tree's
# modules: 10^3 config writes, 10^4 watched calls, 5 cycles of unload
# while armed and of CPU hotplug, ksw record under load; every figure of
# the full run is checked. The table is in the log, the figures in
# target/stress/base-short/results.json.
set -euo pipefail
KSW_KERNEL_VARIANT=base exec tests/stress/run --scale short --tree-modules
