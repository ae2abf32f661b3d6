"""A tiny fake OpenAI-compatible server: POST /v1/chat/completions, plain JSON or SSE streaming.

Standard library only. Every call answers the same completion, so the traces the instrumentation
libraries record are predictable:

    content        "Hello from the fake model! OTLP is great."
    model          gpt-4o-mini-2024-07-18
    id             chatcmpl-fake123
    finish_reason  stop
    usage          prompt 19, completion 10, total 29

Requests that offer `tools` and have no message with role "tool" yet are answered with one
call of the first offered function instead (finish_reason tool_calls, same id, model and usage):

    tool call      id call_fake1, function <first tool's name>, arguments {"city": "Paris"}

so a tool loop makes exactly two calls: the tool call, then (with the tool's result in the
messages) the fixed answer above. Requests without `tools` are unaffected.

As a module: `port = start()` serves on 127.0.0.1 (port 0 = any free port) from a daemon thread
and returns the port; `requests` lists the parsed request bodies received.
As a program: `python fake_openai.py [PORT]` prints the port and serves until interrupted.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT = "Hello from the fake model! OTLP is great."
MODEL = "gpt-4o-mini-2024-07-18"
COMPLETION_ID = "chatcmpl-fake123"
FINISH_REASON = "stop"
USAGE = {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}
# How the streamed answer is cut into deltas (their concatenation is CONTENT).
STREAM_PIECES = ["Hello", " from the fake model!", " OTLP", " is great."]
TOOL_CALL_ID = "call_fake1"
TOOL_ARGUMENTS = '{"city":"Paris"}'
# How the streamed tool call's arguments are cut (their concatenation is TOOL_ARGUMENTS).
TOOL_ARGUMENT_PIECES = ['{"city":', '"Paris"}']

# Bodies of the requests received (for debugging and assertions by callers).
requests = []


def _tool_call(request):
    """The name of the function to call, or None when the request gets the plain answer."""
    tools = request.get("tools") or []
    if not tools or any(m.get("role") == "tool" for m in request.get("messages") or []):
        return None
    return ((tools[0] or {}).get("function") or {}).get("name") or "get_weather"


def _completion(created, tool=None):
    message = {"role": "assistant", "content": CONTENT, "refusal": None}
    if tool:
        message = {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": TOOL_CALL_ID,
                    "type": "function",
                    "function": {"name": tool, "arguments": TOOL_ARGUMENTS},
                }
            ],
        }
    return {
        "id": COMPLETION_ID,
        "object": "chat.completion",
        "created": created,
        "model": MODEL,
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool else FINISH_REASON,
            }
        ],
        "usage": dict(USAGE),
    }


def _chunks(created, include_usage, tool=None):
    def chunk(delta, finish_reason=None):
        body = {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL,
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            body["usage"] = None
        return body

    if tool:
        yield chunk(
            {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": TOOL_CALL_ID,
                        "type": "function",
                        "function": {"name": tool, "arguments": ""},
                    }
                ],
            }
        )
        for piece in TOOL_ARGUMENT_PIECES:
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls")
    else:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in STREAM_PIECES:
            yield chunk({"content": piece})
        yield chunk({}, FINISH_REASON)
    # Like OpenAI: with stream_options.include_usage the usage comes in a last chunk without
    # choices. It is always sent here, so clients that forget the option still see it.
    yield {
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL,
        "system_fingerprint": "fp_fake",
        "choices": [],
        "usage": dict(USAGE),
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"

    def log_message(self, format, *args):  # keep stdout/stderr quiet
        pass

    def _send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0].rstrip("/")
        if not path.endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"unknown path {self.path}", "type": "not_found"}})
            return
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
            return
        requests.append(request)
        created = int(time.time())
        tool = _tool_call(request)
        if not request.get("stream"):
            self._send_json(200, _completion(created, tool))
            return

        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = [f"data: {json.dumps(c)}\n\n" for c in _chunks(created, include_usage, tool)]
        events.append("data: [DONE]\n\n")
        for event in events:
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": f"unknown path {self.path}", "type": "not_found"}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Clients closing kept-alive connections are not errors worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def start(port=0, host="127.0.0.1"):
    """Serves from a daemon thread; returns the port actually bound."""
    server = _Server((host, port), _Handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-openai", daemon=True)
    thread.start()
    return server.server_address[1]


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = _Server(("127.0.0.1", port), _Handler)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
