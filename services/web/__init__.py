"""The web UI and HTTP API (`archiver serve web`, port 8000): search, messages, export,
status, mirroring, mail sources, saved searches, retention, holds, users and the audit log,
for three roles (services.appliance.users). app.py wires routes and middleware; api.py is
/api/ (its OpenAPI document comes from the same route table, openapi.py); ui.py the
server-rendered pages' machinery (templates/, static/), sign-in with two-factor codes and
the smaller pages; search_page.py the results (results.py their model), message_page.py
the message view (message_tree.py its parts, sanitize.py its HTML, pdf_pages.py its PDFs),
admin_pages.py users, audit log, retention and holds (admin_actions.py what they do),
status_page.py status (charts.py its charts); export.py streamed evidence exports, run on
the transfers pool (transfers.py) like downloads; auth.py sessions, logins and CSRF
(pending_logins.py the second step of a two-factor login); access.py what a user may
read."""
