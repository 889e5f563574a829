"""Integration tests of boat_client against a real Boat cluster.

Environment:
    BOAT_URLS          comma-separated base URLs of every node
                       (e.g. http://127.0.0.1:8080,http://127.0.0.1:8081,http://127.0.0.1:8082)
    BOAT_ADMIN_TOKEN   the cluster's admin (superadmin) bearer token
    BOAT_MODELS_DIR    the repository's models/ directory (mlp.onnx)
    BOAT_DATASETS_DIR  the repository's datasets/ directory (iris.csv)

Without BOAT_URLS every test is skipped. Run with
``python3 -m unittest discover -s clients/python/tests -v``; the package is
imported from the source tree when it is not installed.
"""

from __future__ import annotations

import json
import os
import sys
import time
import unittest
import urllib.error
import urllib.request
import uuid

try:
    from boat_client import BoatError, Client
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from boat_client import BoatError, Client

IRIS_ROW = [[5.1, 3.5, 1.4, 0.2]]
PASSWORD = "correct-horse-battery"

_cluster = None


def _env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise unittest.SkipTest(f"{name} is not set")
    return value


class Cluster:
    """The nodes of the cluster under test and one follower among them."""

    def __init__(self) -> None:
        self.urls = [u.strip().rstrip("/") for u in _env("BOAT_URLS").split(",") if u.strip()]
        self.admin_token = _env("BOAT_ADMIN_TOKEN")
        self.models_dir = _env("BOAT_MODELS_DIR")
        self.datasets_dir = _env("BOAT_DATASETS_DIR")
        self.leader_url, self.follower_url, self.leader_status = self._find_roles()

    def _find_roles(self, wait_s: float = 30.0):
        """Waits for a leader; returns (leader url, follower url, leader's /status)."""
        deadline = time.monotonic() + wait_s
        last = None
        while time.monotonic() < deadline:
            statuses = {}
            for url in self.urls:
                try:
                    statuses[url] = Client(url, timeout=5).status()
                except (BoatError, OSError) as e:
                    last = e
            leaders = [u for u, s in statuses.items() if s.get("is_leader")]
            followers = [
                u for u, s in statuses.items()
                if not s.get("is_leader") and s.get("leader_id") is not None
            ]
            if len(leaders) == 1 and followers:
                return leaders[0], followers[0], statuses[leaders[0]]
            time.sleep(0.2)
        raise AssertionError(f"no leader with a live follower among {self.urls} (last error: {last!r})")

    def admin(self) -> Client:
        """The superadmin, talking to a follower."""
        return Client(self.follower_url, token=self.admin_token)

    def new_user(self, role: str):
        """Creates a user with a unique email; returns (email, logged-in client on a follower)."""
        email = f"{role.lower()}-{uuid.uuid4().hex[:12]}@test.example"
        created = self.admin().create_user(email, PASSWORD, role)
        assert created["email"] == email and created["role"] == role, created
        client = Client(self.follower_url)
        client.login(email, PASSWORD)
        assert client.me()["email"] == email
        return email, client


def setUpModule() -> None:  # noqa: N802 (unittest's name)
    global _cluster
    _cluster = Cluster()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class ClientTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls) -> None:
        cls.c = _cluster

    # 1 ---------------------------------------------------------------
    def test_1_create_user_and_login_through_follower(self):
        c = self.c
        admin = c.admin()
        st = admin.status()
        self.assertFalse(st["is_leader"], "the admin client must talk to a follower")
        self.assertIsNotNone(st["leader_id"])
        self.assertNotEqual(st["node_id"], st["leader_id"])

        # The follower really redirects a login: 307 with the same path on the leader.
        raw = urllib.request.Request(
            c.follower_url + "/api/tokens", method="POST",
            data=json.dumps({"email": "nobody", "password": "x"}).encode(),
            headers={"Content-Type": "application/json"},
        )

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.build_opener(NoRedirect()).open(raw, timeout=10)
        self.assertEqual(cm.exception.code, 307)
        self.assertEqual(cm.exception.headers["Location"], f"http://{st['leader_http']}/api/tokens")
        body = json.loads(cm.exception.read())
        cm.exception.close()
        self.assertEqual(body["leader_id"], st["leader_id"])

        email = f"appdev-{uuid.uuid4().hex}@test.example"
        user = admin.create_user(email, PASSWORD, "APP_DEVELOPER")
        self.assertEqual(user["email"], email)
        self.assertEqual(user["role"], "APP_DEVELOPER")
        self.assertFalse(user["banned"])
        self.assertIsInstance(user["id"], int)
        self.assertGreater(user["created_at_ms"], 0)
        self.assertIn(email, [u["email"] for u in admin.list_users()])

        dev = Client(c.follower_url)
        login = dev.login(email, PASSWORD)
        self.assertTrue(login["token"])
        self.assertEqual(dev.token, login["token"])
        self.assertEqual(login["user"]["email"], email)
        self.assertEqual(login["user"]["id"], user["id"])
        self.assertGreater(login["expires_at_ms"], int(time.time() * 1000))
        me = dev.me()
        self.assertEqual(me["email"], email)
        self.assertEqual(me["role"], "APP_DEVELOPER")
        self.assertEqual(me["id"], user["id"])

        # Duplicate email: 409 with Boat's JSON error.
        with self.assertRaises(BoatError) as cm2:
            admin.create_user(email, PASSWORD, "APP_DEVELOPER")
        self.assertEqual(cm2.exception.status, 409)
        self.assertIsInstance(cm2.exception.body, dict)
        self.assertEqual(cm2.exception.body["error"], cm2.exception.message)

    # 2 ---------------------------------------------------------------
    def test_2_datasets(self):
        _, dev = self.c.new_user("APP_DEVELOPER")
        name = unique("iris")
        path = os.path.join(self.c.datasets_dir, "iris.csv")
        ds = dev.upload_dataset(name, path)
        self.assertEqual(ds["name"], name)
        self.assertEqual(ds["task"], "classification")
        self.assertEqual(ds["rows"], 150)
        self.assertEqual(ds["target"], "target")
        self.assertEqual(ds["class_counts"], {"0": 50, "1": 50, "2": 50})
        self.assertEqual(ds["size_bytes"], os.path.getsize(path))
        self.assertEqual(len(ds["columns"]), 5)
        self.assertEqual(ds["columns"][-1]["name"], "target")
        self.assertEqual(ds["owner"], dev.me()["id"])

        listed = {d["name"]: d for d in dev.list_datasets()}
        self.assertIn(name, listed)
        self.assertEqual(listed[name]["sha256"], ds["sha256"])
        got = dev.get_dataset(name)
        self.assertEqual(got["rows"], 150)
        self.assertEqual(got["sha256"], ds["sha256"])

        # Bytes instead of a path, with an explicit target.
        with open(path, "rb") as f:
            data = f.read()
        ds2 = dev.upload_dataset(unique("iris-bytes"), data, target="petal_width_cm", task="regression")
        self.assertEqual(ds2["target"], "petal_width_cm")
        self.assertEqual(ds2["task"], "regression")
        self.assertEqual(ds2["sha256"], ds["sha256"])
        # (Read before the delete: a follower looks the dataset up in its own
        # state before redirecting the delete, and could answer 404 for one
        # created a moment ago; the read barrier makes it catch up.)
        self.assertEqual(dev.get_dataset(ds2["name"])["target"], "petal_width_cm")
        dev.delete_dataset(ds2["name"])

        deleted = dev.delete_dataset(name)
        self.assertEqual(deleted["name"], name)
        self.assertNotIn(name, [d["name"] for d in dev.list_datasets()])
        with self.assertRaises(BoatError) as cm:
            dev.get_dataset(name)
        self.assertEqual(cm.exception.status, 404)

        with self.assertRaises(BoatError) as cm:
            dev.upload_dataset(unique("bad"), b"a,b\n1,2\n3\n")
        self.assertEqual(cm.exception.status, 422)
        self.assertIn("line 3", cm.exception.message)
        self.assertEqual(cm.exception.body["error"], cm.exception.message)

    # 3 ---------------------------------------------------------------
    def test_3_model_and_app_predictions(self):
        _, mdev = self.c.new_user("MODEL_DEVELOPER")
        model = unique("mlp")
        up = mdev.upload_model(model, os.path.join(self.c.models_dir, "mlp.onnx"))
        self.assertEqual(up["name"], model)
        self.assertEqual(up["version"], 1)
        self.assertEqual(up["default_version"], 1)
        self.assertEqual([o["name"] for o in up["outputs"]], ["label", "probabilities"])
        self.assertIn(model, [m["name"] for m in mdev.list_models()])
        self.assertEqual(mdev.get_model(model)["default_version"], 1)

        # Predict through the follower: redirected to the leader.
        p = mdev.predict(IRIS_ROW, model=model)
        self.assertEqual(p["model"], model)
        self.assertEqual(p["version"], 1)
        self.assertEqual(p["output"]["label"], [0])
        probs = p["output"]["probabilities"]
        self.assertEqual(len(probs), 1)
        self.assertEqual(len(probs[0]), 3)
        self.assertGreater(probs[0][0], 0.9)
        self.assertAlmostEqual(sum(probs[0]), 1.0, places=4)
        self.assertFalse(p["duplicate"])
        self.assertGreater(p["index"], 0)
        self.assertGreater(p["term"], 0)
        self.assertIsInstance(p["node_id"], int)

        # Pinned version and idempotency key.
        key = unique("key")
        k1 = mdev.predict(IRIS_ROW, model=model, version=1, key=key)
        k2 = mdev.predict(IRIS_ROW, model=model, version=1, key=key)
        self.assertEqual(k1["id"], key)
        self.assertFalse(k1["duplicate"])
        self.assertTrue(k2["duplicate"])
        self.assertEqual(k2["index"], k1["index"])
        self.assertEqual(k2["output"], k1["output"])

        # Second version, default switching, version deletion.
        up2 = mdev.upload_model(model, os.path.join(self.c.models_dir, "mlp.onnx"))
        self.assertEqual(up2["version"], 2)
        mdev.set_default_version(model, 1)
        self.assertEqual(mdev.get_model(model)["default_version"], 1)
        mdev.delete_version(model, 2)
        self.assertEqual([v["version"] for v in mdev.get_model(model)["versions"]], [1])

        _, adev = self.c.new_user("APP_DEVELOPER")
        app = unique("app")
        created = adev.create_app(app, [model], rule="first")
        self.assertEqual(created["name"], app)
        self.assertEqual(created["members"], [{"model": model, "version": 1}])
        self.assertEqual(created["rule"], "first")
        self.assertFalse(created["requires_token"])
        self.assertIn(app, [a["name"] for a in adev.list_apps()])

        ap = adev.predict(IRIS_ROW, app=app)
        self.assertEqual(ap["model"], app)
        self.assertEqual(ap["output"]["label"], p["output"]["label"])
        self.assertEqual(ap["output"]["members"], [f"{model}:1"])

        # Members as "model:version" and as dicts; stop and start.
        updated = adev.set_app_members(app, [f"{model}:1"])
        self.assertEqual(updated["members"], [{"model": model, "version": 1}])
        updated = adev.set_app_members(app, [{"model": model, "version": 1}])
        self.assertEqual(updated["members"], [{"model": model, "version": 1}])
        self.assertEqual(adev.stop_app(app)["status"], "stopped")
        with self.assertRaises(BoatError) as cm:
            adev.predict(IRIS_ROW, app=app)
        self.assertEqual(cm.exception.status, 409)
        self.assertEqual(adev.start_app(app)["status"], "running")
        self.assertEqual(adev.get_app(app)["status"], "running")
        self.assertEqual(adev.predict(IRIS_ROW, app=app)["output"]["label"], [0])

        deleted = adev.delete_app(app)
        self.assertEqual(deleted["name"], app)
        with self.assertRaises(BoatError) as cm:
            adev.get_app(app)
        self.assertEqual(cm.exception.status, 404)

    # 4 ---------------------------------------------------------------
    def test_4_permissions_and_tokens(self):
        _, user = self.c.new_user("APP_USER")
        with self.assertRaises(BoatError) as cm:
            user.list_users()
        self.assertEqual(cm.exception.status, 403)
        with self.assertRaises(BoatError) as cm:
            user.upload_dataset(unique("nope"), b"a,b\n1,2\n")
        self.assertEqual(cm.exception.status, 403)
        self.assertTrue(cm.exception.message)

        bogus = Client(self.c.follower_url, token="boat_" + "0" * 64)
        with self.assertRaises(BoatError) as cm:
            bogus.me()
        self.assertEqual(cm.exception.status, 401)
        with self.assertRaises(BoatError) as cm:
            Client(self.c.follower_url).me()
        self.assertEqual(cm.exception.status, 401)

        old = user.token
        self.assertEqual(user.me()["role"], "APP_USER")
        self.assertEqual(user.logout(), {"ok": True})
        self.assertIsNone(user.token)
        stale = Client(self.c.follower_url, token=old)
        with self.assertRaises(BoatError) as cm:
            stale.me()
        self.assertEqual(cm.exception.status, 401)
        # Also on the leader and on every other node.
        for url in self.c.urls:
            with self.assertRaises(BoatError) as cm:
                Client(url, token=old).me()
            self.assertEqual(cm.exception.status, 401, url)

    # 5 ---------------------------------------------------------------
    def test_5_ban(self):
        email, user = self.c.new_user("APP_USER")
        admin = self.c.admin()
        banned = admin.ban_user(email)
        self.assertEqual(banned["email"], email)
        self.assertTrue(banned["banned"])
        with self.assertRaises(BoatError) as cm:
            Client(self.c.follower_url).login(email, PASSWORD)
        self.assertEqual(cm.exception.status, 403)

        unbanned = admin.unban_user(email)
        self.assertFalse(unbanned["banned"])
        again = Client(self.c.follower_url)
        again.login(email, PASSWORD)
        self.assertEqual(again.me()["email"], email)

        deleted = admin.delete_user(banned["id"])
        self.assertEqual(deleted["email"], email)
        self.assertNotIn(email, [u["email"] for u in admin.list_users()])

    # misc ------------------------------------------------------------
    def test_6_wrong_password_and_echo(self):
        with self.assertRaises(BoatError) as cm:
            Client(self.c.follower_url).login("superadmin", "not-the-password")
        self.assertEqual(cm.exception.status, 401)
        anon = Client(self.c.follower_url)
        echo = anon.predict(["hello", "wörld"])  # no model: the built-in echo model
        self.assertEqual(echo["model"], "echo")
        self.assertEqual(echo["output"], {"output": ["hello", "wörld"]})
        # A one-element single output is rendered as the bare value.
        self.assertEqual(anon.predict("hi")["output"], "hi")
        with self.assertRaises(BoatError) as cm:
            anon.predict({"x": 1})
        self.assertEqual(cm.exception.status, 422)
        with self.assertRaises(BoatError) as cm:
            anon.predict(IRIS_ROW, model=unique("no-such-model"))
        self.assertEqual(cm.exception.status, 404)

    # training --------------------------------------------------------
    def test_7_train_job(self):
        _, dev = self.c.new_user("APP_DEVELOPER")
        templates = {t["name"]: t for t in dev.list_templates()}
        self.assertIn("mlp_classifier", templates)
        mlp = templates["mlp_classifier"]
        self.assertEqual((mlp["kind"], mlp["task"]), ("builtin", "classification"))
        self.assertIn("epochs", mlp["knob_config"]["knobs"])

        dataset = unique("iris-train")
        dev.upload_dataset(dataset, os.path.join(self.c.datasets_dir, "iris.csv"))
        app = unique("flowers")

        # A bad knob is refused before anything is created.
        with self.assertRaises(BoatError) as cm:
            dev.create_job(app, dataset, ["mlp_classifier"], knobs={"mlp_classifier": {"colour": 1}})
        self.assertEqual(cm.exception.status, 422)
        self.assertIn("unknown knob 'colour'", cm.exception.message)
        self.assertEqual(dev.list_jobs(), [])

        # A small, quick job: two trials of a small network, one at a time.
        knobs = {"mlp_classifier": {
            "hidden_layers": 1, "hidden_units": 16, "epochs": 40, "batch_size": 16,
            "learning_rate": {"kind": "float", "min": 0.03, "max": 0.1, "log": True},
        }}
        job = dev.create_job(app, dataset, ["mlp_classifier"], trials=2, workers=1, minutes=5, knobs=knobs, seed=1)
        self.assertEqual(job["status"], "running")
        self.assertEqual(job["app"], app)
        self.assertEqual(job["seed"], 1)
        self.assertEqual(job["templates"], ["mlp_classifier"])
        self.assertEqual((job["budget"]["trials"], job["budget"]["workers"]), (2, 1))
        self.assertIn(job["id"], [j["id"] for j in dev.list_jobs()])

        done = dev.wait_for_job(job, timeout_s=120, poll_s=0.2)
        self.assertEqual(done["status"], "completed", done)
        self.assertEqual(done["trials_done"], 2, done)
        self.assertEqual(done["trials_completed"], 2, done)
        self.assertGreaterEqual(done["best"]["score"], 0.8, done)
        self.assertEqual(dev.get_job(job["id"])["status"], "completed")

        trials = dev.list_trials(job)
        self.assertEqual([t["no"] for t in trials], [1, 2])
        for t in trials:
            self.assertEqual(t["status"], "completed", t)
            self.assertEqual((t["knobs"]["hidden_units"], t["knobs"]["epochs"]), (16, 40), t)
            self.assertTrue(0.03 <= t["knobs"]["learning_rate"] <= 0.1, t)
        best = dev.best_trials(job, n=2)
        self.assertEqual(best[0]["id"], done["best"]["id"])
        self.assertEqual(sorted(t["id"] for t in best), sorted(t["id"] for t in trials))
        self.assertGreaterEqual(best[0]["score"], best[1]["score"])

        logs = dev.trial_logs(trials[0]["id"])
        self.assertEqual(logs["trial"], trials[0]["id"])
        self.assertFalse(logs["live"])
        metrics = [e for e in logs["entries"] if e["kind"] == "metrics"]
        self.assertTrue(metrics, logs)
        self.assertIsInstance(metrics[0]["epoch"], int)
        self.assertIsInstance(metrics[0]["values"]["val_score"], float)
        # Reading on from `next` gives nothing new once the trial has ended.
        self.assertEqual(dev.trial_logs(trials[0], since=logs["next"])["entries"], [])
        self.assertEqual(len(dev.trial_logs(trials[0], limit=1)["entries"]), 1)

        # An ended job cannot be stopped.
        with self.assertRaises(BoatError) as cm:
            dev.stop_job(job)
        self.assertEqual(cm.exception.status, 409)

    def test_8_container_templates(self):
        admin = self.c.admin()
        name = unique("trainer")
        space = {"knobs": {"epochs": {"kind": "integer", "min": 10, "max": 100}}}
        t = admin.register_template(name, "my-trainer:1", space, description="a trainer image")
        self.assertEqual((t["name"], t["kind"], t["image"], t["task"]), (name, "container", "my-trainer:1",
                                                                         "classification"))
        self.assertEqual(t["knob_config"]["knobs"]["epochs"]["max"], 100)
        self.assertIn(name, [x["name"] for x in admin.list_templates()])
        with self.assertRaises(BoatError) as cm:
            admin.register_template(name, "my-trainer:1", space)
        self.assertEqual(cm.exception.status, 409)
        with self.assertRaises(BoatError) as cm:
            admin.register_template(unique("trainer"), "my-trainer:1", {"knobs": {"x": {"kind": "nope"}}})
        self.assertEqual(cm.exception.status, 422)
        self.assertIsNone(admin.delete_template(name))
        self.assertNotIn(name, [x["name"] for x in admin.list_templates()])
        with self.assertRaises(BoatError) as cm:
            admin.delete_template("mlp_classifier")
        self.assertEqual(cm.exception.status, 409)


if __name__ == "__main__":
    unittest.main()
