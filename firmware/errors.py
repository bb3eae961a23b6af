"""The base of every error a user can act on: the CLI prints its message, not a traceback."""


class ArchiverError(Exception):
    exit_code = 2
