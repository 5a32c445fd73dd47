// SPDX-License-Identifier: GPL-2.0
/*
 * Bench self-test: this module WARNs on load. A run that loads it must
 * fail even though the module loads and the command succeeds.
 */
#include <linux/bug.h>
#include <linux/module.h>

static int __init warn_on_load_init(void)
{
	WARN(1, "ksw_warn_on_load: deliberate warning (bench self-test)\n");
	return 0;
}

static void __exit warn_on_load_exit(void)
{
}

module_init(warn_on_load_init);
module_exit(warn_on_load_exit);
MODULE_DESCRIPTION("kstackwatch bench self-test: warns on load");
MODULE_LICENSE("GPL");
