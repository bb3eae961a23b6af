"""The appliance runtime, one package per stage of the data flow (../shared/DESIGN.md).

From the bottom up; a package imports only packages above it in this list, never one below
(tests/unit/test_layout.py checks it):

  common      configuration, atomic files, progress: needed by every stage, needing none
  archive     the store (LMDB), reading mail (MIME, mail files, extraction), index, search
  policy      replicated settings, saved searches, retention, litigation holds, audit log
  intake      SMTP, acceptance policy, journal mailboxes, journal reports, the intake gate
  mirror      trust, pairing, protocol, client, server, per-peer state, the mirror service
  appliance   systemd integration, service state, health, firstboot, netconfig, accounts
  web         HTTP API and web UI
  supervisor  runs one service or all of them in one process
  cli         the `archiver` command: one thin module per command group; imported by nothing
"""
