"""moto's server on a loopback port, and a small proxy in front of it for the answers moto
does not give: it answers the next requests of one Auto Scaling action in the API's error
shape (e.g. Throttling, AccessDenied), or with a recorded answer (a failed scaling
activity), and forwards everything else to moto."""
from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from quartermaster.testbed.processes import free_port
from recorded_cloud import serving

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # moto takes any


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server answering on a free loopback port; its URL. Every moto server in one
    process serves the same state (moto's backends are module globals)."""
    # imported here: moto takes most of a second to import, which every test run (conftest
    # imports this module) would otherwise pay
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._port}"
    finally:
        server.stop()


class FailingProxy(ThreadingHTTPServer):
    """Forwards to moto, except that the next `count` requests for `action` get `code`
    (`fail`) or a recorded answer (`answer`); `failed` counts the requests so answered
    since."""

    daemon_threads = True

    def __init__(self, moto_url: str):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream_port = int(moto_url.rsplit(":", 1)[1])
        self.action, self.reply, self.count, self.failed = "", (200, b""), 0, 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def fail(self, action: str, code: str, count: int) -> None:
        self.answer(action, 400, (
            '<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type>'
            f'<Code>{code}</Code><Message>injected by the test</Message></Error>'
            '<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>'), count)

    def answer(self, action: str, status: int, body: str, count: int) -> None:
        with self.lock:
            self.action, self.reply, self.count, self.failed = action, (status, body.encode()), count, 0

    def take_reply(self, body: bytes) -> tuple[int, bytes] | None:
        """The (status, body) to answer a request of `body` with, None to forward it."""
        with self.lock:
            if not self.count or f"Action={self.action}&".encode() not in body + b"&":
                return None
            self.count -= 1
            self.failed += 1
            return self.reply


def scaling_activity(group: str, status: str, message: str, start: str = "2026-12-06T21:00:01.500Z") -> str:
    """A DescribeScalingActivities answer with one activity of `group`, in the API's recorded shape."""
    return ('<DescribeScalingActivitiesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
            '<DescribeScalingActivitiesResult><Activities><member>'
            '<ActivityId>f9f2d65b-f1f2-43e7-b46d-d86756459699</ActivityId>'
            f'<AutoScalingGroupName>{group}</AutoScalingGroupName>'
            f'<Description>Launching a new EC2 instance.  Status Reason: {message}</Description>'
            '<Cause>At 2026-12-06T21:00:00Z an instance was started in response to a difference between desired '
            'and actual capacity, increasing the capacity from 2 to 3.</Cause>'
            f'<StartTime>{start}</StartTime><EndTime>{start}</EndTime><StatusCode>{status}</StatusCode>'
            f'<StatusMessage>{message}</StatusMessage><Progress>100</Progress>'
            '</member></Activities></DescribeScalingActivitiesResult>'
            '<ResponseMetadata><RequestId>7a641d3b-8b71-11e4-9b36-000000000000</RequestId></ResponseMetadata>'
            '</DescribeScalingActivitiesResponse>')


@contextmanager
def failing_proxy(moto_url: str) -> Iterator[FailingProxy]:
    with serving(FailingProxy(moto_url)) as server:
        yield server


class _ProxyHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        reply = self.server.take_reply(body)
        if reply is not None:
            self._answer(reply[0], "text/xml", reply[1])
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=30)
        upstream.request("POST", self.path, body, dict(self.headers))
        response = upstream.getresponse()
        self._answer(response.status, response.getheader("Content-Type", "text/xml"), response.read())
        upstream.close()

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass
