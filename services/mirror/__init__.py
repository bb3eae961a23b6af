"""Copying everything archived to peer appliances of the same model and firmware: trust from
the shared secret (trust.py), what peers say (protocol.py), sending (client.py) and receiving
(server.py), each peer's state and queue (state.py), and the service that runs both
(service.py). Built on services.archive and services.policy (settings travel in the hello)."""
