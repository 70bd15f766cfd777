"""A webhook receiver for tests: verifies every delivery with the `standardwebhooks` library.

Usage: webhook_receiver.py PORT SECRET LOG [HANG_FIRST_SECS]

Each request is appended to LOG as one JSON line:
  {"kind": "started", "webhook_id": ...}                           before a hung first request
  {"kind": "delivery", "valid": true, "webhook_id", "event"}       verified (answers 204)
  {"kind": "delivery", "valid": false, "webhook_id", "error"}      refused (answers 400)
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

PORT, SECRET, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
HANG_FIRST = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
WEBHOOK = Webhook(SECRET)
LOCK = threading.Lock()
STATE = {"first": True}


def log(record):
    with LOCK:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        webhook_id = headers.get("webhook-id")
        with LOCK:
            hang, STATE["first"] = STATE["first"] and HANG_FIRST > 0, False
        if hang:
            log({"kind": "started", "webhook_id": webhook_id})
            time.sleep(HANG_FIRST)
            return
        try:
            event = WEBHOOK.verify(body, headers)
        except WebhookVerificationError as e:
            log({"kind": "delivery", "valid": False, "webhook_id": webhook_id, "error": str(e)})
            self.send_response(400)
            self.end_headers()
            return
        log({"kind": "delivery", "valid": True, "webhook_id": webhook_id, "event": event})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
