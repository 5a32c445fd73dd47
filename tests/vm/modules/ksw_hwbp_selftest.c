// SPDX-License-Identifier: GPL-2.0
/*
 * Bench self-test: a hardware write watchpoint, registered on every CPU,
 * must fire when a thread on another CPU writes the watched word. Loading
 * fails (-EIO) unless it did, so `insmod` itself is the assertion.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/completion.h>
#include <linux/hw_breakpoint.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/perf_event.h>
#include <linux/smp.h>

static u64 watched __aligned(8);
static atomic_t hits;
static int hit_cpu = -1;
static unsigned long hit_ip;
static DECLARE_COMPLETION(written);

static void selftest_handler(struct perf_event *bp, struct perf_sample_data *data,
			     struct pt_regs *regs)
{
	hit_cpu = smp_processor_id();
	hit_ip = instruction_pointer(regs);
	atomic_inc(&hits);
}

static noinline void selftest_write(u64 value)
{
	WRITE_ONCE(watched, value);
}

static int selftest_writer(void *arg)
{
	selftest_write(0x5e1f7e57);
	complete(&written);
	return 0;
}

static int __init selftest_init(void)
{
	struct perf_event * __percpu *bp;
	struct perf_event_attr attr;
	struct task_struct *writer;
	int self, target, ret = 0;

	hw_breakpoint_init(&attr);
	attr.bp_addr = (unsigned long)&watched;
	attr.bp_len = HW_BREAKPOINT_LEN_8;
	attr.bp_type = HW_BREAKPOINT_W;
	bp = register_wide_hw_breakpoint(&attr, selftest_handler, NULL);
	if (IS_ERR((void __force *)bp))
		return PTR_ERR((void __force *)bp);

	self = get_cpu();
	put_cpu();
	target = cpumask_any_but(cpu_online_mask, self);
	if (target >= nr_cpu_ids) {
		pr_err("only one CPU online: cannot test a cross-CPU write\n");
		ret = -ENODEV;
		goto out;
	}
	writer = kthread_create(selftest_writer, NULL, "ksw-hwbp-writer");
	if (IS_ERR(writer)) {
		ret = PTR_ERR(writer);
		goto out;
	}
	kthread_bind(writer, target);
	wake_up_process(writer);
	wait_for_completion(&written);

	if (atomic_read(&hits) != 1 || hit_cpu != target) {
		pr_err("FAIL: %d hit(s), on cpu %d; the write ran on cpu %d (armed from cpu %d)\n",
		       atomic_read(&hits), hit_cpu, target, self);
		ret = -EIO;
		goto out;
	}
	pr_info("PASS: write on cpu %d caught by %pS (registered from cpu %d)\n",
		hit_cpu, (void *)hit_ip, self);
out:
	unregister_wide_hw_breakpoint(bp);
	return ret;
}

static void __exit selftest_exit(void)
{
}

module_init(selftest_init);
module_exit(selftest_exit);
MODULE_DESCRIPTION("kstackwatch bench self-test: cross-CPU hardware watchpoint");
MODULE_LICENSE("GPL");
