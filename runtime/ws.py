"""A minimal blocking WebSocket client (RFC 6455, stdlib only) for the control stream.

Why not the `websockets` package: its sync client reads in a background thread, and the hand-off between
threads costs more per step than the whole frame work; a robot's control loop sends one message and waits
for one answer, which a plain blocking socket does with nothing in between. Text frames only, client side
masking, ping answered, no extensions (the server's replies are small).
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class WebSocketClosed(ConnectionError):
    """The server closed the stream (its close code and reason in the message) or the socket broke."""

    def __init__(self, code: int, reason: str):
        self.code, self.reason = code, reason
        super().__init__(f"stream closed by the server (code {code}): {reason or 'no reason given'}")


class WebSocket:
    """One client connection: `send(text)`, `recv() -> text`, `close()`."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str] | None = None,
                 timeout: float | None = 30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small frames go out at once
        self.file = self.sock.makefile("rb")
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status = self.file.readline().decode("latin-1").strip()
        reply = {}
        while (line := self.file.readline().decode("latin-1").strip()):
            name, _, value = line.partition(":")
            reply[name.strip().lower()] = value.strip()
        if not status.startswith("HTTP/1.1 101"):
            self.sock.close()
            raise WebSocketClosed(int(status.split()[1]) if len(status.split()) > 1 else 0,
                                  f"handshake refused: {status}")
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if reply.get("sec-websocket-accept") != accept:
            self.sock.close()
            raise WebSocketClosed(0, "handshake answered with a wrong Sec-WebSocket-Accept")
        self.closed = False

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        key = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")  # one XOR
        self.sock.sendall(head + mask + masked)

    def send(self, text: str) -> None:
        """Send one text message."""
        self._send_frame(TEXT, text.encode())

    def _read(self, n: int) -> bytes:
        data = self.file.read(n)
        if len(data) != n:
            self.closed = True
            raise WebSocketClosed(1006, "connection lost")
        return data

    def recv(self) -> str:
        """The next text message (pings are answered on the way; a close frame raises WebSocketClosed)."""
        parts: list[bytes] = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)  # servers do not mask
            opcode = b0 & 0x0F
            if opcode == PING:
                self._send_frame(PONG, payload)
            elif opcode == CLOSE:
                self.closed = True
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise WebSocketClosed(code, payload[2:].decode(errors="replace"))
            elif opcode != PONG:
                parts.append(payload)
                if b0 & 0x80:  # FIN: the message is complete
                    return b"".join(parts).decode()

    def close(self) -> None:
        """Say goodbye (close frame, code 1000) and close the socket."""
        if not self.closed:
            try:
                self._send_frame(CLOSE, struct.pack("!H", 1000))
            except OSError:
                pass
            self.closed = True
        self.file.close()
        self.sock.close()
