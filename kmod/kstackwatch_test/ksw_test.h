/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kstackwatch_test: the C half. The watched functions live in C because in
 * Linux 6.12 only C code gets an ftrace entry (needed for the fprobe exit
 * hook) and a stack-protector canary. Scenarios are driven from Rust
 * (ksw_test_main.rs); the writers that corrupt stacks are Rust too.
 * test_glue.rs declares the same functions: keep them in step.
 */
#ifndef KSW_TEST_H
#define KSW_TEST_H

#include <linux/types.h>

/* Words in each victim's buffer, and the word the scenarios watch. */
#define KSW_TEST_BUF_WORDS 16
#define KSW_TEST_WATCH_WORD 8

struct ksw_test_round;

/* One buggy/victim/writer rendezvous (a victim thread and the writer). */
struct ksw_test_round *ksw_test_round_new(u64 pattern);
void ksw_test_round_free(struct ksw_test_round *r);
void ksw_test_silent_round(struct ksw_test_round *r);
int ksw_test_buggy(struct ksw_test_round *r);
int ksw_test_victim(struct ksw_test_round *r);
bool ksw_test_round_wait_ready(struct ksw_test_round *r, unsigned int timeout_ms);
unsigned long *ksw_test_round_published(struct ksw_test_round *r);
void ksw_test_round_writer_done(struct ksw_test_round *r);
int ksw_test_round_bad_words(struct ksw_test_round *r);
bool ksw_test_round_overlap(struct ksw_test_round *r);

/* Single-thread scenarios: the victim calls the writer itself. */
int ksw_test_direct_victim(u64 value);
int ksw_test_canary_victim(void);
int ksw_test_recurse(u32 depth, u32 max_depth, u32 corrupt_depth, bool hop);
void ksw_test_hop(void);
u64 ksw_test_bench_victim(u64 seed);
int ksw_test_hold_victim(u32 ms);

/* Writers the victim does not call; frame shapes (ksw_test_victims.c). */
void ksw_test_irq_init(void);
void ksw_test_irq_exit(void);
int ksw_test_irq_victim(bool softirq, u64 value);
int ksw_test_deep_victim(unsigned int depth, u64 value);
int ksw_test_alias_victim(u64 value);
u64 ksw_test_small(u64 seed);
u64 ksw_test_small_loop(u32 calls);
u64 ksw_test_flat(u64 seed);
u64 ksw_test_flat_loop(u32 calls);
u64 ksw_test_tail_target(u64 x);
u64 ksw_test_exits(u64 x);
u64 ksw_test_exits_loop(u32 calls);
/* For tests/stress (ksw_test_victims.c, ksw_test_glue.c). */
struct completion;
int ksw_test_exit_victim(struct completion *done, bool exit);
void ksw_test_huge(void);
u64 ksw_test_switch(u64 x);
int ksw_test_exit_inside(unsigned int n);
bool ksw_test_cpu_online(unsigned int cpu);
unsigned int ksw_test_possible_cpus(void);
void ksw_test_sleep_us(unsigned int us);
void ksw_test_held_set_release(bool release);
int ksw_test_held_victim(u32 max_ms);
/* Look-alike functions for sweeps; one has its canary hit. */
#define KSW_TEST_SWEEP_FNS 24
u32 ksw_test_sweep_run(u32 rounds, u32 victim, u32 *victim_depth,
		       u32 *corruptions);
/* Hold every breakpoint of CPUs that come online (ksw_test_glue.c). */
int ksw_test_hog(bool on);

/* Kernel threads, procfs, time. */
struct ksw_test_thread;
struct ksw_test_thread *ksw_test_thread_start(int (*fn)(void *), void *arg,
					     const char *name, int cpu);
int ksw_test_thread_join(struct ksw_test_thread *t);
int ksw_test_pid(void);
int ksw_test_glue_init(void);
void ksw_test_glue_exit(void);
u64 ksw_test_now_ns(void);
void ksw_test_sleep_ms(unsigned int ms);
u64 ksw_test_ipi_roundtrip_ns(void);
u64 ksw_test_dr_program_ns(unsigned int others);
u64 ksw_test_watch_tax_ns(unsigned int mode);
void ksw_test_spin_ns(unsigned int ns);
int ksw_test_move_to_cpu(unsigned int cpu);
int ksw_test_cpu(void);
unsigned int ksw_test_online_cpus(void);

/* Implemented in Rust. */
void ksw_test_mark(unsigned long *slot);
void ksw_test_corrupt(unsigned long *slot, u64 value);
void ksw_test_overflow(unsigned long *buf, size_t words, size_t past_end);
ssize_t ksw_test_rs_run(const char *cmd, size_t len);
size_t ksw_test_rs_result(char *buf, size_t size);

#endif /* KSW_TEST_H */
