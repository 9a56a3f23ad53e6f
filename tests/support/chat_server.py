"""A small OpenAI-compatible chat server, run as its own process by the fleet tests: a real server
on loopback that a test can kill -9 at a known moment.

    python tests/support/chat_server.py [--upstream URL] [--delay S] [--die-after N] [--echo-auth answer|malformed]
                                [--lists NAMES] [--answers-as NAME] [--trickle S] [--trickle-from status|body]

Prints its port on the first line of stdout, then serves until killed. It answers
/v1/chat/completions with "echo: <the last message>" (the same on every server, so a moved request
gets the answer it would have got), or with what `--upstream` (a real vLLM server) answers.
`--die-after N`: SIGKILL itself when the N-th chat request arrives, with that request and any others
in flight unanswered. `--echo-auth`: echo the request's Authorization header, in the answer or in a
reply that is no answer (a JSON object without choices).

A server of another model: `--lists NAMES` are the ids of its /v1/models (comma-separated; default
fleet-model; `--lists none`: it has no such route, 404), `--answers-as NAME` the model its replies
name (default: the one asked) and the word its answers start with in place of "echo" (another model
answers otherwise). A server that never finishes a reply: `--trickle S` sends the reply's headers,
then its body one byte every S s (`--trickle-from status`: the whole reply so, from the first byte
of its status line).
"""

from __future__ import annotations

import argparse
import http
import http.server
import json
import os
import signal
import threading
import time
import urllib.request


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", default=None)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--die-after", type=int, default=None)
    parser.add_argument("--echo-auth", choices=["answer", "malformed"], default=None)
    parser.add_argument("--lists", default="fleet-model")
    parser.add_argument("--answers-as", default=None)
    parser.add_argument("--trickle", type=float, default=None)
    parser.add_argument("--trickle-from", choices=["status", "body"], default="body")
    args = parser.parse_args()
    lock = threading.Lock()
    seen = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if args.upstream:
                listing = args.upstream.rstrip("/") + self.path.removeprefix("/v1")
                with urllib.request.urlopen(listing, timeout=30) as response:
                    self.send(response.status, json.loads(response.read()))
            elif args.lists == "none" or self.path != "/v1/models":
                self.send(404, {"detail": "Not Found"})
            else:
                self.send(
                    200,
                    {
                        "object": "list",
                        "data": [{"id": name, "object": "model"} for name in args.lists.split(",")],
                    },
                )

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                seen[0] += 1
                if args.die_after is not None and seen[0] >= args.die_after:
                    os.kill(os.getpid(), signal.SIGKILL)
            if args.upstream:
                request = urllib.request.Request(
                    args.upstream.rstrip("/") + self.path.removeprefix("/v1"),
                    data=body,
                    method="POST",
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=300) as response:
                    self.send(response.status, json.loads(response.read()))
                return
            time.sleep(args.delay)
            asked = json.loads(body)
            auth = str(self.headers.get("Authorization"))
            if args.echo_auth == "malformed":
                self.send(200, {"error": "not authorised", "authorization": auth})
                return
            text = (
                f"{args.answers_as or 'echo'}: "
                + asked["messages"][-1]["content"]
                + (f" ({auth})" if args.echo_auth else "")
            )
            self.send(
                200,
                {
                    "id": "x",
                    "object": "chat.completion",
                    "model": args.answers_as or asked["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": 1,
                        "completion_tokens": len(text.split()),
                        "total_tokens": 1 + len(text.split()),
                    },
                },
            )

        def send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            head = (
                f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\nContent-Type:"
                f" application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            reply = head + data
            at_once = (
                len(reply)
                if args.trickle is None
                else len(head)
                if args.trickle_from == "body"
                else 0
            )
            try:
                self.wfile.write(reply[:at_once])
                for i in range(at_once, len(reply)):
                    self.wfile.flush()
                    time.sleep(args.trickle)
                    self.wfile.write(reply[i : i + 1])
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up, as it should

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
