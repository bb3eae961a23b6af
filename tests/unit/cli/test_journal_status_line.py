"""`archiver journal status` prints an account's last error, a mail server's words, on its
account's line: a line break or a terminal's controls in them forged another account's
line or erased the lines above."""
from services.cli.journal import _status_line


def test_a_servers_error_stays_on_its_accounts_line():
    line = _status_line({"account": "exchange", "state": "error", "protocol": "imap",
                         "server": "mail.example:993", "last_poll": None, "last_success": None,
                         "imported_total": 0, "duplicates_total": 0, "last_error_at": None,
                         "last_error": "NO denied\rbackup: ok; imap x\x1b[2K\u202e"})
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line.endswith("last error: NO denied\\rbackup: ok; imap x\\x1b[2K\\u202e")
