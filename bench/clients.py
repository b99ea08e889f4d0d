"""The clients every server gets alike: dcmtk storescu, one Python STOW-RS/QIDO/WADO client.

Timings are wall-clock from the client's side (``time.perf_counter``), around the whole
exchange: for storescu the whole process (one association), for HTTP the request until
the last byte of the response is read.
"""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from bench.servers import LOOPBACK, Server, dcmtk_env, which

JSON = "application/dicom+json"

# storescu processes under way, so an interrupted parallel load can end them at once.
_running: set[subprocess.Popen[bytes]] = set()
_lock = threading.Lock()


class MeasureError(RuntimeError):
    """A server answered wrongly (error status, wrong count, wrong bytes)."""


def storescu(server: Server, files: Sequence[Path], timeout: float = 900) -> float:
    """Send ``files`` over one association; return the wall time in seconds."""
    argv = [
        which("storescu"),
        "-aet",
        "BENCH",
        "-aec",
        server.aet,
        LOOPBACK,
        str(server.dicom_port),
        *map(str, files),
    ]
    t0 = time.perf_counter()
    with subprocess.Popen(
        argv, env=dcmtk_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as proc:
        with _lock:
            _running.add(proc)
        try:
            _, stderr = proc.communicate(timeout=timeout)
        finally:
            with _lock:
                _running.discard(proc)
            if proc.poll() is None:
                proc.kill()
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise MeasureError(f"storescu to {server.name} exited {proc.returncode}: {tail}")
    return elapsed


def storescu_parallel(
    server: Server,
    chunks: Sequence[Sequence[Path]],
    workers: int,
    advance: Callable[[int], None],
) -> float:
    """Send each chunk over its own association, ``workers`` associations at a time."""
    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(workers)
    try:
        futures = [pool.submit(storescu, server, chunk) for chunk in chunks]
        for chunk, future in zip(chunks, futures, strict=True):
            future.result()
            advance(len(chunk))
    except BaseException:
        # Ctrl-C or a failed chunk: send nothing more, end the storescu still running.
        pool.shutdown(wait=False, cancel_futures=True)
        with _lock:
            for proc in _running:
                proc.kill()
        raise
    pool.shutdown()
    return time.perf_counter() - t0


@dataclass(frozen=True)
class StowBody:
    content_type: str
    body: bytes
    count: int


def stow_bodies(files: Sequence[Path], batch: int) -> list[StowBody]:
    """multipart/related request bodies of ``batch`` instances each, built before timing."""
    out = []
    for i in range(0, len(files), batch):
        boundary = uuid.uuid4().hex
        parts = []
        for path in files[i : i + batch]:
            parts.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
            parts.append(path.read_bytes())
            parts.append(b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
        out.append(StowBody(ctype, b"".join(parts), len(files[i : i + batch])))
    return out


def stow(
    server: Server, bodies: Sequence[StowBody], advance: Callable[[int], None] | None = None
) -> float:
    """POST the batches one after another on one connection; return the wall time."""
    with httpx.Client(timeout=300) as client:
        t0 = time.perf_counter()
        for b in bodies:
            r = client.post(
                f"{server.dicomweb}/studies",
                content=b.body,
                headers={"Content-Type": b.content_type, "Accept": JSON},
            )
            if r.status_code != 200:
                raise MeasureError(f"STOW-RS to {server.name}: HTTP {r.status_code} {r.text[:200]}")
            failed = r.json().get("00081198") if r.content else None
            if failed and failed.get("Value"):
                raise MeasureError(f"STOW-RS to {server.name}: failed instances {failed}")
            if advance:
                advance(b.count)
        return time.perf_counter() - t0


def stow_parallel(
    server: Server, bodies: Sequence[StowBody], workers: int, advance: Callable[[int], None]
) -> float:
    """``workers`` clients, each posting its share of the batches one after another."""
    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(workers)
    try:
        futures = [pool.submit(stow, server, bodies[i::workers], advance) for i in range(workers)]
        for future in futures:
            future.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return time.perf_counter() - t0


def with_query(url: str, params: dict[str, str]) -> str:
    """The URL with its query string; ``*`` stays as typed, since Orthanc 1.10 matches
    ``%2A`` literally (httpx's ``params=`` would encode it)."""
    if not params:
        return url
    return url + "?" + "&".join(f"{k}={quote(v, safe='*-,')}" for k, v in params.items())


@dataclass
class Latency:
    median_ms: float
    p90_ms: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {"median_ms": self.median_ms, "p90_ms": self.p90_ms, "n": self.n}


def timed_gets(
    client: httpx.Client,
    urls: Sequence[tuple[str, dict[str, str]]],
    headers: dict[str, str],
    check: Callable[[int, httpx.Response], None],
    warmup: int,
) -> Latency:
    """GET each (url, params); the first ``warmup`` are not timed. ``check`` sees every answer."""
    times: list[float] = []
    for i, (url, params) in enumerate(urls):
        t0 = time.perf_counter()
        r = client.get(with_query(url, params), headers=headers)
        elapsed = time.perf_counter() - t0
        if r.status_code not in (200, 204):
            where = "/".join(url.split("/")[-2:])
            raise MeasureError(f"GET …/{where} {params}: HTTP {r.status_code} {r.text[:160]}")
        check(i, r)
        if i >= warmup:
            times.append(elapsed * 1000)
    times.sort()
    return Latency(statistics.median(times), times[int(0.9 * (len(times) - 1))], len(times))


def qido_count(r: httpx.Response) -> int:
    return len(r.json()) if r.status_code == 200 and r.content else 0


def multipart_parts(r: httpx.Response) -> list[bytes]:
    """The bodies of a multipart/related response (enough of RFC 2046 for one or a few parts)."""
    ctype = r.headers.get("content-type", "")
    params = dict(p.strip().split("=", 1) for p in ctype.split(";")[1:] if "=" in p)
    boundary = params.get("boundary", "").strip('"')
    if not ctype.startswith("multipart/related") or not boundary:
        raise MeasureError(f"not multipart/related: {ctype!r}")
    delimiter = b"--" + boundary.encode()
    parts = []
    for chunk in r.content.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        _, sep, body = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise MeasureError("multipart part without a header block")
        parts.append(body[:-2] if body.endswith(b"\r\n") else body)
    return parts


class RssSampler:
    """Samples a server's resident memory (process and children) in a thread."""

    def __init__(self, server: Server, interval: float = 0.1) -> None:
        self.server = server
        self.interval = interval
        self.max_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.max_bytes = max(self.max_bytes, self.server.rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.max_bytes = self.server.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.max_bytes = max(self.max_bytes, self.server.rss())

    @property
    def max_mb(self) -> float:
        return self.max_bytes / 2**20
