/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The contract between kstackwatch's C and Rust halves.
 *
 * C registers with the kernel and touches the hardware, nothing more:
 *   ksw_probes.c  kprobes and the fprobe of each watched function, the
 *                 task-exit hook, reads of the current task and its stack
 *   ksw_slots.c   per-CPU perf breakpoints, their retargeting, cross-CPU
 *                 kicks, CPU hotplug
 *   ksw_procfs.c  /proc/kstackwatch and module init/exit
 *   ksw_trace.c   the trace events (CREATE_TRACE_POINTS)
 * Rust (ksw_main.rs and the files it lists) decides everything. glue.rs
 * declares the ksw_* functions below with the same types; the ksw_rs_*
 * entry points are implemented in Rust. Limits, event records and enum
 * values shared by both halves are in the generated ksw_shared.h.
 */
#ifndef KSW_GLUE_H
#define KSW_GLUE_H

#include <linux/types.h>

#include "ksw_shared.h"

struct kprobe;
struct pt_regs;
struct seq_file;
struct ksw_fprobe;
struct ksw_kprobes;

/* A function, as kallsyms knows it. */
struct ksw_symbol {
	unsigned long start;	/* first byte of the function */
	unsigned long size;
	char name[KSW_SYM_LEN];	/* "name" or "name [module]" */
};

/* ---- ksw_probes.c: probes and the current task ---------------------- */

/* Resolve @n names ("name" or "module:name", NUL-terminated, back to back). */
void ksw_lookup_functions(const char *names, u32 n, struct ksw_symbol *syms,
			  int *errs);
/* Copy machine code (before any probe of ours is in it). */
bool ksw_read_text(unsigned long addr, u8 *buf, size_t len);

/*
 * The fprobe of a spec, over the functions starting at @starts (entry and
 * return hooks, @owner handed back with the entry ip). Registered
 * disabled; enabled at the switch.
 */
struct ksw_fprobe *ksw_fprobe_create(const unsigned long *starts, u32 n,
				     const void *owner, int *err);
void ksw_fprobe_enable(struct ksw_fprobe *p);
/* Unregisters (waits for running handlers) and frees. */
void ksw_fprobe_destroy(struct ksw_fprobe *p);
u64 ksw_fprobe_missed(struct ksw_fprobe *p);

/*
 * The kprobes of one watched function at @start, registered live (Rust
 * gates arming): pre handlers at @start+@release_offs[i] (registered
 * first), and the arming probe at @start+@arm_off, a pre handler if
 * @arm_pre else a post handler. @owner is handed to every handler. On
 * failure *@failed_off is the offset the kernel refused.
 */
struct ksw_kprobes *ksw_kprobes_create(unsigned long start, u32 arm_off,
				       bool arm_pre, const u32 *release_offs,
				       u32 nr_release, const void *owner,
				       int *err, long *failed_off);
/* Unregisters them all in one batch (waits once for running handlers). */
void ksw_kprobes_destroy_many(struct ksw_kprobes **sets, u32 n);
void ksw_kprobes_missed(struct ksw_kprobes *p, u64 *arm, u64 *release);
/*
 * The original text address of @ip if it lies in @kp's out-of-line copy of
 * its probed instruction(s), else 0.
 */
unsigned long ksw_kprobe_origin(const struct kprobe *kp, unsigned long ip);
/* Whether the kernel jump-optimized the arming probe (no int3 per call). */
bool ksw_kprobes_optimized(struct ksw_kprobes *p);
void ksw_synchronize(void);

unsigned long ksw_current_task(void);
int ksw_current_pid(void);
void ksw_current_comm(char comm[KSW_COMM_LEN]);
void ksw_current_stack(unsigned long *lo, unsigned long *hi);
u64 ksw_current_canary(void);
u32 ksw_preempt_count(void);
/* The CFA of the frame @regs describes (one ORC unwind step), 0 if none. */
unsigned long ksw_unwind_cfa(struct pt_regs *regs);
bool ksw_read_nofault(unsigned long addr, u8 len, u64 *value);
bool ksw_in_this_module(unsigned long ip);
u64 ksw_now_ns(void);
u32 ksw_thread_size(void);
/* This CPU's sampling generator state (handlers: interrupts off). */
u64 *ksw_this_cpu_random(void);

/* ---- ksw_slots.c: hardware breakpoints -------------------------------- */

/* Claim @want breakpoints on every online CPU; returns how many (> 0). */
int ksw_slots_claim(unsigned int want);
void ksw_slots_release(void);
u32 ksw_hw_slots(void);
/* Point this CPU's breakpoint @slot at [addr, addr+len), or park it (addr 0). */
bool ksw_slot_program_local(unsigned int slot, unsigned long addr, u8 len);
/* Ask every other online CPU to sync soon (never waits, any context). */
void ksw_kick_remote(void);
/* Process context: every online CPU syncs; returns when all have. */
void ksw_sync_all_wait(void);
unsigned int ksw_online_cpus(void);
unsigned int ksw_nr_cpu_ids(void);
bool ksw_cpu_online(unsigned int cpu);
/*
 * What @cpu's breakpoint @slot watches, for /proc/kstackwatch (process
 * context): -1 no breakpoint (CPU offline, or online without slots),
 * 0 parked, 1 watching *@addr.
 */
int ksw_slot_cpu_state(unsigned int cpu, unsigned int slot,
		       unsigned long *addr);

/* C only: module init and exit (ksw_procfs.c). */
void ksw_random_init(void);
void ksw_slots_init(void);
void ksw_slots_quiesce(void);

/* ---- ksw_trace.c: events ---------------------------------------------- */

void ksw_trace_arm(const struct ksw_arm_record *rec);
void ksw_trace_hit(const struct ksw_hit_record *rec);
void ksw_trace_disarm(const struct ksw_disarm_record *rec);
/* One rate-limited dmesg line per caught write (no addresses or values). */
void ksw_log_hit(u64 id, unsigned long writer_ip, const char *victim_comm,
		 int victim_pid);
/* panic_on_catch: stop the machine (NMI-safe). */
void ksw_panic_caught(u64 id, unsigned long writer_ip, struct pt_regs *regs);

/* ---- ksw_procfs.c ------------------------------------------------------ */

int ksw_glue_init(const void *config);
void ksw_glue_remove_proc(void);
void ksw_glue_exit(void);
void ksw_seq_write(struct seq_file *m, const u8 *buf, size_t len);

/* ---- implemented in Rust ----------------------------------------------- */

void ksw_rs_on_arm_probe(const void *owner, const struct kprobe *kp,
			 struct pt_regs *regs, bool in_nmi);
void ksw_rs_on_release_probe(const void *owner, u32 index,
			     struct pt_regs *regs);
int ksw_rs_on_entry(const void *owner, unsigned long entry_ip,
		    struct pt_regs *regs, void *data);
void ksw_rs_on_exit(const void *owner, unsigned long entry_ip,
		    struct pt_regs *regs, void *data);
void ksw_rs_on_hit(unsigned int slot, struct pt_regs *regs,
		   unsigned long programmed_addr);
void ksw_rs_sync_cpu(bool remote);
void ksw_rs_cpu_without_slots(unsigned int cpu);
void ksw_rs_on_task_exit(unsigned long task);
ssize_t ksw_rs_config_write(const void *config, const u8 *buf, size_t len);
void ksw_rs_config_show(const void *config, struct seq_file *m);

#endif /* KSW_GLUE_H */
