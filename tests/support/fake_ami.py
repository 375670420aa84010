"""A scripted AMI peer on loopback, for failures a real Asterisk can't be told to produce:
a link that stays open but stops answering, or drops with an action in flight."""

from __future__ import annotations

import asyncio


class FakeAMI:
    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self.connections = 0
        self.answer_pings = True
        self.drop_on_action: str | None = None
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                fields = dict(line.split(": ", 1) for line in
                              block.decode().strip().split("\r\n") if ": " in line)
                self.received.append(fields)
                action = fields.get("Action", "")
                if action == self.drop_on_action:
                    writer.close()
                    return
                if action == "Ping" and not self.answer_pings:
                    continue
                reply = {"Response": "Success", "ActionID": fields.get("ActionID", "")}
                if action == "Ping":
                    reply["Ping"] = "Pong"
                if action == "Login":
                    reply["Message"] = "Authentication accepted"
                writer.write(("".join(f"{k}: {v}\r\n" for k, v in reply.items())
                              + "\r\n").encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
