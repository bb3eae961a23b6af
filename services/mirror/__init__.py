"""Copying everything archived to peer appliances of the same model and firmware: pinned node
certificates (trust.py) that peers exchange by proving the shared secret with SPAKE2
(pairing.py), what peers say (protocol.py), sending (client.py) and receiving
(server.py), each peer's state and queue (state.py), and the service that runs both
(service.py). Built on services.archive and services.policy (settings travel in the hello)."""
