// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch: the probes of a watched function and facts about the current
 * task. Registration and forwarding only; the handlers' decisions are made
 * in Rust (ksw_rs_*). See ksw_glue.h.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fprobe.h>
#include <linux/irqflags.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/random.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/task_stack.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <asm/text-patching.h>
#include <asm/unwind.h>

#include "ksw_glue.h"

/*
 * Return hooks per watched function: enough for many tasks parked inside
 * it. A call that finds the pool empty is never armed (it would have no
 * backstop); tests shrink the pool to show that.
 */
static int rethook_nodes = 512;
module_param(rethook_nodes, int, 0444);
MODULE_PARM_DESC(rethook_nodes, "return hooks per watched function (default 512)");

/* A kprobe on an instruction that releases a watched slot. */
struct ksw_release_probe {
	struct kprobe kp;
	struct ksw_kprobes *set;
	u32 index;
};

/* One watched function's kprobes: arming, and one per release point. */
struct ksw_kprobes {
	struct kprobe arm;
	const void *owner;
	u32 nr_release;
	u32 release_registered;
	bool arm_registered;
	struct ksw_release_probe release[];
};

/* The fprobe of a spec, over all its functions. */
struct ksw_fprobe {
	struct fprobe fp;
	const void *owner;
	bool registered;
};

/* ------------------------------------------------------------ lookups */

/*
 * Parse "name+0xoff/0xsize [mod]" from sprint_symbol(): the function's
 * start is @addr - off. kallsyms has no exported name-to-address lookup;
 * the caller gets the address from a kprobe registration.
 */
static bool ksw_parse_symbol(unsigned long addr, struct ksw_symbol *sym)
{
	char text[KSYM_SYMBOL_LEN];
	unsigned long off, size;
	const char *plus, *slash, *mod;
	size_t name_len;

	sprint_symbol(text, addr);
	plus = strrchr(text, '+');
	if (!plus)
		return false;
	slash = strchr(plus, '/');
	if (!slash || sscanf(plus + 1, "%lx", &off) != 1 ||
	    sscanf(slash + 1, "%lx", &size) != 1)
		return false;
	name_len = plus - text;
	mod = strchr(slash, ' ');
	memset(sym, 0, sizeof(*sym));
	if (name_len >= sizeof(sym->name))
		return false;
	memcpy(sym->name, text, name_len);
	if (mod)
		strlcat(sym->name, mod, sizeof(sym->name));
	sym->start = addr - off;
	sym->size = size;
	return true;
}

/*
 * Resolve many names at once: one disabled kprobe each (kallsyms has no
 * exported lookup; a kprobe resolves "name" and "module:name"), then one
 * batch unregistration, which waits for an RCU grace period once instead
 * of once per name (seconds for a sweep's thousand functions). @names is
 * @n NUL-terminated strings back to back ("name" or "module:name");
 * errs[i] is 0 or the error.
 */
void ksw_lookup_functions(const char *names, u32 n, struct ksw_symbol *syms,
			  int *errs)
{
	struct kprobe *kps, **regd;
	u32 i, nr = 0;

	kps = kvcalloc(n, sizeof(*kps), GFP_KERNEL);
	regd = kvcalloc(n, sizeof(*regd), GFP_KERNEL);
	if (!kps || !regd) {
		kvfree(kps);
		kvfree(regd);
		for (i = 0; i < n; i++)
			errs[i] = -ENOMEM;
		return;
	}
	for (i = 0; i < n; i++, names += strlen(names) + 1) {
		kps[i].symbol_name = names;
		kps[i].flags = KPROBE_FLAG_DISABLED;
		errs[i] = register_kprobe(&kps[i]);
		if (errs[i])
			continue;
		regd[nr++] = &kps[i];
		if (!ksw_parse_symbol((unsigned long)kps[i].addr, &syms[i]))
			errs[i] = -ENOENT;
	}
	unregister_kprobes(regd, nr);
	kvfree(regd);
	kvfree(kps);
}

bool ksw_read_text(unsigned long addr, u8 *buf, size_t len)
{
	return !copy_from_kernel_nofault(buf, (void *)addr, len);
}

/* ----------------------------------------------------------- handlers */

#ifdef CONFIG_OPTPROBES
/*
 * The kernel optimizes a probe through an aggregate kprobe that lists ours
 * (our kprobe's list node is on the aggregate's list): the optimized flag
 * and the detour buffer are the aggregate's, never ours. Caller holds RCU
 * (or runs with preemption off).
 */
static const struct optimized_kprobe *ksw_optimized(const struct kprobe *kp)
{
	struct kprobe *pos;

	list_for_each_entry_rcu(pos, &kp->list, list)
		if (kprobe_optimized(pos))
			return container_of(pos, struct optimized_kprobe, kp);
	return NULL;
}
NOKPROBE_SYMBOL(ksw_optimized);

/* Far enough into a detour buffer to pass the optprobe template. */
#define KSW_OPT_SCAN 512

/*
 * In a detour buffer the copied instructions end with a jump back to
 * kp->addr + size; the template before them has no exported length, so
 * find that jump. Returns the copy's start, or 0.
 */
static unsigned long ksw_detour_copy(const struct optimized_kprobe *op)
{
	unsigned long buf = (unsigned long)op->optinsn.insn;
	unsigned long back = (unsigned long)op->kp.addr + op->optinsn.size;
	unsigned long j;

	for (j = op->optinsn.size; buf && j < KSW_OPT_SCAN; j++) {
		u8 opcode;
		s32 rel;

		if (get_kernel_nofault(opcode, (u8 *)(buf + j)) ||
		    opcode != JMP32_INSN_OPCODE ||
		    get_kernel_nofault(rel, (s32 *)(buf + j + 1)))
			continue;
		if (buf + j + JMP32_INSN_SIZE + rel == back)
			return buf + j - op->optinsn.size;
	}
	return 0;
}
NOKPROBE_SYMBOL(ksw_detour_copy);
#endif

/*
 * A probed instruction runs after the pre handler from a copy: the
 * single-step slot (shared with the aggregate kprobe, if any), or, once the
 * probe is jump-optimized, the detour buffer. A write there traps with ip
 * just after the writing instruction's copy; returns the matching address
 * in the original text, or 0.
 */
unsigned long ksw_kprobe_origin(const struct kprobe *kp, unsigned long ip)
{
	unsigned long slot = (unsigned long)kp->ainsn.insn;

	if (slot && ip > slot && ip <= slot + MAX_INSN_SIZE)
		return (unsigned long)kp->addr + (ip - slot);
#ifdef CONFIG_OPTPROBES
	{
		const struct optimized_kprobe *op = ksw_optimized(kp);
		unsigned long copy = op ? ksw_detour_copy(op) : 0;

		if (copy && ip > copy && ip <= copy + op->optinsn.size)
			return (unsigned long)kp->addr + (ip - copy);
	}
#endif
	return 0;
}
NOKPROBE_SYMBOL(ksw_kprobe_origin);

/*
 * Whether the probe point holds the kprobe's int3, read from the text: the
 * kprobe's OPTIMIZED flag is set as soon as the optimizer *queues* the
 * probe, while hits still come through int3 until the jump is written,
 * which can take seconds (an RCU-tasks grace period); and it stays set
 * while an unoptimization is queued and the jump is still there.
 */
static bool ksw_int3_at(const struct kprobe *kp)
{
	u8 opcode;

	return !get_kernel_nofault(opcode, (u8 *)kp->addr) &&
	       opcode == INT3_INSN_OPCODE;
}
NOKPROBE_SYMBOL(ksw_int3_at);

/*
 * Whether the probed code runs in an NMI: an int3 probe's own entry counts
 * as one NMI level; a probe on the ftrace site at the function entry, or a
 * jump-optimized one, adds none. While text_poke_bp() rewrites the probe
 * point, int3 is there but emulates the jump (no NMI level added): a real
 * NMI then looks like none, for those few instructions' time.
 */
static bool ksw_probed_in_nmi(struct kprobe *kp)
{
	unsigned int levels = (preempt_count() & NMI_MASK) >> NMI_SHIFT;

	/*
	 * None: not in an NMI. Two or more: in one, whatever the probe. One:
	 * an NMI only if the probe itself added no level (no int3).
	 */
	if (levels != 1)
		return levels > 1;
	return kprobe_ftrace(kp) || !ksw_int3_at(kp);
}
NOKPROBE_SYMBOL(ksw_probed_in_nmi);

/*
 * The arming probe: a post handler on the probe point, or a pre handler on
 * the next instruction (same registers, and optimizable). int3-based
 * probes run with interrupts off; optimized and ftrace ones may not.
 */
static void ksw_arm(struct kprobe *kp, struct pt_regs *regs)
{
	struct ksw_kprobes *p = container_of(kp, struct ksw_kprobes, arm);
	unsigned long irqflags;

	local_irq_save(irqflags);
	ksw_rs_on_arm_probe(p->owner, kp, regs, ksw_probed_in_nmi(kp));
	local_irq_restore(irqflags);
}
NOKPROBE_SYMBOL(ksw_arm);

static void ksw_arm_post(struct kprobe *kp, struct pt_regs *regs,
			 unsigned long flags)
{
	ksw_arm(kp, regs);
}
NOKPROBE_SYMBOL(ksw_arm_post);

static int ksw_arm_pre(struct kprobe *kp, struct pt_regs *regs)
{
	ksw_arm(kp, regs);
	return 0;
}
NOKPROBE_SYMBOL(ksw_arm_pre);

static int ksw_release_pre(struct kprobe *kp, struct pt_regs *regs)
{
	struct ksw_release_probe *r = container_of(kp, struct ksw_release_probe, kp);
	unsigned long irqflags;

	local_irq_save(irqflags);
	ksw_rs_on_release_probe(r->set->owner, r->index, regs);
	local_irq_restore(irqflags);
	return 0;
}
NOKPROBE_SYMBOL(ksw_release_pre);

static int ksw_fprobe_entry(struct fprobe *fp, unsigned long entry_ip,
			    unsigned long ret_ip, struct pt_regs *regs,
			    void *data)
{
	struct ksw_fprobe *p = container_of(fp, struct ksw_fprobe, fp);
	unsigned long irqflags;
	int ret;

	local_irq_save(irqflags);
	ret = ksw_rs_on_entry(p->owner, entry_ip, regs, data);
	local_irq_restore(irqflags);
	return ret;
}
NOKPROBE_SYMBOL(ksw_fprobe_entry);

static void ksw_fprobe_exit(struct fprobe *fp, unsigned long entry_ip,
			    unsigned long ret_ip, struct pt_regs *regs,
			    void *data)
{
	struct ksw_fprobe *p = container_of(fp, struct ksw_fprobe, fp);
	unsigned long irqflags;

	local_irq_save(irqflags);
	ksw_rs_on_exit(p->owner, entry_ip, regs, data);
	local_irq_restore(irqflags);
}
NOKPROBE_SYMBOL(ksw_fprobe_exit);

/* ------------------------------------------------------- registration */

struct ksw_fprobe *ksw_fprobe_create(const unsigned long *starts, u32 n,
				     const void *owner, int *err)
{
	struct ksw_fprobe *p = kzalloc(sizeof(*p), GFP_KERNEL);

	if (!p) {
		*err = -ENOMEM;
		return NULL;
	}
	p->owner = owner;
	p->fp.entry_handler = ksw_fprobe_entry;
	p->fp.exit_handler = ksw_fprobe_exit;
	p->fp.entry_data_size = KSW_CALL_DATA;
	/* The pool is shared by all the functions of the spec. */
	p->fp.nr_maxactive = max(rethook_nodes, 1);
	p->fp.flags = FPROBE_FL_DISABLED;
	/* By address: a name could resolve to another function of that name. */
	*err = register_fprobe_ips(&p->fp, (unsigned long *)starts, n);
	if (*err) {
		kfree(p);
		return NULL;
	}
	p->registered = true;
	return p;
}

void ksw_fprobe_enable(struct ksw_fprobe *p)
{
	enable_fprobe(&p->fp);
}

void ksw_fprobe_destroy(struct ksw_fprobe *p)
{
	if (!p)
		return;
	if (p->registered)
		unregister_fprobe(&p->fp);
	kfree(p);
}

u64 ksw_fprobe_missed(struct ksw_fprobe *p)
{
	return READ_ONCE(p->fp.nmissed);
}

/* Registered live: arming is gated in Rust until the switch. */
struct ksw_kprobes *ksw_kprobes_create(unsigned long start, u32 arm_off,
				       bool arm_pre, const u32 *release_offs,
				       u32 nr_release, const void *owner,
				       int *err, long *failed_off)
{
	struct ksw_kprobes *p;
	u32 i;
	int ret;

	*failed_off = -1;
	p = kzalloc(struct_size(p, release, nr_release), GFP_KERNEL);
	if (!p) {
		*err = -ENOMEM;
		return NULL;
	}
	p->owner = owner;
	p->nr_release = nr_release;

	/* Release probes first: nothing can arm before its way out is probed. */
	for (i = 0; i < nr_release; i++) {
		struct ksw_release_probe *r = &p->release[i];

		r->set = p;
		r->index = i;
		r->kp.addr = (kprobe_opcode_t *)(start + release_offs[i]);
		r->kp.pre_handler = ksw_release_pre;
		ret = register_kprobe(&r->kp);
		if (ret) {
			*failed_off = release_offs[i];
			goto fail;
		}
		p->release_registered++;
	}
	p->arm.addr = (kprobe_opcode_t *)(start + arm_off);
	if (arm_pre)
		p->arm.pre_handler = ksw_arm_pre;
	else
		p->arm.post_handler = ksw_arm_post;
	ret = register_kprobe(&p->arm);
	if (ret) {
		*failed_off = arm_off;
		goto fail;
	}
	p->arm_registered = true;
	*err = 0;
	return p;

fail:
	*err = ret;
	ksw_kprobes_destroy_many(&p, 1);
	return NULL;
}

/*
 * Unregister many functions' kprobes at once: unregister_kprobes() waits
 * for running handlers once for the whole batch (a sweep has thousands).
 */
void ksw_kprobes_destroy_many(struct ksw_kprobes **sets, u32 n)
{
	struct kprobe **kps;
	u32 i, j, count = 0;

	for (i = 0; i < n; i++)
		if (sets[i])
			count += sets[i]->release_registered + sets[i]->arm_registered;
	kps = kvmalloc_array(max(count, 1U), sizeof(*kps), GFP_KERNEL);
	if (kps) {
		count = 0;
		for (i = 0; i < n; i++) {
			struct ksw_kprobes *p = sets[i];

			if (!p)
				continue;
			if (p->arm_registered)
				kps[count++] = &p->arm;
			for (j = 0; j < p->release_registered; j++)
				kps[count++] = &p->release[j].kp;
		}
		unregister_kprobes(kps, count);
		kvfree(kps);
	} else {
		/* No memory for the batch: one by one, slower but complete. */
		for (i = 0; i < n; i++) {
			struct ksw_kprobes *p = sets[i];

			if (!p)
				continue;
			if (p->arm_registered)
				unregister_kprobe(&p->arm);
			for (j = 0; j < p->release_registered; j++)
				unregister_kprobe(&p->release[j].kp);
		}
	}
	for (i = 0; i < n; i++)
		kfree(sets[i]);
}

void ksw_kprobes_missed(struct ksw_kprobes *p, u64 *arm, u64 *release)
{
	u32 i;

	*arm = READ_ONCE(p->arm.nmissed);
	*release = 0;
	for (i = 0; i < p->release_registered; i++)
		*release += READ_ONCE(p->release[i].kp.nmissed);
}

bool ksw_kprobes_optimized(struct ksw_kprobes *p)
{
#ifdef CONFIG_OPTPROBES
	bool optimized;

	/* Optimized, and the jump written (not merely queued). */
	rcu_read_lock();
	optimized = ksw_optimized(&p->arm) && !ksw_int3_at(&p->arm);
	rcu_read_unlock();
	return optimized;
#else
	return false;
#endif
}

void ksw_synchronize(void)
{
	synchronize_rcu();
}

/* ----------------------------------------------------- the current task */

unsigned long ksw_current_task(void)
{
	return (unsigned long)current;
}
NOKPROBE_SYMBOL(ksw_current_task);

int ksw_current_pid(void)
{
	return task_pid_nr(current);
}
NOKPROBE_SYMBOL(ksw_current_pid);

void ksw_current_comm(char comm[KSW_COMM_LEN])
{
	/* No task_lock: this runs in NMI-like context; a torn name is harmless. */
	memcpy(comm, current->comm, KSW_COMM_LEN);
	comm[KSW_COMM_LEN - 1] = '\0';
}
NOKPROBE_SYMBOL(ksw_current_comm);

void ksw_current_stack(unsigned long *lo, unsigned long *hi)
{
	*lo = (unsigned long)task_stack_page(current);
	*hi = *lo + THREAD_SIZE;
}
NOKPROBE_SYMBOL(ksw_current_stack);

u64 ksw_current_canary(void)
{
#ifdef CONFIG_STACKPROTECTOR
	return current->stack_canary;
#else
	return 0;
#endif
}
NOKPROBE_SYMBOL(ksw_current_canary);

u32 ksw_preempt_count(void)
{
	return preempt_count();
}
NOKPROBE_SYMBOL(ksw_preempt_count);

/* One ORC step from @regs: the CFA of the frame executing regs->ip. */
unsigned long ksw_unwind_cfa(struct pt_regs *regs)
{
	struct unwind_state state;

	unwind_start(&state, current, regs, NULL);
	if (unwind_error(&state) || !state.sp)
		return 0;
	return state.sp;
}
NOKPROBE_SYMBOL(ksw_unwind_cfa);

bool ksw_read_nofault(unsigned long addr, u8 len, u64 *value)
{
	u64 v = 0;

	if (len > sizeof(v) || copy_from_kernel_nofault(&v, (void *)addr, len))
		return false;
	*value = v;
	return true;
}
NOKPROBE_SYMBOL(ksw_read_nofault);

bool ksw_in_this_module(unsigned long ip)
{
	return within_module(ip, THIS_MODULE);
}
NOKPROBE_SYMBOL(ksw_in_this_module);

u64 ksw_now_ns(void)
{
	return ktime_get_mono_fast_ns();
}
NOKPROBE_SYMBOL(ksw_now_ns);

u32 ksw_thread_size(void)
{
	return THREAD_SIZE;
}

/* Per-CPU state of the sampling generator (Rust draws from it). */
static DEFINE_PER_CPU(u64, ksw_random_state);

void ksw_random_init(void)
{
	int cpu;

	for_each_possible_cpu(cpu)
		per_cpu(ksw_random_state, cpu) = get_random_u64() | 1;
}

/* Interrupts are off in every handler: nothing else uses this CPU's state. */
u64 *ksw_this_cpu_random(void)
{
	return this_cpu_ptr(&ksw_random_state);
}
NOKPROBE_SYMBOL(ksw_this_cpu_random);
