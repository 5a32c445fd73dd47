// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch: /proc/kstackwatch, the task-exit hook, and the C side of
 * module init and exit. The configuration itself (and its lock, a Rust
 * kernel Mutex) lives in Rust; @config is its address, handed back on
 * every call. See ksw_glue.h.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/irqflags.h>
#include <linux/proc_fs.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/tracepoint.h>
#include <linux/uaccess.h>

#include "ksw_glue.h"

static struct proc_dir_entry *ksw_proc;
static struct tracepoint *ksw_tp_exit;

/* sched_process_exit runs in the exiting task; its watched calls die with it. */
static void ksw_on_task_exit(void *data, struct task_struct *task)
{
	unsigned long flags;

	local_irq_save(flags);
	ksw_rs_on_task_exit((unsigned long)task);
	local_irq_restore(flags);
}

static void ksw_find_exit_tp(struct tracepoint *tp, void *priv)
{
	if (!strcmp(tp->name, "sched_process_exit"))
		ksw_tp_exit = tp;
}

static ssize_t ksw_proc_write(struct file *file, const char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	const void *config = pde_data(file_inode(file));
	void *buf;
	ssize_t ret;

	/* One write is one whole configuration (a sweep can list thousands). */
	if (count > KSW_MAX_CONFIG_WRITE) {
		pr_err("config rejected: %zu bytes, at most %d in one write\n",
		       count, KSW_MAX_CONFIG_WRITE);
		return -EFBIG;
	}
	/* Rust takes (buf, count): no terminating NUL needed. */
	buf = vmemdup_user(ubuf, count);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	ret = ksw_rs_config_write(config, buf, count);
	kvfree(buf);
	return ret;
}

static int ksw_proc_show(struct seq_file *m, void *v)
{
	ksw_rs_config_show(m->private, m);
	return 0;
}

static int ksw_proc_open(struct inode *inode, struct file *file)
{
	return single_open(file, ksw_proc_show, pde_data(inode));
}

static const struct proc_ops ksw_proc_ops = {
	.proc_open = ksw_proc_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = ksw_proc_write,
};

void ksw_seq_write(struct seq_file *m, const u8 *buf, size_t len)
{
	seq_write(m, buf, len);
}

int ksw_glue_init(const void *config)
{
	int ret;

	ksw_random_init();
	ksw_slots_init();
	for_each_kernel_tracepoint(ksw_find_exit_tp, NULL);
	if (!ksw_tp_exit) {
		pr_err("tracepoint sched_process_exit not found\n");
		return -ENOENT;
	}
	ret = tracepoint_probe_register(ksw_tp_exit, ksw_on_task_exit, NULL);
	if (ret)
		return ret;

	ksw_proc = proc_create_data("kstackwatch", 0600, NULL, &ksw_proc_ops,
				    (void *)config);
	if (!ksw_proc) {
		tracepoint_probe_unregister(ksw_tp_exit, ksw_on_task_exit, NULL);
		tracepoint_synchronize_unregister();
		return -ENOMEM;
	}
	return 0;
}

/*
 * Module exit, in this order: the file goes first (proc_remove() waits for
 * running reads and writes), Rust then tears the watches down, and
 * ksw_glue_exit() waits for the task-exit hook and any kick or IPI of ours.
 */
void ksw_glue_remove_proc(void)
{
	proc_remove(ksw_proc);
}

void ksw_glue_exit(void)
{
	tracepoint_probe_unregister(ksw_tp_exit, ksw_on_task_exit, NULL);
	tracepoint_synchronize_unregister();
	ksw_slots_quiesce();
	synchronize_rcu();
}
