"""nebula.storage.file_tree (module side, in-process) and patch_tree, on real files in a temp dir."""
from __future__ import annotations

import base64
import hashlib
import os
import stat

import pytest


def entry(dest, data, mode="0755", content=True, **kw):
    e = {"src": "/controller/" + dest, "dest": dest, "mode": mode, "sha256": hashlib.sha256(data).hexdigest()}
    if content:
        e["content"] = base64.b64encode(data).decode()
    e.update(kw)
    return e


def listing(base):
    out = {}
    for dirpath, _d, names in os.walk(base):
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.relpath(p, base)] = (stat.S_IMODE(st.st_mode), open(p, "rb").read() if stat.S_ISREG(st.st_mode) else os.readlink(p))
    return out


@pytest.fixture
def base(tmp_path):
    b = tmp_path / "remotes"
    b.mkdir()
    return b


def test_installs_then_idempotent(run_module, base):
    files = [entry("tm/storpool/clone", b"#!/bin/sh\nclone\n"), entry("addon-storpoolrc", b"X=1\n", "0644", force=False)]
    res = run_module("file_tree", {"dest": str(base), "files": files})
    assert res["failed"] is False and res["changed"] and sorted(res["added"]) == ["addon-storpoolrc", "tm/storpool/clone"]
    assert listing(base) == {"tm/storpool/clone": (0o755, b"#!/bin/sh\nclone\n"), "addon-storpoolrc": (0o644, b"X=1\n")}
    assert stat.S_IMODE(os.stat(base / "tm").st_mode) == 0o755
    again = run_module("file_tree", {"dest": str(base), "files": files})
    assert again["changed"] is False and again["unchanged"] == 2
    assert not [n for n in os.listdir(base / "tm/storpool") if n.startswith(".")]  # no temp file left


def test_check_mode_and_diff_list_added_changed_removed(run_module, base):
    (base / "old").write_text("old\n")
    (base / "a").write_text("before\n")
    files = [entry("a", b"after\n"), entry("new/b", b"b\n")]
    before = listing(base)
    res = run_module("file_tree", {"dest": str(base), "files": files, "absent": ["old", "missing"]}, check_mode=True, diff=True)
    assert res["changed"] and res["added"] == ["new/b"] and res["changed_files"] == ["a"] and res["removed"] == ["old"]
    assert "new/b (added)" in res["diff"]["after"] and "/old\n" in res["diff"]["before"]
    assert listing(base) == before


def test_only_metadata_fixed_when_content_is_right(run_module, base):
    (base / "a").write_bytes(b"x\n")
    os.chmod(base / "a", 0o600)
    res = run_module("file_tree", {"dest": str(base), "files": [entry("a", b"x\n", content=False)]})
    assert res["changed"] and res["attrs"] == ["a"] and stat.S_IMODE(os.stat(base / "a").st_mode) == 0o755


def test_content_is_asked_for_when_missing(run_module, base):
    res = run_module("file_tree", {"dest": str(base), "files": [entry("a", b"x\n", content=False)]})
    assert res["changed"] is False and res["need_content"] == ["a"] and not (base / "a").exists()


def test_force_false_keeps_an_existing_file(run_module, base):
    (base / "rc").write_bytes(b"operator\n")
    os.chmod(base / "rc", 0o644)
    res = run_module("file_tree", {"dest": str(base), "files": [entry("rc", b"stock\n", "0644", force=False)]})
    assert res["changed"] is False and (base / "rc").read_bytes() == b"operator\n"


def test_a_planted_symlink_is_replaced_never_followed(run_module, base, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    (base / "a").symlink_to(victim)
    res = run_module("file_tree", {"dest": str(base), "files": [entry("a", b"new\n")]})
    assert res["changed"] and res["changed_files"] == ["a"]
    assert victim.read_text() == "root's file\n" and not (base / "a").is_symlink() and (base / "a").read_bytes() == b"new\n"


def test_a_symlinked_directory_fails_before_any_change(run_module, base, tmp_path):
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (base / "tm").symlink_to(elsewhere)
    res = run_module("file_tree", {"dest": str(base), "files": [entry("a", b"a\n"), entry("tm/storpool/clone", b"x\n")]})
    assert res["failed"] and "is a symlink: refusing to write through it" in res["msg"]
    assert not (base / "a").exists() and os.listdir(elsewhere) == []


def test_dotdot_and_absolute_destinations_are_refused(run_module, base):
    for bad in ("../x", "/etc/x", "a//b"):
        res = run_module("file_tree", {"dest": str(base), "files": [entry(bad, b"x\n")]})
        assert res["failed"] and "refused" in res["msg"] or "relative" in res["msg"], bad


def test_content_not_matching_its_hash_is_refused(run_module, base):
    e = entry("a", b"x\n")
    e["content"] = base64.b64encode(b"tampered\n").decode()
    res = run_module("file_tree", {"dest": str(base), "files": [e]})
    assert res["failed"] and "does not match its sha256" in res["msg"] and not (base / "a").exists()


# --- patch_tree --------------------------------------------------------------------------------
STOCK = "".join("line %d\n" % i for i in range(1, 21))
PATCH_A = ("--- remotes.orig/vmm/kvm/attach_disk\n+++ remotes/vmm/kvm/attach_disk\n"
           "@@ -4,3 +4,4 @@\n line 4\n line 5\n+fix A\n line 6\n")
PATCH_B = ("--- remotes/vmm/kvm/attach_disk.orig\t2026-01-01 00:00:00.000000000 +0000\n"
           "+++ remotes/vmm/kvm/attach_disk\t2026-01-01 00:00:00.000000000 +0000\n"
           "@@ -14,3 +14,3 @@\n line 14\n-line 15\n+line fifteen\n line 16\n")
PATCH_BAD = ("--- remotes/vmm/kvm/attach_disk\n+++ remotes/vmm/kvm/attach_disk\n"
             "@@ -1,3 +1,3 @@\n nothing\n-like\n+this\n here\n")


@pytest.fixture
def one_var(tmp_path):
    d = tmp_path / "one"
    (d / "remotes/vmm/kvm").mkdir(parents=True)
    f = d / "remotes/vmm/kvm/attach_disk"
    f.write_text(STOCK)
    os.chmod(f, 0o751)
    return d


def series(*texts):
    return [{"name": "p%d" % i, "content": t} for i, t in enumerate(texts)]


def test_patch_series_applied_once_then_found_applied(run_module, one_var):
    f = one_var / "remotes/vmm/kvm/attach_disk"
    res = run_module("patch_tree", {"basedir": str(one_var), "patches": series(PATCH_A, PATCH_B)}, diff=True)
    assert res["failed"] is False and res["changed"] and res["applied"] == ["p0", "p1"]
    assert "fix A\n" in f.read_text() and "line fifteen\n" in f.read_text()
    assert "+fix A" not in res["diff"][0]["before"] and "fix A" in res["diff"][0]["after"]
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o751
    again = run_module("patch_tree", {"basedir": str(one_var), "patches": series(PATCH_A, PATCH_B)})
    assert again["changed"] is False and again["already_applied"] == ["p0", "p1"]
    assert sorted(os.listdir(f.parent)) == ["attach_disk"]  # no .orig, .rej or temp file


def test_patch_check_mode_changes_nothing(run_module, one_var):
    res = run_module("patch_tree", {"basedir": str(one_var), "patches": series(PATCH_A)}, check_mode=True)
    assert res["changed"] and (one_var / "remotes/vmm/kvm/attach_disk").read_text() == STOCK


def test_patch_applying_neither_way_fails_before_any_change(run_module, one_var):
    res = run_module("patch_tree", {"basedir": str(one_var), "patches": series(PATCH_A, PATCH_BAD)})
    assert res["failed"] and "patch p1 applies neither forward nor reversed" in res["msg"] and "nothing was changed" in res["msg"]
    assert (one_var / "remotes/vmm/kvm/attach_disk").read_text() == STOCK
    assert sorted(os.listdir(one_var / "remotes/vmm/kvm")) == ["attach_disk"]


def test_patch_refuses_a_symlinked_target(run_module, one_var, tmp_path):
    f = one_var / "remotes/vmm/kvm/attach_disk"
    real = tmp_path / "real"
    real.write_text(STOCK)
    f.unlink()
    f.symlink_to(real)
    res = run_module("patch_tree", {"basedir": str(one_var), "patches": series(PATCH_A)})
    assert res["failed"] and "is a symlink" in res["msg"] and real.read_text() == STOCK
