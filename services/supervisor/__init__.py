"""Runs the appliance's services (runtime.py): one per process under systemd, or all of them
in one process (`archiver run`); starts, watches and stops their threads and tasks and pings
the watchdog. It imports every stage it runs, web included; only the CLI imports it."""
