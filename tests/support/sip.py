"""A phone's SIP REGISTER with digest authentication (RFC 3261, RFC 2617 qop=auth), enough
to ask the real Asterisk whether it takes an extension's password."""

from __future__ import annotations

import hashlib
import re
import secrets
import socket


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _request(host: str, port: int, local: tuple[str, int], extension: str, call_id: str,
             cseq: int, expires: int, authorization: str = "") -> bytes:
    lines = [
        f"REGISTER sip:{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{extension}@{host}>;tag={call_id[:8]}",
        f"To: <sip:{extension}@{host}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{extension}@{local[0]}:{local[1]}>",
        f"Expires: {expires}",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode()


def _reply(sock: socket.socket) -> tuple[int, str]:
    data = sock.recv(65535).decode(errors="replace")
    status = int(data.split(" ", 2)[1])
    return status, data


def _digest(challenge: str, extension: str, password: str, uri: str) -> str:
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    cnonce, nc = secrets.token_hex(8), "00000001"
    ha1 = _md5(f"{extension}:{fields['realm']}:{password}")
    ha2 = _md5(f"REGISTER:{uri}")
    response = _md5(f"{ha1}:{fields['nonce']}:{nc}:{cnonce}:auth:{ha2}")
    opaque = f', opaque="{fields["opaque"]}"' if "opaque" in fields else ""
    return (f'Digest username="{extension}", realm="{fields["realm"]}", '
            f'nonce="{fields["nonce"]}", uri="{uri}", response="{response}", '
            f'algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"{opaque}')


def _exchange(sock: socket.socket, host: str, port: int, extension: str, password: str,
              call_id: str, cseq: int, expires: int) -> int:
    """One REGISTER, answering the digest challenge: the final status."""
    local = sock.getsockname()
    sock.send(_request(host, port, local, extension, call_id, cseq, expires))
    status, text = _reply(sock)
    while status == 100:
        status, text = _reply(sock)
    challenge = re.search(r"^WWW-Authenticate:\s*(Digest .*)$", text, re.M | re.I)
    if status != 401 or challenge is None or "MD5" not in challenge.group(1).upper():
        return status
    auth = _digest(challenge.group(1), extension, password, f"sip:{host}:{port}")
    sock.send(_request(host, port, local, extension, call_id, cseq + 1, expires, auth))
    status, _ = _reply(sock)
    while status == 100:
        status, _ = _reply(sock)
    return status


def register(sip_bind: str, extension: str, password: str, *, timeout: float = 5) -> int:
    """The final status of a REGISTER as ``extension`` with ``password``: 200 when Asterisk
    takes it (the registration is then removed again, so the phone's one contact is free),
    401/403 when not."""
    host, port = sip_bind.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind((host, 0))
        sock.connect((host, int(port)))
        call_id = secrets.token_hex(12)
        status = _exchange(sock, host, int(port), extension, password, call_id, 1, 60)
        if status == 200:
            _exchange(sock, host, int(port), extension, password, call_id, 3, 0)
        return status
