"""`make bench --only scale`: plain imports of growing sizes beside mu (tests.bench.
scale_bench), run for real on tiny sizes: the numbers are not judged, only that each size
was imported whole, measured, and its ratios add up."""
import json
import shutil
import subprocess
import sys

import pytest

from tests.bench.run import parse_args

needs_mu = pytest.mark.skipif(not shutil.which("mu"),
                              reason="needs mu (Debian package maildir-utils)")


@pytest.mark.slow  # two imports and two of mu: some 10 s
@needs_mu
def test_each_size_prints_its_import_and_mu_smallest_first():
    done = subprocess.run([sys.executable, "-m", "tests.bench.run", "--only", "scale",
                           "--scale-sizes", "60,25"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    # only the scale part ran: no corpus with attachments, no other import
    assert [line["bench"] for line in lines] == ["scale", "scale"]
    assert [line["messages"] for line in lines] == [25, 60]
    first, second = lines
    assert first["ms_per_message_over_smallest"] == 1.0
    assert second["ms_per_message_over_smallest"] == pytest.approx(
        second["ms_per_message"] / first["ms_per_message"], rel=0.01)
    for line in lines:
        assert line["ms_per_message"] == pytest.approx(
            line["seconds"] * 1000 / line["messages"], rel=0.1)
        assert line["import_over_mu_index"] == pytest.approx(
            line["mu_ms_per_message"] / line["ms_per_message"], rel=0.01)
        assert 0 < line["process_peak_mb"] <= line["tree_rss_peak_mb"]
        assert 0 < line["tree_pss_peak_mb"] <= line["tree_rss_peak_mb"]


def test_scale_is_not_among_the_default_parts(monkeypatch):
    monkeypatch.delenv("BENCH_ONLY", raising=False)
    monkeypatch.delenv("BENCH_SCALE_SIZES", raising=False)
    args = parse_args([])
    assert "scale" not in args.only and {"import", "plain", "smtp"} <= args.only
    assert args.scale_sizes == [5000, 20000, 80000]
    monkeypatch.setenv("BENCH_SCALE_SIZES", "100, 300")
    assert parse_args(["--only", "scale"]).scale_sizes == [100, 300]


@pytest.mark.parametrize("sizes", ["0,100", "ten", ","])
def test_sizes_that_are_no_counts_are_refused(sizes):
    done = subprocess.run([sys.executable, "-m", "tests.bench.run", "--only", "scale",
                           "--scale-sizes", sizes], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"argument --scale-sizes: invalid counts value: '{sizes}'" in done.stderr
