"""`dfstore`: copy, list, inspect and remove dfstore objects (`dfs://bucket/key`) from a shell.

Exit status: 0 on success, 1 on an API, transport or local file error (one line on stderr,
the traceback only with --debug), 2 on a usage error.
"""

from __future__ import annotations

import http
import os
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import click

from ._client import Client
from ._errors import APIError, DfstoreError, UsageError
from ._models import DEFAULT_ENDPOINT, CommonPrefix, ObjectMetadata, Timeout
from ._progress import ProgressLine, human_size

SCHEME = "dfs://"


@dataclass(frozen=True)
class DfsURL:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def parse_dfs(value: str, *, key_required: bool = True) -> DfsURL:
    """`dfs://bucket/key` → DfsURL; a usage error (exit 2) when malformed."""
    if not value.startswith(SCHEME):
        raise click.UsageError(f"{value!r} is not a dfs://bucket/key URL")
    bucket, _, key = value[len(SCHEME) :].partition("/")
    if not bucket:
        raise click.UsageError(f"{value!r} has no bucket")
    if key_required and not key:
        raise click.UsageError(f"{value!r} has no object key")
    return DfsURL(bucket, key)


@dataclass
class Settings:
    endpoint: str
    debug: bool
    timeout_s: float
    _client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.endpoint, timeout=Timeout(min(10.0, self.timeout_s), self.timeout_s))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class DfstoreGroup(click.Group):
    """Turns SDK and local-file errors into one line and exit 1 (exit 2 for SDK usage errors)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (`dfstore cat ... | head`): stop quietly, and keep Python's final
            # flush of stdout from reporting the same broken pipe again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(1)
        except (DfstoreError, OSError) as exc:
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            if settings is not None and settings.debug:
                traceback.print_exc()
            click.echo(f"error: {describe(exc)}", err=True)
            ctx.exit(2 if isinstance(exc, UsageError) else 1)
        finally:
            if isinstance(ctx.obj, Settings):
                ctx.obj.close()


def describe(exc: BaseException) -> str:
    """One line: `NotFound: dfs://bkt/key`, plus the server's message when it says more than the status."""
    if isinstance(exc, APIError):
        text = f"{exc.code}: {exc.resource or 'request'}"
        try:
            generic = exc.message == http.HTTPStatus(exc.status).phrase
        except ValueError:
            generic = False
        return text if generic or not exc.message else f"{text}: {exc.message}"
    if isinstance(exc, DfstoreError):
        return f"{type(exc).__name__}: {exc.message}"
    return str(exc)


@click.group(cls=DfstoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-e",
    "--endpoint",
    envvar="DFSTORE_ENDPOINT",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    help="dfstore API URL (env DFSTORE_ENDPOINT).",
)
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True, help="Read timeout, seconds.")
@click.option("--debug", is_flag=True, help="Print tracebacks on errors.")
@click.version_option(package_name="dfly-p2p", prog_name="dfstore")
@click.pass_context
def cli(ctx: click.Context, endpoint: str, timeout_s: float, debug: bool) -> None:
    """Copy, list, inspect and remove objects in a dfstore endpoint (dfs://bucket/key)."""
    ctx.obj = Settings(endpoint, debug, timeout_s)


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.find_object(Settings)
    assert settings is not None
    return settings


def _progress(label: str, total: int | None, quiet: bool) -> ProgressLine:
    return ProgressLine(sys.stderr, label, total, enabled=not quiet and sys.stderr.isatty())


def _report(quiet: bool, verb: str, src: str, dst: str, progress: ProgressLine) -> None:
    progress.finish()
    if not quiet:
        elapsed = time.monotonic() - progress.started
        rate = human_size(progress.rate_bps())
        click.echo(f"{verb}: {src} -> {dst} ({human_size(progress.done)} in {elapsed:.1f}s, {rate}/s)")


# -- cp ----------------------------------------------------------------------------------------------


@cli.command()
@click.argument("source")
@click.argument("target")
@click.option("-r", "--recursive", is_flag=True, help="Copy a directory, or every object under a prefix.")
@click.option(
    "-m",
    "--mode",
    type=click.IntRange(0, 1),
    default=0,
    show_default=True,
    help="Upload mode: 0 = async write-back, 1 = write-back (origin written before success).",
)
@click.option("--max-replicas", type=click.IntRange(0, 100), default=3, show_default=True, help="Seed-peer copies.")
@click.option("--filter", "filter_", default="", help="Query parameters ignored in the task id, '&'-separated.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
@click.pass_context
def cp(
    ctx: click.Context,
    source: str,
    target: str,
    recursive: bool,
    mode: int,
    max_replicas: int,
    filter_: str,
    quiet: bool,
) -> None:
    """Upload (local → dfs://) or download (dfs:// → local) a file, or a tree with -r.

    `-` as SOURCE reads stdin; `-` as TARGET writes stdout."""
    client = _settings(ctx).client()
    up, down = target.startswith(SCHEME), source.startswith(SCHEME)
    if up == down:
        raise click.UsageError("exactly one of SOURCE and TARGET must be a dfs://bucket/key URL")
    if up:
        options = UploadOptions(mode=mode, max_replicas=max_replicas, filter=filter_)
        _upload(client, source, parse_dfs(target, key_required=False), recursive, options, quiet)
    else:
        _download(client, parse_dfs(source, key_required=not recursive), target, recursive, filter_, quiet)


@dataclass(frozen=True)
class UploadOptions:
    mode: int
    max_replicas: int
    filter: str


def _upload(client: Client, source: str, dst: DfsURL, recursive: bool, opts: UploadOptions, quiet: bool) -> None:
    if source == "-":
        if not dst.key or dst.key.endswith("/"):
            raise click.UsageError("uploading stdin needs a full object key")
        progress = _progress(f"upload {dst}", None, quiet)
        stdin = sys.stdin.buffer
        client.put_object(
            dst.bucket,
            dst.key,
            stdin,
            mode=opts.mode,
            max_replicas=opts.max_replicas,
            filter=opts.filter,
            progress=progress,
        )
        _report(quiet, "upload", "-", str(dst), progress)
        return
    for path, key in _upload_plan(Path(source), dst, recursive):
        progress = _progress(f"upload {path}", path.stat().st_size, quiet)
        client.upload_file(
            dst.bucket,
            key,
            path,
            mode=opts.mode,
            max_replicas=opts.max_replicas,
            filter=opts.filter,
            progress=progress,
        )
        _report(quiet, "upload", str(path), str(DfsURL(dst.bucket, key)), progress)


def _download(client: Client, src: DfsURL, target: str, recursive: bool, filter_: str, quiet: bool) -> None:
    if target == "-":
        with client.get_object(src.bucket, src.key, filter=filter_) as body:
            for chunk in body.iter_chunks():
                sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    for key, path, size in _download_plan(client, src, Path(target), recursive):
        progress = _progress(f"download {DfsURL(src.bucket, key)}", size, quiet)
        path.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(src.bucket, key, path, filter=filter_, progress=progress)
        _report(quiet, "download", str(DfsURL(src.bucket, key)), str(path), progress)


def _upload_plan(source: Path, dst: DfsURL, recursive: bool) -> Iterator[tuple[Path, str]]:
    """(local file, key) pairs. A key ending in `/` (or none) names a "directory": the file keeps its name."""
    if source.is_dir():
        if not recursive:
            raise click.UsageError(f"{source} is a directory (use -r)")
        prefix = dst.key if not dst.key or dst.key.endswith("/") else dst.key + "/"
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            yield path, prefix + path.relative_to(source).as_posix()
        return
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or directory")
    key = dst.key + source.name if not dst.key or dst.key.endswith("/") else dst.key
    yield source, key


def _download_plan(client: Client, src: DfsURL, target: Path, recursive: bool) -> Iterator[tuple[str, Path, int]]:
    """(key, local path, size) triples; every local path stays inside `target`."""
    if not recursive:
        meta = client.get_object_metadata(src.bucket, src.key)  # a clear NotFound before any file is made
        name = PurePosixPath(src.key).name
        path = target / name if target.is_dir() or str(target).endswith(os.sep) else target
        yield src.key, path, meta.content_length
        return
    prefix = src.key if not src.key or src.key.endswith("/") else src.key + "/"
    root = target.resolve()
    for entry in client.iter_objects(src.bucket, prefix=prefix):
        if not isinstance(entry, ObjectMetadata) or entry.key.endswith("/"):
            continue  # "directory" marker objects have no file to become
        relative = entry.key[len(prefix) :]
        parts = [p for p in relative.split("/") if p]
        if any(p in (".", "..") for p in parts) or not parts:
            raise click.ClickException(f"refusing to write {entry.key!r} outside {target}")
        path = root.joinpath(*parts)
        if not path.resolve().is_relative_to(root):
            raise click.ClickException(f"refusing to write {entry.key!r} outside {target}")
        yield entry.key, path, entry.content_length


# -- rm, ls, stat, mb, cat ---------------------------------------------------------------------------


@cli.command()
@click.argument("url")
@click.option("-r", "--recursive", is_flag=True, help="Remove every object under the prefix.")
@click.pass_context
def rm(ctx: click.Context, url: str, recursive: bool) -> None:
    """Remove an object (deleting a missing key succeeds, as upstream)."""
    client = _settings(ctx).client()
    target = parse_dfs(url, key_required=not recursive)
    if not recursive:
        client.delete_object(target.bucket, target.key)
        click.echo(f"delete: {target}")
        return
    keys = [e.key for e in client.iter_objects(target.bucket, prefix=target.key) if isinstance(e, ObjectMetadata)]
    for key in keys:
        client.delete_object(target.bucket, key)
        click.echo(f"delete: {DfsURL(target.bucket, key)}")


@cli.command()
@click.argument("url")
@click.option("-R", "--recursive", is_flag=True, help="List every key, not one level.")
@click.option("-l", "long", is_flag=True, help="Also show the last-modified time and the ETag.")
@click.pass_context
def ls(ctx: click.Context, url: str, recursive: bool, long: bool) -> None:
    """List objects under dfs://bucket[/prefix], one level at a time unless -R."""
    client = _settings(ctx).client()
    target = parse_dfs(url, key_required=False)
    delimiter = "" if recursive else "/"
    for entry in client.iter_objects(target.bucket, prefix=target.key, delimiter=delimiter):
        if isinstance(entry, CommonPrefix):
            pad = " " * (31 if long else 0)
            click.echo(f"{pad}{'PRE':>10}  {entry.key}")
            continue
        size = human_size(entry.content_length)
        if long:
            stamp = entry.last_modified.strftime("%Y-%m-%d %H:%M:%S") if entry.last_modified else "-" * 19
            etag = entry.etag.strip('"') or "-"
            click.echo(f"{stamp}  {size:>10}  {etag:<34}  {entry.key}")
        else:
            click.echo(f"{size:>10}  {entry.key}")


@cli.command()
@click.argument("url")
@click.pass_context
def stat(ctx: click.Context, url: str) -> None:
    """Show an object's metadata."""
    target = parse_dfs(url)
    meta = _settings(ctx).client().get_object_metadata(target.bucket, target.key)
    stamp = meta.last_modified.isoformat() if meta.last_modified else ""
    rows = [
        ("URL", str(target)),
        ("Size", f"{meta.content_length} ({human_size(meta.content_length)})"),
        ("ETag", meta.etag),
        ("Content-Type", meta.content_type),
        ("Digest", meta.digest),
        ("Last-Modified", stamp),
        ("Storage-Class", meta.storage_class),
    ]
    for name, value in rows:
        click.echo(f"{name + ':':<15}{value}")


@cli.command()
@click.argument("url")
@click.pass_context
def mb(ctx: click.Context, url: str) -> None:
    """Make a bucket: dfs://bucket."""
    target = parse_dfs(url, key_required=False)
    if target.key:
        raise click.UsageError("mb takes dfs://bucket without a key")
    _settings(ctx).client().create_bucket(target.bucket)
    click.echo(f"make_bucket: {target.bucket}")


@cli.command()
@click.argument("url")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="First byte to print.")
@click.option("--length", type=click.IntRange(min=1), default=None, help="Number of bytes to print.")
@click.pass_context
def cat(ctx: click.Context, url: str, offset: int, length: int | None) -> None:
    """Write an object (or a byte range of it) to stdout."""
    target = parse_dfs(url)
    out = sys.stdout.buffer
    with _settings(ctx).client().get_object(target.bucket, target.key, offset=offset, length=length) as body:
        for chunk in body.iter_chunks():
            out.write(chunk)
    out.flush()


def main() -> None:
    cli(prog_name="dfstore")


if __name__ == "__main__":
    main()
