"""Mail coming in: SMTP journaling (smtp.py) under an acceptance policy (acceptance.py),
journal mailboxes over IMAP/POP3 (journal_mailbox.py), Exchange journal reports
(journal_report.py), and the gate every intake path passes (gate.py): unwrap, store
durably before acknowledging, back-pressure. Built on services.archive."""
