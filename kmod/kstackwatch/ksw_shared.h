/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Generated from kmod/core/src (abi.rs, config.rs, events.rs, slots.rs): do not edit.
 * Regenerate with:
 *   cargo run -q -p ksw-core --example c-header > kmod/kstackwatch/ksw_shared.h
 * (cargo test fails while this file is stale).
 */
#ifndef KSW_SHARED_H
#define KSW_SHARED_H

#include <linux/build_bug.h>
#include <linux/stddef.h>
#include <linux/types.h>

#define KSW_MAX_SLOTS 4
#define KSW_MAX_SPECS 8
#define KSW_MAX_FUNC_NAME 127
#define KSW_MAX_CONFIG_WRITE 262143
#define KSW_COMM_LEN 16
#define KSW_SYM_LEN 128
#define KSW_CALL_DATA 16

#define KSW_ARM_CANARY 1
#define KSW_HIT_BY_VICTIM 1
#define KSW_HIT_OLD_CANARY 2
#define KSW_HIT_NEW_CANARY 4
#define KSW_HIT_OUT_OF_LINE 8
#define KSW_DISARM_CANARY 1
#define KSW_DISARM_EXIT_CANARY 2

#define KSW_DISARM_REASONS \
	{ 0, "return" }, \
	{ 1, "task_exit" }, \
	{ 2, "teardown" }, \
	{ 3, "backstop" }
#define KSW_EXIT_STATES \
	{ 0, "intact" }, \
	{ 1, "changed" }, \
	{ 2, "unknown" }
#define KSW_WRITER_CONTEXTS \
	{ 0, "task" }, \
	{ 1, "softirq" }, \
	{ 2, "hardirq" }, \
	{ 3, "nmi" }

struct ksw_arm_record {
	u64 id;
	u64 probe_ip;
	u64 addr;
	u64 sp;
	u64 value;
	u32 depth;
	u8 slot;
	u8 spec;
	u8 len;
	u8 flags;
	char victim_comm[16];
};
static_assert(sizeof(struct ksw_arm_record) == 64);
static_assert(offsetof(struct ksw_arm_record, id) == 0);
static_assert(offsetof(struct ksw_arm_record, probe_ip) == 8);
static_assert(offsetof(struct ksw_arm_record, addr) == 16);
static_assert(offsetof(struct ksw_arm_record, sp) == 24);
static_assert(offsetof(struct ksw_arm_record, value) == 32);
static_assert(offsetof(struct ksw_arm_record, depth) == 40);
static_assert(offsetof(struct ksw_arm_record, slot) == 44);
static_assert(offsetof(struct ksw_arm_record, spec) == 45);
static_assert(offsetof(struct ksw_arm_record, len) == 46);
static_assert(offsetof(struct ksw_arm_record, flags) == 47);
static_assert(offsetof(struct ksw_arm_record, victim_comm) == 48);

/* TP_STRUCT__entry() of ksw_arm: the record's fields, in order. */
#define KSW_ARM_FIELDS \
	__field(u64, id) \
	__field(u64, probe_ip) \
	__field(u64, addr) \
	__field(u64, sp) \
	__field(u64, value) \
	__field(u32, depth) \
	__field(u8, slot) \
	__field(u8, spec) \
	__field(u8, len) \
	__field(u8, flags) \
	__array(char, victim_comm, 16)

/* TP_fast_assign() of ksw_arm from a record pointer. */
#define KSW_ARM_ASSIGN(rec) \
	__entry->id = (rec)->id; \
	__entry->probe_ip = (rec)->probe_ip; \
	__entry->addr = (rec)->addr; \
	__entry->sp = (rec)->sp; \
	__entry->value = (rec)->value; \
	__entry->depth = (rec)->depth; \
	__entry->slot = (rec)->slot; \
	__entry->spec = (rec)->spec; \
	__entry->len = (rec)->len; \
	__entry->flags = (rec)->flags; \
	memcpy(__entry->victim_comm, (rec)->victim_comm, 16);

/* The ring-buffer entry has the record's layout after its common header. */
#define KSW_ARM_CHECK_ENTRY(entry) \
	static_assert(offsetof(entry, id) - offsetof(entry, id) == 0); \
	static_assert(offsetof(entry, probe_ip) - offsetof(entry, id) == 8); \
	static_assert(offsetof(entry, addr) - offsetof(entry, id) == 16); \
	static_assert(offsetof(entry, sp) - offsetof(entry, id) == 24); \
	static_assert(offsetof(entry, value) - offsetof(entry, id) == 32); \
	static_assert(offsetof(entry, depth) - offsetof(entry, id) == 40); \
	static_assert(offsetof(entry, slot) - offsetof(entry, id) == 44); \
	static_assert(offsetof(entry, spec) - offsetof(entry, id) == 45); \
	static_assert(offsetof(entry, len) - offsetof(entry, id) == 46); \
	static_assert(offsetof(entry, flags) - offsetof(entry, id) == 47); \
	static_assert(offsetof(entry, victim_comm) - offsetof(entry, id) == 48);

struct ksw_hit_record {
	u64 id;
	u64 addr;
	u64 writer_ip;
	u64 old_value;
	u64 new_value;
	u64 probe_ip;
	int victim_pid;
	char victim_comm[16];
	char writer_comm[16];
	u8 slot;
	u8 len;
	u8 context;
	u8 flags;
};
static_assert(sizeof(struct ksw_hit_record) == 88);
static_assert(offsetof(struct ksw_hit_record, id) == 0);
static_assert(offsetof(struct ksw_hit_record, addr) == 8);
static_assert(offsetof(struct ksw_hit_record, writer_ip) == 16);
static_assert(offsetof(struct ksw_hit_record, old_value) == 24);
static_assert(offsetof(struct ksw_hit_record, new_value) == 32);
static_assert(offsetof(struct ksw_hit_record, probe_ip) == 40);
static_assert(offsetof(struct ksw_hit_record, victim_pid) == 48);
static_assert(offsetof(struct ksw_hit_record, victim_comm) == 52);
static_assert(offsetof(struct ksw_hit_record, writer_comm) == 68);
static_assert(offsetof(struct ksw_hit_record, slot) == 84);
static_assert(offsetof(struct ksw_hit_record, len) == 85);
static_assert(offsetof(struct ksw_hit_record, context) == 86);
static_assert(offsetof(struct ksw_hit_record, flags) == 87);

/* TP_STRUCT__entry() of ksw_hit: the record's fields, in order. */
#define KSW_HIT_FIELDS \
	__field(u64, id) \
	__field(u64, addr) \
	__field(u64, writer_ip) \
	__field(u64, old_value) \
	__field(u64, new_value) \
	__field(u64, probe_ip) \
	__field(int, victim_pid) \
	__array(char, victim_comm, 16) \
	__array(char, writer_comm, 16) \
	__field(u8, slot) \
	__field(u8, len) \
	__field(u8, context) \
	__field(u8, flags)

/* TP_fast_assign() of ksw_hit from a record pointer. */
#define KSW_HIT_ASSIGN(rec) \
	__entry->id = (rec)->id; \
	__entry->addr = (rec)->addr; \
	__entry->writer_ip = (rec)->writer_ip; \
	__entry->old_value = (rec)->old_value; \
	__entry->new_value = (rec)->new_value; \
	__entry->probe_ip = (rec)->probe_ip; \
	__entry->victim_pid = (rec)->victim_pid; \
	memcpy(__entry->victim_comm, (rec)->victim_comm, 16); \
	memcpy(__entry->writer_comm, (rec)->writer_comm, 16); \
	__entry->slot = (rec)->slot; \
	__entry->len = (rec)->len; \
	__entry->context = (rec)->context; \
	__entry->flags = (rec)->flags;

/* The ring-buffer entry has the record's layout after its common header. */
#define KSW_HIT_CHECK_ENTRY(entry) \
	static_assert(offsetof(entry, id) - offsetof(entry, id) == 0); \
	static_assert(offsetof(entry, addr) - offsetof(entry, id) == 8); \
	static_assert(offsetof(entry, writer_ip) - offsetof(entry, id) == 16); \
	static_assert(offsetof(entry, old_value) - offsetof(entry, id) == 24); \
	static_assert(offsetof(entry, new_value) - offsetof(entry, id) == 32); \
	static_assert(offsetof(entry, probe_ip) - offsetof(entry, id) == 40); \
	static_assert(offsetof(entry, victim_pid) - offsetof(entry, id) == 48); \
	static_assert(offsetof(entry, victim_comm) - offsetof(entry, id) == 52); \
	static_assert(offsetof(entry, writer_comm) - offsetof(entry, id) == 68); \
	static_assert(offsetof(entry, slot) - offsetof(entry, id) == 84); \
	static_assert(offsetof(entry, len) - offsetof(entry, id) == 85); \
	static_assert(offsetof(entry, context) - offsetof(entry, id) == 86); \
	static_assert(offsetof(entry, flags) - offsetof(entry, id) == 87);

struct ksw_disarm_record {
	u64 id;
	u64 addr;
	u64 arm_value;
	u64 exit_value;
	u32 hits;
	u8 slot;
	u8 corrupted;
	u8 reason;
	u8 flags;
};
static_assert(sizeof(struct ksw_disarm_record) == 40);
static_assert(offsetof(struct ksw_disarm_record, id) == 0);
static_assert(offsetof(struct ksw_disarm_record, addr) == 8);
static_assert(offsetof(struct ksw_disarm_record, arm_value) == 16);
static_assert(offsetof(struct ksw_disarm_record, exit_value) == 24);
static_assert(offsetof(struct ksw_disarm_record, hits) == 32);
static_assert(offsetof(struct ksw_disarm_record, slot) == 36);
static_assert(offsetof(struct ksw_disarm_record, corrupted) == 37);
static_assert(offsetof(struct ksw_disarm_record, reason) == 38);
static_assert(offsetof(struct ksw_disarm_record, flags) == 39);

/* TP_STRUCT__entry() of ksw_disarm: the record's fields, in order. */
#define KSW_DISARM_FIELDS \
	__field(u64, id) \
	__field(u64, addr) \
	__field(u64, arm_value) \
	__field(u64, exit_value) \
	__field(u32, hits) \
	__field(u8, slot) \
	__field(u8, corrupted) \
	__field(u8, reason) \
	__field(u8, flags)

/* TP_fast_assign() of ksw_disarm from a record pointer. */
#define KSW_DISARM_ASSIGN(rec) \
	__entry->id = (rec)->id; \
	__entry->addr = (rec)->addr; \
	__entry->arm_value = (rec)->arm_value; \
	__entry->exit_value = (rec)->exit_value; \
	__entry->hits = (rec)->hits; \
	__entry->slot = (rec)->slot; \
	__entry->corrupted = (rec)->corrupted; \
	__entry->reason = (rec)->reason; \
	__entry->flags = (rec)->flags;

/* The ring-buffer entry has the record's layout after its common header. */
#define KSW_DISARM_CHECK_ENTRY(entry) \
	static_assert(offsetof(entry, id) - offsetof(entry, id) == 0); \
	static_assert(offsetof(entry, addr) - offsetof(entry, id) == 8); \
	static_assert(offsetof(entry, arm_value) - offsetof(entry, id) == 16); \
	static_assert(offsetof(entry, exit_value) - offsetof(entry, id) == 24); \
	static_assert(offsetof(entry, hits) - offsetof(entry, id) == 32); \
	static_assert(offsetof(entry, slot) - offsetof(entry, id) == 36); \
	static_assert(offsetof(entry, corrupted) - offsetof(entry, id) == 37); \
	static_assert(offsetof(entry, reason) - offsetof(entry, id) == 38); \
	static_assert(offsetof(entry, flags) - offsetof(entry, id) == 39);

#endif /* KSW_SHARED_H */
