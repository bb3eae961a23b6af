"""The OpenAPI 3.0 document of /api/, made from the same table the routes are made from
(services.web.api.ENDPOINTS), so the two cannot drift apart."""
from __future__ import annotations

from firmware.system import this_version

ROLES_NOTE = ("Roles: admin (everything), auditor (all mail, saved searches, holds; no "
              "system settings), user (only mail from or to their own addresses).")

# How a client sends a hold id or a saved search's name (any text) in a path. A "/" as it
# is also works, since the name is the rest of the path, but a client may rewrite the
# "./" and "../" in a path before sending it: %2F is safe.
CHOSEN_NAME_IN_PATH = ("any text, percent-encoded as UTF-8 (% as %25, ? as %3F, # as %23, a "
                       "space as %20); send / as %2F")

_STRING, _INTEGER, _BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_OBJECT = {"type": "object", "additionalProperties": True}

SCHEMAS = {
    "Error": {"type": "object", "properties": {"error": _STRING}, "required": ["error"]},
    "Session": {"type": "object", "properties": {
        "name": _STRING, "role": {"type": "string", "enum": ["admin", "auditor", "user"]},
        "emails": {"type": "array", "items": _STRING},
        "csrf_token": {"type": "string", "description": "send as X-CSRF-Token with every "
                                                        "POST, PUT and DELETE"}}},
    "Hit": {"type": "object", "properties": {
        "digest": _STRING, "date": {"type": "string", "format": "date-time"},
        "from": _STRING, "subject": _STRING, "size": _INTEGER, "attachments": _INTEGER,
        "to": {"type": "array", "items": _STRING, "nullable": True,
               "description": "the first recipients (To, Cc, then hidden ones); null from "
                              "an index being rebuilt"},
        "recipients": {"type": "integer", "description": "how many recipients in all"},
        "extraction_failed": {"type": "string", "nullable": True}}},
    "SearchResults": {"type": "object", "properties": {
        "query": _STRING,
        "total": {"type": "integer", "description": "matches, exact up to 10,000 (then 10,000)"},
        "total_exact": {"type": "boolean", "description": "false: more than `total` match"},
        "total_text": {"type": "string", "description": "e.g. 1,234 or more than 10,000"},
        "notice": {"type": "string", "nullable": True,
                   "description": "why the answer may be incomplete (an index being "
                                  "rebuilt, mail not indexed yet)"},
        "not_indexed": {"type": "integer", "description": "messages stored or deleted that "
                        "the index has not taken in yet: while it is not 0, a message may "
                        "match and not be found, or be found and be gone (for the user "
                        "role, 1 for any number: the archive's traffic is not theirs)"},
        "offset": _INTEGER, "hits": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}}}},
    "Message": {"type": "object", "properties": {
        "digest": _STRING, "message_id": {"type": "string", "nullable": True},
        "from": _STRING, "subject": _STRING, "sent_date": {"type": "number", "nullable": True},
        "date_source": {"type": "string", "description": "what sent_date was read from: "
                        "date-header, received-header, mbox-from-line or arrival"},
        "received": {"type": "number"}, "size": _INTEGER, "stored_size": _INTEGER,
        "sender": {"type": "string", "nullable": True,
                   "description": "envelope sender"},
        "recipients": {"type": "array", "items": _STRING,
                       "description": "envelope recipients (Bcc included)"},
        "source": _STRING, "origin": _STRING,
        "headers": {"type": "array", "items": {"type": "object", "properties": {
            "name": _STRING, "value": _STRING}}},
        "attachments": {"type": "array", "description": "the message's files, numbered as "
                        "GET /api/messages/{digest}/attachments/{number} serves them (as "
                        "`archiver show` lists them)",
                        "items": {"$ref": "#/components/schemas/File"}},
        "attachment_names": {"type": "array", "items": _STRING, "description": (
            "the names the indexer recorded (what filename: searches), kept for older "
            "clients: not numbered as `attachments` -- files without a name are left out "
            "and an attached message's own files are in line -- so the Nth name need not "
            "be attachment N")}}},
    "File": {"type": "object", "properties": {
        "number": {"type": "integer", "description": "its download's number; none for a "
                   "file inside another (in `files`)"},
        "filename": {"type": "string", "nullable": True, "description": "the name the "
                     "message gives it; when it gives none (named false): attachment-N for a "
                     "numbered file (N its number: the name its download is saved under), "
                     "null for a file inside another (in `files`)"},
        "named": {"type": "boolean", "description": "false: the message gives no name"},
        "content_type": _STRING,
        "size": {"type": "integer", "nullable": True, "description": "decoded bytes; null "
                 "for a file that could not be read out of its container (`unreadable`)"},
        "files": {"type": "array", "items": {"$ref": "#/components/schemas/File"},
                  "description": "the files inside it as the message page lists them "
                                 "(to the page's depth): an attached message's own, a TNEF "
                                 "winmail.dat's, a zip's, those of an S/MIME signed "
                                 "object"},
        "not_opened": {"type": "string", "description": "only of a container (TNEF, zip, "
                       "S/MIME signed object) the view did not open, over what one view "
                       "opens: why `files` is empty; the file itself is downloadable"},
        "unreadable": {"type": "string", "description": "only of a file inside a container "
                       "(a zip's or TNEF's member) that could not be read out of it -- "
                       "encrypted, compressed in a way the archive cannot undo, corrupt, over "
                       "a limit -- why, as the indexer records it: it has no content to "
                       "download (download the container)"},
        "container_problem": {"type": "string", "description": "only of a container (TNEF, "
                              "zip, S/MIME signed object) with a problem as a whole, as the "
                              "indexer records it: why it could not be opened (`files` "
                              "empty; the file itself is downloadable), or why some of its "
                              "files are not listed (\"600 members; the first 500 are "
                              "listed\")"}}},
    "SavedSearch": {"type": "object", "properties": {"name": _STRING, "query": _STRING}},
    "Hold": {"type": "object", "properties": {
        "id": _STRING, "saved": _STRING, "by": _STRING,
        "until": {"type": "string", "format": "date", "nullable": True},
        "name": {"type": "string", "nullable": True, "description": "the matter's name"},
        "reason": {"type": "string", "nullable": True},
        "created": {"type": "number", "nullable": True,
                    "description": "epoch seconds; null for holds made before it was kept. "
                    "Names the hold to DELETE /api/holds/{id}"},
        "unreadable": {"type": "string", "nullable": True,
                       "description": "why the stored hold is not readable (then it holds "
                       "everything until removed); null for a readable hold"},
        "held_at_placement": {"type": "integer", "description": "messages the hold keeps "
                              "whatever its search matches later: what it matched when "
                              "placed and before each edit of its search"},
        "holds_everything": {"type": "string", "nullable": True,
                             "description": "why the hold keeps every message (its saved "
                             "search is gone or no longer parses; it is unreadable); null "
                             "when it keeps what its search matches"},
        "notice": {"type": "string", "nullable": True,
                   "description": "in the answer to POST /api/holds only, when the index was "
                   "behind when the hold was placed (what it recorded is what the index "
                   "showed; mail not indexed yet is held by its search once indexed)"}}},
    "Retention": {"type": "object", "properties": {
        "enabled": _BOOLEAN, "global_days": {"type": "integer", "nullable": True},
        "saved": {"type": "object", "additionalProperties": {
            "type": "integer", "nullable": True,
            "description": "days; null for a policy stored unreadable (its mail is kept)"}},
        "unusable": {"type": "object", "additionalProperties": _STRING,
                     "description": "saved search -> why its policy cannot be applied "
                                    "(retention then deletes nothing)"}}},
    "Peer": {"type": "object", "properties": {
        "peer": _STRING,
        "state": {"type": "string", "enum": ["connected", "offline", "refused", "waiting"]},
        "reason": _STRING, "queued": _INTEGER, "copied": _INTEGER,
        "last_success": {"type": "string", "nullable": True},
        "last_error": {"type": "string", "nullable": True}}},
    "Mirror": {"type": "object", "properties": {
        "supported": _BOOLEAN, "listen": _STRING, "secret_set": _BOOLEAN,
        "configured_peers": {"type": "array", "items": _STRING},
        "joined_peers": {"type": "array", "items": _STRING},
        "peers": {"type": "array", "items": {"$ref": "#/components/schemas/Peer"}}}},
    "Status": {"type": "object", "description": "what `archiver status --json` prints",
               "additionalProperties": True},
    "AuditEntry": {"type": "object", "properties": {
        "seq": _INTEGER, "time": {"type": "number"}, "who": _STRING, "role": _STRING,
        "action": _STRING, "details": _OBJECT, "previous": _STRING, "hash": _STRING}},
}

_ERRORS = {
    "400": ("the request is malformed (the reason is in error)", "Error"),
    "401": ("not logged in, or wrong credentials", "Error"),
    "403": ("the role may not do this, or the CSRF token is missing", "Error"),
    "404": ("no such message, attachment, saved search, hold or peer", "Error"),
    "429": ("too many failed logins: wait Retry-After seconds", "Error"),
}


def document(endpoints) -> dict:
    paths: dict[str, dict] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Archiver appliance API", "version": str(this_version()),
                 "description": "Search, read and export archived mail; status, mirroring, "
                                "saved searches, retention, holds and the audit log. "
                                + ROLES_NOTE + " Log in with POST /api/session (then send "
                                "the session cookie and X-CSRF-Token) or send HTTP Basic "
                                "credentials with each request (then POST, PUT and DELETE "
                                "need Content-Type: application/json). Every search, view "
                                "and export is written to the audit log."},
        "servers": [{"url": "/"}],
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": "archiver_session"},
            "basic": {"type": "http", "scheme": "basic"}}},
        "security": [{"session": []}, {"basic": []}],
        "paths": paths,
    }


def _operation(endpoint) -> dict:
    operation = {"summary": endpoint.summary, "operationId": endpoint.handler.__name__,
                 "description": _description(endpoint),
                 "parameters": [_parameter(p) for p in endpoint.params]
                 + [_path_parameter(name, endpoint.names_in_path)
                    for name in _path_names(endpoint.path)],
                 "responses": _responses(endpoint)}
    if endpoint.public:
        operation["security"] = []
    if endpoint.body is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": endpoint.body}}}
    return operation


def _description(endpoint) -> str:
    if endpoint.public:
        return "No login needed."
    return f"Roles: {', '.join(endpoint.roles)}."


def _parameter(param) -> dict:
    schema = {"type": param.type}
    if param.enum:
        schema["enum"] = list(param.enum)
    if param.default is not None:
        schema["default"] = param.default
    return {"name": param.name, "in": "query", "required": param.required,
            "description": param.description, "schema": schema}


def _path_parameter(name: str, chosen_name: bool) -> dict:
    """A path parameter; one that names what someone chose (any text) says how to send it."""
    parameter = {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
    if chosen_name:
        parameter["description"] = CHOSEN_NAME_IN_PATH
    return parameter


def _path_names(path: str) -> list[str]:
    return [piece[1:-1] for piece in path.split("/") if piece.startswith("{")]


def _responses(endpoint) -> dict:
    if endpoint.produces == "application/json":
        schema = ({"$ref": f"#/components/schemas/{endpoint.response}"}
                  if isinstance(endpoint.response, str) else endpoint.response or _OBJECT)
        content = {"application/json": {"schema": schema}}
    else:
        content = {kind: {"schema": {"type": "string", "format": "binary"}}
                   for kind in endpoint.produces.split(",")}
    responses = {"200": {"description": "done", "content": content}}
    for code, (text, schema_name) in _ERRORS.items():
        if code in ("401", "403") and endpoint.public and endpoint.method == "GET":
            continue
        responses[code] = {"description": text, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{schema_name}"}}}}
    return responses
