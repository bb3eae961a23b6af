"""The web UI and HTTP API (`archiver serve web`, port 8000): search, messages, export,
status, mirroring, mail sources, saved searches, retention, holds and the audit log, for
three roles (services.appliance.users). app.py wires routes and middleware; api.py is /api/ (its
OpenAPI document comes from the same route table, openapi.py); ui.py the server-rendered
pages (templates/, static/); auth.py sessions, logins and CSRF; access.py what a user may
read."""
