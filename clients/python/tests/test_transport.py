"""Tests of the client's redirect, retry and error handling against a fake
server on localhost (no cluster needed)."""

from __future__ import annotations

import json
import os
import sys
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from boat_client import BoatError, Client
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from boat_client import BoatError, Client


class Fake:
    """Two servers: a 'follower' and a 'leader', with scripted answers."""

    def __init__(self) -> None:
        self.seen = []  # (server, method, path, headers, body)
        self.script = {}  # server name -> list of (status, headers, body) answers, then default
        self.servers = {}
        for name in ("follower", "leader"):
            srv = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(name))
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            self.servers[name] = srv

    def url(self, name: str) -> str:
        return "http://127.0.0.1:%d" % self.servers[name].server_address[1]

    def close(self) -> None:
        for srv in self.servers.values():
            srv.shutdown()
            srv.server_close()

    def _handler(self, name: str):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                fake.seen.append((name, self.command, self.path, dict(self.headers), body))
                answers = fake.script.get(name) or []
                if answers:
                    status, headers, out = answers.pop(0) if len(answers) > 1 else answers[0]
                else:
                    status, headers, out = 200, {}, {"ok": True, "echo": body.decode() or None}
                if callable(out):
                    out = out(self)
                raw = out if isinstance(out, bytes) else json.dumps(out).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        return Handler


class TransportTest(unittest.TestCase):
    def setUp(self) -> None:
        self.fake = Fake()
        self.addCleanup(self.fake.close)

    def test_307_is_followed_with_same_method_body_and_headers(self):
        leader = self.fake.url("leader")
        self.fake.script["follower"] = [
            (307, {"Location": leader + "/api/datasets/d?task=classification"},
             {"error": "node 2 is the leader", "leader_id": 2}),
        ]
        c = Client(self.fake.url("follower"), token="tok")
        resp = c.upload_dataset("d", b"a,b\n1,2\n")
        self.assertEqual(resp["echo"], "a,b\n1,2\n")
        (n1, m1, p1, h1, b1), (n2, m2, p2, h2, b2) = self.fake.seen
        self.assertEqual((n1, n2), ("follower", "leader"))
        self.assertEqual(m1, "POST")
        self.assertEqual(m2, "POST")
        self.assertEqual(p1, p2)
        self.assertEqual(p2, "/api/datasets/d?task=classification")
        self.assertEqual(b1, b2)
        self.assertEqual(h2["Authorization"], "Bearer tok")
        self.assertEqual(h2["Content-Type"], "text/csv")

    def test_json_requests_and_put_delete_are_redirected(self):
        leader = self.fake.url("leader")
        self.fake.script["follower"] = [(307, {"Location": leader + "/api/apps/a/members"}, {"error": "x"})]
        c = Client(self.fake.url("follower"))
        c.set_app_members("a", ["m:2", "n", {"model": "o", "version": 1}])
        name, method, path, headers, body = self.fake.seen[-1]
        self.assertEqual((name, method), ("leader", "PUT"))
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertNotIn("Authorization", headers)
        self.assertEqual(json.loads(body), {"members": [{"model": "m", "version": 2}, {"model": "n"},
                                                        {"model": "o", "version": 1}]})

    def test_redirect_loop_gives_up(self):
        me = self.fake.url("follower")
        self.fake.script["follower"] = [(307, {"Location": me + "/predict"}, {"error": "loop"})]
        with self.assertRaises(BoatError) as cm:
            Client(me).predict(["x"])
        self.assertEqual(cm.exception.status, 307)
        self.assertEqual(len(self.fake.seen), 6)  # the request and 5 redirects

    def test_503_with_retry_after_is_retried(self):
        self.fake.script["follower"] = [
            (503, {"Retry-After": "0"}, {"error": "no leader"}),
            (503, {"Retry-After": "0"}, {"error": "no leader"}),
            (200, {}, {"ok": True}),
        ]
        self.assertEqual(Client(self.fake.url("follower")).status(), {"ok": True})
        self.assertEqual(len(self.fake.seen), 3)

    def test_503_retries_are_bounded(self):
        self.fake.script["follower"] = [(503, {"Retry-After": "0"}, {"error": "no leader"})]
        with self.assertRaises(BoatError) as cm:
            Client(self.fake.url("follower"), max_attempts=4).status()
        self.assertEqual(cm.exception.status, 503)
        self.assertEqual(cm.exception.message, "no leader")
        self.assertEqual(len(self.fake.seen), 4)

    def test_503_after_redirect_starts_over_at_the_first_node(self):
        leader = self.fake.url("leader")
        self.fake.script["follower"] = [
            (307, {"Location": leader + "/predict"}, {"error": "x"}),
            (200, {}, {"ok": "follower"}),
        ]
        self.fake.script["leader"] = [(503, {"Retry-After": "0"}, {"error": "cut off"})]
        self.assertEqual(Client(self.fake.url("follower")).predict(["x"]), {"ok": "follower"})
        self.assertEqual([s[0] for s in self.fake.seen], ["follower", "leader", "follower"])

    def test_503_without_retry_after_and_429_are_not_retried(self):
        self.fake.script["follower"] = [(503, {}, {"error": "down"})]
        with self.assertRaises(BoatError):
            Client(self.fake.url("follower")).status()
        self.fake.script["follower"] = [(429, {"Retry-After": "0"}, {"error": "busy"})]
        with self.assertRaises(BoatError) as cm:
            Client(self.fake.url("follower")).status()
        self.assertEqual(cm.exception.status, 429)
        self.assertEqual(len(self.fake.seen), 2)

    def test_refused_leader_starts_over(self):
        dead = "http://127.0.0.1:1"  # nothing listens on port 1
        self.fake.script["follower"] = [
            (307, {"Location": dead + "/predict"}, {"error": "x"}),
            (200, {}, {"ok": True}),
        ]
        self.assertEqual(Client(self.fake.url("follower")).predict(["x"]), {"ok": True})
        self.assertEqual(len(self.fake.seen), 2)

    def test_errors(self):
        self.fake.script["follower"] = [(422, {}, {"error": "line 3: bad", "line": 3})]
        with self.assertRaises(BoatError) as cm:
            Client(self.fake.url("follower")).get_dataset("x")
        e = cm.exception
        self.assertEqual((e.status, e.message, e.body), (422, "line 3: bad", {"error": "line 3: bad", "line": 3}))
        self.assertIn("422", str(e))
        self.fake.script["follower"] = [(400, {}, b"Failed to deserialize query string")]
        with self.assertRaises(BoatError) as cm:
            Client(self.fake.url("follower")).get_dataset("x")
        self.assertEqual(cm.exception.message, "Failed to deserialize query string")

    def test_login_keeps_token_logout_drops_it_and_paths_are_quoted(self):
        self.fake.script["follower"] = [(200, {}, {"token": "boat_t", "expires_at_ms": 1, "user": {}})]
        c = Client(self.fake.url("follower"))
        c.login("a@b.c", "pw", ttl_seconds=60)
        self.assertEqual(c.token, "boat_t")
        self.assertEqual(json.loads(self.fake.seen[-1][4]), {"email": "a@b.c", "password": "pw", "ttl_seconds": 60})
        self.fake.script["follower"] = [(200, {}, {"ok": True})]
        c.ban_user("a b/c@d")
        self.assertEqual(self.fake.seen[-1][2], "/api/users/a%20b%2Fc%40d/ban")
        self.assertEqual(self.fake.seen[-1][3]["Authorization"], "Bearer boat_t")
        c.logout()
        self.assertEqual(self.fake.seen[-1][1:3], ("DELETE", "/api/tokens/current"))
        self.assertIsNone(c.token)

    def test_predict_bodies(self):
        c = Client(self.fake.url("follower").replace("http://", ""))  # scheme is optional
        c.predict([[1.0]], model="m", version=2, key="k")
        self.assertEqual(self.fake.seen[-1][2], "/predict")
        self.assertEqual(json.loads(self.fake.seen[-1][4]), {"input": [[1.0]], "model": "m", "version": 2, "id": "k"})
        c.predict([[1.0]], app="my app", key="k2")
        self.assertEqual(self.fake.seen[-1][2], "/apps/my%20app/predict")
        self.assertEqual(json.loads(self.fake.seen[-1][4]), {"input": [[1.0]], "id": "k2"})
        with self.assertRaises(ValueError):
            c.predict([[1.0]], app="a", model="m")


if __name__ == "__main__":
    unittest.main()
