"""`make bench --rounds N`: our import, notmuch new and mu index run N times, interleaved,
each round's ratios printed and the median given (tests.bench.run). The bench is run for
real, on a tiny generated corpus: the numbers are not judged, only that each round ran and
that what is printed of the rounds adds up."""
import json
import shutil
import subprocess
import sys

import pytest

from tests.bench.run import median_of

RATIOS = ("import_over_notmuch_new", "import_over_mu_index", "cpu_over_notmuch_new",
          "cpu_over_mu_index")
needs_yardsticks = pytest.mark.skipif(
    not (shutil.which("notmuch") and shutil.which("mu")),
    reason="needs notmuch and mu (Debian packages notmuch, maildir-utils)")


def bench_lines(*args: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "tests.bench.run", *args],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.slow  # three imports, three of notmuch and of mu: some 15 s
@needs_yardsticks
def test_three_rounds_print_each_rounds_ratios_and_their_median():
    lines = bench_lines("--messages", "40", "--only", "plain", "--rounds", "3")
    for bench in ("import_index", "storage", "index", "notmuch", "mu"):
        assert [line["round"] for line in lines if line["bench"] == bench] == [1, 2, 3], bench
    imports = [line for line in lines if line["bench"] == "import_index"]
    assert all(line["imported"] == line["indexed"] == 40 for line in imports)
    assert all(line["messages"] == 40 for line in lines if line["bench"] in ("notmuch", "mu"))
    (versus,) = [line for line in lines if line["bench"] == "versus"]
    assert versus["rounds"] == 3
    for name in RATIOS:
        each = versus[f"{name}_rounds"]
        assert len(each) == 3
        if None not in each:  # a CPU time too short to measure (0.0 s) gives no ratio
            assert versus[name] == pytest.approx(sorted(each)[1], abs=0.0011)
    # each round's ratio is of that round's own runs, one right after the other (the
    # printed rates and ratios are rounded: to 0.1 message a second, to 0.001)
    mu_rates = [line["mu_index_msgs_per_s"] for line in lines if line["bench"] == "mu"]
    assert versus["import_over_mu_index_rounds"] == [
        pytest.approx(line["msgs_per_s"] / rate, rel=0.01, abs=0.0011)
        for line, rate in zip(imports, mu_rates)]


@pytest.mark.slow
@needs_yardsticks
def test_one_round_prints_no_round_lists():
    lines = bench_lines("--messages", "20", "--only", "plain")
    (versus,) = [line for line in lines if line["bench"] == "versus"]
    assert versus["rounds"] == 1 and versus["import_over_mu_index"] > 0
    assert not [name for name in versus if name.endswith("_rounds")]


@pytest.mark.parametrize("given, said", [
    (["--rounds", "0"], "argument --rounds: invalid count value: '0'"),
    (["--rounds", "two"], "argument --rounds: invalid count value: 'two'"),
])
def test_rounds_that_are_no_count_are_refused(given, said):
    done = subprocess.run([sys.executable, "-m", "tests.bench.run", *given],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and said in done.stderr


def test_bench_rounds_from_the_environment_are_checked_too(monkeypatch):
    from tests.bench.run import parse_args
    monkeypatch.setenv("BENCH_ROUNDS", "4")
    assert parse_args([]).rounds == 4
    monkeypatch.setenv("BENCH_ROUNDS", "x")
    with pytest.raises(SystemExit):
        parse_args([])


def test_the_median_of_a_ratio_over_rounds():
    rounds = [{"r": 0.9}, {"r": 1.3}, {"r": 1.0}]
    assert median_of(rounds, "r") == 1.0
    assert median_of(rounds[:2], "r") == pytest.approx(1.1)
    assert median_of([{"r": 1.0}, {"r": None}], "r") is None
