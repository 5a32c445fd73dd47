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
# verdict (the rule of ksw_core::events::Verdict::of). Then the summary line
# of `ksw report`, with the same definition (Documentation/ksw.md):
#
#   N corruptions of M victims by K writers
#
# N: writes into watched frames (the kernel's count, ksw_disarm.hits, for a
# frame whose disarm is recorded, else the hits recorded) plus frames
# silently corrupted; M: frames (watch ids) written or silently corrupted;
# K: distinct writer tasks among the recorded hits.
#
# Addresses are named by `ksw symbolize` (the symbolizer of `ksw report` and
# the plugin: one set of rules) from the kallsyms file in $KSW_KALLSYMS (use
# the traced machine's /proc/kallsyms), else from /proc/kallsyms. The ksw
# binary is $KSW, else `ksw` on PATH, else target/{release,debug}/ksw of this
# checkout. Without it, or without symbols, addresses stay hex.

from __future__ import print_function

import os
import subprocess
import sys

if "PERF_EXEC_PATH" in os.environ:
    sys.path.append(
        os.environ["PERF_EXEC_PATH"] + "/scripts/python/Perf-Trace-Util/lib/Perf/Trace"
    )

REASONS = {0: "return", 1: "task_exit", 2: "teardown", 3: "backstop"}
# ksw_disarm.corrupted (ExitState): intact, changed, unknown.
INTACT, CHANGED, UNKNOWN = 0, 1, 2
# Flags (kmod/core/src/events.rs).
ARM_CANARY = 1
HIT_BY_VICTIM, HIT_OLD_CANARY, HIT_NEW_CANARY = 1, 2, 4
DISARM_CANARY, DISARM_EXIT_CANARY = 1, 2
CONTEXTS = {0: "task", 1: "softirq", 2: "hardirq", 3: "nmi"}


def verdict(hits, corrupted):
    """ksw_core::events::Verdict::of."""
    if hits > 0:
        return "hit"
    if corrupted == CHANGED:
        return "silently corrupted"
    if corrupted == UNKNOWN:
        return "unknown"
    return "clean"


def find_ksw():
    explicit = os.environ.get("KSW")
    if explicit:
        return explicit
    for d in os.environ.get("PATH", "").split(os.pathsep):
        c = os.path.join(d, "ksw")
        if d and os.access(c, os.X_OK):
            return c
    here = os.path.dirname(os.path.abspath(__file__))
    for build in ("release", "debug"):
        c = os.path.join(here, "..", "target", build, "ksw")
        if os.access(c, os.X_OK):
            return c
    return None


ADDRESSES = {}  # (address, is_return) -> name, filled by symbolize_all()


def symbolize_all():
    """Names every address seen, in one `ksw symbolize` call per kind."""
    ksw = find_ksw()
    table = os.environ.get("KSW_KALLSYMS") or "/proc/kallsyms"
    for is_return in (False, True):
        addrs = sorted(a for a, r in ADDRESSES if r == is_return)
        if not addrs:
            continue
        names = None
        if ksw:
            cmd = [ksw, "symbolize", "--kallsyms", table]
            if is_return:
                cmd.append("--return")
            try:
                p = subprocess.run(cmd, input="\n".join("%#x" % a for a in addrs),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   universal_newlines=True)
                if p.returncode == 0:
                    names = p.stdout.splitlines()
                elif os.environ.get("KSW_KALLSYMS"):
                    sys.stderr.write("ksw-report: %s" % p.stderr)
            except OSError as err:
                sys.stderr.write("ksw-report: cannot run %s: %s\n" % (ksw, err))
        elif os.environ.get("KSW_KALLSYMS"):
            sys.stderr.write("ksw-report: no ksw binary to name addresses with (set KSW)\n")
        for i, a in enumerate(addrs):
            ADDRESSES[(a, is_return)] = names[i] if names and i < len(names) else "%#x" % a


def sym(ip, is_return=False):
    return ADDRESSES.get((ip, is_return), "%#x" % ip)


def want(ip, is_return=False):
    ADDRESSES.setdefault((ip, is_return), None)
    return ip


def extra_fields(rest):
    """Fields newer modules appended (old recordings lack them), without
    perf's trailing perf_sample_dict."""
    return [x for x in rest if not isinstance(x, dict)]


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

    def writes(self):
        """The kernel's count when the disarm is recorded, else the hits."""
        if self.disarm is not None:
            return self.disarm["hits"]
        return len(self.hits)


FRAMES = {}
DONE = []
WRITERS = set()
NAMES = {}


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
                         addr, sp, value, depth, slot, spec, len, *rest):
    extra = extra_fields(rest)
    flags = extra[0] if extra else 0
    when = stamp(common_secs, common_nsecs)
    old = FRAMES.pop(id, None)
    if old is not None:
        # The id is reused (module reloaded): the old frame is done.
        DONE.append(old)
    f = frame(id, when)
    f.arm = dict(time=when, cpu=common_cpu, pid=common_pid, comm=comm_str(common_comm),
                 probe=want(probe_ip), addr=addr, len=len, value=value, slot=slot,
                 depth=depth, canary=bool(flags & ARM_CANARY))
    f.victim_pid = common_pid
    if extra[1:]:
        # The kernel's own name (a kernel thread has no COMM record).
        f.victim_comm = comm_str(extra[1])
        NAMES[common_pid] = f.victim_comm
    if f.victim_comm is None:
        f.victim_comm = NAMES.get(common_pid) or comm_str(common_comm)


def kstackwatch__ksw_hit(event_name, context, common_cpu, common_secs, common_nsecs,
                         common_pid, common_comm, common_callchain, id, addr,
                         writer_ip, old_value, new_value, probe_ip, victim_pid,
                         victim_comm, writer_comm, slot, len, *rest):
    extra = extra_fields(rest)
    ctx = CONTEXTS.get(extra[0]) if extra else None
    flags = extra[1] if len_(extra) > 1 else 0
    when = stamp(common_secs, common_nsecs)
    f = frame(id, when)
    # The module records the writer's comm itself; perf's comm tracking of
    # kernel threads lags (they show as their parent, kthreadd).
    writer = comm_str(writer_comm) or comm_str(common_comm)
    NAMES[victim_pid] = comm_str(victim_comm)
    f.hits.append(dict(time=when, cpu=common_cpu, pid=common_pid, comm=writer,
                       ip=want(writer_ip), addr=addr, context=ctx,
                       by_victim=bool(flags & HIT_BY_VICTIM),
                       old="canary" if flags & HIT_OLD_CANARY else "%#x" % old_value,
                       new="canary" if flags & HIT_NEW_CANARY else "%#x" % new_value))
    f.victim_pid = victim_pid
    f.victim_comm = comm_str(victim_comm)
    if f.arm is None:
        f.probe = want(probe_ip)
    WRITERS.add((common_pid, writer))


def len_(seq):
    return sum(1 for _ in seq)


def kstackwatch__ksw_disarm(event_name, context, common_cpu, common_secs, common_nsecs,
                            common_pid, common_comm, common_callchain, id, addr,
                            arm_value, exit_value, hits, slot, corrupted, reason, *rest):
    extra = extra_fields(rest)
    flags = extra[0] if extra else 0
    when = stamp(common_secs, common_nsecs)
    f = frame(id, when)
    f.disarm = dict(time=when, addr=addr,
                    arm_value="canary" if flags & DISARM_CANARY else "%#x" % arm_value,
                    exit_value="canary" if flags & DISARM_EXIT_CANARY else "%#x" % exit_value,
                    hits=hits, corrupted=corrupted,
                    reason=REASONS.get(reason, "reason %d" % reason))


def trace_unhandled(event_name, context, event_fields_dict, perf_sample_dict=None):
    pass


def report_frame(f):
    victim = "%s/%s" % (f.victim_comm or "?", f.victim_pid if f.victim_pid is not None else "?")
    t0 = f.start()
    if f.arm:
        a = f.arm
        value = "canary" if a["canary"] else "%#x" % a["value"]
        print("watch %d: victim %s, slot %d, %d bytes at %#x = %s, armed at %s on cpu %d in %s"
              % (f.watch, victim, a["slot"], a["len"], a["addr"], value,
                 fmt_time(a["time"]), a["cpu"], sym(a["probe"])))
    else:
        print("watch %d: victim %s, armed before the recording started or its arm lost (in %s)"
              % (f.watch, victim, sym(f.probe) if f.probe is not None else "?"))
    for h in f.hits:
        ctx = ""
        if h["context"] not in (None, "task"):
            ctx = " in %s%s" % (h["context"], " on the victim's CPU" if h["by_victim"] else "")
        print("  hit    %s (%s) by %s/%d on cpu %d%s at %s: %s -> %s"
              % (fmt_time(h["time"]), fmt_delta(h["time"] - t0), h["comm"], h["pid"],
                 h["cpu"], ctx, sym(h["ip"]), h["old"], h["new"]))
    d = f.disarm
    if d is None:
        print("  still armed when the recording stopped (or its disarm lost)")
        return "hit" if f.hits else None
    word = verdict(d["hits"], d["corrupted"])
    if d["corrupted"] == UNKNOWN:
        change = "%s -> value at death unknown" % d["arm_value"]
    elif d["corrupted"] == CHANGED or d["arm_value"] != d["exit_value"]:
        change = "%s -> %s" % (d["arm_value"], d["exit_value"])
    else:
        change = "%s kept" % d["arm_value"]
    recorded = len(f.hits)
    hits = "%d hit%s" % (d["hits"], "" if d["hits"] == 1 else "s")
    if recorded != d["hits"]:
        hits += " in the kernel, %d recorded" % recorded
    print("  disarm %s (%s) on %s: %s (%s, %s)"
          % (fmt_time(d["time"]), fmt_delta(d["time"] - t0), d["reason"], word,
             hits, change))
    return word


def headline(corruptions, victims, writers):
    def plural(n, word):
        return "%d %s%s" % (n, word, "" if n == 1 else "s")
    return "%s of %s by %s" % (plural(corruptions, "corruption"), plural(victims, "victim"),
                               plural(writers, "writer"))


def trace_end():
    symbolize_all()
    corruptions = 0
    victims = 0
    frames = DONE + list(FRAMES.values())
    for f in sorted(frames, key=lambda f: (f.start(), f.watch)):
        word = report_frame(f)
        corruptions += f.writes()
        if word == "silently corrupted":
            corruptions += 1
        if word in ("hit", "silently corrupted"):
            victims += 1
    print(headline(corruptions, victims, len(WRITERS)))
