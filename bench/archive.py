"""Archive benchmark: telerad against Orthanc and dcmtk storescp, side by side, one command.

    python -m bench.archive [--quick] [--only stores|qido|wado] [--json PATH]

Every ingest runs against a freshly started server (empty storage in its own temporary
directory); queries and retrieves run against one Orthanc and one telerad loaded with the
same corpus. All servers are stopped and all temporary files removed at the end, also on
error or Ctrl-C. See docs/benchmarks.md for what is measured and the last figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pydicom
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import clients, corpus
from bench.clients import JSON, MeasureError, RssSampler
from bench.report import BY_KEY, Results, environment
from bench.servers import KINDS, Server, ServerUnavailable, Telerad

BROWSER_GZIP = "gzip, deflate"
FRAMES_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


@dataclasses.dataclass(frozen=True)
class Config:
    ct_slices: int = 400
    tiny: int = 5000
    studies: int = 30_000
    chunk: int = 1000  # one-instance studies per storescu association while loading
    load_workers: int = 3  # associations (or STOW-RS clients) in parallel while loading
    load_via: str = "stow"  # or "storescu"
    load_batch: int = 100  # instances per STOW-RS request while loading
    stow_batch: int = 10
    ingest_repeats: int = 2  # best of, each on a fresh server
    qido_requests: int = 50
    qido_warmup: int = 5
    metadata_requests: int = 10
    frame_requests: int = 100
    seed: int = 20260101

    @classmethod
    def quick(cls) -> Config:
        return cls(
            ct_slices=100,
            tiny=1000,
            studies=3000,
            chunk=500,
            ingest_repeats=1,
            qido_requests=20,
            qido_warmup=3,
            metadata_requests=3,
            frame_requests=30,
        )


class Bench:
    def __init__(self, cfg: Config, root: Path, console: Console) -> None:
        self.cfg = cfg
        self.root = root
        self.console = console
        self.results = Results()
        self.unavailable: dict[str, str] = {}
        self._runs = 0

    # -- servers ---------------------------------------------------------------------------
    @contextmanager
    def server(self, kind: str) -> Iterator[Server | None]:
        """A fresh server of ``kind``, or None (recorded) when it cannot start."""
        if kind in self.unavailable:
            yield None
            return
        self._runs += 1
        srv = KINDS[kind](self.root / f"{kind}-{self._runs}")
        try:
            srv.start()
        except ServerUnavailable as e:
            srv.stop()
            self.unavailable[kind] = str(e)
            self.console.print(f"[yellow]{e}[/]")
            if e.log:
                self.console.print(e.log, style="dim", markup=False, highlight=False)
            self.results.notes.append(str(e))
            yield None
            return
        try:
            yield srv
        finally:
            srv.stop()

    def _record(self, key: str, server: str, fn: Callable[[], float | None], **detail: Any) -> None:
        """Run one measurement; a failure is recorded (and shown) instead of stopping the run."""
        value: float | None = None
        if server not in self.unavailable:
            try:
                value = fn()
            except (MeasureError, httpx.HTTPError, OSError, ValueError, KeyError) as e:
                self.console.print(f"[red]{key} on {server}:[/] {e}")
                self.results.set(key, server, f"error: {e}")
                self.results.notes.append(f"{key} on {server}: {e}")
                return
        if value is None or server in self.unavailable:
            self.results.set(key, server, "unavailable")
            return
        self.results.set(key, server, value, **detail)
        unit = BY_KEY[key].unit
        self.console.print(f"  {BY_KEY[key].label:<46} {server:<9} {value:10.2f} {unit}")

    def progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )

    # -- corpus ----------------------------------------------------------------------------
    def make_corpus(self, need_ct: bool, need_tiny: bool, need_studies: bool) -> None:
        cfg, base = self.cfg, self.root / "corpus"
        with self.progress() as p:
            if need_ct:
                t = p.add_task("corpus: CT 512×512", total=cfg.ct_slices)
                self.ct = corpus.write_ct(base / "ct", cfg.ct_slices, lambda n: p.advance(t, n))
            if need_tiny:
                t = p.add_task("corpus: tiny 8×8", total=cfg.tiny)
                self.tiny = corpus.write_tiny(base / "tiny", cfg.tiny, lambda n: p.advance(t, n))
            if need_studies:
                t = p.add_task("corpus: one-instance studies", total=cfg.studies)
                self.studies = corpus.write_studies(
                    base / "studies", cfg.studies, cfg.chunk, cfg.seed, lambda n: p.advance(t, n)
                )
        os.sync()  # write-back of the corpus must not land inside the first measurement

    # -- ingest ----------------------------------------------------------------------------
    def _ingest_once(
        self, kind: str, series: corpus.SeriesSet, send: Callable[[Server], float]
    ) -> tuple[float, float] | None:
        """(instances/s, max RSS MB) from a fresh ``kind``; None when it cannot start."""
        with self.server(kind) as srv:
            if srv is None:
                return None
            os.sync()  # the previous server's write-back must not land in this measurement
            with RssSampler(srv) as rss:
                seconds = send(srv)
            stored = srv.stored_instances(series.study_uid)
            if stored != len(series.files):
                raise MeasureError(f"{stored} of {len(series.files)} instances stored")
            return len(series.files) / seconds, rss.max_mb

    def _ingest(
        self,
        key: str,
        kinds: tuple[str, ...],
        series: corpus.SeriesSet,
        send: Callable[[Server], float],
        rounds: int,
    ) -> None:
        """Best of ``rounds`` runs per server, each on a fresh server. The servers take
        turns (A B C, A B C) so that other load on the shared machine, which only ever
        slows a run down, falls on all of them alike."""
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
        errors: dict[str, Exception] = {}
        for _ in range(rounds):
            for kind in kinds:
                if kind in errors or kind in self.unavailable:
                    continue
                try:
                    run = self._ingest_once(kind, series, send)
                except (MeasureError, httpx.HTTPError, OSError) as e:
                    errors[kind] = e
                    continue
                if run is not None:
                    runs[kind].append(run)
        for kind in kinds:

            def best(kind: str = kind) -> float | None:
                if kind in errors:
                    raise errors[kind]
                return max((rate for rate, _ in runs[kind]), default=None)

            self._record(key, kind, best)
            if not runs[kind]:
                continue
            mb = max(m for _, m in runs[kind])
            self.results.details.setdefault(key, {})[kind] = {
                "runs_per_s": [round(r, 1) for r, _ in runs[kind]],
                "rss_max_mb": round(mb, 1),
            }
            if key in ("cstore_ct", "stow_ct") and kind != "storescp":
                old = self.results.values.get("rss_ct_ingest", {}).get(kind)
                if not isinstance(old, float) or mb > old:
                    self.results.set("rss_ct_ingest", kind, mb)

    def stores(self) -> None:
        self.console.rule("ingest: a fresh server for every run")
        cfg, all_kinds = self.cfg, tuple(KINDS)
        ct_files, tiny_files = self.ct.files, self.tiny.files
        self._ingest(
            "cstore_ct",
            all_kinds,
            self.ct,
            lambda s: clients.storescu(s, ct_files),
            cfg.ingest_repeats,
        )
        # One run: 5,000 messages already average out short disturbances.
        self._ingest(
            "cstore_tiny", all_kinds, self.tiny, lambda s: clients.storescu(s, tiny_files), 1
        )
        bodies = clients.stow_bodies(ct_files, cfg.stow_batch)
        self._ingest(
            "stow_ct",
            ("Orthanc", "telerad"),
            self.ct,
            lambda s: clients.stow(s, bodies),
            cfg.ingest_repeats,
        )

    # -- query and retrieve ----------------------------------------------------------------
    def query_and_retrieve(self, qido: bool, wado: bool) -> None:
        self.console.rule("query and retrieve: one Orthanc and one telerad with the same corpus")
        with ExitStack() as stack:
            servers = [
                s
                for s in (stack.enter_context(self.server(k)) for k in ("Orthanc", "telerad"))
                if s is not None
            ]
            loaded = []
            for srv in servers:
                try:
                    if wado:
                        clients.storescu(srv, self.ct.files)
                        stored = srv.stored_instances(self.ct.study_uid)
                        if stored != len(self.ct.files):
                            raise MeasureError(f"{stored} of {len(self.ct.files)} CT stored")
                    if qido:
                        self._load_studies(srv)
                    loaded.append(srv)
                except MeasureError as e:
                    self.console.print(f"[red]loading {srv.name} failed:[/] {e}")
                    self.unavailable[srv.name] = f"load failed: {e}"
            for srv in loaded:
                if not srv.wait_idle():
                    self.results.notes.append(f"{srv.name} was still busy 60 s after loading")
            if qido:
                self._qido(loaded)
            if wado:
                self._wado(loaded)
            if qido:  # last: from here on the telerad server requires sign-in
                for srv in loaded:
                    if isinstance(srv, Telerad):
                        try:
                            self._authorisation(srv)
                        except MeasureError as e:
                            self.results.notes.append(f"authorisation benchmark failed: {e}")
            for kind in ("Orthanc", "telerad"):
                if kind in self.unavailable:
                    for key in (["qido_pid", "qido_name", "qido_date"] if qido else []) + (
                        ["wado_metadata", "wado_frames"] if wado else []
                    ):
                        self.results.set(key, kind, "unavailable")

    def _load_studies(self, srv: Server) -> None:
        cfg = self.cfg
        if cfg.load_via == "stow":
            files = [f for chunk in self.studies.chunks for f in chunk]
            bodies = clients.stow_bodies(files, cfg.load_batch)
        with self.progress() as p:
            task = p.add_task(f"loading {srv.name}", total=cfg.studies)

            def advance(n: int) -> None:
                p.advance(task, n)

            if cfg.load_via == "stow":
                seconds = clients.stow_parallel(srv, bodies, cfg.load_workers, advance)
            else:
                seconds = clients.storescu_parallel(
                    srv, self.studies.chunks, cfg.load_workers, advance
                )
        self.results.set(
            "load_studies",
            srv.name,
            seconds,
            studies=cfg.studies,
            rate=cfg.studies / seconds,
            via=cfg.load_via,
        )
        self.console.print(f"  loaded {cfg.studies} studies into {srv.name} in {seconds:.1f} s")

    def _qido_queries(self) -> dict[str, list[tuple[dict[str, str], int]]]:
        """The same (params, expected count) lists for every server."""
        cfg, s = self.cfg, self.studies
        n = cfg.qido_requests + cfg.qido_warmup
        rng = random.Random(cfg.seed + 1)
        pids = rng.sample(sorted({r.patient_id for r in s.rows}), n)
        prefixes = corpus.name_prefixes(s, n, cfg.seed + 2)
        dates = []
        for _ in range(n):
            start = rng.randint(2014, 2025) * 10000 + rng.randint(1, 12) * 100 + 1
            low = str(start)
            high = str(start + 27)  # within one month, valid
            dates.append((low, high))
        return {
            "qido_pid": [({"PatientID": p}, s.count_patient_id(p)) for p in pids],
            "qido_name": [({"PatientName": f"{x}*"}, s.count_name_prefix(x)) for x in prefixes],
            "qido_date": [
                ({"StudyDate": f"{lo}-{hi}", "limit": "100"}, min(100, s.count_date_range(lo, hi)))
                for lo, hi in dates
            ],
        }

    def _qido(self, servers: list[Server]) -> None:
        queries = self._qido_queries()
        for key, plan in queries.items():
            for srv in servers:
                self._record(
                    key,
                    srv.name,
                    functools.partial(self._qido_run, srv, plan),
                    expected_results_mean=sum(c for _, c in plan) / len(plan),
                )

    def _qido_run(
        self,
        srv: Server,
        plan: list[tuple[dict[str, str], int]],
        headers: dict[str, str] | None = None,
    ) -> float:
        def check(i: int, r: httpx.Response) -> None:
            got, want = clients.qido_count(r), plan[i][1]
            if got != want:
                raise MeasureError(f"{plan[i][0]} returned {got} studies, the corpus has {want}")

        with httpx.Client(timeout=120) as client:
            lat = clients.timed_gets(
                client,
                [(f"{srv.dicomweb}/studies", p) for p, _ in plan],
                {"Accept": JSON, **(headers or {})},
                check,
                self.cfg.qido_warmup,
            )
        return lat.median_ms

    def _authorisation(self, srv: Telerad) -> None:
        """The same PatientID queries as a network admin and as a facility user.

        The facility user's scope covers the whole corpus (it was loaded into the
        default facility), so both get the same answers and only the authorisation
        differs: the scope filter in the query and the account lookup.
        """
        try:
            srv.cli("user", "add", "bench-admin", "--role", "network-admin")
            facility = "DEFAULT"
            srv.cli("user", "add", "bench-staff", "--role", "facility-user", "--facility", facility)
            tokens = {
                who: srv.cli("token", "create", f"bench-{who}", "--minutes", "240").strip()
                for who in ("admin", "staff")
            }
        except ServerUnavailable as e:
            self.results.notes.append(f"authorisation benchmark skipped: {e}")
            return
        time.sleep(2.5)  # the server notices its first accounts within 2 s
        plan = self._qido_queries()["qido_pid"]
        # Each query as both, alternating who goes first: load drift hits both alike.
        times: dict[str, list[float]] = {"admin": [], "staff": []}
        with httpx.Client(timeout=120) as client:
            for repeat in range(3):
                for i, (params, want) in enumerate(plan):
                    order = ("admin", "staff") if (i + repeat) % 2 == 0 else ("staff", "admin")
                    for who in order:
                        headers = {"Accept": JSON, "Authorization": f"Bearer {tokens[who]}"}
                        url = clients.with_query(f"{srv.dicomweb}/studies", params)
                        t0 = time.perf_counter()
                        r = client.get(url, headers=headers)
                        elapsed = (time.perf_counter() - t0) * 1000
                        if clients.qido_count(r) != want:
                            raise MeasureError(f"{who}: {params} gave HTTP {r.status_code}")
                        if i >= self.cfg.qido_warmup:
                            times[who].append(elapsed)
        best = {who: statistics.median(values) for who, values in times.items()}
        self.results.set("qido_as_admin", "telerad", best["admin"])
        self.results.set("qido_as_user", "telerad", best["staff"])
        self.results.set("qido_auth_overhead", "telerad", best["staff"] / best["admin"])
        self.console.print(
            f"  QIDO as network admin {best['admin']:.2f} ms, as facility user "
            f"{best['staff']:.2f} ms ({best['staff'] / best['admin']:.3f}×)"
        )

    def _wado(self, servers: list[Server]) -> None:
        ct = self.ct
        first = pydicom.dcmread(ct.files[0])
        frame_bytes = first.Rows * first.Columns * first.BitsAllocated // 8
        rng = random.Random(self.cfg.seed + 3)
        picks = rng.sample(
            range(len(ct.sop_uids)), min(len(ct.sop_uids), self.cfg.frame_requests + 5)
        )
        # The first frame fetched is compared byte for byte with the file's pixel data.
        expected_first = pydicom.dcmread(ct.files[picks[0]]).PixelData
        for srv in servers:
            series_url = f"{srv.dicomweb}/studies/{ct.study_uid}/series/{ct.series_uid}"

            def meta_check(i: int, r: httpx.Response) -> None:
                if len(r.json()) != len(ct.sop_uids):
                    raise MeasureError(
                        f"metadata of {len(r.json())} instances, expected {len(ct.sop_uids)}"
                    )

            def metadata(series_url: str = series_url) -> float:
                with httpx.Client(timeout=300) as client:
                    urls: list[tuple[str, dict[str, str]]] = [(series_url + "/metadata", {})]
                    urls *= self.cfg.metadata_requests + 1
                    return clients.timed_gets(
                        client, urls, {"Accept": JSON}, meta_check, 1
                    ).median_ms

            def frame_check(i: int, r: httpx.Response) -> None:
                parts = clients.multipart_parts(r)
                if len(parts) != 1 or len(parts[0]) != frame_bytes:
                    raise MeasureError(
                        f"frame answer of {[len(x) for x in parts]} bytes, "
                        f"expected one part of {frame_bytes}"
                    )
                if i == 0 and parts[0] != expected_first:
                    raise MeasureError("frame bytes differ from the stored pixel data")

            def frames(series_url: str = series_url, encoding: str = "identity") -> float:
                urls: list[tuple[str, dict[str, str]]] = [
                    (f"{series_url}/instances/{ct.sop_uids[j]}/frames/1", {}) for j in picks
                ]
                headers = {"Accept": FRAMES_ACCEPT, "Accept-Encoding": encoding}
                with httpx.Client(timeout=120) as client:
                    return clients.timed_gets(client, urls, headers, frame_check, 5).median_ms

            self._record("wado_metadata", srv.name, metadata)
            self._record("wado_frames", srv.name, frames)
            # What a browser asks for; Orthanc then gzips pixel data, telerad sends it as is.
            self._record(
                "wado_frames_gzip", srv.name, functools.partial(frames, encoding=BROWSER_GZIP)
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.archive", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--quick", action="store_true", help="smaller corpus, 3,000 studies")
    ap.add_argument("--only", choices=("stores", "qido", "wado"), help="run one part")
    ap.add_argument("--json", type=Path, help="write the figures to this file")
    ap.add_argument(
        "--load",
        choices=("stow", "storescu"),
        default="stow",
        help="how the QIDO-RS study set is loaded (3 in parallel; not a target)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the servers' data (path printed)")
    args = ap.parse_args(argv)
    cfg = Config.quick() if args.quick else Config()
    cfg = dataclasses.replace(cfg, load_via=args.load)
    # Wide enough for the table when the output goes to a file or a pipe.
    console = Console(width=None if sys.stdout.isatty() else 150)
    run_stores = args.only in (None, "stores")
    run_qido = args.only in (None, "qido")
    run_wado = args.only in (None, "wado")

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Also when started in the background, where a shell leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    env = environment()
    console.print("machine:", ", ".join(f"{k} {v}" for k, v in env.items()))
    load_before = os.getloadavg()[0]
    if load_before > 1.0:
        console.print(
            f"[yellow]the machine is busy (load average {load_before:.1f}): "
            "figures will be noisier; ratios are still from the same run[/]"
        )
    root = Path(tempfile.mkdtemp(prefix="telerad-bench-"))
    bench = Bench(cfg, root, console)
    started = time.monotonic()
    code = 0
    try:
        bench.make_corpus(run_stores or run_wado, run_stores, run_qido)
        if run_stores:
            bench.stores()
        if run_qido or run_wado:
            bench.query_and_retrieve(run_qido, run_wado)
    except KeyboardInterrupt:
        console.print("[red]interrupted: servers stopped, temporary files removed[/]")
        code = 130
    finally:
        if args.keep:
            console.print(f"servers' data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    total = time.monotonic() - started
    mode = "quick" if args.quick else "full"
    title = (
        f"archive benchmark ({mode}: CT {cfg.ct_slices}, tiny {cfg.tiny}, "
        f"{cfg.studies:,} studies) — {total:.0f} s"
    )
    console.print(bench.results.table(title))
    for note in bench.results.notes:
        console.print(f"[yellow]note:[/] {note}")
    if args.json:
        meta = dict(
            env,
            mode=mode,
            config=dataclasses.asdict(cfg),
            seconds=round(total, 1),
            load_average_before=round(load_before, 2),
            load_average_after=round(os.getloadavg()[0], 2),
        )
        bench.results.write_json(args.json, meta)
        console.print(f"figures written to {args.json}")
    return code


if __name__ == "__main__":
    sys.exit(main())
