"""The servers under test, each a subprocess on loopback with its own temporary storage.

Every server is started in its own session so a Ctrl-C reaches the benchmark only;
:meth:`Server.stop` ends it by its process id (terminate, then kill) and removes its
directory. ``with Server(...)`` guarantees both, whatever happens inside.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

LOOPBACK = "127.0.0.1"


class ServerUnavailable(RuntimeError):
    """The server could not be started (missing tool, crash, never became ready)."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def dcmtk_env() -> dict[str, str]:
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    return env


def which(name: str, *extra_dirs: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(extra_dirs))
    if path is None:
        raise ServerUnavailable(f"{name} is not installed (make install installs it)")
    return path


def echo(port: int, aet: str, timeout: float = 5.0) -> bool:
    """C-ECHO with dcmtk's echoscu: the DIMSE listener is up and answering."""
    result = subprocess.run(
        [which("echoscu"), "-to", "3", "-ta", "3", "-aec", aet, LOOPBACK, str(port)],
        env=dcmtk_env(),
        capture_output=True,
        timeout=timeout,
    )
    return result.returncode == 0


class Server:
    """A server process. Subclasses set ``name``/``aet`` and implement ``_command``/``_ready``."""

    name = "server"
    aet = "ANY-SCP"
    has_dicomweb = True

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    # -- to override ---------------------------------------------------------------------
    def _command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def stored_instances(self, study_uid: str) -> int:
        """How many instances of the study the server holds (checked after every ingest)."""
        return study_instances(self.dicomweb, study_uid)

    # -------------------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return self.http_url + "/dicom-web"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def start(self, timeout: float = 90.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv, env = self._command()
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerUnavailable(self._why("exited at start-up"), self.log_tail())
            try:
                if self._ready():
                    return
            except (httpx.HTTPError, OSError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.2)
        raise ServerUnavailable(self._why(f"not ready after {timeout:.0f} s"), self.log_tail())

    def _why(self, what: str) -> str:
        lines = [line for line in self.log_tail().splitlines() if line.strip()]
        return f"{self.name} {what}" + (f": {lines[-1].strip()[:160]}" if lines else "")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def processes(self) -> list[psutil.Process]:
        if self.process is None or self.process.poll() is not None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        total = 0
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def wait_idle(
        self, busy_below: float = 0.05, settle: float = 1.0, timeout: float = 60.0
    ) -> bool:
        """Wait until the server uses under ``busy_below`` of a core for ``settle`` seconds.

        Background work left over from loading (indexing, caches) must not land in the
        next measurement, of this server or of another.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            time.sleep(settle)
            if self.cpu_seconds() - before < busy_below * settle:
                return True
        return False

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def study_instances(dicomweb: str, study_uid: str) -> int:
    """NumberOfStudyRelatedInstances from QIDO-RS (0 when the study is unknown)."""
    r = httpx.get(
        f"{dicomweb}/studies",
        params={"StudyInstanceUID": study_uid, "includefield": "00201208"},
        headers={"Accept": "application/dicom+json"},
        timeout=120,
    )
    if r.status_code == 204 or not r.content:
        return 0
    r.raise_for_status()
    found = r.json()
    if not found:
        return 0
    return int(found[0]["00201208"]["Value"][0])


def _orthanc_dicomweb_plugin() -> str:
    candidates = []
    try:
        listing = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True)
        candidates = [line for line in listing.stdout.splitlines() if line.endswith(".so")]
    except OSError:
        pass
    for path in candidates + ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"]:
        if Path(path).exists():
            return path
    raise ServerUnavailable("the Orthanc DICOMweb plugin is not installed (orthanc-dicomweb)")


class Orthanc(Server):
    """Orthanc with its DICOMweb plugin; everything not set here is Orthanc's default."""

    name = "Orthanc"
    aet = "ORTHANC"

    def config(self) -> dict[str, Any]:
        storage = str(self.workdir / "storage")
        return {
            "Name": "bench",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [_orthanc_dicomweb_plugin()],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "DicomAlwaysAllowStore": True,
            "DicomCheckCalledAet": False,
        }

    def _command(self) -> tuple[list[str], dict[str, str]]:
        binary = which("Orthanc", "/usr/sbin", "/usr/local/sbin")
        config = self.workdir / "orthanc.json"
        config.write_text(json.dumps(self.config(), indent=2))
        return [binary, str(config)], dcmtk_env()

    def _ready(self) -> bool:
        ok = httpx.get(self.http_url + "/system", timeout=2).status_code == 200
        return ok and echo(self.dicom_port, self.aet)


class Storescp(Server):
    """dcmtk's storescp: a raw receiver that writes each object to a file, nothing more."""

    name = "storescp"
    aet = "STORESCP"
    has_dicomweb = False

    @property
    def out_dir(self) -> Path:
        return self.workdir / "received"

    def _command(self) -> tuple[list[str], dict[str, str]]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            which("storescp"),
            "-aet",
            self.aet,
            "-od",
            str(self.out_dir),
            "+xa",
            str(self.dicom_port),
        ]
        return argv, dcmtk_env()

    def _ready(self) -> bool:
        return echo(self.dicom_port, self.aet)

    def stored_instances(self, study_uid: str) -> int:
        return sum(1 for _ in self.out_dir.iterdir())


class Telerad(Server):
    """``telerad serve`` on the embedded defaults (SQLite + files), fsync left on (the default)."""

    name = "telerad"
    aet = "TELERAD"

    def _command(self) -> tuple[list[str], dict[str, str]]:
        bin_dir = str(Path(sys.executable).parent)
        binary = shutil.which("telerad", path=bin_dir) or shutil.which("telerad")
        argv = [binary, "serve"] if binary else [sys.executable, "-m", "telerad.cli.main", "serve"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELERAD_")}
        env.update(
            TELERAD_DATA_DIR=str(self.workdir / "data"),
            TELERAD_HTTP_HOST=LOOPBACK,
            TELERAD_HTTP_PORT=str(self.http_port),
            TELERAD_DICOM_HOST=LOOPBACK,
            TELERAD_DICOM_PORT=str(self.dicom_port),
            TELERAD_DICOM_AET=self.aet,
            TELERAD_MLLP_PORT=str(free_port()),  # not measured; kept off the shared 2575
        )
        return argv, env

    def _ready(self) -> bool:
        ok = httpx.get(self.http_url + "/healthz", timeout=2).status_code == 200
        return ok and echo(self.dicom_port, self.aet)

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """Run a ``telerad`` command against this server's data dir; its standard output."""
        _argv, env = self._command()
        result = subprocess.run(
            [sys.executable, "-m", "telerad.cli.main", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise ServerUnavailable(f"telerad {args[0]} failed: {result.stderr.strip()[:160]}")
        return result.stdout


KINDS: dict[str, type[Server]] = {"storescp": Storescp, "Orthanc": Orthanc, "telerad": Telerad}
