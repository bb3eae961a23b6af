"""The bottom stage of the data flow: everything archived, and finding it again.

archive.py     an archive on disk (store, index, the model it is sized for)
store.py       LMDB: raw messages by SHA-256, metadata, logs with cursors, settings
group_commit.py  one durable commit for many concurrent writers
mime.py        reading a message's headers and parts (RFC 5322/2045/2047)
message_date.py  a message's date from its own evidence (Date, Received, From_ line)
metadata.py    the store's header metadata, read at put and read anew by the indexer
mailfiles.py   reading and writing mail files: Maildir, mbox, .eml, zip; import's limits
mailtree.py    walking the trees import is given, never leaving them (no symlinks)
mbox.py        the mbox format: From_ lines, splitting at real separators, mboxrd quoting
extract.py     body and attachment text, in sandboxed worker processes
charsets.py    charset labels (WHATWG and Python), text charsets only, detection
filetypes.py   an attachment's type from its content (libmagic)
containers.py  files inside TNEF, zip and S/MIME signed-data
documents.py   text of PDF, .doc, .xls, RTF, OpenDocument by Debian's tools
pdf_text_server.py  pdftotext's text of PDFs from one long-running process per worker
docx_text.py   text of a Word .docx from its main document part (python-docx)
html_text.py   the visible text of HTML, read without building its tree (lxml)
tools.py       running those tools on a stranger's file, with limits
extraction_memo.py  what could not be read, by SHA-256, so it costs its time once
words.py       text into search terms (ICU word breaks, folding, CJK n-grams)
terms.py       the terms of a field's text, addresses and file names in a document
index.py       the Xapian schema: prefixes, value slots, document building
indexer.py     the single Xapian writer following the store's arrival log
reindex.py     rebuilding the index beside the live one, then switching over
dates.py       date expressions of queries, in the appliance's time zone
query.py       the query syntax: a tree that becomes a Xapian query and explains itself
search.py      running a query: hits newest first, exact counts
"""
