/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kstackwatch trace events. Field names are part of the interface: the ksw
 * tools decode them by name (kmod/core/src/events.rs lists them) and
 * Documentation/events.md describes them.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM kstackwatch

#if !defined(KSW_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define KSW_TRACE_H

#include <linux/sched.h>
#include <linux/tracepoint.h>

/* Emitted in the victim's context when a watch goes live on this CPU. */
TRACE_EVENT(ksw_arm,

	TP_PROTO(u64 id, u8 slot, u8 spec, u32 depth, unsigned long probe_ip,
		 unsigned long addr, u8 len, unsigned long sp, u64 value),

	TP_ARGS(id, slot, spec, depth, probe_ip, addr, len, sp, value),

	TP_STRUCT__entry(
		__field(u64, id)
		__field(unsigned long, probe_ip)
		__field(unsigned long, addr)
		__field(unsigned long, sp)
		__field(u64, value)
		__field(u32, depth)
		__field(u8, slot)
		__field(u8, spec)
		__field(u8, len)
	),

	TP_fast_assign(
		__entry->id = id;
		__entry->probe_ip = probe_ip;
		__entry->addr = addr;
		__entry->sp = sp;
		__entry->value = value;
		__entry->depth = depth;
		__entry->slot = slot;
		__entry->spec = spec;
		__entry->len = len;
	),

	TP_printk("id=%llu slot=%u spec=%u depth=%u probe=%pS addr=0x%lx len=%u sp=0x%lx value=0x%llx",
		  __entry->id, __entry->slot, __entry->spec, __entry->depth,
		  (void *)__entry->probe_ip, __entry->addr, __entry->len,
		  __entry->sp, __entry->value)
);

/*
 * Emitted in the writer's context from the breakpoint handler, so a
 * callchain recorded with the event is the writer's. Data breakpoints trap
 * after the write: writer_ip is the instruction after the store.
 */
TRACE_EVENT(ksw_hit,

	TP_PROTO(u64 id, u8 slot, unsigned long addr, u8 len,
		 unsigned long writer_ip, u64 old_value, u64 new_value,
		 int victim_pid, const char *victim_comm, unsigned long probe_ip),

	TP_ARGS(id, slot, addr, len, writer_ip, old_value, new_value,
		victim_pid, victim_comm, probe_ip),

	TP_STRUCT__entry(
		__field(u64, id)
		__field(unsigned long, addr)
		__field(unsigned long, writer_ip)
		__field(u64, old_value)
		__field(u64, new_value)
		__field(unsigned long, probe_ip)
		__field(int, victim_pid)
		__array(char, victim_comm, 16)
		__array(char, writer_comm, 16)
		__field(u8, slot)
		__field(u8, len)
	),

	TP_fast_assign(
		__entry->id = id;
		__entry->addr = addr;
		__entry->writer_ip = writer_ip;
		__entry->old_value = old_value;
		__entry->new_value = new_value;
		__entry->probe_ip = probe_ip;
		__entry->victim_pid = victim_pid;
		memcpy(__entry->victim_comm, victim_comm, 16);
		/* The writer is current; record its name for tools without comm tracking. */
		memcpy(__entry->writer_comm, current->comm, 16);
		__entry->slot = slot;
		__entry->len = len;
	),

	TP_printk("id=%llu slot=%u addr=0x%lx len=%u writer=%pS old=0x%llx new=0x%llx victim=%s/%d writer_comm=%s probe=%pS",
		  __entry->id, __entry->slot, __entry->addr, __entry->len,
		  (void *)__entry->writer_ip, __entry->old_value,
		  __entry->new_value, __entry->victim_comm,
		  __entry->victim_pid, __entry->writer_comm,
		  (void *)__entry->probe_ip)
);

/*
 * Emitted when a watch ends. corrupted: the value at exit differs from the
 * value at arm, whether or not a hit was caught.
 */
TRACE_EVENT(ksw_disarm,

	TP_PROTO(u64 id, u8 slot, unsigned long addr, u64 arm_value,
		 u64 exit_value, u32 hits, bool corrupted, u8 reason),

	TP_ARGS(id, slot, addr, arm_value, exit_value, hits, corrupted, reason),

	TP_STRUCT__entry(
		__field(u64, id)
		__field(unsigned long, addr)
		__field(u64, arm_value)
		__field(u64, exit_value)
		__field(u32, hits)
		__field(u8, slot)
		__field(u8, corrupted)
		__field(u8, reason)
	),

	TP_fast_assign(
		__entry->id = id;
		__entry->addr = addr;
		__entry->arm_value = arm_value;
		__entry->exit_value = exit_value;
		__entry->hits = hits;
		__entry->slot = slot;
		__entry->corrupted = corrupted;
		__entry->reason = reason;
	),

	TP_printk("id=%llu slot=%u addr=0x%lx arm_value=0x%llx exit_value=0x%llx hits=%u corrupted=%u reason=%s",
		  __entry->id, __entry->slot, __entry->addr,
		  __entry->arm_value, __entry->exit_value, __entry->hits,
		  __entry->corrupted,
		  __print_symbolic(__entry->reason,
				   { 0, "return" },
				   { 1, "task_exit" },
				   { 2, "teardown" }))
);

#endif /* KSW_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE ksw_trace
#include <trace/define_trace.h>
