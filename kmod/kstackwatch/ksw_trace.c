// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch: the trace events (defined in ksw_trace.h from the generated
 * records of ksw_shared.h) and the module's two other outputs, the dmesg
 * line and panic_on_catch. Rust cannot call the static inline trace_*()
 * functions, hence the one-line wrappers.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/panic.h>
#include <linux/printk.h>
#include <linux/sched.h>

#define CREATE_TRACE_POINTS
#include "ksw_trace.h"

#include "ksw_glue.h"

/* Each ring-buffer entry has its record's layout after the common header. */
KSW_ARM_CHECK_ENTRY(struct trace_event_raw_ksw_arm);
KSW_HIT_CHECK_ENTRY(struct trace_event_raw_ksw_hit);
KSW_DISARM_CHECK_ENTRY(struct trace_event_raw_ksw_disarm);

void ksw_trace_arm(const struct ksw_arm_record *rec)
{
	trace_ksw_arm(rec);
}
NOKPROBE_SYMBOL(ksw_trace_arm);

void ksw_trace_hit(const struct ksw_hit_record *rec)
{
	trace_ksw_hit(rec);
}
NOKPROBE_SYMBOL(ksw_trace_hit);

void ksw_trace_disarm(const struct ksw_disarm_record *rec)
{
	trace_ksw_disarm(rec);
}
NOKPROBE_SYMBOL(ksw_trace_disarm);

/*
 * The events carry the data; dmesg gets one rate-limited line naming the
 * writer and the victim, without stack addresses or values.
 */
void ksw_log_hit(u64 id, unsigned long writer_ip, const char *victim_comm,
		 int victim_pid)
{
	pr_warn_ratelimited("watch %llu: stack write by %pS (%s/%d) into the frame of %s/%d\n",
			    id, (void *)writer_ip, current->comm,
			    task_pid_nr(current), victim_comm, victim_pid);
}

/*
 * From the #DB handler, which is NMI-like: nmi_panic() copes with another
 * CPU panicking at the same time, where panic() would deadlock.
 */
void ksw_panic_caught(u64 id, unsigned long writer_ip, struct pt_regs *regs)
{
	pr_emerg("watch %llu caught a stack write by %pS (panic_on_catch=1)\n",
		 id, (void *)writer_ip);
	nmi_panic(regs, "kstackwatch: stack write caught (panic_on_catch=1)");
}
