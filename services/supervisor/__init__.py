"""Runs the appliance's services (runtime.py): one per process under systemd, or all of them
in one process (`archiver run`, its indexer in a child process); starts, watches and stops
their threads and tasks and pings the watchdog. It imports every stage it runs, web
included; only the CLI imports it."""
