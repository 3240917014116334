"""The approver's dashboard (``web/``) served at ``/`` beside the API by ``vettra dev``.

The files hold no data and need no token (docs/api.md, *Authentication*). They are read
once at start into an in-memory index keyed by URL path, so a request never reaches
the file system: a path that is not a key (``/../etc/passwd``, ``/app/``, an encoded
dot segment) cannot name a file outside the web root, and there is no directory
listing. Only known file types are indexed, each with its own ``Content-Type``;
hidden files, symbolic links, ``node_modules`` and the npm manifests are left out.

Every answer carries a strict Content-Security-Policy: scripts, styles, images and
fonts from this origin only, no inline script or style, no third-party origin, no
framing, and Trusted Types required, so no string can become markup or a script. The
one addition is ``'wasm-unsafe-eval'`` in ``script-src``: it lets the page compile
WebAssembly (the verifier module), and nothing else (no ``eval``, no ``Function``).

The WASM verifier is not a file of the web root: ``/verifier.wasm`` is the package's
own ``data/verifier.wasm``, the very bytes the backend runs (:data:`PACKAGE_ASSETS`).

Requests for ``/api/...`` and ``/health`` (and anything but GET or HEAD outside them:
405) go to the API unchanged. :class:`WithDashboard` is the ASGI callable uvicorn runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..domain.errors import PROBLEM_BASE

log = logging.getLogger("vettra.http")

#: Scripts, styles, fonts, images and connections from this origin only; nothing inline.
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",  # WebAssembly.compile only: the verifier
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
#: Files are not fingerprinted: the browser revalidates each time (ETag, 304).
CACHE_CONTROL = "no-cache"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm",
}
#: URL path -> file of the ``vettra`` package served beside the web root's files
PACKAGE_ASSETS = {"/verifier.wasm": "data/verifier.wasm"}
SKIPPED_DIRS = {"node_modules", "tests", "dist", "scripts"}  # dist: the Hosting copy
SKIPPED_FILES = {"package.json", "package-lock.json"}
MAX_SITE_BYTES = 32 * 1024 * 1024
INDEX = "index.html"
API_PREFIX = "/api/"
PUBLIC_API = ("/api", "/health")
READ_METHODS = ("GET", "HEAD")
ENV_WEB_DIR = "VETTRA_WEB_DIR"

Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def web_root(env: dict[str, str] | None = None) -> Path | None:
    """Where the dashboard's files are: ``$VETTRA_WEB_DIR``, else ``vettra/web`` inside
    an installed package (a wheel carries ``web/`` there), else the checkout's ``web/``
    (an editable install, as ``make dev`` makes); None when there is none."""
    env = dict(os.environ if env is None else env)
    package = Path(__file__).resolve().parents[1]
    candidates = [Path(env[ENV_WEB_DIR])] if env.get(ENV_WEB_DIR) else []
    candidates += [package / "web", package.parents[1] / "web"]
    for candidate in candidates:
        if (candidate / INDEX).is_file():
            return candidate
    return None


class StaticSite:
    """The web root's files by URL path, read once."""

    def __init__(self, assets: dict[str, Asset], root: Path | None):
        self.assets = assets
        self.root = root

    @classmethod
    def load(cls, root: Path | None) -> StaticSite:
        if root is None:
            return cls({}, None)
        assets: dict[str, Asset] = {}
        total = 0
        for relative, path in _walk(root):
            content_type = CONTENT_TYPES.get(path.suffix.lower())
            if content_type is None:
                continue
            body = path.read_bytes()
            total += len(body)
            if total > MAX_SITE_BYTES:
                raise ValueError(f"{root} holds more than {MAX_SITE_BYTES} bytes of files")
            assets["/" + relative] = Asset(body, content_type, _etag(body))
        if "/" + INDEX in assets:
            assets["/"] = assets["/" + INDEX]
        package = resources.files("vettra")
        for url, name in PACKAGE_ASSETS.items():
            try:
                body = package.joinpath(name).read_bytes()
            except OSError:
                log.warning("dashboard: the package has no %s; %s is not served", name, url)
                continue
            assets[url] = Asset(body, CONTENT_TYPES[Path(name).suffix], _etag(body))
        return cls(assets, root)

    def lookup(self, path: str) -> Asset | None:
        return self.assets.get(path)


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """Regular files under ``root`` (no links followed, nothing hidden), sorted."""
    for directory, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and d not in SKIPPED_DIRS
            and not os.path.islink(os.path.join(directory, d))
        )
        for name in sorted(files):
            path = Path(directory) / name
            if name.startswith(".") or name in SKIPPED_FILES or path.is_symlink():
                continue
            if path.is_file():
                yield path.relative_to(root).as_posix(), path


def _is_api(path: str) -> bool:
    return path.startswith(API_PREFIX) or path in PUBLIC_API


def _unsafe(path: str) -> bool:
    """Dot segments, backslashes, control characters or empty segments: never a file name."""
    if not path.startswith("/") or "\\" in path or "//" in path:
        return True
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        return True
    return any(segment in (".", "..") for segment in path.split("/"))


class WithDashboard:
    """ASGI: the dashboard's files for GET/HEAD outside the API; the API for the rest."""

    def __init__(self, api: Any, site: StaticSite):
        self.api = api
        self.site = site

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_api(scope.get("path") or "/"):
            await self.api(scope, receive, send)
            return
        await self._static(scope, send)

    async def _static(self, scope: dict[str, Any], send: Send) -> None:
        path = scope.get("path") or "/"
        method = scope.get("method", "GET")
        if method not in READ_METHODS:
            await _problem(
                send, 405, "method-not-allowed", "Method not allowed",
                f"{method} is not allowed on the dashboard's files; use GET or HEAD",
                {"Allow": ", ".join(READ_METHODS)},
            )  # fmt: skip
            return
        if _unsafe(path):
            log.warning("dashboard: refused path %r", path[:200])
            await _problem(
                send, 400, "malformed-request", "Malformed request",
                "the path has a dot segment, a backslash, an empty segment or a control "
                "character; no file is named like that", head=method == "HEAD",
            )  # fmt: skip
            return
        asset = self.site.lookup(path)
        if asset is None:
            detail = (
                f"no dashboard file at {path[:200]}"
                if self.site.root is not None
                else "the dashboard's files are not installed (set VETTRA_WEB_DIR to a web/ folder)"
            )
            await _problem(send, 404, "not-found", "Not found", detail, head=method == "HEAD")
            return
        headers = {**SECURITY_HEADERS, "Cache-Control": CACHE_CONTROL, "ETag": asset.etag}
        if _matches(_header(scope, b"if-none-match"), asset.etag):
            await _send(send, 304, headers, b"", head=True)
            return
        headers["Content-Type"] = asset.content_type
        await _send(send, 200, headers, asset.body, head=method == "HEAD")


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2 weak comparison against a list of entity tags (or ``*``)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


async def _send(
    send: Send, status: int, headers: dict[str, str], body: bytes, *, head: bool = False
) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _problem(
    send: Send,
    status: int,
    slug: str,
    title: str,
    detail: str,
    extra: dict[str, str] | None = None,
    *,
    head: bool = False,
) -> None:
    trace_id = secrets.token_hex(16)
    body = json.dumps(
        {
            "type": PROBLEM_BASE + slug,
            "title": title,
            "status": status,
            "detail": detail,
            "trace_id": trace_id,
        }
    ).encode()
    headers = {
        **SECURITY_HEADERS,
        "Content-Type": "application/problem+json",
        "Cache-Control": "no-store",
        "X-Trace-Id": trace_id,
        **(extra or {}),
    }
    await _send(send, status, headers, body, head=head)
