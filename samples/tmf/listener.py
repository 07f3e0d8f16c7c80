"""A TMF622 event listener to watch o2a's hub with: it prints one line per event it receives
and answers 204. Standard library only.

    python samples/tmf/listener.py --port 9000 --secret S

Register it with the hub (an integrator key), giving it the same secret:

    curl -X POST $TMF/hub -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
        -d '{"callback": "http://localhost:9000/listener", "secret": "S"}'

Each line has the eventType, the eventId, the order and its state, the milestone, alert or
error an event carries, and with ``--secret`` whether the ``X-O2A-Signature`` header holds
``sha256=`` + the hex HMAC-SHA256 of the raw body under that secret ("signature ok") or not
("signature BAD"). o2a delivers each subscription's events one at a time, in order, and
again until the listener answers 2xx, so the listener drops an eventId it already printed.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
from collections import deque
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

SIGNATURE_HEADER = "X-O2A-Signature"
MAX_BODY = 1 << 20
SEEN = 10_000
"""eventIds remembered to drop a delivery o2a repeated (its answer was lost)."""


def signed(secret: str, body: bytes, header: str | None) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(header, expected)


def describe(event: dict[str, Any]) -> str:
    """``eventType eventId order=... state=...`` and what the event is about."""
    body = event.get("event") or {}
    words = [str(event.get("eventType")), str(event.get("eventId"))]
    task = body.get("cancelProductOrder")
    order = body.get("productOrder") or (task or {}).get("productOrder") or {}
    words.append(f"order={order.get('id')}")
    if task is not None:
        words.append(f"cancelProductOrder={task.get('id')}")
    resource = task if task is not None else order
    if "state" in resource:
        words.append(f"state={resource['state']}")
    for key, label, name in (
        ("productOrderMilestone", "milestone", "name"),
        ("productOrderJeopardyAlert", "jeopardy", "name"),
        ("productOrderErrorMessage", "error", "code"),
        ("errorMessage", "error", "message"),
    ):
        for entry in resource.get(key) or []:
            items = ",".join(i["productOrderItemId"] for i in entry.get("productOrderItem", []))
            words.append(f"{label}={entry.get(name)}" + (f"@{items}" if items else ""))
    return " ".join(words)


class EventServer(HTTPServer):
    def __init__(self, address: tuple[str, int], secret: str | None) -> None:
        super().__init__(address, Listener)
        self.secret = secret
        self.seen: deque[str] = deque(maxlen=SEEN)


class Listener(BaseHTTPRequestHandler):
    server: EventServer

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            self.send_error(413 if length.isdigit() else 411)
            return
        body = self.rfile.read(int(length))
        try:
            event = json.loads(body)
            line = describe(event)
        except (ValueError, AttributeError, KeyError, TypeError):
            self.send_error(400, "not a TMF event")
            return
        ok = True
        if self.server.secret is not None:
            ok = signed(self.server.secret, body, self.headers.get(SIGNATURE_HEADER))
            line += " signature ok" if ok else " signature BAD"
        if event.get("eventId") not in self.server.seen:
            print(line, flush=True)
            if ok:  # a forged event cannot suppress the real one
                self.server.seen.append(event.get("eventId"))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """One line per event is all it prints."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0: any free port")
    parser.add_argument("--secret", help="the subscription's secret: check each signature")
    args = parser.parse_args()
    server = EventServer((args.host, args.port), args.secret)
    host, port = server.server_address[:2]
    print(f"listening on http://{host!s}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
