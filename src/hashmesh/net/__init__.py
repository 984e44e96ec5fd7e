"""The networking transport: TLS 1.3 over TCP, bound to node keys, multiplexed.

Dial, serve and request through :class:`Endpoint`; see ``docs/protocol.md``
("Transport") for the wire format and the identity handshake.
"""

from hashmesh.net.config import TransportConfig
from hashmesh.net.connection import Connection, Handler
from hashmesh.net.endpoint import Endpoint, PeerAddress
from hashmesh.net.framing import Code, FrameType
from hashmesh.net.handshake import PeerIdentity
from hashmesh.net.loop import install_event_loop, run
from hashmesh.net.pool import Pool

__all__ = [
    "Code",
    "Connection",
    "Endpoint",
    "FrameType",
    "Handler",
    "PeerAddress",
    "PeerIdentity",
    "Pool",
    "TransportConfig",
    "install_event_loop",
    "run",
]
