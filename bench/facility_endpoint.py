"""A facility's HL7 results receiver, on python-hl7's asyncio MLLP server (``hl7.mllp``).

The peer the outbox delivers to in the tests and the benchmark: it listens on
loopback (plain or TLS), reads each framed message with python-hl7, and answers
as its script says, one behaviour per message, then ``accept`` for ever:

``accept``   AA (python-hl7's ``create_ack``)
``error``    AE, with MSA-3 and an ERR segment
``reject``   AR, likewise
``garbage``  a frame that is not HL7
``close``    the whole message read, the connection closed without an answer
``mid``      a few bytes of the message read, the connection closed (mid-message)
``half``     half of an AA frame, then closed
``silent``   no answer at all; the connection stays open until the sender leaves

A behaviour is taken from the script when a message has been read (``mid``: when
a connection opens). It keeps what it accepted (MSH-10 and the parsed message, in arrival order) and
every message it read whatever it answered, so a test can check order and
duplicates, and :meth:`down` / :meth:`up` take the listener away and back on the
same port (an endpoint that is down refuses connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import hl7
from hl7.mllp import HL7StreamReader, HL7StreamWriter, start_hl7_server

T = TypeVar("T")
BEHAVIOURS = ("accept", "error", "reject", "garbage", "close", "mid", "half", "silent")


@dataclass(frozen=True)
class Received:
    control_id: str
    message: hl7.Message
    behaviour: str
    at: float  # time.monotonic() when it was read


class FacilityEndpoint:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        answer_delay: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        #: Seconds between reading a message and answering it (a slower RIS).
        self.answer_delay = answer_delay
        self.script: deque[str] = deque()
        self.read: list[Received] = []  # every message read, whatever the answer
        self.accepted: list[Received] = []  # answered AA
        self.connections = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[HL7StreamWriter] = set()

    # -- life -----------------------------------------------------------------------
    def __enter__(self) -> FacilityEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FacilityEndpoint:
        self._thread.start()
        self.up()
        return self

    def up(self) -> None:
        """Listen (again, on the same port)."""
        server: asyncio.Server = self._call(
            start_hl7_server(
                self._client, self.host, self.port, encoding="utf-8", ssl=self.ssl_context
            )
        )
        self._server = server
        self.port = int(server.sockets[0].getsockname()[1])

    def down(self) -> None:
        """Stop listening and drop the open connections: connections are refused."""
        if self._server is not None:
            server, self._server = self._server, None

            async def close() -> None:
                server.close()
                for writer in list(self._writers):
                    writer.close()
                await server.wait_closed()

            self._call(close())

    def stop(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    # -- what it does ---------------------------------------------------------------
    def then(self, *behaviours: str) -> FacilityEndpoint:
        """Answer the next connections so, in turn (after them: accept)."""
        for b in behaviours:
            if b not in BEHAVIOURS:
                raise ValueError(f"unknown behaviour {b!r}")
        with self._lock:
            self.script.extend(behaviours)
        return self

    def accepted_ids(self) -> list[str]:
        with self._lock:
            return [r.control_id for r in self.accepted]

    def first_arrivals(self) -> list[str]:
        """Accepted control IDs in order, each once (a receiver's deduplication)."""
        seen: dict[str, None] = {}
        for cid in self.accepted_ids():
            seen.setdefault(cid, None)
        return list(seen)

    def _next(self, only: str | None = None) -> str | None:
        """The next behaviour (``only``: that one, or None when another comes next)."""
        with self._lock:
            upcoming = self.script[0] if self.script else "accept"
            if only is not None and upcoming != only:
                return None
            if self.script:
                self.script.popleft()
            return upcoming

    async def _client(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        self._writers.add(writer)
        with self._lock:
            self.connections += 1
        try:
            if self._next("mid") is not None:  # close while the message is coming in
                await reader.read(16)
                return
            while True:
                try:
                    message = await reader.readmessage()
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                behaviour = self._next() or "accept"
                if self.answer_delay:
                    await asyncio.sleep(self.answer_delay)
                if not self._answer(message, behaviour, writer):
                    if behaviour == "silent":
                        with contextlib.suppress(Exception):
                            await reader.read()  # until the sender gives up
                    return
                await writer.drain()
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    def _answer(self, message: hl7.Message, behaviour: str, writer: HL7StreamWriter) -> bool:
        """Answer ``message``; False when the connection is to end now."""
        control_id = str(message.segment("MSH")[10])
        received = Received(control_id, message, behaviour, time.monotonic())
        with self._lock:
            self.read.append(received)
            if behaviour == "accept":
                self.accepted.append(received)
        if behaviour == "accept":
            writer.writemessage(message.create_ack("AA"))
        elif behaviour in ("error", "reject"):
            code, why = ("AE", "Unknown patient") if behaviour == "error" else ("AR", "Not taken")
            ack = str(message.create_ack(code)).rstrip("\r")
            err = f"ERR||PID^1^3|204^Unknown key identifier^HL70357|E||||{why} here"
            writer.writeblock(f"{ack}|{why}\r{err}\r".encode())
        elif behaviour == "garbage":
            writer.writeblock(b"\x00\x01 this is not HL7 \xff")
        elif behaviour == "half":
            whole = str(message.create_ack("AA")).encode()
            writer.write(b"\x0b" + whole[: len(whole) // 2])
            return False
        else:  # close, silent
            return False
        return True


def endpoint_with(behaviours: Iterable[str] = ()) -> FacilityEndpoint:
    """A started endpoint on a free loopback port that answers ``behaviours`` first."""
    return FacilityEndpoint().start().then(*behaviours)
