"""Fetch the test fixtures from their upstream homes and check them against tests/fixtures.sha256.

Called by scripts/fixtures.sh; see it for the commands. Standard library only (it runs before any venv).

tests/fixtures.sha256 has one line per fixture file (relative to the fixtures directory):

    <sha256> <kind> <path> <source>

kind ``file``: sha256 of the bytes. Source ``raw:<owner/repo>:<ref>:<path>`` (a file of a release tag) or
``member:<fixture tarball>:<path inside its top directory>`` (a file of a tarball fetched first).

kind ``tree``: a tarball, checked by the sha256 of its content (tree_hash: every member's path without
the top directory, type and content), because GitHub's archives are not byte-identical to ``git archive``
output (other top directory, other gzip). The fetched archive is repacked with the top directory the
fixture has, named after ``@``. Source ``archive:<owner/repo>:<ref>@<top>`` or
``subset:<fixture tarball>:<dir>,<dir>,...@<top>`` (those directories of a tarball fetched first).

kind ``built``: made from the sources by a recipe, not downloadable; reported and skipped.

FIXTURES_BASE_URL replaces ``https://`` in front of the upstream host names (``raw.githubusercontent.com``,
``github.com``), so a mirror laid out as ``<base>/github.com/...`` (file:// or http://127.0.0.1) serves them.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

TIMEOUT = int(os.environ.get("FIXTURES_TIMEOUT", "60"))


class FixtureError(Exception):
    pass


def read_manifest(path: Path) -> list[tuple[str, str, str, str]]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 4 or len(parts[0]) != 64 or parts[1] not in ("file", "tree", "built"):
            raise FixtureError("%s:%d: expected '<sha256> file|tree|built <path> <source>'" % (path, n))
        rows.append((parts[0], parts[1], parts[2], parts[3]))
    return rows


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_hash(tarball: Path) -> str:
    """sha256 over the sorted (path without top directory, type, sha256 of content or link target) lines."""
    lines = []
    with tarfile.open(tarball) as tar:
        for m in tar:
            parts = m.name.strip("/").split("/", 1)
            rel = parts[1].strip("/") if len(parts) > 1 else ""
            rel = "/".join(p for p in rel.split("/") if p)
            if m.isdir() or not rel:
                continue
            if m.isfile():
                f = tar.extractfile(m)
                digest = file_hash(f.read() if f else b"")
                kind = "x" if m.mode & 0o111 else "f"
            elif m.issym() or m.islnk():
                digest, kind = file_hash(m.linkname.encode()), ("l" if m.issym() else "h")
            else:
                continue
            lines.append("%s %s %s" % (rel, kind, digest))
    lines.sort()
    return file_hash(("\n".join(lines) + "\n").encode())


def url_of(source: str, base: str) -> str:
    kind, repo, ref = source.split(":", 2)[0], source.split(":")[1], source.split(":")[2]
    if kind == "raw":
        path = source.split(":", 3)[3]
        return "%sraw.githubusercontent.com/%s/%s/%s" % (base, repo, ref, path)
    if kind == "archive":
        return "%sgithub.com/%s/archive/%s.tar.gz" % (base, repo, ref)
    raise FixtureError("no URL for source %s" % source)


def download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:  # noqa: S310 (https, or a file:// / 127.0.0.1 mirror)
            return r.read()
    except Exception as exc:  # pylint: disable=broad-except
        raise FixtureError("cannot download %s: %s" % (url, exc)) from exc


def repack(src: bytes | Path, dest: Path, top: str, keep=None) -> None:
    """Write ``src`` (a tarball) to ``dest`` with ``top`` as its top directory, only members under ``keep``."""
    fileobj = io.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")  # noqa: SIM115
    tmp = dest.with_name(dest.name + ".part")
    with fileobj, tarfile.open(fileobj=fileobj) as tin, open(tmp, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tout:
        for m in tin:
            parts = m.name.strip("/").split("/", 1)
            rel = parts[1] if len(parts) > 1 else ""
            if keep is not None and rel and not any(rel == k or rel.startswith(k.rstrip("/") + "/") for k in keep):
                continue
            m.name = top + ("/" + rel if rel else "")
            if m.islnk():
                lparts = m.linkname.strip("/").split("/", 1)
                m.linkname = top + ("/" + lparts[1] if len(lparts) > 1 else "")
            m.pax_headers = {}
            m.uid = m.gid = 0
            m.uname = m.gname = "root"
            tout.addfile(m, tin.extractfile(m) if m.isfile() else None)
    tmp.replace(dest)


def member(tarball: Path, path: str) -> bytes:
    with tarfile.open(tarball) as tar:
        for m in tar:
            parts = m.name.strip("/").split("/", 1)
            if len(parts) > 1 and parts[1] == path and m.isfile():
                f = tar.extractfile(m)
                return f.read() if f else b""
    raise FixtureError("%s has no %s" % (tarball, path))


def check(rows, directory: Path) -> list[str]:
    """Problems of ``directory`` against the manifest (a built file may be absent)."""
    problems = []
    for sha, kind, path, _src in rows:
        f = directory / path
        if not f.is_file():
            if kind != "built":
                problems.append("%s: missing" % path)
            continue
        got = tree_hash(f) if kind == "tree" else file_hash(f.read_bytes())
        if got != sha:
            problems.append("%s: sha256 %s, expected %s" % (path, got, sha))
    return problems


def fetch(rows, dest: Path, base: str) -> None:
    """Fetch every fixture into ``dest`` (a fresh directory), checking each."""
    tarballs_first = sorted(rows, key=lambda r: 0 if r[3].startswith("archive:") else 1 if r[3].startswith("subset:") else 2)
    for sha, kind, path, src in tarballs_first:
        out = dest / path
        out.parent.mkdir(parents=True, exist_ok=True)
        if kind == "built":
            print("fixtures: %s is built from the sources by a recipe, not fetched; tests that need it skip" % path,
                  flush=True)
            continue
        if kind == "tree":
            src, top = src.rsplit("@", 1)
            if src.startswith("subset:"):
                _k, parent, dirs = src.split(":", 2)
                repack(dest / parent, out, top, keep=dirs.split(","))
            else:
                repack(download(url_of(src, base)), out, top)
            got = tree_hash(out)
        else:
            if src.startswith("member:"):
                _k, parent, inner = src.split(":", 2)
                data = member(dest / parent, inner)
            else:
                data = download(url_of(src, base))
            got = file_hash(data)
            if got == sha:
                out.write_bytes(data)
        if got != sha:
            raise FixtureError("%s from %s: sha256 %s, expected %s (tests/fixtures.sha256)" % (path, src, got, sha))
        print("fixtures: fetched %s" % path, flush=True)


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    manifest = root / "tests" / "fixtures.sha256"
    try:
        rows = read_manifest(manifest)
        if argv[:1] == ["check"] and len(argv) == 2:
            problems = check(rows, Path(argv[1]))
            for p in problems:
                print("fixtures: %s" % p, file=sys.stderr)
            return 1 if problems else 0
        if argv[:1] == ["hash"] and len(argv) == 3:  # for updating the manifest: hash KIND FILE
            f = Path(argv[2])
            print(tree_hash(f) if argv[1] == "tree" else file_hash(f.read_bytes()))
            return 0
        if argv[:1] == ["fetch"] and len(argv) == 2:
            dest = Path(argv[1])
            base = os.environ.get("FIXTURES_BASE_URL", "https://")
            if not base.endswith("/"):
                base += "/"
            work = Path(tempfile.mkdtemp(prefix=".fixtures.", dir=dest.parent))
            try:
                fetch(rows, work, base)
                (work / ".complete").write_text(file_hash(manifest.read_bytes()) + "\n")
                if dest.exists():
                    shutil.rmtree(dest)
                work.rename(dest)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            return 0
    except FixtureError as exc:
        print("fixtures: error: %s" % exc, file=sys.stderr)
        return 1
    print("usage: fixtures_fetch.py check DIR | fetch DIR | hash file|tree FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
