"""A stdlib OpenAI-compatible chat server stub on loopback, recording every request.

It speaks the two routes salova uses: ``GET /v1/models`` and ``POST /v1/chat/completions``. Its answer cites
the first moment of the request (``content`` None) or is a fixed text; ``fail`` makes it answer HTTP 500.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _reply(self, code: int, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.server.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
        if self.path == "/v1/models":
            self._reply(200, {"object": "list", "data": [{"id": "stub-vl", "object": "model"}]})
        else:
            self._reply(404, {"error": {"message": "not found"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"method": "POST", "path": self.path, "body": body,
                                     "headers": dict(self.headers)})
        if self.server.fail:
            self._reply(500, {"error": {"message": "model crashed"}})
            return
        content = self.server.content
        if content is None:  # cite the first moment the request lists
            text = "".join(p.get("text", "") for p in body["messages"][1]["content"])
            content = "It happens at [" + re.search(r"Moment 1: (\d\d:\d\d:\d\d)", text).group(1) + "]."
        self._reply(200, {"id": "x", "object": "chat.completion", "model": body["model"], "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]})


def start_server() -> ThreadingHTTPServer:
    """Serve on 127.0.0.1 (a free port) in a daemon thread; ``.url`` is the ``/v1`` base, ``.shutdown()`` stops."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests, httpd.fail, httpd.content = [], False, None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    return httpd
