# SPDX-License-Identifier: GPL-2.0
# ksw-report.py: per-victim-frame report of the kstackwatch trace events,
# for perf's Python scripting engine.
#
#   perf record -e 'kstackwatch:*' -k mono -g -a -- <workload>
#   perf script -s trace-scripts/ksw-report.py [-i perf.data]
#   KSW_KALLSYMS=guest-kallsyms.txt perf script -s trace-scripts/ksw-report.py
#
# For each watched frame (one ksw_arm id): where and when it was armed, each
# write caught (ksw_hit: writer comm/pid/cpu and writer ip), and the disarm
# verdict (clean / hit / silently corrupted, the rule of
# ksw_core::events::Verdict::of). Then one summary line:
#
#   N corruptions of M victims by K writers
#
# N: watched frames whose verdict is not clean; M: distinct victim tasks
# watched; K: distinct writer tasks caught.
#
# Addresses are named from the kallsyms file in $KSW_KALLSYMS when set (use
# the traced machine's /proc/kallsyms: perf resolves kernel addresses with
# the symbols of the machine it runs on, and never module addresses it did
# not see loaded), else from perf's own symbols for the sample's call chain,
# else from a readable /proc/kallsyms, else they stay hex.

from __future__ import print_function

import bisect
import os
import sys

if "PERF_EXEC_PATH" in os.environ:
    sys.path.append(
        os.environ["PERF_EXEC_PATH"] + "/scripts/python/Perf-Trace-Util/lib/Perf/Trace"
    )

# An offset this large means "in a gap of the table", not "in a function"
# (same rule as the ksw libtraceevent plugin).
MAX_FUNCTION_SIZE = 0x40000

REASONS = {0: "return", 1: "task_exit", 2: "teardown"}


def verdict(hits, corrupted):
    """ksw_core::events::Verdict::of."""
    if hits > 0:
        return "hit"
    if corrupted:
        return "silently corrupted"
    return "clean"


class Kallsyms(object):
    """Text symbols of a /proc/kallsyms-style file, sorted by address."""

    def __init__(self, path):
        syms = []
        with open(path) as f:
            for line in f:
                words = line.split()
                if len(words) < 3 or words[1] not in ("t", "T"):
                    continue
                try:
                    addr = int(words[0], 16)
                except ValueError:
                    continue
                if addr == 0:
                    continue
                module = None
                if len(words) > 3 and words[3].startswith("["):
                    module = words[3].strip("[]")
                syms.append((addr, words[2], module))
        syms.sort(key=lambda s: s[0])
        self.syms = syms
        self.addrs = [s[0] for s in syms]

    def __len__(self):
        return len(self.syms)

    def describe(self, ip, with_module=True):
        i = bisect.bisect_right(self.addrs, ip)
        if i == 0 or i == len(self.addrs):
            return None
        addr, name, module = self.syms[i - 1]
        # The first symbol listed at that address.
        while i - 2 >= 0 and self.addrs[i - 2] == addr:
            i -= 1
            addr, name, module = self.syms[i - 1]
        off = ip - addr
        if off >= MAX_FUNCTION_SIZE:
            return None
        text = name if off == 0 else "%s+%#x" % (name, off)
        if with_module and module:
            text += " [%s]" % module
        return text


def load_table():
    path = os.environ.get("KSW_KALLSYMS")
    if path:
        try:
            return Kallsyms(path), True
        except (IOError, OSError) as err:
            sys.stderr.write("ksw-report: cannot read KSW_KALLSYMS=%s: %s\n" % (path, err))
            return None, True
    try:
        table = Kallsyms("/proc/kallsyms")
    except (IOError, OSError):
        return None, False
    return (table if len(table) else None), False


TABLE, TABLE_EXPLICIT = load_table()


def from_callchain(ip, callchain):
    """perf's own symbol for ip, if it is a frame of the sample's chain."""
    for node in callchain or ():
        if node.get("ip") != ip or "sym" not in node:
            continue
        off = node.get("sym_off", ip - node["sym"].get("start", ip))
        if off >= MAX_FUNCTION_SIZE:
            return None
        name = node["sym"]["name"]
        text = name if off == 0 else "%s+%#x" % (name, off)
        dso = node.get("dso")
        if dso and dso != "[kernel.kallsyms]":
            text += " %s" % dso
        return text
    return None


def symbolize(ip, callchain=None, with_module=True):
    if TABLE_EXPLICIT:
        text = TABLE.describe(ip, with_module) if TABLE else None
        return text or "%#x" % ip
    text = from_callchain(ip, callchain)
    if text is None and TABLE is not None:
        text = TABLE.describe(ip, with_module)
    return text or "%#x" % ip


def comm_str(value):
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).split("\0", 1)[0]


def stamp(secs, nsecs):
    return secs * 1000000000 + nsecs


def fmt_time(ns):
    return "%d.%09d" % (ns // 1000000000, ns % 1000000000)


def fmt_delta(ns):
    return "+%.3f ms" % (ns / 1e6)


class Frame(object):
    def __init__(self, watch):
        self.watch = watch
        self.arm = None
        self.hits = []
        self.disarm = None
        self.victim_pid = None
        self.victim_comm = None
        self.probe = None
        self.first_seen = None

    def start(self):
        if self.arm:
            return self.arm["time"]
        return self.first_seen


FRAMES = {}
WRITERS = set()


def frame(watch, when):
    f = FRAMES.get(watch)
    if f is None:
        f = FRAMES[watch] = Frame(watch)
        f.first_seen = when
    return f


def trace_begin():
    pass


def kstackwatch__ksw_arm(event_name, context, common_cpu, common_secs, common_nsecs,
                         common_pid, common_comm, common_callchain, id, probe_ip,
                         addr, sp, value, depth, slot, spec, len,
                         perf_sample_dict=None):
    when = stamp(common_secs, common_nsecs)
    f = frame(id, when)
    f.arm = dict(time=when, cpu=common_cpu, pid=common_pid, comm=comm_str(common_comm),
                 probe=symbolize(probe_ip, common_callchain, with_module=True),
                 addr=addr, len=len, value=value, slot=slot, depth=depth)
    f.victim_pid = common_pid
    if f.victim_comm is None:
        f.victim_comm = comm_str(common_comm)


def kstackwatch__ksw_hit(event_name, context, common_cpu, common_secs, common_nsecs,
                         common_pid, common_comm, common_callchain, id, addr,
                         writer_ip, old_value, new_value, probe_ip, victim_pid,
                         victim_comm, writer_comm, slot, len, perf_sample_dict=None):
    when = stamp(common_secs, common_nsecs)
    f = frame(id, when)
    # The module records the writer's comm itself; perf's comm tracking of
    # kernel threads lags (they show as their parent, kthreadd).
    writer = comm_str(writer_comm) or comm_str(common_comm)
    f.hits.append(dict(time=when, cpu=common_cpu, pid=common_pid, comm=writer,
                       ip=symbolize(writer_ip, common_callchain), addr=addr,
                       old=old_value, new=new_value))
    f.victim_pid = victim_pid
    f.victim_comm = comm_str(victim_comm)
    if f.arm is None:
        f.probe = symbolize(probe_ip, common_callchain)
    WRITERS.add((common_pid, writer))


def kstackwatch__ksw_disarm(event_name, context, common_cpu, common_secs, common_nsecs,
                            common_pid, common_comm, common_callchain, id, addr,
                            arm_value, exit_value, hits, slot, corrupted, reason,
                            perf_sample_dict=None):
    when = stamp(common_secs, common_nsecs)
    f = frame(id, when)
    f.disarm = dict(time=when, addr=addr, arm_value=arm_value, exit_value=exit_value,
                    hits=hits, corrupted=bool(corrupted),
                    reason=REASONS.get(reason, "reason %d" % reason))


def trace_unhandled(event_name, context, event_fields_dict, perf_sample_dict=None):
    pass


def report_frame(f):
    victim = "%s/%s" % (f.victim_comm or "?", f.victim_pid if f.victim_pid is not None else "?")
    t0 = f.start()
    if f.arm:
        a = f.arm
        print("watch %d: victim %s, slot %d, %d bytes at %#x = %#x, armed at %s on cpu %d in %s"
              % (f.watch, victim, a["slot"], a["len"], a["addr"], a["value"],
                 fmt_time(a["time"]), a["cpu"], a["probe"]))
    else:
        print("watch %d: victim %s, armed before the recording started (in %s)"
              % (f.watch, victim, f.probe or "?"))
    for h in f.hits:
        print("  hit    %s (%s) by %s/%d on cpu %d at %s: %#x -> %#x"
              % (fmt_time(h["time"]), fmt_delta(h["time"] - t0), h["comm"], h["pid"],
                 h["cpu"], h["ip"], h["old"], h["new"]))
    d = f.disarm
    if d is None:
        print("  still armed when the recording stopped")
        return None
    word = verdict(d["hits"], d["corrupted"])
    if d["corrupted"] or d["arm_value"] != d["exit_value"]:
        change = "%#x -> %#x" % (d["arm_value"], d["exit_value"])
    else:
        change = "%#x kept" % d["arm_value"]
    print("  disarm %s (%s) on %s: %s (%d hit%s, %s)"
          % (fmt_time(d["time"]), fmt_delta(d["time"] - t0), d["reason"], word,
             d["hits"], "" if d["hits"] == 1 else "s", change))
    return word


def trace_end():
    corruptions = 0
    victims = set()
    for f in sorted(FRAMES.values(), key=lambda f: (f.start(), f.watch)):
        word = report_frame(f)
        if word is None and f.hits:
            word = "hit"
        if word in ("hit", "silently corrupted"):
            corruptions += 1
        victims.add((f.victim_pid, f.victim_comm))
    print("%d corruptions of %d victims by %d writers" % (corruptions, len(victims), len(WRITERS)))
