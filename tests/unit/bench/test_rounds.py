"""`make bench --rounds N`: our import, notmuch new and mu index run N times, interleaved,
each round's ratios printed and the median given (tests.bench.run). Run for real, on a tiny
generated corpus: the numbers are not checked, only that each round ran and what is
printed of them adds up."""
import json
import statistics
import subprocess
import sys

import pytest

from tests.bench.run import median_of

pytestmark = pytest.mark.slow  # three imports, notmuch and mu runs: some 30 s


def bench_lines(*args: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "tests.bench.run", *args],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_three_rounds_print_each_rounds_ratios_and_their_median():
    lines = bench_lines("--messages", "40", "--only", "plain", "--rounds", "3")
    imports = [line for line in lines if line["bench"] == "import_index"]
    assert [line["round"] for line in imports] == [1, 2, 3]
    assert all(line["imported"] == line["indexed"] == 40 for line in imports)
    assert [line["round"] for line in lines if line["bench"] == "notmuch"] == [1, 2, 3]
    assert [line["round"] for line in lines if line["bench"] == "mu"] == [1, 2, 3]
    assert all(line["messages"] == 40 for line in lines if line["bench"] in ("notmuch", "mu"))
    (versus,) = [line for line in lines if line["bench"] == "versus"]
    assert versus["rounds"] == 3
    for name in ("import_over_notmuch_new", "import_over_mu_index", "cpu_over_notmuch_new",
                 "cpu_over_mu_index"):
        each = versus[f"{name}_rounds"]
        assert len(each) == 3 and all(value > 0 for value in each)
        assert versus[name] == round(statistics.median(each), 3)
    # each round's import ratio is of that round's own runs, one right after the other
    # (the rates printed are rounded to 0.1 message a second, the ratios use them unrounded)
    mu_rates = [line["mu_index_msgs_per_s"] for line in lines if line["bench"] == "mu"]
    assert versus["import_over_mu_index_rounds"] == [
        pytest.approx(line["msgs_per_s"] / rate, rel=0.02)
        for line, rate in zip(imports, mu_rates)]


def test_one_round_prints_no_round_lists():
    lines = bench_lines("--messages", "20", "--only", "plain")
    (versus,) = [line for line in lines if line["bench"] == "versus"]
    assert versus["rounds"] == 1 and versus["import_over_mu_index"] > 0
    assert not [name for name in versus if name.endswith("_rounds")]


def test_rounds_below_one_are_refused():
    done = subprocess.run([sys.executable, "-m", "tests.bench.run", "--rounds", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--rounds must be at least 1, not 0" in done.stderr


def test_the_median_of_a_ratio_over_rounds():
    rounds = [{"r": 0.9}, {"r": 1.3}, {"r": 1.0}]
    assert median_of(rounds, "r") == 1.0
    assert median_of(rounds[:2], "r") == 1.1
    assert median_of([{"r": 1.0}, {"r": None}], "r") is None
