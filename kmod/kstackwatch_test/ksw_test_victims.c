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
#include <linux/jiffies.h>
#include <linux/slab.h>

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
