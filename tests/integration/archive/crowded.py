"""An index of more matches than searches count exactly: COUNT_LIMIT + 1 real documents
(built by index.build_document from three real messages)."""
from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from pathlib import Path

import xapian

from services.archive.extract import extract
from services.archive.index import SCHEMA_KEY, SCHEMA_VERSION, build_document
from services.archive.search import COUNT_LIMIT

GAMMA = 1234  # documents holding "gamma"; all hold "alpha", COUNT_LIMIT of them "beta"
SENT = dt.datetime(2024, 3, 4, 10, 0, tzinfo=dt.timezone.utc).timestamp()


def fill(index_dir: Path) -> None:
    database = xapian.WritableDatabase(str(index_dir), xapian.DB_CREATE_OR_OPEN)
    kinds = {words: extract(_mail(words), 1000)
             for words in ("alpha beta gamma", "alpha beta", "alpha")}
    for number in range(1, COUNT_LIMIT + 2):
        words = "alpha beta gamma" if number <= GAMMA else \
            "alpha beta" if number <= COUNT_LIMIT else "alpha"
        meta = {"number": number, "size": 1000, "received": SENT, "sent_date": SENT - number}
        database.replace_document(number, build_document(f"{number:064x}", meta, kinds[words]))
    database.set_metadata(SCHEMA_KEY, str(SCHEMA_VERSION))  # written by this code
    database.commit()
    database.close()


def _mail(words: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", words
    message["Date"], message["Message-ID"] = "Mon, 04 Mar 2024 10:00:00 +0000", "<c@example.com>"
    message.set_content("counted mail")
    return message.as_bytes()
