/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C layer of kstackwatch: kernel facilities the 6.12 Rust crate has no
 * abstraction for (procfs, kprobe + fprobe, perf hardware breakpoints,
 * IPIs, the ORC unwinder, trace events). It holds no policy: every decision
 * is made in Rust (kstackwatch.rs, engine.rs) which calls the ksw_* functions
 * below; C calls back into Rust through the ksw_rs_* functions.
 *
 * Keep this header and glue.rs in step: glue.rs declares the same
 * functions with the same types.
 */
#ifndef KSW_GLUE_H
#define KSW_GLUE_H

#include <linux/types.h>

struct pt_regs;
struct ksw_probe;

#define KSW_MAX_SLOTS 4
#define KSW_SYM_LEN 128

/* What a probed symbol resolved to (for the offset-inside-function check). */
struct ksw_symbol {
	unsigned long addr;	/* where the kprobe landed: func + offset */
	unsigned long offset;	/* addr's offset inside the symbol it is in */
	unsigned long size;	/* that symbol's size */
	char name[KSW_SYM_LEN];	/* that symbol's name */
};

/* Module lifetime. */
int ksw_glue_init(void);
void ksw_glue_exit(void);

/* Probes: a kprobe at func+offset (arms) and an fprobe exit hook (disarms). */
struct ksw_probe *ksw_probe_create(const char *func, u32 offset, void *owner,
				   struct ksw_symbol *sym, int *err, bool *kprobe_ok);
void ksw_probe_enable(struct ksw_probe *p);
void ksw_probe_disable(struct ksw_probe *p);
void ksw_probe_destroy(struct ksw_probe *p);
void ksw_probe_missed(struct ksw_probe *p, u64 *kprobe_missed, u64 *fprobe_missed);
u32 ksw_probe_hooked_calls(struct ksw_probe *p, unsigned long *innermost);
void ksw_synchronize(void);

/* Hardware slots: per-CPU perf breakpoints, retargeted in place. */
int ksw_slots_alloc(unsigned int max);
void ksw_slots_free(void);
bool ksw_slot_program_local(unsigned int slot, unsigned long addr, u8 len);
void ksw_kick_remote(void);
void ksw_sync_all_wait(void);
unsigned int ksw_online_cpus(void);
int ksw_slot_cpu_state(unsigned int cpu, unsigned int slot, unsigned long *addr);
unsigned int ksw_nr_cpu_ids(void);

/* The current task and its stack. */
unsigned long ksw_current_task(void);
int ksw_current_pid(void);
void ksw_current_comm(char comm[16]);
void ksw_current_stack(unsigned long *lo, unsigned long *hi);
u64 ksw_current_canary(void);
unsigned long ksw_frame_of(struct pt_regs *regs);
bool ksw_frame_on_chain(struct pt_regs *regs, unsigned long frame,
			unsigned long func_start, unsigned long func_end);
bool ksw_read_nofault(unsigned long addr, u8 len, u64 *value);
bool ksw_read_text(unsigned long addr, u8 *buf, size_t len);
unsigned int ksw_nmi_nesting(void);
bool ksw_in_this_module(unsigned long ip);
u64 ksw_now_ns(void);
u32 ksw_thread_size(void);
u32 ksw_hw_slots(void);

/* Trace events and the dmesg line. */
void ksw_trace_arm(u64 id, u8 slot, u8 spec, u32 depth, unsigned long probe_ip,
		   unsigned long addr, u8 len, unsigned long sp, u64 value);
void ksw_trace_hit(u64 id, u8 slot, unsigned long addr, u8 len,
		   unsigned long writer_ip, u64 old_value, u64 new_value,
		   int victim_pid, const char *victim_comm, unsigned long probe_ip);
void ksw_trace_disarm(u64 id, u8 slot, unsigned long addr, u64 arm_value,
		      u64 exit_value, u32 hits, bool corrupted, u8 reason);
void ksw_log_hit(u64 id, unsigned long addr, unsigned long writer_ip,
		 u64 old_value, u64 new_value, int victim_pid,
		 const char *victim_comm);
void ksw_panic_caught(u64 id, unsigned long writer_ip);

/* Implemented in Rust (engine.rs). */
void ksw_rs_on_probe(void *owner, struct pt_regs *regs, unsigned long ip,
		     unsigned long sp, unsigned long bp);
void ksw_rs_on_exit(void *owner, unsigned long frame);
void ksw_rs_on_hit(unsigned int slot, struct pt_regs *regs, unsigned long ip,
		   unsigned long programmed_addr);
void ksw_rs_sync_cpu(bool remote);
void ksw_rs_on_task_exit(unsigned long task);
ssize_t ksw_rs_config_write(const char *buf, size_t len);
size_t ksw_rs_config_read(char *buf, size_t size);

#endif /* KSW_GLUE_H */
