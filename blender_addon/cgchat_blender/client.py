"""HTTP client for the cgchat API: standard library only (Blender's Python has no requests/httpx).

No bpy in here: this module runs in worker threads and is unit-tested with plain Python.
Every failure becomes an :class:`ApiError` with a message fit for the status bar, built from the
server's error JSON (``{"error": {"code", "message"}}``) when there is one.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

USER_AGENT = "cgchat-blender/0.1"
CHUNK = 256 * 1024
SEARCH_MODES = ("hybrid", "semantic", "keyword", "visual")
ASSET_TYPES = ("image", "video", "blend", "model", "document", "other")


class ApiError(Exception):
    """A failed call, in words; ``status``/``code`` are set when the server answered."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Client:
    """One server. Cheap to create: make one per job from the preferences of the moment."""

    def __init__(self, base_url: str, token: str = "", timeout: float = 30.0) -> None:
        url = (base_url or "").strip().rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ApiError(f"server URL {base_url!r} is not valid: expected http://host:port or https://host")
        self.base_url = url
        self.token = (token or "").strip()
        self.timeout = float(timeout)
        # A studio machine's http_proxy must not capture calls to a server on this machine.
        proxies = {} if _is_loopback(parts.hostname or "") else None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))

    # ------------------------------------------------------------------ plumbing

    def _request(self, method: str, path: str, body: Any = None) -> urllib.request.Request:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("User-Agent", USER_AGENT)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            # Unredirected: a 302 to an S3 presigned URL must not carry our token (S3 would refuse it).
            request.add_unredirected_header("Authorization", f"Bearer {self.token}")
        return request

    def _open(self, request: urllib.request.Request):
        try:
            return self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise ApiError(f"{self.base_url} did not answer within {self.timeout:g} s") from None
            raise ApiError(f"cannot reach the cgchat server at {self.base_url}: {reason}") from None
        except TimeoutError:
            raise ApiError(f"{self.base_url} did not answer within {self.timeout:g} s") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise ApiError(f"cannot reach the cgchat server at {self.base_url}: {exc}") from None

    def _http_error(self, exc: urllib.error.HTTPError) -> ApiError:
        status = exc.code
        try:
            raw = exc.read()
        except (OSError, ValueError):
            raw = b""
        finally:
            exc.close()
        code, message = None, None
        try:
            reply = json.loads(raw.decode("utf-8"))
            error = reply.get("error")
            if isinstance(error, dict):  # cgchat: {"error": {"code", "message"}}
                code, message = error.get("code"), error.get("message")
            elif isinstance(error, str):
                message = error
            elif isinstance(reply.get("detail"), str):  # a plain FastAPI/Starlette reply
                message = reply["detail"]
        except (ValueError, AttributeError, UnicodeDecodeError):
            pass
        if not message:
            message = raw.decode("utf-8", "replace").strip()[:200] or exc.reason or "no details"
        text = f"server error {status}"
        if code:
            text += f" ({code})"
        text += f": {message}"
        if status == 401:
            text += " (check the token in the cgchat add-on preferences)"
        return ApiError(text, status=status, code=code)

    def _read(self, response, path: str) -> bytes:
        try:
            return response.read()
        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, truncated bodies
            raise ApiError(f"reading the reply of {self.base_url}{path} failed: {exc}") from None

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        with self._open(self._request(method, path, body)) as response:
            raw = self._read(response, path)
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ApiError(
                f"{self.base_url}{path} did not answer with JSON; is this a cgchat server?"
            ) from None

    # ------------------------------------------------------------------ API

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")

    def search(
        self,
        query: str,
        mode: str = "hybrid",
        asset_type: str | list[str] | None = None,
        limit: int = 20,
        **filters: Any,
    ) -> dict[str, Any]:
        """POST /v1/search; ``filters`` are further SearchBody fields (engine, resolution, fps...)."""
        if mode not in SEARCH_MODES:
            raise ApiError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
        body: dict[str, Any] = {"query": query, "mode": mode, "limit": int(limit)}
        if asset_type:
            body["type"] = asset_type
        body.update({k: v for k, v in filters.items() if v is not None})
        return self._json("POST", "/v1/search", body)

    def asset(self, asset_id: int) -> dict[str, Any]:
        return self._json("GET", f"/v1/assets/{int(asset_id)}")

    def thumbnail(self, asset_id: int) -> bytes | None:
        """The preview picture (PNG or JPEG), or None when the asset has none (404)."""
        try:
            path = f"/v1/assets/{int(asset_id)}/thumbnail"
            with self._open(self._request("GET", path)) as response:
                return self._read(response, path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def download(self, asset_id: int, dest: str) -> str:
        """GET /v1/assets/{id}/file into ``dest`` (written to a .part file, then renamed)."""
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        fd, part = tempfile.mkstemp(prefix=".cgchat-", suffix=".part", dir=os.path.dirname(dest) or ".")
        try:
            with (
                os.fdopen(fd, "wb") as out,
                self._open(self._request("GET", f"/v1/assets/{int(asset_id)}/file")) as response,
            ):
                try:
                    shutil.copyfileobj(response, out, CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise ApiError(
                        f"download of asset {asset_id} from {self.base_url} broke off: {exc}"
                    ) from None
            os.replace(part, dest)
        finally:
            if os.path.exists(part):
                os.unlink(part)
        return dest


# ---------------------------------------------------------------------- files


def safe_name(name: str, fallback: str = "asset") -> str:
    """A file name from the server that cannot climb out of the cache folder."""
    base = os.path.basename((name or "").replace("\\", "/"))
    base = re.sub(r'[\x00-\x1f<>:"|?*]', "_", base).strip(" .")
    return base or fallback


def server_key(base_url: str) -> str:
    """Asset ids are per server: cached files of two servers must not mix."""
    return hashlib.sha1(base_url.strip().rstrip("/").encode("utf-8")).hexdigest()[:12]


def cached_file_path(cache_dir: str, base_url: str, asset_id: int, name: str) -> str:
    return os.path.join(cache_dir, "files", server_key(base_url), str(int(asset_id)), safe_name(name))


def image_suffix(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    return ".img"


def local_file(path: str, prefer_local: bool = True) -> str | None:
    """The indexed path itself when it exists on this machine (shared storage, same workstation)."""
    if prefer_local and path and not path.startswith("s3://") and os.path.isfile(path):
        return path
    return None


def fetch_file(
    client: Client,
    asset_id: int,
    name: str,
    path: str,
    size_bytes: int | None,
    cache_dir: str,
    prefer_local: bool = True,
) -> str:
    """A path to the asset's bytes on this machine: the original file, a cached copy of the same
    size, or a fresh download into ``cache_dir``."""
    local = local_file(path, prefer_local)
    if local:
        return local
    dest = cached_file_path(cache_dir, client.base_url, asset_id, name or os.path.basename(path))
    if os.path.isfile(dest) and (size_bytes is None or os.path.getsize(dest) == size_bytes):
        return dest
    return client.download(asset_id, dest)


def default_cache_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "cgchat_blender_cache")
