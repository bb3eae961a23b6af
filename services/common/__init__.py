"""What every stage needs and that needs none of them: the configuration file
(archiver.yaml, config.py), the mirror secret's strength rule (mirror_secret.py), crash-safe
file writes (atomic_file.py) and progress on stderr (progress.py). Errors derive from
firmware.errors.ArchiverError, shared with the firmware package below all of services."""
