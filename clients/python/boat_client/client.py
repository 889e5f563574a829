"""The Boat REST client: :class:`Client` and :class:`BoatError`.

Standard library only (``urllib.request``). Any node of a cluster can be
given as the base URL: writes that reach a follower are answered with
``307 Temporary Redirect`` and a ``Location`` on the leader, which this
client follows itself (urllib does not re-send POST/PUT/DELETE bodies on a
307); ``503`` answers with ``Retry-After`` (no leader known, e.g. during an
election) are retried a bounded number of times, except for
:meth:`Client.create_job`, which is never sent twice (it looks for the job
it may have created instead).

See the package docstring (``help(boat_client)``) and README.md for a usage
example.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Union

__all__ = ["Client", "BoatError"]

#: Redirects and retries are logged here at DEBUG level.
log = logging.getLogger("boat_client")

#: Bytes, or a path to a file whose contents are sent.
Payload = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]
#: An app member: ``"model"``, ``"model:3"`` or ``{"model": ..., "version": 3}``.
Member = Union[str, Mapping[str, Any]]
#: A train job: its id, or a job as the API answers it (a dict with ``"id"``).
Job = Union[int, str, Mapping[str, Any]]
#: A trial: ``"JOB-TRIAL"`` (e.g. ``"3-2"``), or a trial as the API answers it.
Trial = Union[str, Mapping[str, Any]]

#: Seeds the client picks for jobs created without one stay below 2**53, so
#: that they survive JSON parsers that read numbers as doubles.
_SEED_BITS = 53
#: Looks, one second apart, for a job whose creation had an unknown outcome.
_JOB_LOOKUPS = 3


class BoatError(Exception):
    """An error answer from a Boat node.

    Attributes:
        status: the HTTP status code (e.g. 401, 403, 404, 409, 422, 503).
        message: the ``error`` string of the JSON body (or the raw body
            text when the body is not Boat's JSON error).
        body: the decoded JSON body (a dict, which may carry extra fields
            such as ``leader_id`` or ``id``), or the raw text when the body
            is not JSON, or ``None`` when it is empty.
    """

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(status, message, body)
        self.status = status
        self.message = message
        self.body = body

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuses every redirect, so that 3xx answers surface as HTTPError."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None


def _quote(segment: Any) -> str:
    """One URL path segment, with every reserved character escaped."""
    return urllib.parse.quote(str(segment), safe="")


def _read_payload(path_or_bytes: Payload) -> bytes:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes)
    with open(os.fspath(path_or_bytes), "rb") as f:
        return f.read()


def _member(m: Member) -> Dict[str, Any]:
    """Normalises an app member to ``{"model": ..., ["version": N]}``."""
    if isinstance(m, Mapping):
        if "model" not in m:
            raise ValueError(f"app member {m!r} has no 'model'")
        out: Dict[str, Any] = {"model": str(m["model"])}
        if m.get("version") is not None:
            out["version"] = int(m["version"])
        return out
    if isinstance(m, str):
        name, sep, version = m.rpartition(":")
        if sep and name and version.isdigit():
            return {"model": name, "version": int(version)}
        return {"model": m}
    raise TypeError(f"app member must be a str or a mapping, not {type(m).__name__}")


def _job_id(job: Job) -> int:
    """The id of a job given as an id or as the API's view of it."""
    if isinstance(job, Mapping):
        if "id" not in job:
            raise ValueError(f"train job {job!r} has no 'id'")
        job = job["id"]
    if isinstance(job, bool):
        raise TypeError("a train job id is an int, not a bool")
    if isinstance(job, int):
        return job
    if isinstance(job, str) and job.strip().isdigit():
        return int(job.strip())
    raise TypeError(f"train job must be an id or a job dict, not {job!r}")


def _trial_id(trial: Trial) -> str:
    """``"JOB-TRIAL"`` of a trial given as that string or as the API's view of it."""
    if isinstance(trial, Mapping):
        if "id" in trial:
            return str(trial["id"])
        if "job" in trial and "no" in trial:
            return f"{int(trial['job'])}-{int(trial['no'])}"
        raise ValueError(f"trial {trial!r} has neither 'id' nor 'job' and 'no'")
    if isinstance(trial, str):
        return trial
    raise TypeError(f"trial must be a 'JOB-TRIAL' string or a trial dict, not {type(trial).__name__}")


def _same_job(job: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    """Whether a listed job is the one ``spec`` (a create-job body with a seed) creates."""
    return (
        job.get("seed") == spec["seed"]
        and job.get("app") == spec["app"]
        and job.get("task") == spec["task"]
        and job.get("train_dataset") == spec["train_dataset"]
        and job.get("validation_dataset") == spec.get("validation_dataset")
        and list(job.get("templates") or []) == list(spec["templates"])
    )


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delta-seconds only)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return 1.0  # an HTTP date or junk: wait the usual second


class Client:
    """A client for one Boat cluster.

    Args:
        url: base URL of any node, e.g. ``"http://127.0.0.1:8080"`` (a
            missing ``http://`` is added).
        token: bearer token to send (a login token or the cluster's admin
            token); :meth:`login` sets it, :meth:`logout` clears it.
        timeout: socket timeout in seconds for each HTTP request.
        max_redirects: leader redirects (307) followed in a row before
            giving up.
        max_attempts: attempts per call when nodes answer 503 with
            ``Retry-After``; each wait is ``Retry-After`` capped at
            ``max_retry_wait`` seconds.
        max_retry_wait: upper bound of one wait between 503 retries.

    Every method raises :class:`BoatError` on an error answer; network
    failures (connection refused, timeouts) propagate as ``OSError`` /
    ``urllib.error.URLError``.
    """

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        timeout: float = 30,
        *,
        max_redirects: int = 5,
        max_attempts: int = 20,
        max_retry_wait: float = 1.0,
    ) -> None:
        if "://" not in url:
            url = "http://" + url
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.max_attempts = max_attempts
        self.max_retry_wait = max_retry_wait
        self._opener = urllib.request.build_opener(_NoRedirect())

    def __repr__(self) -> str:
        return f"Client({self.url!r}, token={'<set>' if self.token else None})"

    # ------------------------------------------------------------------
    # transport

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Mapping[str, Any]] = None,
        json_body: Any = None,
        data: Optional[bytes] = None,
        content_type: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        retry_unavailable: bool = True,
    ) -> Any:
        """Sends one API call and returns its decoded JSON answer.

        Follows leader redirects (307/308 with ``Location``) by re-sending
        the same method, body and headers, and retries 503 answers that
        carry ``Retry-After``. When a node it was redirected to refuses the
        connection (a leader that just died), it starts over at the node it
        was given; both kinds of retry count towards ``max_attempts``
        (redirects do not: they are bounded by ``max_redirects`` in a row).

        ``json_body`` is sent as JSON (``Content-Type: application/json``);
        ``data`` is sent raw with ``content_type``. ``query`` entries whose
        value is ``None`` are left out.

        ``retry_unavailable=False`` raises the first 503 instead of
        retrying it, for writes that must not be sent twice: a 503 from the
        leader may come after it appended the write to its log (the outcome
        is unknown), so a retry could apply it a second time. Redirects and
        refused connections are still followed in that mode, since the node
        that answers them has not written anything.

        Raises:
            BoatError: on any other non-2xx answer, on too many redirects,
                or when 503s outlast ``max_attempts``.
        """
        url = self.url + path
        if query:
            q = {k: v for k, v in query.items() if v is not None}
            if q:
                url += "?" + urllib.parse.urlencode(q)
        hdrs: Dict[str, str] = {"Accept": "application/json"}
        body: Optional[bytes] = None
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        elif data is not None:
            body = data
            hdrs["Content-Type"] = content_type or "application/octet-stream"
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if headers:
            hdrs.update(headers)

        first_url = url
        redirects = 0
        attempts = 1  # requests sent, not counting those that followed a redirect
        while True:
            try:
                status, resp_headers, raw = self._send(method, url, body, hdrs)
            except urllib.error.URLError as e:
                # A leader we were redirected to refuses connections: it has
                # just died or restarted. Nothing was sent, so it is safe to
                # start over at the node we were given, which will know the
                # new leader (or answer 503) once an election has run.
                refused = isinstance(e.reason, ConnectionRefusedError)
                if refused and url != first_url and attempts < self.max_attempts:
                    log.debug("%s %s: connection refused; starting over at %s", method, url, first_url)
                    time.sleep(min(0.2, self.max_retry_wait))
                    url, redirects = first_url, 0
                    attempts += 1
                    continue
                raise
            if 200 <= status < 300:
                return _decode(raw)
            decoded = _decode(raw)
            if status in (307, 308):
                location = resp_headers.get("Location")
                if not location:
                    raise self._error(status, decoded, "redirect without a Location header")
                if redirects >= self.max_redirects:
                    raise self._error(status, decoded, f"gave up after {redirects} redirects; last Location {location}")
                redirects += 1
                log.debug("%s %s: %d redirect to %s", method, url, status, location)
                url = urllib.parse.urljoin(url, location)
                continue
            wait = _retry_after(resp_headers.get("Retry-After"))
            if status == 503 and wait is not None and retry_unavailable and attempts < self.max_attempts:
                log.debug("%s %s: 503 (%s); retry %d after %ss", method, url, self._error(status, decoded).message,
                          attempts, resp_headers.get("Retry-After"))
                time.sleep(min(max(wait, 0.05), self.max_retry_wait))
                # Start over at the node we were given: if the 503 came from
                # a leader that is cut off, that node will soon know (and
                # redirect to) the new leader.
                url, redirects = first_url, 0
                attempts += 1
                continue
            raise self._error(status, decoded)

    def _send(self, method: str, url: str, body: Optional[bytes], headers: Mapping[str, str]) -> Tuple[int, Any, bytes]:
        req = urllib.request.Request(url, data=body, headers=dict(headers), method=method)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            try:
                raw = e.read()
            finally:
                e.close()
            return e.code, e.headers, raw

    @staticmethod
    def _error(status: int, body: Any, fallback: Optional[str] = None) -> BoatError:
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            message = body["error"]
            if fallback:
                message = f"{message} ({fallback})"
        elif isinstance(body, str) and body:
            message = body
        else:
            message = fallback or f"HTTP {status}"
        return BoatError(status, message, body)

    # ------------------------------------------------------------------
    # tokens

    def login(self, email: str, password: str, ttl_seconds: Optional[int] = None) -> Dict[str, Any]:
        """Logs in and keeps the new token for later calls.

        ``POST /api/tokens``. Returns ``{"token", "expires_at_ms", "user"}``.
        A wrong password is 401, a banned user 403.
        """
        body: Dict[str, Any] = {"email": email, "password": password}
        if ttl_seconds is not None:
            body["ttl_seconds"] = int(ttl_seconds)
        resp = self.request("POST", "/api/tokens", json_body=body)
        self.token = resp["token"]
        return resp

    def logout(self) -> Dict[str, Any]:
        """Revokes the client's token (``DELETE /api/tokens/current``) and forgets it."""
        resp = self.request("DELETE", "/api/tokens/current")
        self.token = None
        return resp

    def me(self) -> Dict[str, Any]:
        """The calling user (``GET /api/users/me``): id, email, role, banned, created_at_ms."""
        return self.request("GET", "/api/users/me")

    # ------------------------------------------------------------------
    # users

    def create_user(self, email: str, password: str, role: str) -> Dict[str, Any]:
        """Creates a user (``POST /api/users``); returns the new user.

        ``role`` is one of ``SUPERADMIN``, ``ADMIN``, ``MODEL_DEVELOPER``,
        ``APP_DEVELOPER``, ``APP_USER``.
        """
        return self.request("POST", "/api/users", json_body={"email": email, "password": password, "role": role})

    def list_users(self) -> List[Dict[str, Any]]:
        """Every user (``GET /api/users``; admins only)."""
        return self.request("GET", "/api/users")["users"]

    def ban_user(self, user: Union[int, str]) -> Dict[str, Any]:
        """Bans a user, by id or email (``POST /api/users/{user}/ban``)."""
        return self.request("POST", f"/api/users/{_quote(user)}/ban")

    def unban_user(self, user: Union[int, str]) -> Dict[str, Any]:
        """Lifts a ban, by id or email (``POST /api/users/{user}/unban``)."""
        return self.request("POST", f"/api/users/{_quote(user)}/unban")

    def delete_user(self, user: Union[int, str]) -> Dict[str, Any]:
        """Deletes a user, by id or email (``DELETE /api/users/{user}``)."""
        return self.request("DELETE", f"/api/users/{_quote(user)}")

    # ------------------------------------------------------------------
    # datasets

    def upload_dataset(
        self,
        name: str,
        path_or_bytes: Payload,
        task: str = "classification",
        target: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Uploads a CSV dataset (``POST /api/datasets/{name}``, ``text/csv``).

        ``path_or_bytes`` is the CSV itself or a path to it. ``task`` is
        ``classification`` or ``regression``; ``target`` names the target
        column (the server takes the last column when it is ``None``).
        Returns the dataset: name, owner, task, columns, target, rows,
        size_bytes, sha256, class_counts, uploaded_at_ms, index. A
        malformed file is 422 with the offending line in the message.
        """
        return self.request(
            "POST",
            f"/api/datasets/{_quote(name)}",
            query={"task": task, "target": target},
            data=_read_payload(path_or_bytes),
            content_type="text/csv",
        )

    def list_datasets(self) -> List[Dict[str, Any]]:
        """The datasets the caller may see (``GET /api/datasets``)."""
        return self.request("GET", "/api/datasets")["datasets"]

    def get_dataset(self, name: str) -> Dict[str, Any]:
        """One dataset (``GET /api/datasets/{name}``)."""
        return self.request("GET", f"/api/datasets/{_quote(name)}")

    def delete_dataset(self, name: str) -> Dict[str, Any]:
        """Deletes a dataset (``DELETE /api/datasets/{name}``); returns it."""
        return self.request("DELETE", f"/api/datasets/{_quote(name)}")

    # ------------------------------------------------------------------
    # models

    def upload_model(self, name: str, path_or_bytes: Payload) -> Dict[str, Any]:
        """Uploads an ONNX file as a new version of a model (``POST /api/models/{name}``).

        The new version becomes the default. Returns the version's
        description (name, version, default_version, inputs, outputs,
        sha256, size_bytes, index).
        """
        return self.request(
            "POST",
            f"/api/models/{_quote(name)}",
            data=_read_payload(path_or_bytes),
            content_type="application/octet-stream",
        )

    def list_models(self) -> List[Dict[str, Any]]:
        """Every model with its versions (``GET /api/models``)."""
        return self.request("GET", "/api/models")["models"]

    def get_model(self, name: str) -> Dict[str, Any]:
        """One model and its versions (``GET /api/models/{name}``)."""
        return self.request("GET", f"/api/models/{_quote(name)}")

    def set_default_version(self, name: str, version: int) -> Dict[str, Any]:
        """Makes ``version`` the model's default (``POST /api/models/{name}/default``)."""
        return self.request("POST", f"/api/models/{_quote(name)}/default", json_body={"version": int(version)})

    def delete_version(self, name: str, version: int) -> Dict[str, Any]:
        """Deletes one version (``DELETE /api/models/{name}/versions/{version}``).

        The default version and versions used by an app cannot be deleted (409).
        """
        return self.request("DELETE", f"/api/models/{_quote(name)}/versions/{int(version)}")

    # ------------------------------------------------------------------
    # apps

    def create_app(
        self,
        name: str,
        members: Iterable[Member],
        rule: str = "first",
        requires_token: bool = False,
    ) -> Dict[str, Any]:
        """Creates an app (``POST /api/apps``).

        ``members`` are ``"model"`` (the model's default version at
        creation), ``"model:version"`` or ``{"model": ..., "version": N}``.
        ``rule`` says how the members' answers are combined.
        """
        body = {
            "name": name,
            "members": [_member(m) for m in members],
            "rule": rule,
            "requires_token": bool(requires_token),
        }
        return self.request("POST", "/api/apps", json_body=body)

    def list_apps(self) -> List[Dict[str, Any]]:
        """The apps the caller may see (``GET /api/apps``)."""
        return self.request("GET", "/api/apps")["apps"]

    def get_app(self, name: str) -> Dict[str, Any]:
        """One app with its members, rule, status and stats (``GET /api/apps/{name}``)."""
        return self.request("GET", f"/api/apps/{_quote(name)}")

    def set_app_members(self, name: str, members: Iterable[Member]) -> Dict[str, Any]:
        """Replaces an app's members (``PUT /api/apps/{name}/members``)."""
        return self.request(
            "PUT", f"/api/apps/{_quote(name)}/members", json_body={"members": [_member(m) for m in members]}
        )

    def start_app(self, name: str) -> Dict[str, Any]:
        """Starts serving an app (``POST /api/apps/{name}/start``)."""
        return self.request("POST", f"/api/apps/{_quote(name)}/start")

    def stop_app(self, name: str) -> Dict[str, Any]:
        """Stops serving an app (``POST /api/apps/{name}/stop``); its predictions then get 409."""
        return self.request("POST", f"/api/apps/{_quote(name)}/stop")

    def delete_app(self, name: str) -> Dict[str, Any]:
        """Deletes an app (``DELETE /api/apps/{name}``); returns it."""
        return self.request("DELETE", f"/api/apps/{_quote(name)}")

    # ------------------------------------------------------------------
    # serving

    def predict(
        self,
        input: Any,
        model: Optional[str] = None,
        app: Optional[str] = None,
        version: Optional[int] = None,
        key: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Runs a prediction and returns Boat's answer.

        With ``app``: ``POST /apps/{app}/predict``. Otherwise ``POST
        /predict`` with ``model`` (the echo model when ``None``) and an
        optional pinned ``version``. ``key`` is an idempotency key: a
        repeated key returns the first answer with ``duplicate: true``
        (pass one if a retried request must not run twice).

        Returns ``{"id", "model", "version", "output", "index", "term",
        "duplicate", "node_id"}``. A model with several outputs gives an
        ``output`` object keyed by output name.
        """
        if app is not None:
            if model is not None or version is not None:
                raise ValueError("predict: give either app, or model/version, not both")
            body: Dict[str, Any] = {"input": input}
            if key is not None:
                body["id"] = key
            return self.request("POST", f"/apps/{_quote(app)}/predict", json_body=body)
        body = {"input": input}
        if model is not None:
            body["model"] = model
        if version is not None:
            body["version"] = int(version)
        if key is not None:
            body["id"] = key
        return self.request("POST", "/predict", json_body=body)

    def status(self) -> Dict[str, Any]:
        """This node's view of the cluster (``GET /status``): node_id, is_leader, leader_id, term, members, ..."""
        return self.request("GET", "/status")

    # ------------------------------------------------------------------
    # training: templates

    def list_templates(self) -> List[Dict[str, Any]]:
        """Every model template (``GET /api/templates``).

        Built-in templates (``kind: "builtin"``, e.g. ``mlp_classifier``) and
        registered container templates (``kind: "container"``), each with
        name, task, description, image and ``knob_config``, its knob space
        (``{"knobs": {name: {"kind": ...}}, ...}``).
        """
        return self.request("GET", "/api/templates")["templates"]

    def register_template(
        self,
        name: str,
        image: str,
        knob_config: Mapping[str, Any],
        task: str = "classification",
        description: str = "",
    ) -> Dict[str, Any]:
        """Registers a container template (``POST /api/templates``); returns it.

        ``image`` is a Docker image that follows the worker contract, on
        the engines that run workers. ``knob_config`` is its knob space,
        e.g. ``{"knobs": {"epochs": {"kind": "integer", "min": 10, "max":
        100}}}``. A taken name is 409, a bad space or image 422. Jobs that
        use container templates need the ``docker`` or ``swarm`` runtime.
        """
        body = {
            "name": name,
            "task": task,
            "image": image,
            "knob_config": dict(knob_config),
            "description": description,
        }
        return self.request("POST", "/api/templates", json_body=body)

    def delete_template(self, name: str) -> None:
        """Deletes a container template (``DELETE /api/templates/{name}``, 204).

        Built-in templates and templates a running job uses cannot be
        deleted (409).
        """
        self.request("DELETE", f"/api/templates/{_quote(name)}")

    # ------------------------------------------------------------------
    # training: jobs, trials and logs

    def create_job(
        self,
        app: str,
        train_dataset: str,
        templates: Union[str, Iterable[str]],
        task: str = "classification",
        validation_dataset: Optional[str] = None,
        trials: Optional[int] = None,
        minutes: Optional[float] = None,
        workers: Optional[int] = None,
        cpus: Optional[float] = None,
        memory_mb: Optional[int] = None,
        advisor: Optional[str] = None,
        runtime: Optional[str] = None,
        knobs: Optional[Mapping[str, Mapping[str, Any]]] = None,
        deploy_best: Optional[str] = None,
        deploy_members: Optional[int] = None,
        deploy_rule: Optional[str] = None,
        seed: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Creates a train job (``POST /api/jobs``); returns it (status ``running``).

        The leader's orchestrator then runs its trials: each tries one of
        ``templates`` (built-in or container, in turn) with knob values the
        ``advisor`` (``"tpe"``, the default, or ``"random"``) proposes.
        Without ``validation_dataset`` a seeded fifth of the training rows
        is held out. The budget is ``trials`` in all (server default 10),
        ``minutes`` of wall-clock time (60), ``workers`` trials at once (1),
        and per worker ``cpus`` and ``memory_mb`` for container runtimes.
        ``runtime`` is ``"local"``, ``"docker"`` or ``"swarm"`` (default:
        the node's). ``knobs`` fixes or narrows knobs per template:
        ``{"mlp_classifier": {"epochs": 30, "hidden_units": {"kind":
        "integer", "min": 8, "max": 32}}}``. With ``deploy_best`` the job,
        once it ends, creates or updates that app with its
        ``deploy_members`` best trials, combined by ``deploy_rule``.

        Returns the job: id, app, owner, task, status, reason, datasets,
        templates, advisor, runtime, budget, seed, created_at_ms,
        ended_at_ms, elapsed_s, trials_proposed, trials_done,
        trials_running, trials_completed, trials_errored, best (a trial or
        ``None``), deploy_best, deployed_to.

        The request is never sent twice. Redirects to the leader are
        followed, but a 503 (or a lost connection) after the leader may
        have received it is not retried, because the leader may already
        have appended the job to its log. Instead the client looks for the
        job among the caller's jobs (``list_jobs``, which does wait out an
        election) and returns it when it exists. To recognise it, every job
        gets a seed: ``seed`` when given, otherwise a random one the client
        picks itself (the server would pick a random one too). With an
        explicit ``seed`` the client first lists the jobs that already
        match, so that an older identical job is not mistaken for the new
        one. When no such job appears the original error is raised: the
        job was most likely not created, but a write that missed its commit
        deadline can still commit later, so check ``list_jobs()`` before
        creating it again.

        Raises:
            BoatError: 404 for an unknown dataset or template; 422 for a
                task mismatch, an unknown knob or a value outside its space,
                a bad budget, advisor or runtime; 403 for a role that may
                not train; 503 as above.
        """
        if isinstance(templates, str):
            templates = [templates]
        budget = {
            k: v
            for k, v in (
                ("trials", None if trials is None else int(trials)),
                ("minutes", None if minutes is None else float(minutes)),
                ("workers", None if workers is None else int(workers)),
                ("cpus", None if cpus is None else float(cpus)),
                ("memory_mb", None if memory_mb is None else int(memory_mb)),
            )
            if v is not None
        }
        body: Dict[str, Any] = {
            "app": app,
            "task": task,
            "train_dataset": train_dataset,
            "templates": [str(t) for t in templates],
        }
        if validation_dataset is not None:
            body["validation_dataset"] = validation_dataset
        if budget:
            body["budget"] = budget
        if advisor is not None:
            body["advisor"] = advisor
        if runtime is not None:
            body["runtime"] = runtime
        if knobs:
            body["knobs"] = {str(t): dict(ks) for t, ks in knobs.items()}
        if deploy_best is not None:
            body["deploy_best"] = deploy_best
        if deploy_members is not None:
            body["deploy_members"] = int(deploy_members)
        if deploy_rule is not None:
            body["deploy_rule"] = deploy_rule
        # Jobs already matching an explicit seed are not the one created here.
        existing: Set[int] = set()
        if seed is None:
            body["seed"] = secrets.randbits(_SEED_BITS)
        else:
            body["seed"] = int(seed)
            existing = {j["id"] for j in self.list_jobs() if _same_job(j, body)}

        try:
            return self.request("POST", "/api/jobs", json_body=body, retry_unavailable=False)
        except BoatError as e:
            if e.status != 503:
                raise
            failure: Exception = e
        except OSError as e:  # urllib.error.URLError included
            reason = getattr(e, "reason", e)
            if isinstance(reason, ConnectionRefusedError):
                raise  # nothing was sent
            failure = e
        log.debug("POST /api/jobs: %r; looking for a job with seed %s", failure, body["seed"])
        job = self._find_created_job(body, existing)
        if job is not None:
            log.debug("POST /api/jobs: job %s was created despite %r", job["id"], failure)
            return job
        if isinstance(failure, BoatError):
            raise BoatError(
                failure.status,
                f"{failure.message} (no job with seed {body['seed']} exists, so it was most likely not created; "
                "check list_jobs() before creating it again)",
                failure.body,
            ) from failure
        raise failure

    def _find_created_job(self, spec: Mapping[str, Any], existing: Set[int]) -> Optional[Dict[str, Any]]:
        """The job ``spec`` created, if it exists now (looked for a few times)."""
        for look in range(_JOB_LOOKUPS):
            if look:
                time.sleep(min(1.0, self.max_retry_wait))
            try:
                jobs = self.list_jobs()
            except (BoatError, OSError) as e:
                log.debug("GET /api/jobs: %r", e)
                continue
            found = [j for j in jobs if j.get("id") not in existing and _same_job(j, spec)]
            if found:
                return max(found, key=lambda j: j["id"])
        return None

    def list_jobs(self) -> List[Dict[str, Any]]:
        """The train jobs the caller may see (``GET /api/jobs``; admins see all)."""
        return self.request("GET", "/api/jobs")["jobs"]

    def get_job(self, job: Job) -> Dict[str, Any]:
        """One train job (``GET /api/jobs/{id}``), by id or as a job dict.

        ``status`` is ``running``, ``completed``, ``stopped`` or ``errored``
        (with a ``reason``); ``best`` is the best completed trial so far.
        """
        return self.request("GET", f"/api/jobs/{_job_id(job)}")

    def stop_job(self, job: Job) -> Dict[str, Any]:
        """Stops a running train job (``POST /api/jobs/{id}/stop``); returns it.

        Its running trials are stopped and no new one starts. A job that
        has already ended is 409.
        """
        return self.request("POST", f"/api/jobs/{_job_id(job)}/stop")

    def list_trials(self, job: Job) -> List[Dict[str, Any]]:
        """A job's trials in order (``GET /api/jobs/{id}/trials``).

        Each has id (``"JOB-TRIAL"``), job, no, template, knobs, status
        (``pending``, ``running``, ``completed``, ``errored``, ``stopped``),
        attempt, score, metric, epochs, timings, worker, node and model
        (``"name:version"`` of the model it produced).
        """
        return self.request("GET", f"/api/jobs/{_job_id(job)}/trials")["trials"]

    def best_trials(self, job: Job, n: int = 1) -> List[Dict[str, Any]]:
        """A job's ``n`` best completed trials, best first (``GET /api/jobs/{id}/best?n=``)."""
        return self.request("GET", f"/api/jobs/{_job_id(job)}/best", query={"n": int(n)})["trials"]

    def trial_logs(self, trial: Trial, since: int = 0, limit: Optional[int] = None) -> Dict[str, Any]:
        """A trial's log (``GET /api/trials/{id}/logs``).

        ``trial`` is ``"JOB-TRIAL"`` (e.g. ``"3-2"``) or a trial dict.
        Returns ``{"trial", "entries", "next", "live"}``: each entry has
        ts_ms, attempt and ``kind``, either ``"metrics"`` (with epoch and
        ``values``, e.g. ``val_score``) or ``"message"`` (with message).
        Pass ``next`` as ``since`` to read on; ``live`` says whether the
        trial is still pending or running. ``limit`` defaults to 1000 on
        the server.
        """
        return self.request(
            "GET", f"/api/trials/{_quote(_trial_id(trial))}/logs", query={"since": int(since), "limit": limit}
        )

    def node_logs(self, node: int, since: int = 0, limit: Optional[int] = None) -> Dict[str, Any]:
        """A node's own log from the shared directory (``GET /api/nodes/{id}/logs``; admins only).

        Returns ``{"node", "lines", "next"}``; pass ``next`` as ``since`` to
        read on.
        """
        return self.request("GET", f"/api/nodes/{int(node)}/logs", query={"since": int(since), "limit": limit})

    def wait_for_job(self, job: Job, timeout_s: float = 3600.0, poll_s: float = 1.0) -> Dict[str, Any]:
        """Polls a train job until it is no longer ``running``; returns it.

        The returned job's ``status`` is ``completed``, ``stopped`` or
        ``errored``; check it (a job that ends early has a ``reason``).

        Raises:
            TimeoutError: when the job still runs after ``timeout_s``
                seconds (it keeps running; :meth:`stop_job` stops it).
            BoatError: when a poll gets an error answer (503s during an
                election are retried as usual).
        """
        job_id = _job_id(job)
        deadline = time.monotonic() + timeout_s
        while True:
            view = self.get_job(job_id)
            if view.get("status") != "running":
                return view
            left = deadline - time.monotonic()
            if left <= 0:
                budget = view.get("budget") or {}
                raise TimeoutError(
                    f"train job {job_id} still runs after {timeout_s:g}s "
                    f"({view.get('trials_done')} of {budget.get('trials')} trials done)"
                )
            time.sleep(min(poll_s, left))
