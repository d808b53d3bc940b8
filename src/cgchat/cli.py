"""The ``cgchat`` command: ingest, search, serve, and a few inspection helpers.

Exit codes: 0 success; 1 ingest finished but skipped some files (listed); 2 usage error (bad
arguments, paths that don't exist, invalid search input); 3 the database is unavailable; 4 CGCHAT_HOME
cannot hold local state (read-only, not writable by this user, disk full).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from cgchat.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Search and chat over a CG asset library.")
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
app.add_typer(db_app, name="db")
models_app = typer.Typer(no_args_is_help=True, help="Model files: install CLIP, show what is installed.")
app.add_typer(models_app, name="models")

out = Console()
err = Console(stderr=True)

EXIT_USAGE = 2
EXIT_DB = 3
EXIT_HOME = 4


class Mode(str, Enum):
    hybrid = "hybrid"
    semantic = "semantic"
    keyword = "keyword"
    visual = "visual"


class AssetType(str, Enum):
    image = "image"
    video = "video"
    blend = "blend"
    model = "model"
    document = "document"
    other = "other"


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _connection():  # noqa: ANN202 - psycopg types stay out of the CLI's import time
    from cgchat.db import DatabaseUnavailable, migrate
    from cgchat.db.connection import open_connection

    try:
        migrate()
        return open_connection()
    except DatabaseUnavailable as exc:
        raise _db_fail(exc) from exc


def _db_fail(exc: Exception) -> typer.Exit:
    """Exit 4 when the embedded database could not start because of CGCHAT_HOME itself, else 3."""
    from cgchat.local_state import HomeUnusable

    return _fail(str(exc), EXIT_HOME if isinstance(exc.__cause__, HomeUnusable) else EXIT_DB)


@app.command()
def ingest(
    targets: Annotated[Optional[list[str]], typer.Argument(
        metavar="PATHS", help="Folders or files to index (recursively), or s3://bucket/prefix.")] = None,
    prune: Annotated[bool, typer.Option(help="Delete index rows of files that are gone (default: mark missing).")] = False,
    visual: Annotated[Optional[bool], typer.Option(
        "--visual/--no-visual",
        help="--visual: only fill in pending visual (CLIP) embeddings, under PATHS or everywhere; resumable. "
        "--no-visual: skip the visual pass. Default: run it after indexing when a CLIP model is installed.",
    )] = None,
    retry_failed: Annotated[bool, typer.Option(help="With --visual: also retry assets whose pixels failed before.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Index files: new and changed ones are extracted and embedded, unchanged ones skipped."""
    s3_uris = [t for t in targets or [] if t.startswith("s3://")]
    paths = [Path(t) for t in targets or [] if not t.startswith("s3://")]
    if s3_uris:
        raise typer.Exit(_ingest_s3(s3_uris, as_json))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise _fail(f"no such file or folder: {', '.join(missing)}", EXIT_USAGE)
    if not paths and visual is not True:
        raise _fail("give folders or files to index (or --visual to fill in visual embeddings)", EXIT_USAGE)
    from cgchat.models.clip_encoder import ClipNotInstalled, get_clip_encoder

    try:
        clip = get_clip_encoder() if visual is not False else None
    except ClipNotInstalled as exc:
        if visual:
            raise _fail(f"--visual needs a CLIP model: {exc}", EXIT_USAGE) from exc
        clip = None
    conn = _connection()
    summary: dict = {}
    exit_code = 0
    with conn:
        if visual is not True:
            from cgchat.ingest.pipeline import Ingestor
            from cgchat.models.text_encoder import get_text_encoder

            with _progress("indexing", enabled=not as_json and sys.stderr.isatty()) as progress, _stop_when_full():
                report = Ingestor(conn, get_text_encoder(), progress).run(paths, prune=prune)
            summary, exit_code = report.as_dict(), report.exit_code
            if not as_json:
                _print_report(report)
        if clip is not None:
            from cgchat.ingest.visual import VisualIndexer

            with _progress("embedding pictures", enabled=not as_json and sys.stderr.isatty()) as progress:
                visual_report = VisualIndexer(conn, clip, progress).run(paths or None, retry_failed=retry_failed)
            summary["visual"] = visual_report.as_dict()
            exit_code = max(exit_code, 1 if visual_report.failed else 0)
            if not as_json:
                _print_visual_report(visual_report)
        elif visual is None:
            from cgchat.ingest.visual import pending_count

            waiting = pending_count(conn, paths or None)
            summary["visual"] = {"model": None, "pending": waiting}
            if waiting and not as_json:
                err.print(f"{waiting} pictures wait for visual embeddings: install CLIP with "
                          "`cgchat models install-clip SOURCE`, then run `cgchat ingest --visual`", highlight=False)
    if as_json:
        out.print_json(json.dumps(summary))
    raise typer.Exit(exit_code)


def _ingest_s3(uris: list[str], as_json: bool) -> int:
    """A one-off backfill of S3 prefixes from this machine, object by object, as the worker does."""
    from cgchat.ingest.s3_ingest import PermanentFailure, S3Event, S3Ingestor, list_objects
    from cgchat.models.clip_encoder import ClipNotInstalled, get_clip_encoder
    from cgchat.models.text_encoder import get_text_encoder

    s3, buckets = _s3_client(), [_split_s3(u) for u in uris]
    try:
        clip = get_clip_encoder()
    except ClipNotInstalled:
        clip = None
    counts: dict[str, int] = {}
    skipped: list[dict[str, str]] = []
    conn = _connection()
    with conn:
        ingestor = S3Ingestor(conn, get_text_encoder(), s3, clip)
        for bucket, prefix in buckets:
            for obj in _listing(s3, bucket, prefix, list_objects):
                event = S3Event(bucket, obj["Key"], "created", etag=str(obj.get("ETag", "")).strip('"'),
                                size=obj.get("Size"))
                try:
                    outcome = ingestor.apply(event)
                except PermanentFailure as exc:
                    skipped.append({"path": event.uri, "reason": str(exc)})
                    continue
                counts[outcome] = counts.get(outcome, 0) + 1
    if as_json:
        out.print_json(json.dumps({"s3": counts, "skipped": skipped}))
    else:
        err.print(" · ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no objects", highlight=False)
        for item in skipped:
            err.print(f"  [yellow]skipped[/yellow] {item['path']}: {item['reason']}", highlight=False)
    return 1 if skipped else 0


@app.command()
def enqueue(
    uris: Annotated[list[str], typer.Argument(metavar="S3_URIS", help="s3://bucket/prefix to fan out.")],
    queue_url: Annotated[Optional[str], typer.Option(help="The ingestion queue (default INGEST_QUEUE_URL).")] = None,
) -> None:
    """Send one ingestion message per object under the prefixes to the worker queue (a scaled-out backfill)."""
    from cgchat.ingest.s3_ingest import list_objects, notification
    from cgchat.settings import get_settings

    settings = get_settings()
    queue = queue_url or settings.ingest_queue_url
    if not queue:
        raise _fail("no queue: pass --queue-url or set INGEST_QUEUE_URL", EXIT_USAGE)
    from cgchat.services.sqs import sqs_client

    s3, sqs = _s3_client(), sqs_client(settings)
    sent = 0
    for bucket, prefix in (_split_s3(u) for u in uris):
        batch: list[dict] = []
        for obj in _listing(s3, bucket, prefix, list_objects):
            body = notification(bucket, obj["Key"], str(obj.get("ETag", "")).strip('"'), obj.get("Size"))
            batch.append({"Id": str(len(batch)), "MessageBody": json.dumps(body)})
            if len(batch) == 10:
                sent += _send_batch(sqs, queue, batch)
                batch = []
        if batch:
            sent += _send_batch(sqs, queue, batch)
    out.print(f"enqueued {sent} objects on {queue}", highlight=False)


def _send_batch(sqs, queue: str, batch: list[dict]) -> int:  # noqa: ANN001
    reply = sqs.send_message_batch(QueueUrl=queue, Entries=batch)
    if reply.get("Failed"):
        raise _fail(f"SQS refused {len(reply['Failed'])} messages: {reply['Failed'][0].get('Message')}", 1)
    return len(batch)


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        raise _fail(f"{uri!r} has no bucket; write s3://bucket/prefix", EXIT_USAGE)
    return bucket, prefix


def _s3_client():  # noqa: ANN202
    from cgchat.services.s3 import S3Files
    from cgchat.settings import get_settings

    settings = get_settings()
    return S3Files(settings.aws_region, settings.s3_endpoint_url).client


def _listing(s3, bucket: str, prefix: str, list_objects):  # noqa: ANN001, ANN202
    """Objects under the prefix; a missing bucket or no permission becomes a usage error, not a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield from list_objects(s3, bucket, prefix)
    except (ClientError, BotoCoreError) as exc:
        raise _fail(f"cannot list s3://{bucket}/{prefix}: {exc}", EXIT_USAGE) from exc


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in words or names.")] = "",
    mode: Annotated[Mode, typer.Option(help="Retrieval mode (visual: CLIP, text→image).")] = Mode.hybrid,
    image: Annotated[Optional[Path], typer.Option(help="A reference picture: find assets that look like it.")] = None,
    like: Annotated[Optional[int], typer.Option(help="An indexed asset's id: find assets that look like it.")] = None,
    asset_type: Annotated[Optional[list[AssetType]], typer.Option("--type", help="Only these asset types.")] = None,
    engine: Annotated[Optional[list[str]], typer.Option(help="Render engine of .blend files: cycles, eevee, workbench.")] = None,
    resolution: Annotated[Optional[str], typer.Option(help="4k, 1080p, 720p... or WIDTHxHEIGHT.")] = None,
    fps: Annotated[Optional[float], typer.Option(help="Frame rate.")] = None,
    min_duration: Annotated[Optional[float], typer.Option(help="Videos at least this many seconds long.")] = None,
    max_duration: Annotated[Optional[float], typer.Option(help="Videos at most this many seconds long.")] = None,
    ext: Annotated[Optional[list[str]], typer.Option("--ext", help="File extension, e.g. exr.")] = None,
    limit: Annotated[int, typer.Option(help="How many results (1-200).")] = 10,
    literal: Annotated[bool, typer.Option(help="Don't turn words like 'videos' or '4K' into filters.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array, best first.")] = False,
) -> None:
    """Search the index (hybrid by default)."""
    from cgchat.search import Filters, SearchError, SearchRequest
    from cgchat.search import search as run_search

    filters = Filters(
        asset_types=[t.value for t in asset_type or []], engines=engine or [], resolution=resolution, fps=fps,
        min_duration_s=min_duration, max_duration_s=max_duration, extensions=ext or [],
    )
    picture = None
    if image is not None:
        try:
            picture = image.read_bytes()
        except OSError as exc:
            raise _fail(f"cannot read --image {image}: {exc.strerror or exc}", EXIT_USAGE) from exc
    request = SearchRequest(query=query, mode=mode.value, filters=filters, limit=limit, auto_filters=not literal,
                            image=picture, like_asset_id=like)
    conn = _connection()
    with conn:
        try:
            response = run_search(conn, request)
        except SearchError as exc:
            raise _fail(str(exc), EXIT_USAGE) from exc
    if as_json:
        sys.stdout.write(json.dumps([r.as_dict() for r in response.results], ensure_ascii=False, indent=2) + "\n")
        return
    _print_results(response)


@app.command("used-by")
def used_by(name: Annotated[str, typer.Argument(help="A dependency's file name or path, e.g. brick_albedo.png.")]) -> None:
    """Which assets reference this file (textures, linked libraries, caches)."""
    conn = _connection()
    with conn:
        rows = conn.execute(
            "SELECT f.path, d.kind, d.raw_path, d.exists FROM dependencies d JOIN files f ON f.id = d.file_id"
            " WHERE lower(d.name) = lower(%(n)s) OR d.resolved_path = %(n)s ORDER BY f.path",
            {"n": name},
        ).fetchall()
    if not rows:
        err.print(f"no indexed asset references {name}")
        raise typer.Exit(1)
    for row in rows:
        flag = "" if row["exists"] else "  [yellow](missing)[/yellow]"
        out.print(f"{row['path']}  [dim]{row['kind']}: {row['raw_path']}[/dim]{flag}", highlight=False)


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Bind address (default from HOST, 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default from PORT, 8000).")] = None,
    ingest_path: Annotated[Optional[list[Path]], typer.Option("--ingest", help="Index these paths before serving.")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from cgchat.settings import get_settings

    settings = get_settings()
    _prepare_local_state(settings)
    if ingest_path:
        from cgchat.ingest.pipeline import Ingestor
        from cgchat.models.text_encoder import get_text_encoder

        conn = _connection()
        with conn, _progress("indexing", enabled=sys.stderr.isatty()) as progress, _stop_when_full():
            report = Ingestor(conn, get_text_encoder(), progress).run(ingest_path)
        _print_report(report)
    from cgchat.api.app import create_app

    uvicorn.run(create_app(), host=host or settings.host, port=port or settings.port, log_level=settings.log_level)


@contextmanager
def _stop_when_full() -> Iterator[None]:
    """A database out of disk space ends the ingest with what to do: exit 4 when the database is the
    embedded one under CGCHAT_HOME, else 3 (the database server's disk)."""
    import psycopg

    from cgchat.ingest.pipeline import DatabaseFull
    from cgchat.settings import get_settings

    try:
        yield
    except (DatabaseFull, psycopg.Error) as exc:
        if isinstance(exc, psycopg.Error) and not (exc.sqlstate or "").startswith("53"):
            raise  # class 53: insufficient resources (disk full...), also outside the per-file writes
        settings = get_settings()
        embedded = settings.database_url is None and not settings.database_secret_arn
        fix = (f"The embedded database lives in CGCHAT_HOME ({settings.cgchat_home.expanduser()}): free disk "
               "space there, or set CGCHAT_HOME to a directory on a disk with room" if embedded
               else "Free disk space on the database server")
        raise _fail(f"{exc}. {fix}; then run the same command again (files already indexed are skipped)",
                    EXIT_HOME if embedded else EXIT_DB) from exc


def _prepare_local_state(settings: Settings) -> None:
    """Start the embedded database and load the text model before binding the port, so a broken
    CGCHAT_HOME stops ``serve`` with one sentence instead of a traceback from the app's start-up
    (both are cached: the app reuses them)."""
    from cgchat.db import DatabaseUnavailable, database_url
    from cgchat.models.text_encoder import get_text_encoder

    if settings.database_url is None and not settings.database_secret_arn:
        try:
            database_url(settings)
        except DatabaseUnavailable as exc:
            raise _db_fail(exc) from exc
    get_text_encoder()


@models_app.command("install-clip")
def models_install_clip(
    source: Annotated[str, typer.Argument(
        help="A Hugging Face CLIP folder (or hub id where internet exists), or an OpenAI (ViT-B-32.pt) / "
        "OpenCLIP (.bin, .safetensors) checkpoint file.")],
    model_id: Annotated[Optional[str], typer.Option(help="Id stored with every visual embedding.")] = None,
    tokenizer: Annotated[Optional[str], typer.Option(
        help="For checkpoint files: a CLIP tokenizer.json or Hugging Face CLIP folder.")] = None,
    activation: Annotated[str, typer.Option(
        help="For checkpoint files: quick_gelu (OpenAI, OpenCLIP *-quickgelu) or gelu (other OpenCLIP).")] = "quick_gelu",
    skip_zero_shot: Annotated[bool, typer.Option(help="Install even if the zero-shot check fails (test models).")] = False,
) -> None:
    """Convert a CLIP checkpoint to ONNX under CGCHAT_HOME (one-time; needs torch + transformers).

    The result is verified against the checkpoint and by a zero-shot check (it must name the colour
    of rendered discs). Assets indexed before are embedded by `cgchat ingest --visual` or, while
    `cgchat serve` runs, in the background; a different model than before re-embeds everything.
    """
    from cgchat.models.clip_install import ClipInstallError, install_clip
    from cgchat.settings import get_settings

    target = get_settings().clip_dir()
    try:
        installed = install_clip(source, target, model_id, zero_shot=not skip_zero_shot, tokenizer=tokenizer,
                                 activation=activation)
    except ClipInstallError as exc:
        raise _fail(str(exc), EXIT_USAGE) from exc
    out.print(f"CLIP installed in {installed}; embed your library with: cgchat ingest --visual", highlight=False)


@models_app.command("status")
def models_status() -> None:
    """Which text and visual models this installation uses."""
    from cgchat.models.clip_encoder import ClipEncoder, ClipNotInstalled
    from cgchat.models.text_encoder import get_text_encoder
    from cgchat.settings import get_settings

    out.print(f"text model: {get_text_encoder().model_id}", highlight=False)
    try:
        clip = ClipEncoder(get_settings().clip_dir())
        out.print(f"visual model: {clip.model_id} ({clip.dim}-d)", highlight=False)
    except ClipNotInstalled as exc:
        out.print(f"visual model: not installed ({exc})", highlight=False)


@db_app.command("migrate")
def db_migrate() -> None:
    """Create or upgrade the schema (safe to re-run)."""
    from cgchat.db import DatabaseUnavailable, migrate

    try:
        applied = migrate()
    except DatabaseUnavailable as exc:
        raise _db_fail(exc) from exc
    out.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@db_app.command("schema-doc")
def db_schema_doc() -> None:
    """Print docs/SCHEMA.md as generated from the migrated database."""
    from cgchat.db import DatabaseUnavailable, database_url, migrate
    from cgchat.db.schema_doc import render

    try:
        migrate()
        sys.stdout.write(render(database_url()) + "\n")
    except DatabaseUnavailable as exc:
        raise _fail(str(exc), EXIT_DB) from exc


@db_app.command("stats")
def db_stats() -> None:
    """How many assets of each type are indexed."""
    conn = _connection()
    with conn:
        rows = conn.execute(
            "SELECT asset_type, status, count(*) AS n FROM files GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    table = Table("type", "status", "count")
    for row in rows:
        table.add_row(row["asset_type"], row["status"], str(row["n"]))
    out.print(table)


def _progress(label: str, enabled: bool):  # noqa: ANN202
    """A rich progress bar fed by the ingest pipelines' callback (a no-op when not a terminal)."""
    from contextlib import contextmanager

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    @contextmanager
    def manager():  # noqa: ANN202
        if not enabled:
            yield None
            return
        with Progress(
            TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[name]}"), console=err, transient=True,
        ) as bar:
            task = bar.add_task("ingest", total=None, name="")

            def update(path: Path | str | None, total: int | None) -> None:
                if total is not None:
                    bar.reset(task, total=total, name="")
                if path is not None:
                    bar.update(task, advance=1, name=Path(path).name[:40])

            yield update

    return manager()


def _print_report(report) -> None:  # noqa: ANN001
    err.print(
        f"scanned {report.scanned} · added {report.added} · updated {report.updated} · "
        f"unchanged {report.unchanged} · missing {report.missing} · pruned {report.pruned} · "
        f"skipped {len(report.skipped)} · {report.seconds:.1f}s",
        highlight=False,
    )
    for skipped in report.skipped:
        err.print(f"  [yellow]skipped[/yellow] {skipped.path}: {skipped.reason}", highlight=False)


def _print_visual_report(report) -> None:  # noqa: ANN001
    err.print(
        f"visual ({report.model}): embedded {report.embedded} assets ({report.pictures} pictures) · "
        f"re-embedding {report.marked_stale} from another model · failed {len(report.failed)} · "
        f"pending {report.remaining} · {report.seconds:.1f}s",
        highlight=False,
    )
    for failure in report.failed:
        err.print(f"  [yellow]no visual embedding[/yellow] {failure.path}: {failure.reason}", highlight=False)


def _print_results(response) -> None:  # noqa: ANN001
    if response.filters.as_dict():
        err.print(f"[dim]filters: {json.dumps(response.filters.as_dict())}[/dim]", highlight=False)
    if not response.results:
        err.print("no results")
        return
    table = Table("#", "score", "type", "name", "matched by", "at", "path", show_lines=False)
    for n, r in enumerate(response.results, 1):
        table.add_row(str(n), f"{r.score:.4f}", r.type, r.name, "+".join(r.matched_by), r.timecode or "", r.path)
    out.print(table)


def main() -> None:
    from cgchat.local_state import WRITE_ERRNOS, HomeUnusable, explain
    from cgchat.settings import get_settings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except HomeUnusable as exc:
        raise SystemExit(_fail(str(exc), EXIT_HOME).exit_code) from exc
    except OSError as exc:  # a write under CGCHAT_HOME (a model build...) hit a read-only or full disk
        if exc.errno not in WRITE_ERRNOS:
            raise
        home = get_settings().cgchat_home.expanduser()
        raise SystemExit(_fail(explain(home, exc), EXIT_HOME).exit_code) from exc


if __name__ == "__main__":
    main()
