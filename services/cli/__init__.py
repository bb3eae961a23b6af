"""The `archiver` command (main.py): one module per command group, each argument parsing and
printing over the stages below. main.py imports only the group of the command given, so a
command loads only what it drives. Nothing imports this package."""
