"""The bottom stage of the data flow: everything archived, and finding it again.

archive.py     an archive on disk (store, index, the model it is sized for)
store.py       LMDB: raw messages by SHA-256, metadata, logs with cursors, settings
group_commit.py  one durable commit for many concurrent writers
mime.py        reading a message's headers and parts (RFC 5322/2045/2047)
charsets.py    charset labels (WHATWG and Python), text charsets only, detection
mailfiles.py   reading and writing mail files: Maildir, mbox, .eml, zip
extract.py     body and attachment text, in sandboxed worker processes
filetypes.py   an attachment's type from its content (libmagic)
containers.py  files inside TNEF, zip and S/MIME signed-data
documents.py   text of PDF, .doc, .xls, RTF, OpenDocument by Debian's tools
tools.py       running those tools on a stranger's file, with limits
index.py       the Xapian schema: prefixes, value slots, document building
indexer.py     the single Xapian writer following the store's arrival log
search.py      the query syntax and searching
"""
