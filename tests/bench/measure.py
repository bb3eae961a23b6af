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
KCMP_VM tells; where kcmp is refused the child counts).

CPU time (tree_cpu_seconds, less sensitive to a busy machine than wall time) is the top
process's from wait4(2), which includes the children it waited for, plus each grandchild's
as last sampled, with the children that grandchild waited for: the extraction workers sit
there, behind multiprocessing's fork server (which nobody waits for), and the tools they
run (pdftotext...) are their children. A grandchild's CPU after its last sample is missed.
tree_cpu_by_role splits that sum: main (the top process and the children it waited for,
from wait4), workers (the grandchildren's own CPU) and tools (the CPU of the children the
grandchildren waited for: pdftotext and the like, which a Python profiler never sees).
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_S = 0.05


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
    tree_cpu_by_role: dict = field(default_factory=dict)  # main, workers, tools: seconds

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
                "tree_cpu_by_role": self.tree_cpu_by_role}


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run `argv` to its end (stdout captured, stderr passed through) and measure it."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
    sampler = _TreeSampler(process.pid)
    sampler.start()
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    sampler.stop()
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(seconds=seconds, cpu_seconds=round(cpu, 2),
                    tree_cpu_seconds=round(cpu + sampler.descendants_cpu(), 2),
                    tree_cpu_by_role={"main": round(cpu, 2), **sampler.descendants_cpu_split()},
                    exit_code=process.returncode, stdout=stdout,
                    process_peak_mb=round(sampler.root_hwm_kb / 1024, 1),
                    **{f"tree_{name}_peak_mb": _mb(peak) for name, peak in sampler.peaks_kb.items()},
                    tree_pss_peak_anon_mb=_mb(sampler.at_pss_peak["anon_pss"]),
                    tree_pss_peak_file_mb=_mb(sampler.at_pss_peak["file_pss"]),
                    tree_roles_at_pss_peak={
                        role: {"pss_mb": _mb(kb["pss"]), "anon_mb": _mb(kb["anon_pss"]),
                               "file_mb": _mb(kb["file_pss"])}
                        for role, kb in sampler.roles_at_pss_peak.items()})


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

    def descendants_cpu(self) -> float:
        return sum(own + waited for own, waited in self._cpu.values())

    def descendants_cpu_split(self) -> dict[str, float]:
        """{"workers": the grandchildren's own CPU seconds, "tools": their children's}."""
        return {"workers": round(sum(own for own, _ in self._cpu.values()), 2),
                "tools": round(sum(waited for _, waited in self._cpu.values()), 2)}

    def stop(self) -> None:
        self._stopping.set()
        self.join()


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
        for task in _listdir(Path(f"/proc/{pid}/task")):
            try:
                frontier += [(int(child), depth + 1, pid) for child in
                             Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except OSError:
                pass
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
