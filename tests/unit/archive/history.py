"""An earlier commit's code, read from git's history, for the *_as_before tests: a change
that must give the same results is compared with the commit before it. Each function fails
(never skips) without that history: the comparison is what those tests test."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def module_at(commit: str, name: str) -> types.ModuleType:
    """services/archive/<name>.py as `commit` had it, run as a module of its own named
    <name>_<commit> (its imports are today's services). Registered in sys.modules: a
    dataclass reads its module's names from there."""
    path = f"{commit}:services/archive/{name}.py"
    shown = subprocess.run(["git", "-C", str(ROOT), "show", path], capture_output=True)
    assert shown.returncode == 0, f"git show {path}: {shown.stderr.decode()}"
    module = sys.modules[f"{name}_{commit}"] = types.ModuleType(f"{name}_{commit}")
    exec(compile(shown.stdout, path, "exec"), module.__dict__)
    return module


def services_at(commit: str, folder: Path) -> Path:
    """`folder` (made if missing) holding the services package of `commit`, unpacked."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "services"],
                             capture_output=True, timeout=120)
    assert archive.returncode == 0, f"git archive {commit}: {archive.stderr.decode()}"
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def results_with(tree: Path, script: str, paths: list[Path], work: Path) -> list:
    """What `script` (Python source) pickles for `paths`, run with the services of `tree`
    in a process of its own. Its arguments: a file listing the paths a line each, the file
    to write the pickle to, and `tree`. Files go into `work`, named after the tree."""
    runnable = work / f"{tree.name}.reading.py"  # a file: a fork server imports __main__
    runnable.write_text(script, encoding="utf-8")
    listing, out = work / f"{tree.name}.paths", work / f"{tree.name}.pickle"
    listing.write_text("\n".join(map(str, paths)), encoding="utf-8")
    done = subprocess.run([sys.executable, str(runnable), str(listing), str(out), str(tree)],
                          cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    return pickle.loads(out.read_bytes())


def columns_differing(commit: str, script: str, paths: list[Path], work: Path,
                      columns: tuple[str, ...]) -> list[str]:
    """"<path>: <column>" for each column of each row that differs between what `script`
    (see results_with: a row a path, the path first, then one value a name of `columns`)
    pickles with the services of `commit` and with this tree's."""
    before = results_with(services_at(commit, work / "before"), script, paths, work)
    now = results_with(ROOT, script, paths, work)
    assert len(before) == len(now) == len(paths)
    return [f"{old[0]}: {name}" for old, new in zip(before, now)
            for name, a, b in zip(columns, old[1:], new[1:]) if a != b]
