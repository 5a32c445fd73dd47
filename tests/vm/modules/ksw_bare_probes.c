// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark floor: the same probe set kstackwatch registers on a watched
 * function, with handlers that do nothing: an fprobe with entry and exit
 * handlers (and per-call data), a kprobe post handler at the arming offset
 * and kprobe pre handlers at the release offsets. `make bench` compares
 * kstackwatch's non-arming cost against this; the offsets come from
 * /proc/kstackwatch ("arms at +0x..., disarms at +0x... +0x...").
 *
 *   insmod ksw_bare_probes.ko func=ksw_test_bench_victim offset=0xcd release=0x104
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fprobe.h>
#include <linux/kprobes.h>
#include <linux/module.h>

#define BARE_MAX_RELEASE 32

static char *func = "ksw_test_bench_victim";
module_param(func, charp, 0444);
static unsigned int offset;
module_param(offset, uint, 0444);
static unsigned int release[BARE_MAX_RELEASE];
static int nr_release;
module_param_array(release, uint, &nr_release, 0444);

static void bare_post(struct kprobe *kp, struct pt_regs *regs,
		      unsigned long flags)
{
}
NOKPROBE_SYMBOL(bare_post);

static int bare_pre(struct kprobe *kp, struct pt_regs *regs)
{
	return 0;
}
NOKPROBE_SYMBOL(bare_pre);

static int bare_entry(struct fprobe *fp, unsigned long entry_ip,
		      unsigned long ret_ip, struct pt_regs *regs,
		      void *entry_data)
{
	return 0;
}
NOKPROBE_SYMBOL(bare_entry);

static void bare_exit(struct fprobe *fp, unsigned long entry_ip,
		      unsigned long ret_ip, struct pt_regs *regs,
		      void *entry_data)
{
}
NOKPROBE_SYMBOL(bare_exit);

static struct kprobe bare_kp = { .post_handler = bare_post };
static struct kprobe bare_release[BARE_MAX_RELEASE];
static struct fprobe bare_fp = {
	.entry_handler = bare_entry,
	.exit_handler = bare_exit,
	.entry_data_size = 16,	/* as kstackwatch */
	.nr_maxactive = 512,	/* as kstackwatch */
};

static void bare_unregister(int releases)
{
	while (releases--)
		unregister_kprobe(&bare_release[releases]);
	unregister_fprobe(&bare_fp);
}

static int __init bare_init(void)
{
	unsigned long start;
	int i, ret;

	/* Resolve the name (and move past an ENDBR) like kstackwatch. */
	bare_kp.symbol_name = func;
	ret = register_kprobe(&bare_kp);
	if (ret)
		return ret;
	start = (unsigned long)bare_kp.addr;
	unregister_kprobe(&bare_kp);
	memset(&bare_kp, 0, sizeof(bare_kp));

	ret = register_fprobe_ips(&bare_fp, &start, 1);
	if (ret)
		return ret;
	for (i = 0; i < nr_release; i++) {
		bare_release[i].addr = (kprobe_opcode_t *)(start + release[i]);
		bare_release[i].pre_handler = bare_pre;
		ret = register_kprobe(&bare_release[i]);
		if (ret) {
			bare_unregister(i);
			return ret;
		}
	}
	bare_kp.addr = (kprobe_opcode_t *)(start + offset);
	bare_kp.post_handler = bare_post;
	ret = register_kprobe(&bare_kp);
	if (ret) {
		bare_unregister(nr_release);
		return ret;
	}
	pr_info("kprobe at %pS, %d release kprobe(s), fprobe on %ps\n",
		bare_kp.addr, nr_release, (void *)start);
	return 0;
}

static void __exit bare_exit_module(void)
{
	unregister_kprobe(&bare_kp);
	bare_unregister(nr_release);
}

module_init(bare_init);
module_exit(bare_exit_module);
MODULE_DESCRIPTION("kstackwatch benchmark floor: its probe set with empty handlers");
MODULE_LICENSE("GPL");
