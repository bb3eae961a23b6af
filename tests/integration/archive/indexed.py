"""A small archive of named messages, stored and indexed, for the search and reading tests."""
from __future__ import annotations

from pathlib import Path

from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.indexer import Indexer
from services.archive.search import search
from services.archive.store import Envelope


def indexed_archive(data_dir: Path, mails: dict, envelope: Envelope | None = None,
                    model: int = 450) -> Archive:
    """An open Archive of `model` in data_dir holding `mails` (name -> raw bytes, or name ->
    (raw bytes, Envelope or None)), arrived by SMTP and indexed. Each message without its own
    envelope gets `envelope`. The archive carries .raws (name -> raw bytes), .digests
    (name -> digest) and .names (digest -> name); the caller closes it."""
    archive = Archive(data_dir, model)
    pairs = {name: mail if isinstance(mail, tuple) else (mail, envelope)
             for name, mail in mails.items()}
    archive.raws = {name: raw for name, (raw, _) in pairs.items()}
    archive.digests = {name: archive.store.put(raw, its_envelope, "smtp")
                       for name, (raw, its_envelope) in pairs.items()}
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        Indexer(archive.store, archive.index_dir(), pool).catch_up()
    archive.names = {digest: name for name, digest in archive.digests.items()}
    return archive


def names_found(archive: Archive, query: str, **options) -> list[str]:
    """The names of the messages `query` finds, in result order (options as for search())."""
    return [archive.names[hit.digest]
            for hit in search(archive.index_dir(), query, **options).hits]
