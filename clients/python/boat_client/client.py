"""The Boat REST client: :class:`Client` and :class:`BoatError`.

Standard library only (``urllib.request``). Any node of a cluster can be
given as the base URL: writes that reach a follower are answered with
``307 Temporary Redirect`` and a ``Location`` on the leader, which this
client follows itself (urllib does not re-send POST/PUT/DELETE bodies on a
307); ``503`` answers with ``Retry-After`` (no leader known, e.g. during an
election) are retried a bounded number of times.

See the package docstring (``help(boat_client)``) and README.md for a usage
example.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

__all__ = ["Client", "BoatError"]

#: Redirects and retries are logged here at DEBUG level.
log = logging.getLogger("boat_client")

#: Bytes, or a path to a file whose contents are sent.
Payload = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]
#: An app member: ``"model"``, ``"model:3"`` or ``{"model": ..., "version": 3}``.
Member = Union[str, Mapping[str, Any]]


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
            if status == 503 and wait is not None and attempts < self.max_attempts:
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
