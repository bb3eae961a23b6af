"""Running one command for a benchmark: wall time, CPU time and memory of its process tree.

`run_measured(argv)` starts the command, samples /proc every SAMPLE_S seconds for the
resident memory of the process and all its descendants (extraction workers, their fork
server, tools they run), and waits for it with wait4(2) for its CPU time.

Memory is reported four ways, because they answer different questions:
  process_peak_mb  the top process's own peak RSS (VmHWM, its high-water mark, as last
                   sampled). Not ru_maxrss: Linux carries the RSS of the process that forked
                   it (this benchmark) over exec into that;
  tree_rss_peak_mb  the largest sum of Rss over the tree at one sample: what `ps` adds up,
                   pages shared between processes (libraries, the fork server's imports
                   that its workers inherit) counted once per process;
  tree_pss_peak_mb  the same for Pss (smaps_rollup): each shared page divided among the
                   processes sharing it, so the sum is the memory the tree really holds,
                   file pages mapped in (libraries, LMDB's map) included;
  tree_anon_pss_peak_mb  Pss_Anon + Pss_Shmem: the memory no file on disk backs, which
                   the kernel can only swap, never drop (LMDB pages read through the map
                   are page cache it drops under pressure);
  tree_pss_peak_anon_mb, tree_pss_peak_file_mb  the sample of tree_pss_peak_mb split in
                   two: its anonymous part (Pss_Anon + Pss_Shmem) and its file-backed part
                   (Pss_File: libraries and LMDB's map, clean page cache), so a note can say
                   how much of the peak is reclaimable;
  tree_roles_at_pss_peak  that sample per process role (main: the top process; workers:
                   its grandchildren, as the extraction workers behind the fork server;
                   tools: deeper; others by depth), each {pss_mb, anon_mb, file_mb}.
Sampling can miss a peak of the sums shorter than SAMPLE_S. Each address space counts once:
a child that shares its parent's (vfork(2), as subprocess starts a tool, until the child
execs) reports the parent's memory as its own, and would double it in a sum (kcmp(2)
KCMP_VM tells; where kcmp is refused the child counts). Sampling stops when the top process
ends: what its orphans hold after that is not seen.

CPU time (tree_cpu_seconds, less sensitive to a busy machine than wall time) is exact: the
benchmark makes itself a child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER) for the run, so
a process of the tree whose parent ends before it (multiprocessing's fork server, which
nobody waits for; a helper a worker leaves to end on end-of-file) is reparented to the
benchmark rather than to init. Once the top process has ended (its wall time is taken
there, at its wait4(2)), the benchmark waits for each process it gained as a child during
the run (never waitpid(-1): it may hold children of its own, as the smtp bench's servers),
and kills what is left after LEFTOVER_TIMEOUT_S (tree_killed_processes says how many).
Every process of the tree has then been waited for by someone up the chain, the benchmark
last, so getrusage(2) RUSAGE_CHILDREN after the run minus before holds all their CPU. Not
counted: a process whose parent set SIGCHLD to SIG_IGN (the kernel reaps it, unaccounted).
Meanwhile the benchmark must start no other child nor reap one (they would count).
tree_outlived_seconds: how long the tree ran on after the top process ended.
tree_cpu_by_role splits that total: main (the top process and the children it waited for,
from wait4: exact), workers (the grandchildren's own CPU, as last sampled: the extraction
workers behind the fork server), tools (the CPU of the children the grandchildren waited
for, as last sampled: pdftotext and the like, which a Python profiler never sees) and
unattributed (the rest, exact as a sum: the fork server's own CPU, processes no one in the
tree waited for, as a worker's helper, and what workers and tools burnt after their last
sample). Sampled parts are lower bounds; the four add up to tree_cpu_seconds.
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_S = 0.05
LEFTOVER_TIMEOUT_S = 30.0  # how long the tree may outlive its top process


@dataclass
class Measured:
    seconds: float
    cpu_seconds: float        # user + system of the process and the children it waited for
    tree_cpu_seconds: float   # the same for the whole tree (see the module docstring)
    exit_code: int
    stdout: bytes
    process_peak_mb: float
    tree_rss_peak_mb: float
    tree_pss_peak_mb: float
    tree_anon_pss_peak_mb: float
    tree_pss_peak_anon_mb: float = 0.0
    tree_pss_peak_file_mb: float = 0.0
    tree_roles_at_pss_peak: dict = field(default_factory=dict)
    tree_cpu_by_role: dict = field(default_factory=dict)  # main, workers, tools, unattributed
    tree_outlived_seconds: float = 0.0  # from the top process's end to the tree's
    tree_killed_processes: int = 0      # left running after LEFTOVER_TIMEOUT_S, killed

    def memory(self) -> dict:
        return {"process_peak_mb": self.process_peak_mb,
                "tree_rss_peak_mb": self.tree_rss_peak_mb,
                "tree_pss_peak_mb": self.tree_pss_peak_mb,
                "tree_anon_pss_peak_mb": self.tree_anon_pss_peak_mb,
                "tree_pss_peak_anon_mb": self.tree_pss_peak_anon_mb,
                "tree_pss_peak_file_mb": self.tree_pss_peak_file_mb,
                "tree_roles_at_pss_peak": self.tree_roles_at_pss_peak}

    def cpu(self) -> dict:
        return {"cpu_seconds": self.cpu_seconds, "tree_cpu_seconds": self.tree_cpu_seconds,
                "tree_cpu_by_role": self.tree_cpu_by_role,
                "tree_outlived_seconds": self.tree_outlived_seconds,
                "tree_killed_processes": self.tree_killed_processes}


def run_measured(argv: list[str], env: dict[str, str] | None = None,
                 leftover_timeout_s: float = LEFTOVER_TIMEOUT_S) -> Measured:
    """Run `argv` to its end and the processes it left behind to theirs (stdout captured,
    stderr passed through) and measure it; what is still running `leftover_timeout_s`
    seconds after the top process ended is killed. Linux >= 3.4 (PR_SET_CHILD_SUBREAPER);
    OSError if it is refused."""
    own_children = set(children_of(os.getpid()))
    reaped_cpu_before = _reaped_children_cpu()
    _set_child_subreaper(True)
    try:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
        sampler = _TreeSampler(process.pid)
        sampler.start()
        # Read in a thread: a process left behind may hold the pipe open past the top's end.
        reader = _PipeReader(process.stdout)
        reader.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        sampler.stop()
        process.returncode = os.waitstatus_to_exitcode(status)
        killed = _reap_leftovers(own_children, leftover_timeout_s)
        outlived = time.perf_counter() - started - seconds
    finally:
        _set_child_subreaper(False)
    stdout = reader.read_to_end()
    cpu = round(usage.ru_utime + usage.ru_stime, 2)
    tree_cpu = round(_reaped_children_cpu() - reaped_cpu_before, 2)
    sampled = sampler.descendants_cpu_split()
    return Measured(seconds=seconds, cpu_seconds=cpu, tree_cpu_seconds=tree_cpu,
                    tree_cpu_by_role={"main": cpu, **sampled, "unattributed": round(
                        tree_cpu - cpu - sum(sampled.values()), 2)},
                    tree_outlived_seconds=round(outlived, 2), tree_killed_processes=killed,
                    exit_code=process.returncode, stdout=stdout,
                    process_peak_mb=round(sampler.root_hwm_kb / 1024, 1),
                    **{f"tree_{name}_peak_mb": _mb(peak) for name, peak in sampler.peaks_kb.items()},
                    tree_pss_peak_anon_mb=_mb(sampler.at_pss_peak["anon_pss"]),
                    tree_pss_peak_file_mb=_mb(sampler.at_pss_peak["file_pss"]),
                    tree_roles_at_pss_peak={
                        role: {"pss_mb": _mb(kb["pss"]), "anon_mb": _mb(kb["anon_pss"]),
                               "file_mb": _mb(kb["file_pss"])}
                        for role, kb in sampler.roles_at_pss_peak.items()})


class _PipeReader(threading.Thread):
    def __init__(self, pipe):
        super().__init__(name="stdout-reader", daemon=True)
        self._pipe, self._read = pipe, b""

    def run(self) -> None:
        with self._pipe:
            self._read = self._pipe.read()

    def read_to_end(self) -> bytes:
        """All the pipe held, once every process holding its writing end has ended."""
        self.join()
        return self._read


_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def _set_child_subreaper(on: bool) -> None:
    """Make this process the reaper of its descendants' orphans, or no longer (prctl(2));
    OSError where the kernel refuses."""
    if _libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(errno)}")


def _reaped_children_cpu() -> float:
    """User + system CPU seconds of this process's children waited for so far, with those
    they waited for (getrusage(2) RUSAGE_CHILDREN)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _reap_leftovers(own_children: set[int], timeout_s: float) -> int:
    """Wait for every child this process has beyond `own_children` (the orphans of a
    measured tree, reparented to it as their subreaper), and for those reparented as they
    end, until none is left; after `timeout_s` seconds kill each left with its descendants.
    Returns how many processes were killed."""
    deadline, killed = time.monotonic() + timeout_s, set()
    while leftovers := [pid for pid in children_of(os.getpid()) if pid not in own_children]:
        if time.monotonic() >= deadline:
            killed |= _kill_trees(leftovers)
        for pid in leftovers:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass  # reaped meanwhile (a Popen of ours polled it)
        time.sleep(SAMPLE_S)
    return len(killed)


def _kill_trees(roots: list[int]) -> set[int]:
    """SIGKILL `roots` and their descendants alive now; the pids signalled."""
    signalled = set()
    for root in roots:
        for pid, _ in tree(root):
            if _is_zombie(pid):
                continue  # ended already: reaped, not killed
            try:
                os.kill(pid, signal.SIGKILL)
                signalled.add(pid)
            except ProcessLookupError:
                pass
    return signalled


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


class _TreeSampler(threading.Thread):
    def __init__(self, root: int):
        super().__init__(name="rss-sampler", daemon=True)
        self.root, self.root_hwm_kb = root, 0
        self.peaks_kb = {"rss": 0, "pss": 0, "anon_pss": 0}
        # The sample with the largest Pss sum, whole and per role (role_of), in KiB.
        self.at_pss_peak = {"pss": 0, "anon_pss": 0, "file_pss": 0}
        self.roles_at_pss_peak: dict[str, dict[str, int]] = {}
        # Grandchild -> (its own CPU seconds, those of the children it waited for), last seen.
        self._cpu: dict[int, tuple[float, float]] = {}
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(SAMPLE_S):
            sums = dict.fromkeys(self.peaks_kb.keys() | self.at_pss_peak.keys(), 0)
            roles: dict[str, dict[str, int]] = {}
            for pid, depth, parent in tree_with_parents(self.root):
                if parent is not None and same_address_space(pid, parent):
                    continue  # a vfork child before its exec: its parent's memory
                role = roles.setdefault(role_of(depth), dict.fromkeys(self.at_pss_peak, 0))
                for name, kb in _memory_kb(pid).items():
                    sums[name] += kb
                    if name in role:
                        role[name] += kb
                if depth == 0:
                    self.root_hwm_kb = max(self.root_hwm_kb, _high_water_kb(pid))
                if depth == 2:
                    self._cpu[pid] = _cpu_split(pid) or self._cpu.get(pid, (0.0, 0.0))
            for name in self.peaks_kb:
                self.peaks_kb[name] = max(self.peaks_kb[name], sums[name])
            if sums["pss"] > self.at_pss_peak["pss"]:
                self.at_pss_peak = {name: sums[name] for name in self.at_pss_peak}
                self.roles_at_pss_peak = roles

    def descendants_cpu_split(self) -> dict[str, float]:
        """{"workers": the grandchildren's own CPU seconds, "tools": their children's}."""
        return {"workers": round(sum(own for own, _ in self._cpu.values()), 2),
                "tools": round(sum(waited for _, waited in self._cpu.values()), 2)}

    def stop(self) -> None:
        self._stopping.set()
        self.join()


def children_of(pid: int) -> list[int]:
    """The pids of the children of process `pid` now (/proc/PID/task/*/children)."""
    found = []
    for task in _listdir(Path(f"/proc/{pid}/task")):
        try:
            found += [int(child) for child in
                      Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return found


def tree(root: int) -> list[tuple[int, int]]:
    """(pid, depth) of `root` (depth 0) and all its descendants alive now (from
    /proc/PID/task/*/children)."""
    return [(pid, depth) for pid, depth, _ in tree_with_parents(root)]


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of `root` and its descendants alive now, each with the
    children it waited for (a process that ended unwaited meanwhile is not counted)."""
    return sum(_cpu_seconds(pid) for pid, _ in tree(root))


def tree_with_parents(root: int) -> list[tuple[int, int, int | None]]:
    """(pid, depth, parent pid) of `root` (depth 0, parent None) and its descendants."""
    found, frontier = [], [(root, 0, None)]
    while frontier:
        pid, depth, parent = frontier.pop()
        found.append((pid, depth, parent))
        frontier += [(child, depth + 1, pid) for child in children_of(pid)]
    return found


_KCMP_VM = 1  # <linux/kcmp.h>
_SYS_KCMP = {"x86_64": 312, "aarch64": 272}.get(os.uname().machine)
_libc = ctypes.CDLL(None, use_errno=True)


def same_address_space(pid: int, other: int) -> bool:
    """Whether two processes share one address space (kcmp(2) KCMP_VM); False where that
    cannot be told (no kcmp, no permission, a process gone)."""
    if _SYS_KCMP is None:
        return False
    return _libc.syscall(_SYS_KCMP, pid, other, _KCMP_VM, 0, 0) == 0


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _is_zombie(pid: int) -> bool:
    """Whether a process has ended and waits to be reaped (proc(5) stat field 3 is Z);
    False once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].startswith("Z")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and of the children it waited for (proc(5)
    stat fields 14 to 17); 0 once it is gone."""
    return sum(_cpu_split(pid) or (0.0,))


def _cpu_split(pid: int) -> tuple[float, float] | None:
    """(user + system CPU seconds of a process itself, those of the children it waited
    for): proc(5) stat fields 14-15 and 16-17; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after the command name, from field 3
    ticks = [int(value) for value in fields[11:15]]
    per_second = os.sysconf("SC_CLK_TCK")
    return (ticks[0] + ticks[1]) / per_second, (ticks[2] + ticks[3]) / per_second


def role_of(depth: int) -> str:
    """The role of a process at `depth` in an import's tree: main (the command), its
    children (the fork server, multiprocessing's resource tracker), workers (theirs:
    the extraction workers), tools (what workers run: pdftotext...)."""
    return ("main", "children", "workers")[depth] if depth < 3 else "tools"


def _memory_kb(pid: int) -> dict[str, int]:
    """Rss, Pss, its anonymous part (Pss_Anon + Pss_Shmem: no file on disk backs it) and
    its file-backed part (Pss_File) of a process in KiB (proc(5) smaps_rollup); {} once it
    is gone."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return {}
    fields = _kb_fields(lines)
    return {"rss": fields.get("Rss", 0), "pss": fields.get("Pss", 0),
            "anon_pss": fields.get("Pss_Anon", 0) + fields.get("Pss_Shmem", 0),
            "file_pss": fields.get("Pss_File", 0)}


def _high_water_kb(pid: int) -> int:
    try:
        return _kb_fields(Path(f"/proc/{pid}/status").read_text().splitlines()).get("VmHWM", 0)
    except OSError:
        return 0


def _kb_fields(lines: list[str]) -> dict[str, int]:
    """"Name:   1234 kB" lines as {name: 1234}."""
    found = {}
    for line in lines:
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            found[name] = int(parts[0])
    return found
