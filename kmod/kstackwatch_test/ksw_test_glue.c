// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch_test glue: /proc/kstackwatch_test and kernel threads, which
 * the 6.12 Rust crate does not wrap. Scenarios are chosen and run in Rust.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/completion.h>
#include <linux/cpuhotplug.h>
#include <linux/cpumask.h>
#include <linux/hw_breakpoint.h>
#include <linux/perf_event.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/smp.h>
#include <asm/debugreg.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>

#include "ksw_test.h"

#define KSW_TEST_CMD_MAX 256
#define KSW_TEST_RESULT_MAX PAGE_SIZE

static DEFINE_MUTEX(ksw_test_lock);
static struct proc_dir_entry *ksw_test_proc;

struct ksw_test_thread {
	struct task_struct *task;
	int (*fn)(void *);
	void *arg;
	int ret;
	struct completion done;
};

static int ksw_test_thread_fn(void *data)
{
	struct ksw_test_thread *t = data;

	t->ret = t->fn(t->arg);
	complete(&t->done);
	return 0;
}

/* @cpu < 0: any CPU. Returns NULL on failure; join exactly once. */
struct ksw_test_thread *ksw_test_thread_start(int (*fn)(void *), void *arg,
					     const char *name, int cpu)
{
	struct ksw_test_thread *t = kzalloc(sizeof(*t), GFP_KERNEL);

	if (!t)
		return NULL;
	t->fn = fn;
	t->arg = arg;
	init_completion(&t->done);
	t->task = kthread_create(ksw_test_thread_fn, t, "%s", name);
	if (IS_ERR(t->task)) {
		kfree(t);
		return NULL;
	}
	if (cpu >= 0 && cpu_online(cpu))
		kthread_bind(t->task, cpu);
	get_task_struct(t->task);
	wake_up_process(t->task);
	return t;
}

/*
 * Wait for fn to have run (kthread_stop alone would skip a thread that
 * has not started yet), then reap the thread.
 */
int ksw_test_thread_join(struct ksw_test_thread *t)
{
	int ret;

	wait_for_completion(&t->done);
	kthread_stop_put(t->task);
	ret = t->ret;
	kfree(t);
	return ret;
}

int ksw_test_pid(void)
{
	return task_pid_nr(current);
}

u64 ksw_test_now_ns(void)
{
	return ktime_get_mono_fast_ns();
}

static void ksw_test_noop(void *info)
{
}

/* One broadcast IPI round trip: every other online CPU runs a no-op. */
u64 ksw_test_ipi_roundtrip_ns(void)
{
	u64 t0;

	preempt_disable();
	t0 = ktime_get_mono_fast_ns();
	smp_call_function(ksw_test_noop, NULL, 1);
	t0 = ktime_get_mono_fast_ns() - t0;
	preempt_enable();
	return t0;
}

static u64 ksw_test_dr_target[4];

/* DR7 bits for DRn: local enable (bit 2n), R/W = write (01), LEN = 8 (10). */
#define KSW_TEST_DR_BITS(n) ((1UL << (2 * (n))) | (0x1UL << (16 + 4 * (n))) | \
			     (0x2UL << (18 + 4 * (n))))

/*
 * The cost of programming a data breakpoint on this CPU, as arming does:
 * DR3 pointed at a private word and enabled for 8-byte writes in DR7, then
 * disabled again, with @others of DR0-DR2 enabled on private words
 * meanwhile (as kstackwatch keeps its idle slots); half a round is one
 * programming. Nothing writes the words, DR0-DR3 and DR7 are restored
 * before interrupts come back, and nothing is measured (0) unless all four
 * registers are free.
 */
u64 ksw_test_dr_program_ns(unsigned int others)
{
	unsigned long flags, dr7, saved[4], base;
	u64 t0 = 0;
	int i;

	local_irq_save(flags);
	get_debugreg(dr7, 7);
	if (!(dr7 & 0xff)) {
		get_debugreg(saved[0], 0);
		get_debugreg(saved[1], 1);
		get_debugreg(saved[2], 2);
		get_debugreg(saved[3], 3);
		set_debugreg((unsigned long)&ksw_test_dr_target[0], 0);
		set_debugreg((unsigned long)&ksw_test_dr_target[1], 1);
		set_debugreg((unsigned long)&ksw_test_dr_target[2], 2);
		set_debugreg((unsigned long)&ksw_test_dr_target[3], 3);
		base = dr7;
		for (i = 0; i < 3 && i < others; i++)
			base |= KSW_TEST_DR_BITS(i);
		set_debugreg(base, 7);
		t0 = ktime_get_mono_fast_ns();
		for (i = 0; i < 8; i++) {
			set_debugreg(base | KSW_TEST_DR_BITS(3), 7);
			set_debugreg(base, 7);
		}
		t0 = (ktime_get_mono_fast_ns() - t0) / 16;
		set_debugreg(dr7, 7);
		set_debugreg(saved[0], 0);
		set_debugreg(saved[1], 1);
		set_debugreg(saved[2], 2);
		set_debugreg(saved[3], 3);
	}
	local_irq_restore(flags);
	return t0;
}

/*
 * What an enabled data breakpoint costs code that never touches the watched
 * word. On hardware: nothing. Under QEMU TCG a watchpoint sends every access
 * to its whole page through the slow path, so a watch on a stack slot taxes
 * all stack traffic on that page while it is armed. Times 4096 8-byte writes
 * to a stack word with DR3 watching (mode) 0: nothing, 1: a module word on
 * another page, 2: the unwritten neighbouring stack word on the same page.
 * Total ns for the 4096; 0 (nothing measured) unless all registers are free.
 */
u64 ksw_test_watch_tax_ns(unsigned int mode)
{
	unsigned long buf[3], flags, dr7, saved, watched;
	u64 t0 = 0;
	int i;

	/* Watch whichever neighbour of buf[1] shares its page. */
	watched = (unsigned long)&buf[0];
	if ((watched & PAGE_MASK) != ((unsigned long)&buf[1] & PAGE_MASK))
		watched = (unsigned long)&buf[2];
	if (mode == 1)
		watched = (unsigned long)&ksw_test_dr_target[3];

	local_irq_save(flags);
	get_debugreg(dr7, 7);
	if (!(dr7 & 0xff)) {
		get_debugreg(saved, 3);
		if (mode) {
			set_debugreg(watched, 3);
			set_debugreg(dr7 | KSW_TEST_DR_BITS(3), 7);
		}
		t0 = ktime_get_mono_fast_ns();
		for (i = 0; i < 4096; i++)
			WRITE_ONCE(buf[1], i);
		t0 = ktime_get_mono_fast_ns() - t0;
		set_debugreg(dr7, 7);
		set_debugreg(saved, 3);
	}
	local_irq_restore(flags);
	return t0;
}

void ksw_test_spin_ns(unsigned int ns)
{
	ndelay(ns);
}

void ksw_test_sleep_ms(unsigned int ms)
{
	msleep(ms);
}

/* Move the calling thread to @cpu (the CPU may have been re-onlined). */
int ksw_test_move_to_cpu(unsigned int cpu)
{
	int ret = set_cpus_allowed_ptr(current, cpumask_of(cpu));

	return ret ? ret : (int)raw_smp_processor_id();
}

/* Sleep, then continue on the next online CPU. */
void ksw_test_hop(void)
{
	unsigned int next = cpumask_next(raw_smp_processor_id(), cpu_online_mask);

	if (next >= nr_cpu_ids)
		next = cpumask_first(cpu_online_mask);
	msleep(1);
	set_cpus_allowed_ptr(current, cpumask_of(next));
}

int ksw_test_cpu(void)
{
	return raw_smp_processor_id();
}

unsigned int ksw_test_online_cpus(void)
{
	return num_online_cpus();
}

/*
 * The hog: while on, every CPU coming online has all its breakpoint
 * registers taken here first (this hotplug state is set up before
 * kstackwatch claims its slots, so its callback runs first), so that
 * kstackwatch's own online callback finds none free.
 */
static DEFINE_PER_CPU(struct perf_event *, ksw_test_hog_bps[HBP_NUM]);
static unsigned long ksw_test_hog_words[HBP_NUM];
static int ksw_test_hog_state = -1;

static void ksw_test_hog_handler(struct perf_event *bp,
				 struct perf_sample_data *data,
				 struct pt_regs *regs)
{
}

static int ksw_test_hog_online(unsigned int cpu)
{
	struct perf_event_attr attr;
	struct perf_event *bp;
	int i;

	for (i = 0; i < HBP_NUM; i++) {
		hw_breakpoint_init(&attr);
		attr.bp_addr = (unsigned long)&ksw_test_hog_words[i];
		attr.bp_len = HW_BREAKPOINT_LEN_8;
		attr.bp_type = HW_BREAKPOINT_W;
		bp = perf_event_create_kernel_counter(&attr, cpu, NULL,
						      ksw_test_hog_handler, NULL);
		if (IS_ERR(bp))
			break;
		per_cpu(ksw_test_hog_bps[i], cpu) = bp;
	}
	return 0;
}

static int ksw_test_hog_offline(unsigned int cpu)
{
	int i;

	for (i = 0; i < HBP_NUM; i++) {
		struct perf_event *bp = per_cpu(ksw_test_hog_bps[i], cpu);

		per_cpu(ksw_test_hog_bps[i], cpu) = NULL;
		if (bp)
			perf_event_release_kernel(bp);
	}
	return 0;
}

int ksw_test_hog(bool on)
{
	int ret;

	if (on == (ksw_test_hog_state >= 0))
		return 0;
	if (!on) {
		cpuhp_remove_state(ksw_test_hog_state);
		ksw_test_hog_state = -1;
		return 0;
	}
	ret = cpuhp_setup_state_nocalls(CPUHP_AP_ONLINE_DYN, "ksw_test:hog",
					ksw_test_hog_online,
					ksw_test_hog_offline);
	if (ret < 0)
		return ret;
	ksw_test_hog_state = ret;
	return 0;
}

static ssize_t ksw_test_write(struct file *file, const char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	char *cmd;
	ssize_t ret;

	if (count > KSW_TEST_CMD_MAX)
		return -EFBIG;
	cmd = memdup_user_nul(ubuf, count);
	if (IS_ERR(cmd))
		return PTR_ERR(cmd);
	mutex_lock(&ksw_test_lock);
	ret = ksw_test_rs_run(cmd, count);
	mutex_unlock(&ksw_test_lock);
	kfree(cmd);
	return ret;
}

static ssize_t ksw_test_read(struct file *file, char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	char *buf = kmalloc(KSW_TEST_RESULT_MAX, GFP_KERNEL);
	size_t len;
	ssize_t ret;

	if (!buf)
		return -ENOMEM;
	mutex_lock(&ksw_test_lock);
	len = ksw_test_rs_result(buf, KSW_TEST_RESULT_MAX);
	mutex_unlock(&ksw_test_lock);
	ret = simple_read_from_buffer(ubuf, count, ppos, buf, len);
	kfree(buf);
	return ret;
}

static const struct proc_ops ksw_test_proc_ops = {
	.proc_read = ksw_test_read,
	.proc_write = ksw_test_write,
	.proc_lseek = default_llseek,
};

int ksw_test_glue_init(void)
{
	ksw_test_irq_init();
	ksw_test_proc = proc_create("kstackwatch_test", 0600, NULL,
				    &ksw_test_proc_ops);
	return ksw_test_proc ? 0 : -ENOMEM;
}

void ksw_test_glue_exit(void)
{
	proc_remove(ksw_test_proc);
	ksw_test_hog(false);
	ksw_test_irq_exit();
}

/* ------------------------------------------------------------------------
 * For tests/stress: kernel threads that exit inside a watched call.
 */

struct ksw_test_exiter {
	struct completion done;
	struct task_struct *task;
};

static int ksw_test_exiter_fn(void *data)
{
	struct ksw_test_exiter *e = data;

	/* Does not return: the thread exits inside the watched frame. */
	return ksw_test_exit_victim(&e->done, true);
}

/*
 * @n kernel threads each exit inside ksw_test_exit_victim(). Returns how
 * many ran, once all of them are gone (exit_notify() done, so the
 * sched_process_exit tracepoint, which precedes it, has run).
 */
int ksw_test_exit_inside(unsigned int n)
{
	struct ksw_test_exiter *e = kcalloc(max(n, 1U), sizeof(*e), GFP_KERNEL);
	unsigned int i, started = 0;

	if (!e)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		struct task_struct *t;

		init_completion(&e[i].done);
		t = kthread_create(ksw_test_exiter_fn, &e[i], "ksw-exit");
		if (IS_ERR(t))
			break;
		get_task_struct(t);
		e[i].task = t;
		wake_up_process(t);
		started++;
	}
	for (i = 0; i < started; i++) {
		wait_for_completion(&e[i].done);
		while (!READ_ONCE(e[i].task->exit_state))
			msleep(1);
		put_task_struct(e[i].task);
	}
	kfree(e);
	return started;
}

bool ksw_test_cpu_online(unsigned int cpu)
{
	return cpu < nr_cpu_ids && cpu_online(cpu);
}

unsigned int ksw_test_possible_cpus(void)
{
	return nr_cpu_ids;
}

void ksw_test_sleep_us(unsigned int us)
{
	usleep_range(us, us + us / 4 + 1);
}
