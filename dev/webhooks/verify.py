"""Checks Cabinet's webhook deliveries with the Standard Webhooks reference library.

Starts a receiver on loopback that verifies every delivery with
`standardwebhooks.Webhook(secret).verify(body, headers)`, registers it with the server named by
CABINET_URL/CABINET_KEY, makes changes, rotates the secret (after which a receiver that knows
only the old secret, and one that knows only the new, must both verify), and checks that every
event of the feed arrived, in order, once verified. Exits non-zero on the first failure.
"""

import json
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

URL = os.environ["CABINET_URL"]
KEY = os.environ["CABINET_KEY"]

secrets = []  # every secret the receiver accepts, newest last
received = []  # (webhook-id, payload, which secrets verified it)
failures = []
lock = threading.Lock()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        headers = {name.lower(): value for name, value in self.headers.items()}
        with lock:
            verified = []
            for secret in secrets:
                try:
                    payload = Webhook(secret).verify(body, headers)
                    verified.append(secret)
                except WebhookVerificationError:
                    pass
            if not verified:
                failures.append(f"{headers.get('webhook-id')}: verified by no secret")
            received.append((headers["webhook-id"], payload if verified else None, verified))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def api(method, path, body=None):
    request = urllib.request.Request(
        URL + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
        return json.loads(text) if text else None


def wait_for(count, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        with lock:
            if len(received) >= count:
                return
        time.sleep(0.05)
    sys.exit(f"waited 30 s for {what}: {len(received)} of {count} deliveries arrived")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver_url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    start = api("GET", "/v1/events?limit=1")["next_after"]
    hook = api("POST", "/v1/webhooks", {"url": receiver_url})
    with lock:
        secrets.append(hook["secret"])
    for n in range(5):
        api("POST", "/v1/folders", {"name": f"standard-webhooks-{n}"})
    wait_for(5, "the first five events")

    # Rotation: for the grace period each delivery is signed by both secrets.
    rotated = api("POST", f"/v1/webhooks/{hook['id']}/rotate-secret")
    with lock:
        secrets.append(rotated["secret"])
    for n in range(5, 8):
        api("POST", "/v1/folders", {"name": f"standard-webhooks-{n}"})
    wait_for(8, "the events after the rotation")

    feed = [e for e in api("GET", "/v1/events?after=0&limit=500")["data"] if e["seq"] > start]
    with lock:
        if failures:
            sys.exit("signature check failed: " + "; ".join(failures))
        ids = [webhook_id for webhook_id, _, _ in received]
        if ids != [e["id"] for e in feed]:
            sys.exit(f"deliveries {ids} are not the feed's events {[e['id'] for e in feed]} in order")
        for (webhook_id, payload, verified), event in zip(received, feed):
            if payload["id"] != event["id"] or payload["type"] != event["type"]:
                sys.exit(f"{webhook_id}: the payload is not the event: {payload}")
        after_rotation = [verified for _, _, verified in received[5:]]
        if not all(len(v) == 2 for v in after_rotation):
            sys.exit("after the rotation, each delivery must verify with the old and the new secret")
        if not all(len(v) == 1 and v[0] == secrets[0] for _, _, v in received[:5]):
            sys.exit("before the rotation, each delivery must verify with the first secret only")
    print(f"standardwebhooks verified {len(received)} deliveries (5 before a rotation, 3 signed by both secrets)")


if __name__ == "__main__":
    main()
