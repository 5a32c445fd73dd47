// SPDX-License-Identifier: GPL-2.0
//! Numbers of the perf ABI that this crate reads and writes.
//!
//! Sources: `include/uapi/linux/perf_event.h` (kernel records, sample
//! layout, attribute bits) and `tools/perf/util/header.h`,
//! `tools/lib/perf/include/perf/event.h` (perf's own file features and
//! user records), Linux 6.12.

/// `PERF_SAMPLE_*` bits of `perf_event_attr.sample_type`.
pub mod sample_type {
    /// Instruction pointer.
    pub const IP: u64 = 1 << 0;
    /// `u32 pid, tid`.
    pub const TID: u64 = 1 << 1;
    /// `u64 time` (ns, clock of the attribute's `clockid`).
    pub const TIME: u64 = 1 << 2;
    /// `u64 addr`.
    pub const ADDR: u64 = 1 << 3;
    /// `read_format` values (not supported by this crate's sample parser).
    pub const READ: u64 = 1 << 4;
    /// `u64 nr, u64 ips[nr]`.
    pub const CALLCHAIN: u64 = 1 << 5;
    /// `u64 id`, at a position that depends on the other bits.
    pub const ID: u64 = 1 << 6;
    /// `u32 cpu, res`.
    pub const CPU: u64 = 1 << 7;
    /// `u64 period`.
    pub const PERIOD: u64 = 1 << 8;
    /// `u64 stream_id`.
    pub const STREAM_ID: u64 = 1 << 9;
    /// `u32 size, u8 data[size]`: the tracepoint record.
    pub const RAW: u64 = 1 << 10;
    /// Branch stack (not supported).
    pub const BRANCH_STACK: u64 = 1 << 11;
    /// User registers (not supported).
    pub const REGS_USER: u64 = 1 << 12;
    /// User stack (not supported).
    pub const STACK_USER: u64 = 1 << 13;
    /// Weight (not supported).
    pub const WEIGHT: u64 = 1 << 14;
    /// Data source (not supported).
    pub const DATA_SRC: u64 = 1 << 15;
    /// `u64 id` first in samples and last in `sample_id` trailers.
    pub const IDENTIFIER: u64 = 1 << 16;
    /// The bits this crate parses and writes.
    pub const SUPPORTED: u64 =
        IDENTIFIER | IP | TID | TIME | ADDR | ID | STREAM_ID | CPU | PERIOD | CALLCHAIN | RAW;

    /// Name of one sample_type bit, for messages.
    pub fn name(bit: u64) -> &'static str {
        const NAMES: [&str; 26] = [
            "IP",
            "TID",
            "TIME",
            "ADDR",
            "READ",
            "CALLCHAIN",
            "ID",
            "CPU",
            "PERIOD",
            "STREAM_ID",
            "RAW",
            "BRANCH_STACK",
            "REGS_USER",
            "STACK_USER",
            "WEIGHT",
            "DATA_SRC",
            "IDENTIFIER",
            "TRANSACTION",
            "REGS_INTR",
            "PHYS_ADDR",
            "AUX",
            "CGROUP",
            "DATA_PAGE_SIZE",
            "CODE_PAGE_SIZE",
            "WEIGHT_STRUCT",
            "?",
        ];
        if bit.count_ones() != 1 {
            return "?";
        }
        let i = bit.trailing_zeros() as usize;
        NAMES.get(i).copied().unwrap_or("?")
    }
}

/// Bits of the flag word of `perf_event_attr` (the bitfield that starts at
/// byte 40), as `1 << bit`.
pub mod attr_flag {
    /// Off by default (enabled later by ioctl).
    pub const DISABLED: u64 = 1 << 0;
    /// Children inherit the event.
    pub const INHERIT: u64 = 1 << 1;
    /// Must always be on the PMU.
    pub const PINNED: u64 = 1 << 2;
    /// Only group on the PMU.
    pub const EXCLUSIVE: u64 = 1 << 3;
    /// Do not count user space.
    pub const EXCLUDE_USER: u64 = 1 << 4;
    /// Do not count the kernel.
    pub const EXCLUDE_KERNEL: u64 = 1 << 5;
    /// Do not count the hypervisor.
    pub const EXCLUDE_HV: u64 = 1 << 6;
    /// Do not count when idle.
    pub const EXCLUDE_IDLE: u64 = 1 << 7;
    /// Emit `PERF_RECORD_MMAP` for executable maps.
    pub const MMAP: u64 = 1 << 8;
    /// Emit `PERF_RECORD_COMM`.
    pub const COMM: u64 = 1 << 9;
    /// `sample_period` is a frequency.
    pub const FREQ: u64 = 1 << 10;
    /// Per-task counts.
    pub const INHERIT_STAT: u64 = 1 << 11;
    /// Enable on the next exec.
    pub const ENABLE_ON_EXEC: u64 = 1 << 12;
    /// Emit fork/exit records.
    pub const TASK: u64 = 1 << 13;
    /// `wakeup_events` is a byte watermark.
    pub const WATERMARK: u64 = 1 << 14;
    /// Two-bit skid constraint field (`precise_ip`), low bit.
    pub const PRECISE_IP_0: u64 = 1 << 15;
    /// Two-bit skid constraint field (`precise_ip`), high bit.
    pub const PRECISE_IP_1: u64 = 1 << 16;
    /// Emit mmap records for data maps too.
    pub const MMAP_DATA: u64 = 1 << 17;
    /// Non-sample records carry a `sample_id` trailer.
    pub const SAMPLE_ID_ALL: u64 = 1 << 18;
    /// Do not count in the host.
    pub const EXCLUDE_HOST: u64 = 1 << 19;
    /// Do not count in guests.
    pub const EXCLUDE_GUEST: u64 = 1 << 20;
    /// No kernel part in callchains.
    pub const EXCLUDE_CALLCHAIN_KERNEL: u64 = 1 << 21;
    /// No user part in callchains.
    pub const EXCLUDE_CALLCHAIN_USER: u64 = 1 << 22;
    /// Emit `PERF_RECORD_MMAP2`.
    pub const MMAP2: u64 = 1 << 23;
    /// Flag comm records due to exec.
    pub const COMM_EXEC: u64 = 1 << 24;
    /// Timestamps use `clockid`.
    pub const USE_CLOCKID: u64 = 1 << 25;
    /// Emit context switch records.
    pub const CONTEXT_SWITCH: u64 = 1 << 26;
    /// Ring buffer written backwards.
    pub const WRITE_BACKWARD: u64 = 1 << 27;
    /// Emit namespace records.
    pub const NAMESPACES: u64 = 1 << 28;
    /// Emit ksymbol records.
    pub const KSYMBOL: u64 = 1 << 29;
    /// Emit BPF records.
    pub const BPF_EVENT: u64 = 1 << 30;
    /// Bits 38..63 must be zero (`__reserved_1`); perf refuses files that set them.
    pub const RESERVED: u64 = !((1 << 38) - 1);
}

/// `PERF_RECORD_*` record types: kernel ones (< 64) and perf's user
/// records (>= 64, never with a `sample_id` trailer).
pub mod record_type {
    /// Executable mapping.
    pub const MMAP: u32 = 1;
    /// Records lost in the ring buffer.
    pub const LOST: u32 = 2;
    /// Task name.
    pub const COMM: u32 = 3;
    /// Task exit.
    pub const EXIT: u32 = 4;
    /// Throttling started.
    pub const THROTTLE: u32 = 5;
    /// Throttling ended.
    pub const UNTHROTTLE: u32 = 6;
    /// Task fork.
    pub const FORK: u32 = 7;
    /// Counter read.
    pub const READ: u32 = 8;
    /// A sample.
    pub const SAMPLE: u32 = 9;
    /// Mapping with inode data or build id.
    pub const MMAP2: u32 = 10;
    /// Samples lost (not records).
    pub const LOST_SAMPLES: u32 = 13;
    /// First user (perf tool) record type.
    pub const USER_TYPE_START: u32 = 64;
    /// Pipe mode: tracing data follows.
    pub const HEADER_TRACING_DATA: u32 = 66;
    /// All records before this one are ordered.
    pub const FINISHED_ROUND: u32 = 68;
    /// AUX trace data, followed by `size` more bytes not counted in the header.
    pub const AUXTRACE: u32 = 71;
    /// zstd-compressed records (not supported).
    pub const COMPRESSED: u32 = 81;
}

/// `PERF_RECORD_MISC_*` bits of `perf_event_header.misc`.
pub mod misc {
    /// Mask of the cpu mode.
    pub const CPUMODE_MASK: u16 = 7;
    /// Kernel mode.
    pub const KERNEL: u16 = 1;
    /// User mode.
    pub const USER: u16 = 2;
    /// Hypervisor.
    pub const HYPERVISOR: u16 = 3;
    /// Guest kernel.
    pub const GUEST_KERNEL: u16 = 4;
    /// Guest user.
    pub const GUEST_USER: u16 = 5;
    /// COMM record: the name changed by exec.
    pub const COMM_EXEC: u16 = 1 << 13;
    /// MMAP2 record: carries a build id instead of device/inode.
    pub const MMAP_BUILD_ID: u16 = 1 << 14;
}

/// `PERF_CONTEXT_*` markers found in callchains (values >= [`MAX`](callchain::MAX)).
pub mod callchain {
    /// Hypervisor frames follow.
    pub const HV: u64 = -32i64 as u64;
    /// Kernel frames follow.
    pub const KERNEL: u64 = -128i64 as u64;
    /// User frames follow.
    pub const USER: u64 = -512i64 as u64;
    /// Guest frames follow.
    pub const GUEST: u64 = -2048i64 as u64;
    /// Guest kernel frames follow.
    pub const GUEST_KERNEL: u64 = -2176i64 as u64;
    /// Guest user frames follow.
    pub const GUEST_USER: u64 = -2560i64 as u64;
    /// Every value at or above this is a marker, not an address.
    pub const MAX: u64 = -4095i64 as u64;

    /// True if `v` is a `PERF_CONTEXT_*` marker.
    pub fn is_marker(v: u64) -> bool {
        v >= MAX
    }
}

/// `PERF_TYPE_*` values of `perf_event_attr.type`.
pub mod event_type {
    /// Hardware counter.
    pub const HARDWARE: u32 = 0;
    /// Software event (perf's `dummy` is config 9).
    pub const SOFTWARE: u32 = 1;
    /// Tracepoint; `config` is the id from the event's tracefs `id` file.
    pub const TRACEPOINT: u32 = 2;
}

/// Feature bits of the perf.data header (`HEADER_*` in
/// `tools/perf/util/header.h`); each set bit owns one feature section.
pub mod feature {
    /// The tracefs formats of the recorded tracepoints (see `tracing_data`).
    pub const TRACING_DATA: u32 = 1;
    /// Build ids.
    pub const BUILD_ID: u32 = 2;
    /// `uname -n`.
    pub const HOSTNAME: u32 = 3;
    /// `uname -r`.
    pub const OSRELEASE: u32 = 4;
    /// Version of the writing tool.
    pub const VERSION: u32 = 5;
    /// `uname -m`.
    pub const ARCH: u32 = 6;
    /// `u32 nr_cpus_avail, u32 nr_cpus_online`.
    pub const NRCPUS: u32 = 7;
    /// CPU description string.
    pub const CPUDESC: u32 = 8;
    /// CPU id string.
    pub const CPUID: u32 = 9;
    /// `u64` total memory in kB.
    pub const TOTAL_MEM: u32 = 10;
    /// Command line of the recorder.
    pub const CMDLINE: u32 = 11;
    /// Event names and ids.
    pub const EVENT_DESC: u32 = 12;
    /// CPU topology.
    pub const CPU_TOPOLOGY: u32 = 13;
    /// NUMA topology.
    pub const NUMA_TOPOLOGY: u32 = 14;
    /// Branch stack.
    pub const BRANCH_STACK: u32 = 15;
    /// PMU type numbers.
    pub const PMU_MAPPINGS: u32 = 16;
    /// Event groups.
    pub const GROUP_DESC: u32 = 17;
    /// AUX area tracing index.
    pub const AUXTRACE: u32 = 18;
    /// perf stat.
    pub const STAT: u32 = 19;
    /// CPU caches.
    pub const CACHE: u32 = 20;
    /// `u64 first, last` sample time.
    pub const SAMPLE_TIME: u32 = 21;
    /// Memory topology.
    pub const MEM_TOPOLOGY: u32 = 22;
    /// `u64` resolution of the sample clock in ns (not the clock id!).
    pub const CLOCKID: u32 = 23;
    /// Directory format.
    pub const DIR_FORMAT: u32 = 24;
    /// BPF programs.
    pub const BPF_PROG_INFO: u32 = 25;
    /// BPF BTF.
    pub const BPF_BTF: u32 = 26;
    /// Compression parameters.
    pub const COMPRESSED: u32 = 27;
    /// CPU PMU capabilities.
    pub const CPU_PMU_CAPS: u32 = 28;
    /// `u32 version=1, u32 clockid, u64 wall_clock_ns, u64 clockid_time_ns`.
    pub const CLOCK_DATA: u32 = 29;
    /// Hybrid topology.
    pub const HYBRID_TOPOLOGY: u32 = 30;
    /// PMU capabilities.
    pub const PMU_CAPS: u32 = 31;
    /// ksw's own section (text): the kstackwatch module's counters at the
    /// start and the end of a `ksw record` (`start: name=value ...` and
    /// `end: ...` lines). Far above perf's features (perf 6.1 knows 32 and
    /// skips higher bits: "unknown feature, continuing").
    pub const KSW_COUNTERS: u32 = 200;

    /// Name of a feature bit, as `perf report --header` spells it.
    pub fn name(bit: u32) -> &'static str {
        const NAMES: [&str; 32] = [
            "RESERVED",
            "TRACING_DATA",
            "BUILD_ID",
            "HOSTNAME",
            "OSRELEASE",
            "VERSION",
            "ARCH",
            "NRCPUS",
            "CPUDESC",
            "CPUID",
            "TOTAL_MEM",
            "CMDLINE",
            "EVENT_DESC",
            "CPU_TOPOLOGY",
            "NUMA_TOPOLOGY",
            "BRANCH_STACK",
            "PMU_MAPPINGS",
            "GROUP_DESC",
            "AUXTRACE",
            "STAT",
            "CACHE",
            "SAMPLE_TIME",
            "MEM_TOPOLOGY",
            "CLOCKID",
            "DIR_FORMAT",
            "BPF_PROG_INFO",
            "BPF_BTF",
            "COMPRESSED",
            "CPU_PMU_CAPS",
            "CLOCK_DATA",
            "HYBRID_TOPOLOGY",
            "PMU_CAPS",
        ];
        if bit == KSW_COUNTERS {
            return "KSW_COUNTERS";
        }
        NAMES.get(bit as usize).copied().unwrap_or("unknown")
    }
}

/// Magic of a perf.data file (`PERFILE2` read as a little-endian u64).
pub const PERF_MAGIC: u64 = u64::from_le_bytes(*b"PERFILE2");
/// Size of the file-mode header (`struct perf_file_header`).
pub const FILE_HEADER_SIZE: u64 = 104;
/// Size of the pipe-mode header (`struct perf_pipe_file_header`).
pub const PIPE_HEADER_SIZE: u64 = 16;
/// `PERF_ATTR_SIZE_VER0`, the smallest `perf_event_attr`.
pub const ATTR_SIZE_VER0: u32 = 64;
/// `PERF_ATTR_SIZE_VER7`: what perf 6.1 writes (up to `sig_data`).
pub const ATTR_SIZE_VER7: u32 = 128;
/// `PERF_ATTR_SIZE_VER8`: adds `config3`.
pub const ATTR_SIZE_VER8: u32 = 136;
/// `CLOCK_MONOTONIC`.
pub const CLOCK_MONOTONIC: i32 = 1;
