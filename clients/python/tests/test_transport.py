"""Tests of the client's redirect, retry and error handling against a fake
server on localhost (no cluster needed)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import unittest
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from boat_client import BoatError, Client
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from boat_client import BoatError, Client


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that gave up on an answer (a timeout test) is expected.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class Fake:
    """Two servers: a 'follower' and a 'leader', with scripted answers."""

    def __init__(self) -> None:
        self.seen = []  # (server, method, path, headers, body)
        self.script = {}  # server name -> list of (status, headers, body) answers, then default
        self.servers = {}
        for name in ("follower", "leader"):
            srv = _Server(("127.0.0.1", 0), self._handler(name))
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


def job_view(id, seed, app="flowers", templates=("mlp_classifier",), status="running", **extra):
    """A job as GET /api/jobs answers it (the fields create_job compares)."""
    view = {"id": id, "app": app, "task": "classification", "status": status, "train_dataset": "iris",
            "validation_dataset": None, "templates": list(templates), "seed": seed,
            "budget": {"trials": 2}, "trials_done": 0}
    view.update(extra)
    return view


class TrainingRequestsTest(unittest.TestCase):
    """Request shapes of the training calls, and create_job's refusal to be sent twice."""

    def setUp(self) -> None:
        self.fake = Fake()
        self.addCleanup(self.fake.close)
        self.c = Client(self.fake.url("follower"), token="tok", max_retry_wait=0.01)

    def sent(self):
        """(server, method, path, decoded JSON body or None) of every request so far."""
        return [(n, m, p, json.loads(b) if b else None) for n, m, p, _, b in self.fake.seen]

    def test_templates(self):
        self.fake.script["follower"] = [(200, {}, {"templates": [{"name": "mlp_classifier", "kind": "builtin"}]})]
        self.assertEqual(self.c.list_templates(), [{"name": "mlp_classifier", "kind": "builtin"}])
        space = {"knobs": {"epochs": {"kind": "integer", "min": 10, "max": 100}}}
        self.fake.script["follower"] = [(201, {}, {"name": "mine", "kind": "container"})]
        self.assertEqual(self.c.register_template("mine", "trainer:1", space, description="a trainer"),
                         {"name": "mine", "kind": "container"})
        self.fake.script["follower"] = [(204, {}, b"")]
        self.assertIsNone(self.c.delete_template("my template"))
        self.assertEqual(self.sent(), [
            ("follower", "GET", "/api/templates", None),
            ("follower", "POST", "/api/templates", {"name": "mine", "task": "classification", "image": "trainer:1",
                                                    "knob_config": space, "description": "a trainer"}),
            ("follower", "DELETE", "/api/templates/my%20template", None),
        ])
        self.assertEqual(self.fake.seen[1][3]["Content-Type"], "application/json")

    def test_create_job_minimal_body_gets_a_client_seed(self):
        self.fake.script["follower"] = [(201, {}, job_view(1, 0))]
        self.c.create_job("flowers", "iris", "mlp_classifier")
        self.c.create_job("flowers", "iris", ["mlp_classifier"])
        (_, m1, p1, b1), (_, _, _, b2) = self.sent()
        self.assertEqual((m1, p1), ("POST", "/api/jobs"))
        seed = b1.pop("seed")
        self.assertIsInstance(seed, int)
        self.assertTrue(0 <= seed < 2 ** 53)
        self.assertNotEqual(seed, b2.pop("seed"), "each job gets its own random seed")
        self.assertEqual(b1, {"app": "flowers", "task": "classification", "train_dataset": "iris",
                              "templates": ["mlp_classifier"]})
        self.assertEqual(b1, b2)

    def test_create_job_full_body(self):
        self.fake.script["follower"] = [
            (200, {}, {"jobs": []}),  # the look for older jobs with the same seed
            (201, {}, job_view(4, 9)),
        ]
        job = self.c.create_job(
            "flowers", "iris", ("mlp_classifier", "logistic_regression"), task="classification",
            validation_dataset="iris-val", trials=6, minutes=10, workers=2, cpus=0.5, memory_mb=512,
            advisor="random", runtime="local", knobs={"mlp_classifier": {"epochs": 30, "hidden_units": {
                "kind": "integer", "min": 8, "max": 32}}},
            deploy_best="flowers-app", deploy_members=2, deploy_rule="mean_probabilities", seed=9,
        )
        self.assertEqual(job["id"], 4)
        (_, m0, p0, _), (_, m1, p1, body) = self.sent()
        self.assertEqual((m0, p0, m1, p1), ("GET", "/api/jobs", "POST", "/api/jobs"))
        self.assertEqual(body, {
            "app": "flowers", "task": "classification", "train_dataset": "iris",
            "templates": ["mlp_classifier", "logistic_regression"], "validation_dataset": "iris-val",
            "budget": {"trials": 6, "minutes": 10.0, "workers": 2, "cpus": 0.5, "memory_mb": 512},
            "advisor": "random", "runtime": "local",
            "knobs": {"mlp_classifier": {"epochs": 30, "hidden_units": {"kind": "integer", "min": 8, "max": 32}}},
            "deploy_best": "flowers-app", "deploy_members": 2, "deploy_rule": "mean_probabilities", "seed": 9,
        })

    def test_create_job_follows_a_redirect_once(self):
        leader = self.fake.url("leader")
        self.fake.script["follower"] = [(307, {"Location": leader + "/api/jobs"}, {"error": "node 2 leads"})]
        self.fake.script["leader"] = [(201, {}, job_view(1, 5))]
        self.assertEqual(self.c.create_job("flowers", "iris", "mlp_classifier")["id"], 1)
        sent = self.sent()
        self.assertEqual([(n, m) for n, m, _, _ in sent], [("follower", "POST"), ("leader", "POST")])
        self.assertEqual(sent[0][3], sent[1][3])

    def test_create_job_is_not_resent_after_a_503_and_finds_the_job_it_created(self):
        def created(handler):
            seed = json.loads(self.fake.seen[0][4])["seed"]
            return {"jobs": [job_view(1, seed + 1), job_view(2, seed, app="other"), job_view(3, seed)]}

        self.fake.script["follower"] = [
            (503, {"Retry-After": "0"}, {"error": "not committed within 1s; check GET /api/jobs"}),
            (200, {}, created),
        ]
        job = self.c.create_job("flowers", "iris", "mlp_classifier")
        self.assertEqual(job["id"], 3)
        self.assertEqual([(m, p) for _, m, p, _ in self.sent()], [("POST", "/api/jobs"), ("GET", "/api/jobs")])

    def test_create_job_503_without_the_job_is_raised_without_a_resend(self):
        self.fake.script["follower"] = [
            (503, {"Retry-After": "0"}, {"error": "no leader is known right now"}),
            (200, {}, {"jobs": [job_view(1, 2 ** 53)]}),  # no client seed is this large
        ]
        with self.assertRaises(BoatError) as cm:
            self.c.create_job("flowers", "iris", "mlp_classifier")
        self.assertEqual(cm.exception.status, 503)
        self.assertIn("no leader is known right now", cm.exception.message)
        self.assertIn("list_jobs()", cm.exception.message)
        self.assertEqual(cm.exception.body, {"error": "no leader is known right now"})
        methods = [m for _, m, _, _ in self.sent()]
        self.assertEqual(methods.count("POST"), 1)
        self.assertEqual(methods.count("GET"), 3)  # looked for the job a few times

    def test_create_job_with_a_seed_ignores_older_identical_jobs(self):
        self.fake.script["follower"] = [
            (200, {}, {"jobs": [job_view(1, 7, status="completed")]}),
            (503, {"Retry-After": "0"}, {"error": "this leader lost contact with a majority"}),
            (200, {}, {"jobs": [job_view(1, 7, status="completed")]}),
            (200, {}, {"jobs": [job_view(1, 7, status="completed"), job_view(2, 7)]}),
        ]
        job = self.c.create_job("flowers", "iris", "mlp_classifier", seed=7)
        self.assertEqual(job["id"], 2)
        self.assertEqual([m for _, m, _, _ in self.sent()], ["GET", "POST", "GET", "GET"])

    def test_create_job_answer_lost_to_a_timeout_is_found(self):
        def slow(handler):
            time.sleep(0.5)
            return job_view(1, 0)

        def listed(handler):
            return {"jobs": [job_view(8, json.loads(self.fake.seen[0][4])["seed"])]}

        self.fake.script["follower"] = [(201, {}, slow), (200, {}, listed)]
        c = Client(self.fake.url("follower"), timeout=0.2, max_retry_wait=0.01)
        self.assertEqual(c.create_job("flowers", "iris", "mlp_classifier")["id"], 8)
        self.assertEqual([m for _, m, _, _ in self.sent()], ["POST", "GET"])

    def test_create_job_refused_at_once_sends_nothing(self):
        with self.assertRaises(urllib.error.URLError):
            Client("http://127.0.0.1:1").create_job("flowers", "iris", "mlp_classifier")

    def test_other_job_calls(self):
        self.fake.script["follower"] = [(200, {}, {"jobs": [], "trials": [], "ok": True})]
        c = self.c
        self.assertEqual(c.list_jobs(), [])
        c.get_job(3)
        c.get_job({"id": 3, "status": "running"})
        c.get_job("3")
        c.stop_job(3)
        self.assertEqual(c.list_trials(3), [])
        self.assertEqual(c.best_trials({"id": 3}), [])
        c.best_trials(3, n=2)
        c.trial_logs("3-2")
        c.trial_logs({"id": "3-1", "job": 3, "no": 1}, since=5, limit=10)
        c.node_logs(2, since=7)
        self.assertEqual([(m, p) for _, m, p, _ in self.sent()], [
            ("GET", "/api/jobs"),
            ("GET", "/api/jobs/3"),
            ("GET", "/api/jobs/3"),
            ("GET", "/api/jobs/3"),
            ("POST", "/api/jobs/3/stop"),
            ("GET", "/api/jobs/3/trials"),
            ("GET", "/api/jobs/3/best?n=1"),
            ("GET", "/api/jobs/3/best?n=2"),
            ("GET", "/api/trials/3-2/logs?since=0"),
            ("GET", "/api/trials/3-1/logs?since=5&limit=10"),
            ("GET", "/api/nodes/2/logs?since=7"),
        ])
        with self.assertRaises(TypeError):
            c.get_job(None)
        with self.assertRaises(ValueError):
            c.trial_logs({"status": "running"})

    def test_stop_job_is_retried_like_other_writes(self):
        self.fake.script["follower"] = [(503, {"Retry-After": "0"}, {"error": "no leader"}),
                                        (200, {}, job_view(3, 1, status="stopped"))]
        self.assertEqual(self.c.stop_job(3)["status"], "stopped")
        self.assertEqual(len(self.fake.seen), 2)

    def test_wait_for_job(self):
        self.fake.script["follower"] = [
            (200, {}, job_view(5, 1)),
            (503, {"Retry-After": "0"}, {"error": "no leader"}),  # an election: retried
            (200, {}, job_view(5, 1, trials_done=1)),
            (200, {}, job_view(5, 1, status="completed", trials_done=2)),
        ]
        done = self.c.wait_for_job({"id": 5}, timeout_s=10, poll_s=0.01)
        self.assertEqual((done["status"], done["trials_done"]), ("completed", 2))
        self.assertEqual({p for _, _, p, _ in self.sent()}, {"/api/jobs/5"})
        self.assertEqual(len(self.fake.seen), 4)

    def test_wait_for_job_times_out(self):
        self.fake.script["follower"] = [(200, {}, job_view(5, 1, trials_done=1))]
        start = time.monotonic()
        with self.assertRaises(TimeoutError) as cm:
            self.c.wait_for_job(5, timeout_s=0.3, poll_s=0.05)
        self.assertLess(time.monotonic() - start, 5)
        self.assertIn("train job 5", str(cm.exception))
        self.assertIn("1 of 2 trials", str(cm.exception))
        self.fake.script["follower"] = [(404, {}, {"error": "no train job 6"})]
        with self.assertRaises(BoatError) as cm:
            self.c.wait_for_job(6, timeout_s=5, poll_s=0.01)
        self.assertEqual(cm.exception.status, 404)


if __name__ == "__main__":
    unittest.main()
