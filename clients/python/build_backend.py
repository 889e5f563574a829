"""A PEP 517 build backend in the standard library alone.

``pip install ./clients/python`` must work offline, and pip's isolated
build would otherwise download setuptools first. This backend needs
nothing: it zips the ``boat_client`` package into a pure-Python wheel (and
an sdist), with the metadata read from ``pyproject.toml``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import zipfile

try:
    import tomllib  # Python 3.11+
except ImportError:  # pragma: no cover - older Pythons read the two keys by hand
    tomllib = None

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "boat_client"


def _project() -> dict:
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        raw = f.read()
    if tomllib is not None:
        return tomllib.loads(raw.decode())["project"]
    project = {}
    section = None
    for line in raw.decode().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[project]" and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            if value.startswith('"'):
                project[key] = value.strip('"')
    return project


def _metadata() -> str:
    p = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {p['name']}",
        f"Version: {p['version']}",
        f"Summary: {p.get('description', '')}",
        f"Requires-Python: {p.get('requires-python', '>=3.9')}",
        "License: Apache-2.0",
    ]
    return "\n".join(lines) + "\n"


def _dist_name() -> str:
    p = _project()
    return f"{p['name'].replace('-', '_')}-{p['version']}"


def _package_files():
    root = os.path.join(HERE, PACKAGE)
    for name in sorted(os.listdir(root)):
        if name.endswith(".py"):
            yield f"{PACKAGE}/{name}", os.path.join(root, name)


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist = _dist_name()
    wheel_name = f"{dist}-py3-none-any.whl"
    info = f"{dist}.dist-info"
    records = []
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w", zipfile.ZIP_DEFLATED) as whl:
        def add(arcname: str, data: bytes) -> None:
            whl.writestr(arcname, data)
            records.append(_record_line(arcname, data))

        for arcname, path in _package_files():
            with open(path, "rb") as f:
                add(arcname, f.read())
        add(f"{info}/METADATA", _metadata().encode())
        add(f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: boat build_backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        records.append(f"{info}/RECORD,,")
        whl.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
    return wheel_name


def build_sdist(sdist_directory, config_settings=None):
    dist = _dist_name()
    name = f"{dist}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as tar:
        for rel in ["pyproject.toml", "README.md", "build_backend.py"]:
            tar.add(os.path.join(HERE, rel), arcname=f"{dist}/{rel}")
        for arcname, path in _package_files():
            tar.add(path, arcname=f"{dist}/{arcname}")
        meta = _metadata().encode()
        info = tarfile.TarInfo(f"{dist}/PKG-INFO")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    return name
