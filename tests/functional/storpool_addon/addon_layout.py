"""Front-end layouts for the StorPool addon tests, generated at test time (no OpenNebula code is committed).

A layout is what install.sh and the role need on a front-end of one release: ``remotes/VERSION``,
the kvm probe directory, and the stock files the addon's patches for that release apply to.
Those stock files are GENERATED from the patches themselves: every hunk's old side (context and
removed lines) is put at its line number, the lines between are ``# filler`` lines. A later patch
of the series whose hunks need an earlier patch's output is placed after it. The result is a file on
which the release's series applies exactly as on the real one, made only of the addon's own patch
text, extracted from the addon tarball at test time.
"""
from __future__ import annotations

import os  # pylint: disable=unused-import
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

HUNK = re.compile(r'^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@')


def extract_addon(tarball: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    # the modes as git archive recorded them (0775 scripts), as an operator's tar gives them
    with tarfile.open(tarball) as tar:
        if hasattr(tarfile, "fully_trusted_filter"):
            tar.extractall(dest, filter="fully_trusted")
        else:
            tar.extractall(dest)
    return dest / "addon-storpool"


def parse(text: str, strip: int = 0):
    """[(target, [(old_start, old_lines, new_lines)])] of a unified diff."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith('--- ') and i + 1 < len(lines) and lines[i + 1].startswith('+++ '):
            name = re.sub(r'\s+\d{4}-\d\d-\d\d[\d:. +-]*$', '', lines[i + 1][4:].split('\t')[0]).strip()
            target = '/'.join(name.split('/')[strip:])
            hunks = []
            i += 2
            while i < len(lines) and lines[i].startswith('@@'):
                m = HUNK.match(lines[i])
                start = int(m.group(1))
                old_n = int(m.group(2) or 1)
                new_n = int(m.group(4) or 1)
                old, new = [], []
                i += 1
                while i < len(lines) and (old_n > len(list(old)) or new_n > len(new)):
                    line = lines[i]
                    if line.startswith('\\'):
                        i += 1
                        continue
                    tag, body = (line[:1], line[1:]) if line else (' ', '')
                    if tag in (' ', '-'):
                        old.append(body)
                    if tag in (' ', '+'):
                        new.append(body)
                    i += 1
                hunks.append((start, old, new))
            out.append((target, hunks))
        else:
            i += 1
    return out


def _applies(path: Path, text: str, workdir: Path) -> bool:
    r = subprocess.run(['patch', '-p0', '--dry-run', '--forward', '--batch', '-d', str(workdir)],
                       input=text.encode(), capture_output=True, check=False)
    return r.returncode == 0


def prepatch_files(patch_texts):
    """{target: content}: stock files on which the patches (in order) apply one after the other."""
    originals = {}  # target -> list of lines (None = free)
    for text in patch_texts:
        for target, hunks in parse(text):
            orig = originals.setdefault(target, [])
            for start, old, _new in hunks:
                pos = start - 1
                free = all(pos + k >= len(orig) or orig[pos + k] is None for k in range(len(old)))
                if not free:
                    pos = len(orig) + 5
                while len(orig) < pos + len(old):
                    orig.append(None)
                for k, line in enumerate(old):
                    orig[pos + k] = line
    out = {}
    for target, orig in originals.items():
        out[target] = '\n'.join(line if line is not None else '# filler %d' % n for n, line in enumerate(orig)) + '\n'
    return out


def build_layout(root: Path, version: str, addon: Path, patches, oned_conf: Path, vmm_execrc: Path):
    """Write a front-end of OpenNebula `version` under root: var/lib/one/remotes and etc/one."""
    one_var = root / 'var' / 'lib' / 'one'
    remotes = one_var / 'remotes'
    (remotes / 'im' / 'kvm-probes.d' / 'host' / 'system').mkdir(parents=True)
    (remotes / 'vmm' / 'kvm').mkdir(parents=True)
    (remotes / 'VERSION').write_text(version + '\n')
    texts = [(addon / p).read_text() for p in patches]
    stock = [t for t in texts if not all(target.startswith('remotes/datastore/xpath') for target, _hunks in parse(t))]
    for target, content in prepatch_files(stock).items():
        path = one_var / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(0o755)
    etc = root / 'etc' / 'one'
    (etc / 'vmm_exec').mkdir(parents=True)
    shutil.copy(oned_conf, etc / 'oned.conf')
    shutil.copy(vmm_execrc, etc / 'vmm_exec' / 'vmm_execrc')
    for d in ('tmpfiles.d', 'systemd/system', 'cron.d'):
        (root / 'etc' / d).mkdir(parents=True, exist_ok=True)
    return one_var


def check_series(one_var: Path, addon: Path, patches) -> list:
    """Apply the series in a scratch copy of one_var; returns the failures (empty when it applies)."""
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / 'w'
        shutil.copytree(one_var, work, symlinks=True)
        for p in patches:
            r = subprocess.run(['patch', '-p0', '--forward', '--batch', '--no-backup-if-mismatch', '-d', str(work)],
                               input=(addon / p).read_bytes(), capture_output=True, check=False)
            if r.returncode != 0:
                failures.append((p, r.stdout.decode() + r.stderr.decode()))
    return failures
