"""The benchmark's measurement of a command's process tree (tests.bench.measure)."""
import os
import subprocess
import sys
import time

from tests.bench.measure import _cpu_seconds, children_of, run_measured, tree_cpu_seconds
from tests.bench.smtp_bench import _cpu_per_message

# As `archiver import` with its extraction workers: the top process (~40 MB) starts a
# child it never waits for (as multiprocessing's fork server), whose own child (a
# worker) holds ~80 MB and burns CPU. The top process ends once the worker has burnt its
# CPU (it says so in a file) and the sampler has seen it since: on a busy machine a fixed
# sleep let the top process end first.
WORKER = "import time, sys; held = b'x' * (80 * 1024 * 1024); end = time.process_time() + 0.6\n" \
         "while time.process_time() < end: pass\n" \
         "open(sys.argv[1], 'w').close(); time.sleep(2.0)"
CHILD = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {WORKER!r}, sys.argv[1]])"
PARENT = f"""
import os, subprocess, sys, time
held = b"x" * (40 * 1024 * 1024)
subprocess.Popen([sys.executable, "-c", {CHILD!r}, sys.argv[1]], stdout=subprocess.DEVNULL)
deadline = time.monotonic() + 120
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(1.0)
print("done")
"""


def test_the_tree_counts_the_memory_and_cpu_of_workers_nobody_waited_for(tmp_path):
    measured = run_measured([sys.executable, "-c", PARENT, str(tmp_path / "burnt")])
    assert measured.exit_code == 0 and measured.stdout.strip() == b"done"
    assert 40 <= measured.process_peak_mb < 100
    assert measured.tree_rss_peak_mb >= 40 + 80
    assert measured.tree_pss_peak_mb >= 40 + 80
    assert 40 + 80 <= measured.tree_anon_pss_peak_mb <= measured.tree_pss_peak_mb
    # The peak's split: anonymous (the bytes objects) and file-backed (libraries) parts add
    # up to it, and the parts sit in the roles holding them.
    assert measured.tree_pss_peak_anon_mb >= 40 + 80
    assert abs(measured.tree_pss_peak_anon_mb + measured.tree_pss_peak_file_mb
               - measured.tree_pss_peak_mb) <= 1.0
    roles = measured.tree_roles_at_pss_peak
    assert roles["main"]["anon_mb"] >= 40 and roles["workers"]["anon_mb"] >= 80
    assert roles["children"]["anon_mb"] < 40
    assert measured.cpu_seconds < 0.4  # the worker's CPU is not the top process's
    assert measured.tree_cpu_seconds >= measured.cpu_seconds + 0.5


# As a worker running pdftotext: the worker waits for a tool that burns the CPU.
TOOL = "import time; end = time.process_time() + 0.6\nwhile time.process_time() < end: pass"
TOOL_WORKER = f"import subprocess, sys, time; subprocess.run([sys.executable, '-c', {TOOL!r}])\n" \
    "open(sys.argv[1], 'w').close(); time.sleep(2.0)"
TOOL_CHILD = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {TOOL_WORKER!r}, " \
    "sys.argv[1]])"


def test_the_tree_cpu_is_split_into_main_workers_and_their_tools(tmp_path):
    parent = PARENT.replace(repr(CHILD), repr(TOOL_CHILD))
    measured = run_measured([sys.executable, "-c", parent, str(tmp_path / "burnt")])
    split = measured.tree_cpu_by_role
    assert measured.exit_code == 0 and split["main"] == measured.cpu_seconds
    assert split["tools"] >= 0.5 and split["workers"] < 0.4  # the tool's, not the worker's
    assert abs(sum(split.values()) - measured.tree_cpu_seconds) <= 0.02


# As a worker leaving a helper (a PDF text server) that ends on end-of-file after the worker
# and the top process have gone: the helper is reparented, nobody in the tree waits for it,
# and it burns its CPU only once both have ended (its parent changed, the top process is a
# zombie or gone), then says so in a file.
LATE = """
import os, sys, time
worker, top, burnt = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def running(pid):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
deadline = time.monotonic() + 120
while (os.getppid() == worker or running(top)) and time.monotonic() < deadline:
    time.sleep(0.05)
end = time.process_time() + 0.6
while time.process_time() < end: pass
open(burnt, "w").close()
"""
LEAVING_WORKER = "import os, subprocess, sys\n" \
    f"subprocess.Popen([sys.executable, '-c', {LATE!r}, str(os.getpid()), *sys.argv[1:]])"
LEAVING_CHILD = "import subprocess, sys\n" \
    f"subprocess.Popen([sys.executable, '-c', {LEAVING_WORKER!r}, *sys.argv[1:]])"
LEAVING_PARENT = "import os, subprocess, sys\n" \
    f"subprocess.Popen([sys.executable, '-c', {LEAVING_CHILD!r}, str(os.getpid()), sys.argv[1]])"


def test_the_tree_cpu_counts_processes_that_outlive_their_parents_unwaited(tmp_path):
    measured = run_measured([sys.executable, "-c", LEAVING_PARENT, str(tmp_path / "burnt")])
    assert measured.exit_code == 0 and (tmp_path / "burnt").exists()  # waited for to its end
    assert measured.tree_killed_processes == 0
    assert measured.cpu_seconds < 0.4  # the helper's CPU is not the top process's
    assert measured.tree_cpu_seconds >= measured.cpu_seconds + 0.5
    split = measured.tree_cpu_by_role
    assert split["unattributed"] >= 0.5  # burnt after every sample
    assert abs(sum(split.values()) - measured.tree_cpu_seconds) <= 0.02


# A helper that never ends, its parent gone: killed after the timeout, and said so.
HANGING_CHILD = "import subprocess, sys\n" \
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])"


def test_what_the_tree_leaves_running_is_killed_after_the_timeout_and_counted():
    bench_own = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    had = set(children_of(os.getpid()))  # bench_own, and what earlier tests here left running
    try:
        measured = run_measured([sys.executable, "-c", HANGING_CHILD], leftover_timeout_s=0.5)
        assert measured.exit_code == 0 and measured.tree_killed_processes == 1
        assert set(children_of(os.getpid())) == had  # nothing of the tree left
        assert bench_own.poll() is None  # the benchmark's own child: neither waited for nor killed
    finally:
        bench_own.kill()
        bench_own.wait()


def test_tree_cpu_counts_the_cpu_of_live_descendants(tmp_path):
    # The parent only sleeps; its child burns ~0.6 s of CPU, says so, then waits to be
    # measured: the tree's CPU is the child's, though nobody has waited for it yet.
    parent = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "burnt")])
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "burnt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tree_cpu_seconds(parent.pid) >= 0.5
        assert _cpu_seconds(parent.pid) < 0.5  # the parent's own share is small
    finally:
        parent.kill()
        parent.wait()


def test_smtp_cpu_per_message_bounds_the_rate_by_the_cores():
    found = _cpu_per_message(service_cpu=3.0, clients_cpu=1.0, count=2000)
    assert found["service_cpu_ms_per_message"] == 1.5
    assert found["clients_cpu_ms_per_message"] == 0.5
    assert found["cpu_bound_msgs_per_s"] == round(os.cpu_count() * 2000 / 4.0, 1)
    assert _cpu_per_message(0.0, 0.0, 10)["cpu_bound_msgs_per_s"] is None
