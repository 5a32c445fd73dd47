// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch: the hardware. Each claimed slot is one pinned per-CPU perf
 * breakpoint; Rust's slot table says what every slot watches, and each CPU
 * programs its own debug registers from that table (ksw_rs_sync_cpu):
 * locally when a watch is armed or disarmed there, through an IPI on the
 * other CPUs. See ksw_glue.h.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/hw_breakpoint.h>
#include <linux/irq_work.h>
#include <linux/kprobes.h>
#include <linux/percpu.h>
#include <linux/perf_event.h>
#include <linux/smp.h>
#include <asm/hw_breakpoint.h>

#include "ksw_glue.h"

/*
 * Parked slots watch a private word nobody writes. The words get a page of
 * their own: free on hardware, but QEMU TCG sends every access to a watched
 * page through its slow path, and the module's hot data would otherwise
 * share it.
 *
 * A parked slot keeps its DR7 enable bits. Turning them off would mean
 * uninstalling the breakpoint behind perf's back (6.12 has no
 * modify_wide_hw_breakpoint_local()); perf still believes it installed,
 * and its next reschedule of this CPU's pinned breakpoints (another user
 * registering one) would uninstall it a second time and WARN. What the
 * enabled bits cost is a DR7 save at #DB/NMI entry on hypervisor guests.
 */
static unsigned long ksw_parking[PAGE_SIZE / sizeof(long)] __page_aligned_bss;
static DEFINE_PER_CPU(struct perf_event *, ksw_bps[KSW_MAX_SLOTS]);
static unsigned int ksw_nr_slots;
static int ksw_cpuhp_state = -1;

static DEFINE_PER_CPU(call_single_data_t, ksw_sync_csd);
static DEFINE_PER_CPU(atomic_t, ksw_sync_pending);
static DEFINE_PER_CPU(struct irq_work, ksw_kick_work);

u32 ksw_hw_slots(void)
{
	return HBP_NUM;
}

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

	ksw_rs_on_hit(slot, regs, counter_arch_bp(bp)->address);
}
NOKPROBE_SYMBOL(ksw_bp_handler);

static struct perf_event *ksw_bp_create(unsigned int slot, int cpu)
{
	struct perf_event_attr attr;

	hw_breakpoint_init(&attr);
	attr.bp_addr = (unsigned long)&ksw_parking[slot];
	attr.bp_len = HW_BREAKPOINT_LEN_8;
	attr.bp_type = HW_BREAKPOINT_W;
	return perf_event_create_kernel_counter(&attr, cpu, NULL, ksw_bp_handler,
						(void *)(unsigned long)slot);
}

/*
 * Retarget this CPU's live breakpoint @bp. Linux 6.12 has no API to move a
 * registered breakpoint from atomic context (modify_wide_hw_breakpoint_local()
 * exists only in the unmerged KStackWatch/wprobe series;
 * modify_user_hw_breakpoint() sleeps), so go through the breakpoint PMU's
 * own del/add callbacks, which keep bp_per_reg, cpu_debugreg and cpu_dr7
 * consistent (hw_breakpoint_restore() after text_poke or resume reloads
 * cpu_debugreg, so it must hold our address).
 *
 * What protects it: interrupts are off, and perf only changes a CPU
 * context's events on that CPU with interrupts off (IPIs, or the context
 * lock held with interrupts off), so nothing interleaves; the event is
 * ours, pinned, never disabled, so it is installed exactly when perf says
 * it is ACTIVE, and then del/add is the uninstall/install perf itself
 * would do.
 */
static bool ksw_bp_retarget(struct perf_event *bp, unsigned long addr, int len)
{
	struct arch_hw_breakpoint *info = counter_arch_bp(bp);
	bool installed;

	lockdep_assert_irqs_disabled();
	if (info->address == addr && info->len == len)
		return false;
	installed = bp->state == PERF_EVENT_STATE_ACTIVE;
	if (installed)
		bp->pmu->del(bp, 0);
	info->address = addr;
	info->len = len;
	if (installed)
		bp->pmu->add(bp, PERF_EF_START);
	return true;
}
NOKPROBE_SYMBOL(ksw_bp_retarget);

bool ksw_slot_program_local(unsigned int slot, unsigned long addr, u8 len)
{
	struct perf_event *bp;
	unsigned long flags;
	bool changed = false;

	if (slot >= KSW_MAX_SLOTS)
		return false;
	if (!addr) {
		addr = (unsigned long)&ksw_parking[slot];
		len = sizeof(long);
	}
	local_irq_save(flags);
	bp = __this_cpu_read(ksw_bps[slot]);
	if (bp)
		changed = ksw_bp_retarget(bp, addr, ksw_x86_len(len));
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
 * IPI is not safe (it could interleave with an IPI the probed code was
 * sending); bounce through a self irq_work, which runs with interrupts off
 * as soon as the probed code re-enables them.
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

void ksw_sync_all_wait(void)
{
	on_each_cpu(ksw_sync_local, NULL, 1);
}

unsigned int ksw_online_cpus(void)
{
	return num_online_cpus();
}
NOKPROBE_SYMBOL(ksw_online_cpus);

unsigned int ksw_nr_cpu_ids(void)
{
	return nr_cpu_ids;
}

bool ksw_cpu_online(unsigned int cpu)
{
	return cpu < nr_cpu_ids && cpu_online(cpu);
}

int ksw_slot_cpu_state(unsigned int cpu, unsigned int slot, unsigned long *addr)
{
	struct perf_event *bp;
	int ret = -1;

	if (cpu >= nr_cpu_ids || slot >= KSW_MAX_SLOTS)
		return -1;
	/* Hotplug frees a CPU's events: keep it out while we look. */
	cpus_read_lock();
	if (cpu_online(cpu)) {
		bp = per_cpu(ksw_bps[slot], cpu);
		if (bp) {
			*addr = READ_ONCE(counter_arch_bp(bp)->address);
			ret = *addr != (unsigned long)&ksw_parking[slot];
		}
	}
	cpus_read_unlock();
	return ret;
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

/*
 * A CPU comes online: give it the claimed slots and sync it. A CPU that
 * cannot get them (a debugger holds its registers) still comes online,
 * unwatched, and the Rust side counts it: a debugging aid must never
 * refuse a CPU.
 */
static int ksw_cpuhp_online(unsigned int cpu)
{
	struct perf_event *bp;
	unsigned int slot;

	for (slot = 0; slot < ksw_nr_slots; slot++) {
		bp = ksw_bp_create(slot, cpu);
		if (IS_ERR(bp)) {
			ksw_bps_release_cpu(cpu);
			ksw_rs_cpu_without_slots(cpu);
			return 0;
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

static int ksw_cpuhp_offline(unsigned int cpu)
{
	ksw_bps_release_cpu(cpu);
	return 0;
}

int ksw_slots_claim(unsigned int want)
{
	unsigned int slot;
	int cpu, ret = 0;

	if (want > KSW_MAX_SLOTS)
		want = KSW_MAX_SLOTS;
	cpus_read_lock();
	for (slot = 0; slot < want; slot++) {
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
		/* Drop the partial slot: every CPU must have the same ones. */
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
						   ksw_cpuhp_online,
						   ksw_cpuhp_offline);
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

void ksw_slots_release(void)
{
	int cpu;

	if (ksw_cpuhp_state >= 0) {
		/* Runs ksw_cpuhp_offline() on each online CPU. */
		cpuhp_remove_state(ksw_cpuhp_state);
		ksw_cpuhp_state = -1;
	}
	for_each_possible_cpu(cpu)
		ksw_bps_release_cpu(cpu);
	ksw_nr_slots = 0;
}

void ksw_slots_init(void)
{
	int cpu;

	for_each_possible_cpu(cpu) {
		INIT_CSD(per_cpu_ptr(&ksw_sync_csd, cpu), ksw_sync_ipi, NULL);
		per_cpu(ksw_kick_work, cpu) = IRQ_WORK_INIT_HARD(ksw_kick_work_fn);
	}
}

static void ksw_noop(void *info)
{
}

/*
 * No code of ours may run after unload: wait for kick irq_works queued by
 * probe handlers, then for the sync IPIs they or the teardown sent (a
 * CPU's call queue runs in order, so a waited-for call comes last).
 */
void ksw_slots_quiesce(void)
{
	int cpu;

	for_each_possible_cpu(cpu)
		irq_work_sync(per_cpu_ptr(&ksw_kick_work, cpu));
	on_each_cpu(ksw_noop, NULL, 1);
}
