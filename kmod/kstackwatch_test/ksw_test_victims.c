// SPDX-License-Identifier: GPL-2.0
/*
 * Functions kstackwatch_test asks kstackwatch to watch. Each one fills a
 * stack buffer, then calls ksw_test_mark(&buf[KSW_TEST_WATCH_WORD]): the
 * VM tests put the probe on the instruction after that call and take
 * sp_offset from the instruction that loads its argument (objdump of the
 * built module), so no offset is ever copied from a document.
 */
#include <linux/compiler.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/hrtimer.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/timer.h>
#include <linux/vmalloc.h>

#include "ksw_test.h"

struct ksw_test_round {
	u64 pattern;
	struct completion victim_ready;
	struct completion writer_done;
	unsigned long *published;	/* the buggy frame's leaked &buf[W] */
	unsigned long *victim_slot;	/* the victim's own &buf[W] */
	int bad_words;
};

struct ksw_test_round *ksw_test_round_new(u64 pattern)
{
	struct ksw_test_round *r = kzalloc(sizeof(*r), GFP_KERNEL);

	if (!r)
		return NULL;
	r->pattern = pattern;
	init_completion(&r->victim_ready);
	init_completion(&r->writer_done);
	return r;
}

void ksw_test_round_free(struct ksw_test_round *r)
{
	kfree(r);
}

static noinline void ksw_test_fill(unsigned long *buf, u64 pattern)
{
	int i;

	for (i = 0; i < KSW_TEST_BUF_WORDS; i++)
		WRITE_ONCE(buf[i], pattern + i);
}

static noinline int ksw_test_count_bad(unsigned long *buf, u64 pattern)
{
	int i, bad = 0;

	for (i = 0; i < KSW_TEST_BUF_WORDS; i++)
		bad += READ_ONCE(buf[i]) != pattern + i;
	return bad;
}

/* The buggy function's bug: it hands out the address of its own local. */
static noinline void ksw_test_publish(struct ksw_test_round *r,
				      unsigned long *slot)
{
	WRITE_ONCE(r->published, slot);
}

static noinline void ksw_test_nothing(struct ksw_test_round *r,
				      unsigned long *slot)
{
	barrier_data(slot);
}

/*
 * The victim, armed: tell the writer, then wait until it has struck. The
 * writer writes into this frame, so the frame must outlive it however slow
 * the kernel is (a timeout here once let a debug kernel's writer write into
 * a freed stack); the writer always reports done. Waking up now and then
 * keeps a long wait from looking like a hung task.
 */
static noinline void ksw_test_victim_wait(struct ksw_test_round *r,
					  unsigned long *slot)
{
	r->victim_slot = slot;
	complete(&r->victim_ready);
	while (!wait_for_completion_timeout(&r->writer_done,
					    msecs_to_jiffies(10000)))
		;
}

/*
 * buggy and victim have the same shape, so called from the same place
 * their buffers occupy the same stack bytes: the victim reuses the slot
 * the buggy frame leaked.
 */
noinline int ksw_test_buggy(struct ksw_test_round *r)
{
	unsigned long buf[KSW_TEST_BUF_WORDS];

	ksw_test_fill(buf, r->pattern ^ 0x5a5a);
	ksw_test_publish(r, &buf[KSW_TEST_WATCH_WORD]);
	ksw_test_nothing(r, &buf[KSW_TEST_WATCH_WORD]);
	return ksw_test_count_bad(buf, r->pattern ^ 0x5a5a);
}

noinline int ksw_test_victim(struct ksw_test_round *r)
{
	unsigned long buf[KSW_TEST_BUF_WORDS];

	ksw_test_fill(buf, r->pattern);
	ksw_test_mark(&buf[KSW_TEST_WATCH_WORD]);
	ksw_test_victim_wait(r, &buf[KSW_TEST_WATCH_WORD]);
	return ksw_test_count_bad(buf, r->pattern);
}

noinline void ksw_test_silent_round(struct ksw_test_round *r)
{
	ksw_test_buggy(r);
	r->bad_words = ksw_test_victim(r);
}

bool ksw_test_round_wait_ready(struct ksw_test_round *r, unsigned int timeout_ms)
{
	return wait_for_completion_timeout(&r->victim_ready,
					   msecs_to_jiffies(timeout_ms)) != 0;
}

unsigned long *ksw_test_round_published(struct ksw_test_round *r)
{
	return READ_ONCE(r->published);
}

void ksw_test_round_writer_done(struct ksw_test_round *r)
{
	complete(&r->writer_done);
}

int ksw_test_round_bad_words(struct ksw_test_round *r)
{
	return r->bad_words;
}

bool ksw_test_round_overlap(struct ksw_test_round *r)
{
	return r->published && r->published == r->victim_slot;
}

/* The victim calls the writer itself: a write through a callee. */
noinline int ksw_test_direct_victim(u64 value)
{
	unsigned long buf[KSW_TEST_BUF_WORDS];

	ksw_test_fill(buf, 0x1000);
	ksw_test_mark(&buf[KSW_TEST_WATCH_WORD]);
	ksw_test_corrupt(&buf[KSW_TEST_WATCH_WORD], value);
	return ksw_test_count_bad(buf, 0x1000);
}

/*
 * An overflow past the end of buf reaches the canary. The writer restores
 * what it overwrote beyond buf, so the function still returns normally.
 */
noinline int ksw_test_canary_victim(void)
{
	unsigned long buf[KSW_TEST_BUF_WORDS];

	ksw_test_fill(buf, 0x2000);
	ksw_test_mark(&buf[KSW_TEST_WATCH_WORD]);
	ksw_test_overflow(buf, KSW_TEST_BUF_WORDS, 2);
	return ksw_test_count_bad(buf, 0x2000);
}

/*
 * Every level has its own buffer; the writer strikes at one level. With
 * @hop, each level first sleeps and moves to another CPU: the depth filter
 * must follow the task, not the CPU.
 */
noinline int ksw_test_recurse(u32 depth, u32 max_depth, u32 corrupt_depth,
			      bool hop)
{
	unsigned long buf[KSW_TEST_BUF_WORDS];
	int bad = 0;

	if (hop)
		ksw_test_hop();
	ksw_test_fill(buf, 0x3000 + depth);
	ksw_test_mark(&buf[KSW_TEST_WATCH_WORD]);
	if (depth == corrupt_depth)
		ksw_test_corrupt(&buf[KSW_TEST_WATCH_WORD], 0xdee9 + depth);
	if (depth < max_depth)
		bad = ksw_test_recurse(depth + 1, max_depth, corrupt_depth, hop);
	return bad + ksw_test_count_bad(buf, 0x3000 + depth);
}

/* Stays in its watched frame for @ms: for unload/reconfigure/hotplug tests. */
noinline int ksw_test_hold_victim(u32 ms)
{
	unsigned long buf[KSW_TEST_BUF_WORDS];

	ksw_test_fill(buf, 0x4000);
	ksw_test_mark(&buf[KSW_TEST_WATCH_WORD]);
	msleep(ms);
	return ksw_test_count_bad(buf, 0x4000);
}

/* For `make bench`: a small function with the same probe point. */
noinline u64 ksw_test_bench_victim(u64 seed)
{
	unsigned long buf[KSW_TEST_BUF_WORDS];

	ksw_test_fill(buf, seed);
	ksw_test_mark(&buf[KSW_TEST_WATCH_WORD]);
	return READ_ONCE(buf[KSW_TEST_WATCH_WORD]);
}

/* ------------------------------------------------------------------------
 * Writers the victim does not call: interrupts on its own CPU, a deep
 * callee chain, a second mapping of its stack page.
 */

struct ksw_test_irq {
	struct hrtimer hrtimer;
	struct timer_list timer;
	unsigned long *slot;
	u64 value;
	int fired;
};

/* One at a time: scenarios run under the test module's lock. */
static struct ksw_test_irq ksw_test_irq;

static noinline void ksw_test_irq_strike(struct ksw_test_irq *irq)
{
	ksw_test_corrupt(irq->slot, irq->value);
	smp_store_release(&irq->fired, 1);
}

static enum hrtimer_restart ksw_test_hrtimer_fn(struct hrtimer *t)
{
	ksw_test_irq_strike(container_of(t, struct ksw_test_irq, hrtimer));
	return HRTIMER_NORESTART;
}

static void ksw_test_timer_fn(struct timer_list *t)
{
	ksw_test_irq_strike(from_timer(&ksw_test_irq, t, timer));
}

void ksw_test_irq_init(void)
{
	hrtimer_init(&ksw_test_irq.hrtimer, CLOCK_MONOTONIC,
		     HRTIMER_MODE_REL_PINNED_HARD);
	ksw_test_irq.hrtimer.function = ksw_test_hrtimer_fn;
	timer_setup(&ksw_test_irq.timer, ksw_test_timer_fn, TIMER_PINNED);
}

void ksw_test_irq_exit(void)
{
	hrtimer_cancel(&ksw_test_irq.hrtimer);
	timer_shutdown_sync(&ksw_test_irq.timer);
}

/*
 * The victim, armed, spins with preemption off on its CPU until an
 * interrupt there (a pinned hrtimer: hardirq; a pinned timer_list:
 * softirq on irq exit) writes its watched local. Returns the words found
 * changed, or -ETIMEDOUT if the interrupt never came (cancelled then, so
 * it cannot write into a dead frame).
 */
noinline int ksw_test_irq_victim(bool softirq, u64 value)
{
	unsigned long buf[KSW_TEST_BUF_WORDS];
	struct ksw_test_irq *irq = &ksw_test_irq;
	u64 deadline;
	int fired;

	ksw_test_fill(buf, 0x5000);
	ksw_test_mark(&buf[KSW_TEST_WATCH_WORD]);
	irq->slot = &buf[KSW_TEST_WATCH_WORD];
	irq->value = value;
	WRITE_ONCE(irq->fired, 0);
	preempt_disable();
	if (softirq)
		mod_timer(&irq->timer, jiffies + 1);
	else
		hrtimer_start(&irq->hrtimer, ns_to_ktime(200 * NSEC_PER_USEC),
			      HRTIMER_MODE_REL_PINNED_HARD);
	deadline = ktime_get_mono_fast_ns() + 2 * NSEC_PER_SEC;
	while (!(fired = smp_load_acquire(&irq->fired)) &&
	       ktime_get_mono_fast_ns() < deadline)
		cpu_relax();
	preempt_enable();
	if (!fired) {
		hrtimer_cancel(&irq->hrtimer);
		del_timer_sync(&irq->timer);
		return -ETIMEDOUT;
	}
	return ksw_test_count_bad(buf, 0x5000);
}

/* Each level keeps a frame of its own (no tail call, no loop). */
static noinline void ksw_test_deep_write(unsigned int depth,
					 unsigned long *slot, u64 value)
{
	volatile unsigned long pad[2];

	pad[0] = depth;
	if (depth)
		ksw_test_deep_write(depth - 1, slot, value);
	else
		ksw_test_corrupt(slot, value);
	pad[1] = pad[0];
}

/* A callee @depth frames down writes the victim's local through a pointer. */
noinline int ksw_test_deep_victim(unsigned int depth, u64 value)
{
	unsigned long buf[KSW_TEST_BUF_WORDS];

	ksw_test_fill(buf, 0x6000);
	ksw_test_mark(&buf[KSW_TEST_WATCH_WORD]);
	ksw_test_deep_write(depth, &buf[KSW_TEST_WATCH_WORD], value);
	return ksw_test_count_bad(buf, 0x6000);
}

/*
 * Writes @slot through a second mapping of its page (as a device DMA into
 * a stack buffer would): no watchpoint can see it.
 */
static noinline int ksw_test_alias_write(unsigned long *slot, u64 value)
{
	struct page *page = is_vmalloc_addr(slot) ? vmalloc_to_page(slot) :
						    virt_to_page(slot);
	void *alias = vmap(&page, 1, VM_MAP, PAGE_KERNEL);

	if (!alias)
		return -ENOMEM;
	WRITE_ONCE(*(unsigned long *)(alias + offset_in_page(slot)), value);
	vunmap(alias);
	return 0;
}

noinline int ksw_test_alias_victim(u64 value)
{
	unsigned long buf[KSW_TEST_BUF_WORDS];
	int ret;

	ksw_test_fill(buf, 0x7000);
	ksw_test_mark(&buf[KSW_TEST_WATCH_WORD]);
	ret = ksw_test_alias_write(&buf[KSW_TEST_WATCH_WORD], value);
	return ret ? ret : ksw_test_count_bad(buf, 0x7000);
}

/* ------------------------------------------------------------------------
 * Frame shapes: a small hot function whose canary is the top slot of a
 * realigned frame, and a function with two ways out (a return and a tail
 * call).
 */

/* 64-byte buffer, realigned stack (so a frame pointer), canary on top. */
noinline u64 ksw_test_small(u64 seed)
{
	u64 buf[8] __aligned(32);
	int i;

	for (i = 0; i < 8; i++)
		WRITE_ONCE(buf[i], seed + i);
	ksw_test_mark((unsigned long *)&buf[0]);
	return READ_ONCE(buf[seed & 7]);
}

/* Many calls from one system call, back to back. */
u64 ksw_test_small_loop(u32 calls)
{
	u64 sum = 0;
	u32 i;

	for (i = 0; i < calls; i++)
		sum += ksw_test_small(i);
	return sum;
}

/*
 * The same without the realignment: the canary sits just under the saved
 * registers, where the return hook's trampoline builds its frame after the
 * return. This is the shape that wedged QEMU TCG guests when a watch was
 * still armed after the return (see Documentation/testing.md, "The
 * wedge"): an interrupt taken at the trampoline's entry pushed its frame
 * onto the watched canary.
 */
noinline u64 ksw_test_flat(u64 seed)
{
	u64 buf[8];
	int i;

	for (i = 0; i < 8; i++)
		WRITE_ONCE(buf[i], seed + i);
	ksw_test_mark((unsigned long *)&buf[0]);
	return READ_ONCE(buf[seed & 7]);
}

u64 ksw_test_flat_loop(u32 calls)
{
	u64 sum = 0;
	u32 i;

	for (i = 0; i < calls; i++)
		sum += ksw_test_flat(i);
	return sum;
}

noinline u64 ksw_test_tail_target(u64 x)
{
	return x * 3 + 1;
}

/*
 * Odd @x leaves through a tail call (jmp), even @x through a return. Its
 * frame is the callee-saved registers it pushes: a function whose local
 * has its address taken cannot tail-call (the callee might use it), so
 * the watch here is on the frame's bottom slot, a saved register.
 */
noinline __no_stack_protector u64 ksw_test_exits(u64 x)
{
	u64 a = ksw_test_tail_target(x);
	u64 b = ksw_test_tail_target(a ^ x);

	if (x & 1)
		return ksw_test_tail_target(a + b);
	return a * b + x;
}

u64 ksw_test_exits_loop(u32 calls)
{
	u64 sum = 0;
	u32 i;

	for (i = 0; i < calls; i++)
		sum += ksw_test_exits(i);
	return sum;
}

/* ------------------------------------------------------------------------
 * For tests/stress: a victim whose task exits inside the watched call, a
 * function too large for kstackwatch to decode, and one with a jump table.
 */

/*
 * With @exit, the calling kernel thread exits from inside this frame
 * (completing @done on its way out): the watch ends with the task (disarm
 * reason task_exit). Without, it returns like the other victims.
 */
noinline int ksw_test_exit_victim(struct completion *done, bool exit)
{
	unsigned long buf[KSW_TEST_BUF_WORDS];

	ksw_test_fill(buf, 0x8000);
	ksw_test_mark(&buf[KSW_TEST_WATCH_WORD]);
	if (exit)
		kthread_complete_and_exit(done, 0);
	return ksw_test_count_bad(buf, 0x8000);
}

/* More than the 64 KiB kstackwatch decodes: a watch on it fails (EFBIG). */
noinline void ksw_test_huge(void)
{
	asm volatile(".skip 0x10100, 0x90");
}

/*
 * A dense switch whose cases call different functions: clang emits a jump
 * table (an indirect jmp), whose stack layout kstackwatch does not follow
 * (EOPNOTSUPP). Never called.
 */
noinline u64 ksw_test_switch(u64 x)
{
	unsigned long buf[KSW_TEST_BUF_WORDS];

	ksw_test_fill(buf, x);
	ksw_test_mark(&buf[KSW_TEST_WATCH_WORD]);
	switch (x & 7) {
	case 0:
		x = ksw_test_tail_target(x);
		break;
	case 1:
		x = ksw_test_count_bad(buf, x);
		break;
	case 2:
		x = ksw_test_small(x);
		break;
	case 3:
		x = ksw_test_exits(x);
		break;
	case 4:
		x = ksw_test_bench_victim(x);
		break;
	case 5:
		ksw_test_fill(buf, x + 5);
		break;
	case 6:
		x = ksw_test_direct_victim(x);
		break;
	default:
		x = ksw_test_canary_victim();
		break;
	}
	return x + READ_ONCE(buf[3]);
}

/* ------------------------------------------------------------------------
 * Many look-alike canary-protected functions calling each other at random:
 * one of them, chosen at random per run, has its canary overwritten (and
 * put back) at a random depth. A sweep over the module must find which.
 */

struct ksw_test_sweep {
	u64 seed;
	u32 victim;		/* index of the function whose canary is hit */
	u32 victim_depth;	/* the call depth at which it is hit */
	u32 max_depth;
	u32 corruptions;
};

typedef int (*ksw_test_sweep_fn)(struct ksw_test_sweep *s, u32 depth);
static const ksw_test_sweep_fn ksw_test_sweep_fns[KSW_TEST_SWEEP_FNS];

static u32 ksw_test_sweep_pick(struct ksw_test_sweep *s)
{
	s->seed ^= s->seed << 13;
	s->seed ^= s->seed >> 7;
	s->seed ^= s->seed << 17;
	return s->seed % KSW_TEST_SWEEP_FNS;
}

/* The next call of the chain: the victim at its depth, else at random. */
static noinline int ksw_test_sweep_call(struct ksw_test_sweep *s, u32 depth)
{
	u32 next = depth == s->victim_depth ? s->victim : ksw_test_sweep_pick(s);

	if (next == s->victim && depth != s->victim_depth)
		next = (next + 1) % KSW_TEST_SWEEP_FNS;
	return ksw_test_sweep_fns[next](s, depth);
}

/* Global, not static: a sweep names them as a user names kernel functions. */
#define KSW_TEST_SWEEP_FN(n)							\
int ksw_test_sweep_##n(struct ksw_test_sweep *s, u32 depth);		\
noinline int ksw_test_sweep_##n(struct ksw_test_sweep *s, u32 depth)	\
{										\
	unsigned long buf[KSW_TEST_BUF_WORDS];					\
	int bad = 0;								\
										\
	ksw_test_fill(buf, 0x8000 + (n));					\
	if ((n) == s->victim && depth == s->victim_depth) {			\
		ksw_test_overflow(buf, KSW_TEST_BUF_WORDS, 2);			\
		s->corruptions++;						\
		ksw_test_fill(buf, 0x8000 + (n));				\
	}									\
	if (depth < s->max_depth)						\
		bad = ksw_test_sweep_call(s, depth + 1);			\
	return bad + ksw_test_count_bad(buf, 0x8000 + (n));			\
}

KSW_TEST_SWEEP_FN(0)  KSW_TEST_SWEEP_FN(1)  KSW_TEST_SWEEP_FN(2)
KSW_TEST_SWEEP_FN(3)  KSW_TEST_SWEEP_FN(4)  KSW_TEST_SWEEP_FN(5)
KSW_TEST_SWEEP_FN(6)  KSW_TEST_SWEEP_FN(7)  KSW_TEST_SWEEP_FN(8)
KSW_TEST_SWEEP_FN(9)  KSW_TEST_SWEEP_FN(10) KSW_TEST_SWEEP_FN(11)
KSW_TEST_SWEEP_FN(12) KSW_TEST_SWEEP_FN(13) KSW_TEST_SWEEP_FN(14)
KSW_TEST_SWEEP_FN(15) KSW_TEST_SWEEP_FN(16) KSW_TEST_SWEEP_FN(17)
KSW_TEST_SWEEP_FN(18) KSW_TEST_SWEEP_FN(19) KSW_TEST_SWEEP_FN(20)
KSW_TEST_SWEEP_FN(21) KSW_TEST_SWEEP_FN(22) KSW_TEST_SWEEP_FN(23)

static const ksw_test_sweep_fn ksw_test_sweep_fns[KSW_TEST_SWEEP_FNS] = {
	ksw_test_sweep_0,  ksw_test_sweep_1,  ksw_test_sweep_2,
	ksw_test_sweep_3,  ksw_test_sweep_4,  ksw_test_sweep_5,
	ksw_test_sweep_6,  ksw_test_sweep_7,  ksw_test_sweep_8,
	ksw_test_sweep_9,  ksw_test_sweep_10, ksw_test_sweep_11,
	ksw_test_sweep_12, ksw_test_sweep_13, ksw_test_sweep_14,
	ksw_test_sweep_15, ksw_test_sweep_16, ksw_test_sweep_17,
	ksw_test_sweep_18, ksw_test_sweep_19, ksw_test_sweep_20,
	ksw_test_sweep_21, ksw_test_sweep_22, ksw_test_sweep_23,
};

/*
 * @rounds call chains of depth 1..6 through the sweep functions; the
 * victim (@victim, or chosen at random if >= KSW_TEST_SWEEP_FNS) has its
 * canary hit once per round at a depth chosen at random per run. Returns
 * the victim's index; *@victim_depth and *@corruptions say the rest.
 */
u32 ksw_test_sweep_run(u32 rounds, u32 victim, u32 *victim_depth,
		       u32 *corruptions)
{
	struct ksw_test_sweep s = {
		.seed = get_random_u64() | 1,
		.max_depth = 6,
	};
	u32 r;

	s.victim = victim < KSW_TEST_SWEEP_FNS ? victim :
		   get_random_u32_below(KSW_TEST_SWEEP_FNS);
	s.victim_depth = get_random_u32_below(s.max_depth) + 1;
	for (r = 0; r < rounds; r++)
		ksw_test_sweep_call(&s, 1);
	*victim_depth = s.victim_depth;
	*corruptions = s.corruptions;
	return s.victim;
}

/*
 * Stays in its watched frame until released (or @max_ms pass): for
 * tests/stress, which unloads kstackwatch and takes CPUs offline
 * meanwhile, and lets it return as soon as that is done.
 */
static atomic_t ksw_test_held_release;

void ksw_test_held_set_release(bool release)
{
	atomic_set(&ksw_test_held_release, release);
}

noinline int ksw_test_held_victim(u32 max_ms)
{
	unsigned long buf[KSW_TEST_BUF_WORDS];
	unsigned long deadline = jiffies + msecs_to_jiffies(max_ms);

	ksw_test_fill(buf, 0x9000);
	ksw_test_mark(&buf[KSW_TEST_WATCH_WORD]);
	while (!atomic_read(&ksw_test_held_release) &&
	       time_before(jiffies, deadline))
		msleep(5);
	return ksw_test_count_bad(buf, 0x9000);
}
