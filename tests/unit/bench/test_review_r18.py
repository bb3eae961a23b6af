"""Review r18 of dcdd24c (`make bench --only scale`): bad settings given through the
environment are refused as clearly as the same values given as options, and a choice of
parts that names none is refused rather than run as an empty benchmark.

Each case runs the benchmark's command line for real; every one is refused while parsing
its arguments (exit 2, before any corpus is made), so none runs a benchmark."""
import subprocess
import sys

import pytest

BAD_VALUES = ["ten", "-3", "1e3", "0x10"]  # not counts, or not at least 1
# $BENCH_* variable -> the option it stands for (tests.bench.run.parse_args)
COUNT_VARIABLES = {"BENCH_MESSAGES": "--messages",
                   "BENCH_PLAIN_MESSAGES": "--plain-messages",
                   "BENCH_ROUNDS": "--rounds",
                   "BENCH_SCALE_SIZES": "--scale-sizes"}


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path), **(env or {})}
    return subprocess.run([sys.executable, "-m", "tests.bench.run", *args],
                          capture_output=True, text=True, timeout=60, env=environment)


@pytest.mark.parametrize("variable", sorted(COUNT_VARIABLES))
@pytest.mark.parametrize("value", BAD_VALUES)
def test_a_bad_count_in_the_environment_is_refused_naming_the_variable(variable, value):
    done = bench("--only", "scale", "--scale-sizes", "5", env={variable: value})
    assert done.returncode == 2, done.stderr[-1500:]
    assert "Traceback" not in done.stderr
    # the reader set a variable, not the option: the message must say which
    assert f"${variable}" in done.stderr or variable in done.stderr, done.stderr[-500:]


@pytest.mark.parametrize("only", ["", ",", " , "])
@pytest.mark.parametrize("through", ["option", "environment"])
def test_a_choice_of_no_part_is_refused(only, through):
    done = (bench("--only", only) if through == "option"
            else bench(env={"BENCH_ONLY": only}))
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], done.stderr[-500:])
    assert "scale" in done.stderr  # the message lists the parts one may pick
