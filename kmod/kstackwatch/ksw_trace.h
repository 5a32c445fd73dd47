/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kstackwatch trace events. Each takes a pointer to its record (defined in
 * kmod/core/src/events.rs); the entry's fields and their assignment come
 * from the generated ksw_shared.h, so only the print formats are written
 * here. Field names are part of the interface: tools decode them by name
 * from the format files; Documentation/events.md describes them.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM kstackwatch

#if !defined(KSW_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define KSW_TRACE_H

#include <linux/tracepoint.h>

#include "ksw_shared.h"

/* Emitted in the victim's context when a watch goes live on this CPU. */
TRACE_EVENT(ksw_arm,

	TP_PROTO(const struct ksw_arm_record *rec),

	TP_ARGS(rec),

	TP_STRUCT__entry(KSW_ARM_FIELDS),

	TP_fast_assign(KSW_ARM_ASSIGN(rec)),

	TP_printk("id=%llu slot=%u spec=%u depth=%u probe=%pS addr=0x%llx len=%u sp=0x%llx value=%s0x%llx victim=%s",
		  __entry->id, __entry->slot, __entry->spec, __entry->depth,
		  (void *)(unsigned long)__entry->probe_ip, __entry->addr,
		  __entry->len, __entry->sp,
		  __entry->flags & KSW_ARM_CANARY ? "canary/" : "",
		  __entry->value, __entry->victim_comm)
);

/*
 * Emitted in the writer's context from the breakpoint handler, so a
 * callchain recorded with the event is the writer's. Data breakpoints trap
 * after the write: writer_ip is the instruction after the store.
 */
TRACE_EVENT(ksw_hit,

	TP_PROTO(const struct ksw_hit_record *rec),

	TP_ARGS(rec),

	TP_STRUCT__entry(KSW_HIT_FIELDS),

	TP_fast_assign(KSW_HIT_ASSIGN(rec)),

	TP_printk("id=%llu slot=%u addr=0x%llx len=%u writer=%pS%s context=%s%s old=%s0x%llx new=%s0x%llx victim=%s/%d writer_comm=%s probe=%pS",
		  __entry->id, __entry->slot, __entry->addr, __entry->len,
		  (void *)(unsigned long)__entry->writer_ip,
		  __entry->flags & KSW_HIT_OUT_OF_LINE ? "(out-of-line)" : "",
		  __print_symbolic(__entry->context, KSW_WRITER_CONTEXTS),
		  __entry->flags & KSW_HIT_BY_VICTIM ? "/victim" : "",
		  __entry->flags & KSW_HIT_OLD_CANARY ? "canary/" : "",
		  __entry->old_value,
		  __entry->flags & KSW_HIT_NEW_CANARY ? "canary/" : "",
		  __entry->new_value, __entry->victim_comm,
		  __entry->victim_pid, __entry->writer_comm,
		  (void *)(unsigned long)__entry->probe_ip)
);

/*
 * Emitted when a watch ends. corrupted: the value when the frame died
 * against the value at arm, whether or not a hit was caught; "unknown"
 * when it could not be read while the frame lived.
 */
TRACE_EVENT(ksw_disarm,

	TP_PROTO(const struct ksw_disarm_record *rec),

	TP_ARGS(rec),

	TP_STRUCT__entry(KSW_DISARM_FIELDS),

	TP_fast_assign(KSW_DISARM_ASSIGN(rec)),

	TP_printk("id=%llu slot=%u addr=0x%llx arm_value=%s0x%llx exit_value=%s0x%llx hits=%u corrupted=%s reason=%s",
		  __entry->id, __entry->slot, __entry->addr,
		  __entry->flags & KSW_DISARM_CANARY ? "canary/" : "",
		  __entry->arm_value,
		  __entry->flags & KSW_DISARM_EXIT_CANARY ? "canary/" : "",
		  __entry->exit_value, __entry->hits,
		  __print_symbolic(__entry->corrupted, KSW_EXIT_STATES),
		  __print_symbolic(__entry->reason, KSW_DISARM_REASONS))
);

#endif /* KSW_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE ksw_trace
#include <trace/define_trace.h>
