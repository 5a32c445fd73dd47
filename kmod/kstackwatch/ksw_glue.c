// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch C layer: registrations and hardware access for the Rust
 * engine. See ksw_glue.h for the contract; decisions live in Rust.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/fprobe.h>
#include <linux/hw_breakpoint.h>
#include <linux/irq_work.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/perf_event.h>
#include <linux/proc_fs.h>
#include <linux/rethook.h>
#include <linux/sched.h>
#include <linux/sched/task_stack.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/tracepoint.h>
#include <linux/uaccess.h>
#include <asm/debugreg.h>
#include <asm/hw_breakpoint.h>
#include <asm/unwind.h>

#define CREATE_TRACE_POINTS
#include "ksw_trace.h"

#include "ksw_glue.h"

/*
 * Return hooks per watched function: enough for many tasks parked inside
 * it. A call that finds the pool empty is never armed (its exit would go
 * unseen); tests shrink the pool to show that.
 */
static int rethook_nodes = 512;
module_param(rethook_nodes, int, 0444);
MODULE_PARM_DESC(rethook_nodes, "return hooks per watched function (default 512)");
/* Frames the hit handler walks looking for the armed frame. */
#define KSW_CHAIN_DEPTH 32
#define KSW_CONFIG_MAX (PAGE_SIZE - 1)
#define KSW_READ_BUF (2 * PAGE_SIZE)

/* ---------------------------------------------------------------- probes */

struct ksw_probe {
	struct kprobe kp;
	struct fprobe fp;
	void *owner;
	bool kp_registered;
	bool fp_registered;
	char sym[KSW_SYM_LEN];
};

static void ksw_kprobe_post(struct kprobe *kp, struct pt_regs *regs,
			    unsigned long flags)
{
	struct ksw_probe *p = container_of(kp, struct ksw_probe, kp);
	unsigned long irqflags;

	/* int3 probes run with interrupts off; ftrace-based ones may not. */
	local_irq_save(irqflags);
	ksw_rs_on_probe(p->owner, regs, (unsigned long)kp->addr,
			kernel_stack_pointer(regs), regs->bp);
	local_irq_restore(irqflags);
}
NOKPROBE_SYMBOL(ksw_kprobe_post);

static void ksw_fprobe_exit(struct fprobe *fp, unsigned long entry_ip,
			    unsigned long ret_ip, struct pt_regs *regs,
			    void *entry_data)
{
	struct ksw_probe *p = container_of(fp, struct ksw_probe, fp);
	unsigned long irqflags;

	/*
	 * The rethook trampoline hands us regs whose sp is the caller's sp
	 * after the return: the dead call's return-address slot is one word
	 * below. That slot is what the kprobe side recorded as the frame.
	 */
	local_irq_save(irqflags);
	ksw_rs_on_exit(p->owner, regs->sp - sizeof(unsigned long));
	local_irq_restore(irqflags);
}
NOKPROBE_SYMBOL(ksw_fprobe_exit);

/* Parse "name+0xoff/0xsize [mod]" from sprint_symbol(). */
static bool ksw_parse_symbol(const char *text, struct ksw_symbol *sym)
{
	const char *plus = strrchr(text, '+');
	const char *slash;
	size_t name_len;

	if (!plus)
		return false;
	slash = strchr(plus, '/');
	if (!slash)
		return false;
	name_len = plus - text;
	if (name_len >= sizeof(sym->name))
		return false;
	memcpy(sym->name, text, name_len);
	sym->name[name_len] = '\0';
	if (sscanf(plus + 1, "%lx", &sym->offset) != 1 ||
	    sscanf(slash + 1, "%lx", &sym->size) != 1)
		return false;
	return true;
}

struct ksw_probe *ksw_probe_create(const char *func, u32 offset, void *owner,
				   struct ksw_symbol *sym, int *err,
				   bool *kprobe_ok)
{
	char text[KSYM_SYMBOL_LEN];
	unsigned long start;
	struct ksw_probe *p;
	int ret;

	*kprobe_ok = false;
	memset(sym, 0, sizeof(*sym));
	p = kzalloc(sizeof(*p), GFP_KERNEL);
	if (!p) {
		*err = -ENOMEM;
		return NULL;
	}
	strscpy(p->sym, func, sizeof(p->sym));
	p->owner = owner;

	/* Registered disabled: no int3 is written until ksw_probe_enable(). */
	p->kp.symbol_name = p->sym;
	p->kp.offset = offset;
	p->kp.post_handler = ksw_kprobe_post;
	p->kp.flags = KPROBE_FLAG_DISABLED;
	ret = register_kprobe(&p->kp);
	if (ret)
		goto fail;
	p->kp_registered = true;
	*kprobe_ok = true;

	sym->addr = (unsigned long)p->kp.addr;
	sprint_symbol(text, sym->addr);
	if (!ksw_parse_symbol(text, sym)) {
		ret = -ENOENT;
		goto fail;
	}

	/*
	 * Hook the exit of the function the kprobe landed in, by address:
	 * a name could resolve to another static function of the same name.
	 */
	p->fp.exit_handler = ksw_fprobe_exit;
	p->fp.nr_maxactive = max(rethook_nodes, 1);
	p->fp.flags = FPROBE_FL_DISABLED;
	start = sym->addr - sym->offset;
	ret = register_fprobe_ips(&p->fp, &start, 1);
	if (ret)
		goto fail;
	p->fp_registered = true;
	*err = 0;
	return p;

fail:
	*err = ret;
	ksw_probe_destroy(p);
	return NULL;
}

/* Exit hook first, so every call that can arm has its return hooked. */
void ksw_probe_enable(struct ksw_probe *p)
{
	enable_fprobe(&p->fp);
	enable_kprobe(&p->kp);
}

void ksw_probe_disable(struct ksw_probe *p)
{
	disable_kprobe(&p->kp);
}

void ksw_probe_destroy(struct ksw_probe *p)
{
	if (!p)
		return;
	if (p->kp_registered)
		unregister_kprobe(&p->kp);
	if (p->fp_registered)
		unregister_fprobe(&p->fp);
	kfree(p);
}

void ksw_probe_missed(struct ksw_probe *p, u64 *kprobe_missed,
		      u64 *fprobe_missed)
{
	*kprobe_missed = READ_ONCE(p->kp.nmissed);
	*fprobe_missed = READ_ONCE(p->fp.nmissed);
}

/*
 * Walk the current task's return-hook shadow stack: how many calls of this
 * probe's function have a hooked exit, and the frame of the newest one.
 * Only the task itself pushes and pops it, so no lock is needed here.
 */
u32 ksw_probe_hooked_calls(struct ksw_probe *p, unsigned long *innermost)
{
	struct rethook *rh = READ_ONCE(p->fp.rethook);
	struct llist_node *node = current->rethooks.first;
	u32 count = 0;

	*innermost = 0;
	for (; node; node = node->next) {
		struct rethook_node *rhn =
			container_of(node, struct rethook_node, llist);

		if (rhn->rethook != rh)
			continue;
		if (!count)
			*innermost = rhn->frame;
		count++;
	}
	return count;
}
NOKPROBE_SYMBOL(ksw_probe_hooked_calls);

void ksw_synchronize(void)
{
	synchronize_rcu();
}

/* -------------------------------------------------------- hardware slots */

/*
 * Each slot is one pinned per-CPU perf breakpoint. Perf owns the debug
 * register; we retarget it through the PMU's own del/add callbacks so that
 * bp_per_reg, cpu_debugreg and cpu_dr7 stay consistent (hw_breakpoint_restore
 * after text_poke or resume reloads cpu_debugreg: it must hold our address).
 * Idle slots watch a private dummy word nobody writes. The words get a page
 * of their own: free on hardware, but QEMU TCG sends every access to a
 * watched page through its slow path, and the module's hot data (the active
 * config, the slot table) would otherwise share it and skew benchmarks.
 */
static unsigned long ksw_dummy[PAGE_SIZE / sizeof(long)] __page_aligned_bss;
static DEFINE_PER_CPU(struct perf_event *, ksw_bps[KSW_MAX_SLOTS]);
static unsigned int ksw_nr_slots;
static int ksw_cpuhp_state = -1;

static DEFINE_PER_CPU(call_single_data_t, ksw_sync_csd);
static DEFINE_PER_CPU(atomic_t, ksw_sync_pending);
static DEFINE_PER_CPU(struct irq_work, ksw_kick_work);

static int ksw_x86_len(u8 len)
{
	switch (len) {
	case 1:
		return X86_BREAKPOINT_LEN_1;
	case 2:
		return X86_BREAKPOINT_LEN_2;
	case 4:
		return X86_BREAKPOINT_LEN_4;
	default:
		return X86_BREAKPOINT_LEN_8;
	}
}

static void ksw_bp_handler(struct perf_event *bp, struct perf_sample_data *data,
			   struct pt_regs *regs)
{
	unsigned int slot = (unsigned long)bp->overflow_handler_context;

	ksw_rs_on_hit(slot, regs, instruction_pointer(regs),
		      counter_arch_bp(bp)->address);
}
NOKPROBE_SYMBOL(ksw_bp_handler);

static struct perf_event *ksw_bp_create(unsigned int slot, int cpu)
{
	struct perf_event_attr attr;

	hw_breakpoint_init(&attr);
	attr.bp_addr = (unsigned long)&ksw_dummy[slot];
	attr.bp_len = HW_BREAKPOINT_LEN_8;
	attr.bp_type = HW_BREAKPOINT_W;
	return perf_event_create_kernel_counter(&attr, cpu, NULL, ksw_bp_handler,
						(void *)(unsigned long)slot);
}

/*
 * Point this CPU's breakpoint for @slot at [addr, addr+len), or back at the
 * dummy word when @addr is 0. Returns true if the register changed.
 */
bool ksw_slot_program_local(unsigned int slot, unsigned long addr, u8 len)
{
	struct arch_hw_breakpoint *info;
	struct perf_event *bp;
	unsigned long flags;
	bool changed = false;
	int x86_len;

	if (slot >= KSW_MAX_SLOTS)
		return false;
	if (!addr) {
		addr = (unsigned long)&ksw_dummy[slot];
		len = sizeof(long);
	}
	x86_len = ksw_x86_len(len);

	local_irq_save(flags);
	bp = __this_cpu_read(ksw_bps[slot]);
	if (bp) {
		info = counter_arch_bp(bp);
		if (info->address != addr || info->len != x86_len) {
			bool installed = bp->state == PERF_EVENT_STATE_ACTIVE;

			if (installed)
				bp->pmu->del(bp, 0);
			info->address = addr;
			info->len = x86_len;
			if (installed)
				bp->pmu->add(bp, PERF_EF_START);
			changed = true;
		}
	}
	local_irq_restore(flags);
	return changed;
}
NOKPROBE_SYMBOL(ksw_slot_program_local);

static void ksw_sync_ipi(void *info)
{
	atomic_set(this_cpu_ptr(&ksw_sync_pending), 0);
	/* Pairs with the barrier in __ksw_kick_remote(): see the table first. */
	smp_mb();
	ksw_rs_sync_cpu(true);
}

/*
 * Ask every other online CPU to sync its debug registers from the slot
 * table. A CPU with a sync already queued is skipped: that sync reads the
 * table when it runs, so it sees this update too. Nothing here waits, so
 * CPUs arming at the same time cannot deadlock on each other.
 */
static void __ksw_kick_remote(void)
{
	int self = smp_processor_id();
	int cpu;

	/* Table stores before the pending-flag exchange. */
	smp_mb();
	for_each_online_cpu(cpu) {
		atomic_t *pending = per_cpu_ptr(&ksw_sync_pending, cpu);

		if (cpu == self || atomic_xchg(pending, 1))
			continue;
		if (smp_call_function_single_async(cpu, per_cpu_ptr(&ksw_sync_csd, cpu)) == -ENXIO)
			atomic_set(pending, 0);
	}
}

static void ksw_kick_work_fn(struct irq_work *work)
{
	__ksw_kick_remote();
}

/*
 * Probe handlers on x86 run in NMI-like context (int3), where sending an
 * IPI is not safe; bounce through a self irq_work, which runs with
 * interrupts off as soon as the probed code re-enables them.
 */
void ksw_kick_remote(void)
{
	if (in_nmi()) {
		irq_work_queue(this_cpu_ptr(&ksw_kick_work));
		return;
	}
	preempt_disable();
	__ksw_kick_remote();
	preempt_enable();
}
NOKPROBE_SYMBOL(ksw_kick_remote);

static void ksw_sync_local(void *info)
{
	ksw_rs_sync_cpu(false);
}

/* Process context: every online CPU syncs now; returns when all have. */
void ksw_sync_all_wait(void)
{
	on_each_cpu(ksw_sync_local, NULL, 1);
}

unsigned int ksw_online_cpus(void)
{
	return num_online_cpus();
}

unsigned int ksw_nr_cpu_ids(void)
{
	return nr_cpu_ids;
}

/*
 * Diagnostics for /proc/kstackwatch: what @cpu's breakpoint for @slot
 * watches. -1: CPU offline or no event; 0: the idle dummy; 1: *addr.
 * Reads another CPU's event without synchronization: a snapshot.
 */
int ksw_slot_cpu_state(unsigned int cpu, unsigned int slot, unsigned long *addr)
{
	struct perf_event *bp;

	if (cpu >= nr_cpu_ids || slot >= KSW_MAX_SLOTS || !cpu_online(cpu))
		return -1;
	bp = READ_ONCE(per_cpu(ksw_bps[slot], cpu));
	if (!bp)
		return -1;
	*addr = READ_ONCE(counter_arch_bp(bp)->address);
	return *addr != (unsigned long)&ksw_dummy[slot];
}

static void ksw_bps_release_cpu(int cpu)
{
	struct perf_event *bps[KSW_MAX_SLOTS];
	unsigned long flags;
	unsigned int slot;

	/* Unpublish with interrupts off so no sync IPI sees a dying event. */
	local_irq_save(flags);
	for (slot = 0; slot < KSW_MAX_SLOTS; slot++) {
		bps[slot] = per_cpu(ksw_bps[slot], cpu);
		per_cpu(ksw_bps[slot], cpu) = NULL;
	}
	local_irq_restore(flags);
	for (slot = 0; slot < KSW_MAX_SLOTS; slot++)
		if (bps[slot])
			perf_event_release_kernel(bps[slot]);
}

static int ksw_cpu_online(unsigned int cpu)
{
	struct perf_event *bp;
	unsigned int slot;

	for (slot = 0; slot < ksw_nr_slots; slot++) {
		bp = ksw_bp_create(slot, cpu);
		if (IS_ERR(bp)) {
			pr_err("cpu %u: no breakpoint for slot %u (%ld): refusing to online it unwatched\n",
			       cpu, slot, PTR_ERR(bp));
			ksw_bps_release_cpu(cpu);
			return PTR_ERR(bp);
		}
		per_cpu(ksw_bps[slot], cpu) = bp;
	}
	atomic_set(per_cpu_ptr(&ksw_sync_pending, cpu), 0);
	/* Publish the events, then read the table: see ksw_sync_ipi(). */
	smp_mb();
	local_irq_disable();
	ksw_rs_sync_cpu(false);
	local_irq_enable();
	return 0;
}

static int ksw_cpu_offline(unsigned int cpu)
{
	ksw_bps_release_cpu(cpu);
	return 0;
}

/*
 * Allocate up to @max slots on every online CPU, slot by slot, stopping at
 * the first slot some CPU cannot back. Returns the number allocated (all
 * CPUs have the same) or a negative errno when not even one fits.
 */
int ksw_slots_alloc(unsigned int max)
{
	unsigned int slot;
	int cpu, ret = 0;

	if (max > KSW_MAX_SLOTS)
		max = KSW_MAX_SLOTS;
	cpus_read_lock();
	for (slot = 0; slot < max; slot++) {
		for_each_online_cpu(cpu) {
			struct perf_event *bp = ksw_bp_create(slot, cpu);

			if (IS_ERR(bp)) {
				ret = PTR_ERR(bp);
				break;
			}
			per_cpu(ksw_bps[slot], cpu) = bp;
		}
		if (ret)
			break;
	}
	if (ret) {
		/* Drop the partial slot. */
		for_each_online_cpu(cpu) {
			struct perf_event *bp = per_cpu(ksw_bps[slot], cpu);

			per_cpu(ksw_bps[slot], cpu) = NULL;
			if (bp)
				perf_event_release_kernel(bp);
		}
	}
	ksw_nr_slots = slot;
	if (!ksw_nr_slots) {
		cpus_read_unlock();
		return ret ? ret : -EBUSY;
	}
	ret = cpuhp_setup_state_nocalls_cpuslocked(CPUHP_AP_ONLINE_DYN,
						   "kstackwatch:online",
						   ksw_cpu_online,
						   ksw_cpu_offline);
	if (ret < 0) {
		for_each_online_cpu(cpu)
			ksw_bps_release_cpu(cpu);
		ksw_nr_slots = 0;
		cpus_read_unlock();
		return ret;
	}
	ksw_cpuhp_state = ret;
	cpus_read_unlock();
	return ksw_nr_slots;
}

/* Release every slot; the caller has disarmed them all. */
void ksw_slots_free(void)
{
	int cpu;

	if (ksw_cpuhp_state >= 0) {
		/* Runs ksw_cpu_offline() on each online CPU. */
		cpuhp_remove_state(ksw_cpuhp_state);
		ksw_cpuhp_state = -1;
	}
	for_each_possible_cpu(cpu)
		ksw_bps_release_cpu(cpu);
	ksw_nr_slots = 0;
}

/* ----------------------------------------------------------- task facts */

unsigned long ksw_current_task(void)
{
	return (unsigned long)current;
}
NOKPROBE_SYMBOL(ksw_current_task);

int ksw_current_pid(void)
{
	return task_pid_nr(current);
}

void ksw_current_comm(char comm[16])
{
	/* No task_lock: this runs in NMI-like context; a torn name is harmless. */
	memcpy(comm, current->comm, 16);
	comm[15] = '\0';
}

void ksw_current_stack(unsigned long *lo, unsigned long *hi)
{
	*lo = (unsigned long)task_stack_page(current);
	*hi = *lo + THREAD_SIZE;
}

u64 ksw_current_canary(void)
{
#ifdef CONFIG_STACKPROTECTOR
	return current->stack_canary;
#else
	return 0;
#endif
}

/*
 * The return-address slot of the frame @regs describes (the probed call):
 * one unwind step gives that frame's CFA, the caller's sp after return.
 */
unsigned long ksw_frame_of(struct pt_regs *regs)
{
	struct unwind_state state;

	unwind_start(&state, current, regs, NULL);
	if (unwind_error(&state) || !state.sp)
		return 0;
	return state.sp - sizeof(unsigned long);
}
NOKPROBE_SYMBOL(ksw_frame_of);

/*
 * Is the call whose return-address slot is @frame, executing code in
 * [func_start, func_end), on the call chain of @regs? Used to tell a write
 * by the live victim from one by its exit path: return trampolines run
 * with a frame at the same address, but not inside the function.
 */
bool ksw_frame_on_chain(struct pt_regs *regs, unsigned long frame,
			unsigned long func_start, unsigned long func_end)
{
	struct unwind_state state;
	unsigned long ip = instruction_pointer(regs);
	int depth;

	unwind_start(&state, current, regs, NULL);
	for (depth = 0; depth < KSW_CHAIN_DEPTH; depth++) {
		if (unwind_error(&state) || !state.sp)
			return false;
		/* state.sp is the CFA of the frame that is executing ip. */
		if (state.sp == frame + sizeof(unsigned long))
			return ip >= func_start && ip <= func_end;
		if (state.sp > frame + sizeof(unsigned long) || unwind_done(&state))
			return false;
		/* A return address: the call is the instruction before it. */
		ip = state.ip - 1;
		unwind_next_frame(&state);
	}
	return false;
}
NOKPROBE_SYMBOL(ksw_frame_on_chain);

bool ksw_read_nofault(unsigned long addr, u8 len, u64 *value)
{
	u64 v = 0;

	if (len > sizeof(v) || copy_from_kernel_nofault(&v, (void *)addr, len))
		return false;
	*value = v;
	return true;
}
NOKPROBE_SYMBOL(ksw_read_nofault);

/* Process context: copy a function's machine code (before our int3 is in). */
bool ksw_read_text(unsigned long addr, u8 *buf, size_t len)
{
	return !copy_from_kernel_nofault(buf, (void *)addr, len);
}

unsigned int ksw_nmi_nesting(void)
{
	return (preempt_count() & NMI_MASK) >> NMI_SHIFT;
}
NOKPROBE_SYMBOL(ksw_nmi_nesting);

bool ksw_in_this_module(unsigned long ip)
{
	return within_module(ip, THIS_MODULE);
}

u64 ksw_now_ns(void)
{
	return ktime_get_mono_fast_ns();
}
NOKPROBE_SYMBOL(ksw_now_ns);

u32 ksw_thread_size(void)
{
	return THREAD_SIZE;
}

u32 ksw_hw_slots(void)
{
	return HBP_NUM;
}

/* ---------------------------------------------------------- trace events */

void ksw_trace_arm(u64 id, u8 slot, u8 spec, u32 depth, unsigned long probe_ip,
		   unsigned long addr, u8 len, unsigned long sp, u64 value)
{
	trace_ksw_arm(id, slot, spec, depth, probe_ip, addr, len, sp, value);
}

void ksw_trace_hit(u64 id, u8 slot, unsigned long addr, u8 len,
		   unsigned long writer_ip, u64 old_value, u64 new_value,
		   int victim_pid, const char *victim_comm, unsigned long probe_ip)
{
	trace_ksw_hit(id, slot, addr, len, writer_ip, old_value, new_value,
		      victim_pid, victim_comm, probe_ip);
}

void ksw_trace_disarm(u64 id, u8 slot, unsigned long addr, u64 arm_value,
		      u64 exit_value, u32 hits, bool corrupted, u8 reason)
{
	trace_ksw_disarm(id, slot, addr, arm_value, exit_value, hits, corrupted,
			 reason);
}

void ksw_log_hit(u64 id, unsigned long addr, unsigned long writer_ip,
		 u64 old_value, u64 new_value, int victim_pid,
		 const char *victim_comm)
{
	pr_warn_ratelimited("watch %llu: write to 0x%lx by %pS (pid %d %s): 0x%llx -> 0x%llx, victim %s/%d\n",
			    id, addr, (void *)writer_ip, task_pid_nr(current),
			    current->comm, old_value, new_value, victim_comm,
			    victim_pid);
}

/* Does not return; not declared __noreturn because Rust calls it (objtool). */
void ksw_panic_caught(u64 id, unsigned long writer_ip)
{
	panic("kstackwatch: watch %llu caught a stack write by %pS (panic_on_catch=1)\n",
	      id, (void *)writer_ip);
}

/* ------------------------------------------------- task exit, procfs */

static struct tracepoint *ksw_tp_exit;
static DEFINE_MUTEX(ksw_config_lock);
static struct proc_dir_entry *ksw_proc;

static void ksw_on_task_exit(void *data, struct task_struct *task)
{
	ksw_rs_on_task_exit((unsigned long)task);
}

static void ksw_find_exit_tp(struct tracepoint *tp, void *priv)
{
	if (!strcmp(tp->name, "sched_process_exit"))
		ksw_tp_exit = tp;
}

static ssize_t ksw_proc_write(struct file *file, const char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	char *buf;
	ssize_t ret;

	if (count > KSW_CONFIG_MAX) {
		pr_err("config rejected: %zu bytes, at most %lu in one write\n",
		       count, KSW_CONFIG_MAX);
		return -EFBIG;
	}
	buf = memdup_user_nul(ubuf, count);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	mutex_lock(&ksw_config_lock);
	ret = ksw_rs_config_write(buf, count);
	mutex_unlock(&ksw_config_lock);
	kfree(buf);
	return ret;
}

static ssize_t ksw_proc_read(struct file *file, char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	char *buf;
	size_t len;
	ssize_t ret;

	buf = kmalloc(KSW_READ_BUF, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	mutex_lock(&ksw_config_lock);
	len = ksw_rs_config_read(buf, KSW_READ_BUF);
	mutex_unlock(&ksw_config_lock);
	ret = simple_read_from_buffer(ubuf, count, ppos, buf, len);
	kfree(buf);
	return ret;
}

static const struct proc_ops ksw_proc_ops = {
	.proc_read = ksw_proc_read,
	.proc_write = ksw_proc_write,
	.proc_lseek = default_llseek,
};

int ksw_glue_init(void)
{
	int cpu, ret;

	for_each_possible_cpu(cpu) {
		INIT_CSD(per_cpu_ptr(&ksw_sync_csd, cpu), ksw_sync_ipi, NULL);
		per_cpu(ksw_kick_work, cpu) = IRQ_WORK_INIT_HARD(ksw_kick_work_fn);
	}

	for_each_kernel_tracepoint(ksw_find_exit_tp, NULL);
	if (!ksw_tp_exit) {
		pr_err("tracepoint sched_process_exit not found\n");
		return -ENOENT;
	}
	ret = tracepoint_probe_register(ksw_tp_exit, ksw_on_task_exit, NULL);
	if (ret)
		return ret;

	ksw_proc = proc_create("kstackwatch", 0600, NULL, &ksw_proc_ops);
	if (!ksw_proc) {
		tracepoint_probe_unregister(ksw_tp_exit, ksw_on_task_exit, NULL);
		tracepoint_synchronize_unregister();
		return -ENOMEM;
	}
	return 0;
}

static void ksw_noop(void *info)
{
}

/* Disarm everything and stop: the empty config is the one teardown path. */
void ksw_glue_exit(void)
{
	int cpu;

	proc_remove(ksw_proc);
	mutex_lock(&ksw_config_lock);
	ksw_rs_config_write("", 0);
	mutex_unlock(&ksw_config_lock);
	tracepoint_probe_unregister(ksw_tp_exit, ksw_on_task_exit, NULL);
	tracepoint_synchronize_unregister();
	/*
	 * No code of ours may run after unload: wait for kick irq_works queued
	 * by probe handlers, then for the sync IPIs they or the teardown sent
	 * (a CPU's call queue runs in order, so a waited-for call comes last).
	 */
	for_each_possible_cpu(cpu)
		irq_work_sync(per_cpu_ptr(&ksw_kick_work, cpu));
	on_each_cpu(ksw_noop, NULL, 1);
	synchronize_rcu();
}
