"""Frame policy for ``websockify-client`` (issue #20 §2): the relay with the roles turned.

In the client the WebSocket peer is a server, so our frames must be masked (RFC 6455
§5.3) and the server's frames arrive unmasked. ``ClientStream`` writes unmasked data
frame headers itself and recognises masked frames on its fast path; ``ServerPeerStream``
keeps everything else of it (close echo, pings, bounded text and base64 handling) and
lets wsproto, which masks in the client role, build every frame instead.
"""

from __future__ import annotations

import base64

from wsproto import WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, TextMessage

from proxy.protocol.stream import ClientStream, DataMode, Output

__all__ = ["ServerPeerStream"]


class ServerPeerStream(ClientStream):
    """``ClientStream`` for a wsproto connection in the client role."""

    def __init__(self, ws: WSConnection, mode: DataMode = DataMode.BINARY,
                 max_message_size: int = 64 * 1024 * 1024) -> None:
        assert ws.client, "a wsproto connection in the client role"
        super().__init__(ws, mode=mode, max_message_size=max_message_size)

    def _fast_binary(self, data: bytes, out: Output) -> bool:
        return False  # the fast path reads masked frames; a server's are not masked

    def frame_data(self, data: bytes) -> tuple[bytes, ...]:
        """One masked frame of ``data`` (wsproto masks); ``()`` once closing."""
        if self._ws.state is not ConnectionState.OPEN:
            return ()
        if self._mode is DataMode.BASE64:
            text = base64.b64encode(data).decode("ascii")
            return (self._ws.send(TextMessage(data=text)),)
        return (self._ws.send(BytesMessage(data=data)),)
