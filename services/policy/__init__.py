"""What the archive keeps and who changed it: replicated settings (last writer wins by a
hybrid logical clock, replicated.py), saved searches, retention policies and runs (and
when a message's retention starts, retention_clock.py), litigation holds, and the
hash-chained audit log. Built on services.archive."""
