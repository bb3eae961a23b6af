"""A command line argparse refuses: its usage and error on stderr with exit 2, as argparse
gives them, and under --json the error on stdout too ({"error", "exit_code"}), as for
every other failed --json command: a script reading stdout was told nothing."""
import json

import pytest

from services.cli.main import main

REFUSED = [
    (["search", "--json", "--bogus", "x"], "unrecognized arguments: --bogus"),
    (["nosuch", "--json"], "invalid choice: 'nosuch'"),
    (["search", "--limit", "abc", "x", "--json"], "argument --limit: invalid int value: 'abc'"),
    (["hold", "add", "--json"], "the following arguments are required: --saved"),
    (["export", "--json", "--format", "pdf", "q", "out"], "argument --format: invalid choice"),
]


@pytest.mark.parametrize("argv, error", REFUSED, ids=lambda value: " ".join(value)
                         if isinstance(value, list) else None)
def test_a_refused_command_line_is_said_in_json_too(argv, error, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("usage: archiver") and error in err
    answer = json.loads(out)
    assert answer["exit_code"] == 2 and error in answer["error"]
    assert answer["error"].startswith("archiver")


@pytest.mark.parametrize("argv, error", REFUSED[:3])
def test_without_json_stdout_stays_empty(argv, error, capsys):
    assert main([arg for arg in argv if arg != "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and error in err


def test_help_still_prints_and_exits_zero(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["search", "--help"])
    assert exited.value.code == 0 and "usage: archiver search" in capsys.readouterr().out


@pytest.mark.parametrize("asked", ["--js", "--jso", "--json=yes"])
def test_json_asked_by_an_abbreviation_is_answered_in_json(asked, capsys):
    """argparse takes "--js" for --json: a script that wrote it got JSON from a command
    that ran, and nothing on stdout from one refused."""
    assert main(["search", asked, "--bogus", "x"]) == 2
    answer = json.loads(capsys.readouterr().out)
    assert answer["exit_code"] == 2


def test_json_past_a_double_dash_is_a_query(capsys):
    assert main(["search", "--bogus", "--", "--json"]) == 2
    assert capsys.readouterr().out == ""
