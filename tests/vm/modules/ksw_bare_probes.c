// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark floor: the same kprobe (post handler) + fprobe (exit handler)
 * pair kstackwatch registers, with handlers that do nothing. `make bench`
 * compares kstackwatch's non-arming cost against this.
 *
 *   insmod ksw_bare_probes.ko func=ksw_test_bench_victim offset=0xcd
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fprobe.h>
#include <linux/kprobes.h>
#include <linux/module.h>

static char *func = "ksw_test_bench_victim";
module_param(func, charp, 0444);
static unsigned int offset;
module_param(offset, uint, 0444);

static void bare_post(struct kprobe *kp, struct pt_regs *regs,
		      unsigned long flags)
{
}
NOKPROBE_SYMBOL(bare_post);

static void bare_exit(struct fprobe *fp, unsigned long entry_ip,
		      unsigned long ret_ip, struct pt_regs *regs,
		      void *entry_data)
{
}
NOKPROBE_SYMBOL(bare_exit);

static struct kprobe bare_kp = { .post_handler = bare_post };
static struct fprobe bare_fp = {
	.exit_handler = bare_exit,
	.nr_maxactive = 512,	/* as kstackwatch */
};

static int __init bare_init(void)
{
	unsigned long start;
	int ret;

	bare_kp.symbol_name = func;
	bare_kp.offset = offset;
	ret = register_kprobe(&bare_kp);
	if (ret)
		return ret;
	start = (unsigned long)bare_kp.addr - offset;
	ret = register_fprobe_ips(&bare_fp, &start, 1);
	if (ret) {
		unregister_kprobe(&bare_kp);
		return ret;
	}
	pr_info("kprobe at %pS, fprobe exit on %ps\n", bare_kp.addr, (void *)start);
	return 0;
}

static void __exit bare_exit_module(void)
{
	unregister_fprobe(&bare_fp);
	unregister_kprobe(&bare_kp);
}

module_init(bare_init);
module_exit(bare_exit_module);
MODULE_DESCRIPTION("kstackwatch benchmark floor: an empty kprobe + fprobe pair");
MODULE_LICENSE("GPL");
