"""The onestor replica cache in stock's layout, against OpenNebula 7.4.0's own ssh/clone.replica (issue 13 item 15).

With ``REPLICA_CACHE_LAYOUT=stock`` ours keeps an image on the replica at its front-end path with ``.md5sum`` and
the directory's ``.monitor`` marker, as stock's rsync_img_to_replica does. So a cache the stock driver filled is
reused by ours (no copy to the replica), and a cache ours filled is reused by stock, after a switch either way.
The world is the differential suite's (three machines over real ssh, the CLI doubles).
"""
from __future__ import annotations

import os

from cases import L_IMG, L_SYS, VMID, disk, ds_xml, make_file, vm_xml

IMG = L_IMG + "/img0"


def _setup(runner):
    world = runner.world
    world.reset()
    make_file(runner, "fe", IMG.replace("{M}", str(world.mnt)), "raw", 16)
    for vmid in (VMID, VMID + 1):
        xml = vm_xml(vmid=vmid, disks=[disk(0, ds=1, tm="ssh")], sys_ds=0)
        (world.fake / ("onevm-%s.xml" % vmid)).write_text(xml.replace("{M}", str(world.mnt)))
    # stock's clone.replica reads the destination host's REPLICA_STORAGE_IP: host-a has none
    (world.fake / "onehost-host-a.xml").write_text("<HOST><ID>0</ID><NAME>host-a</NAME><TEMPLATE/></HOST>")
    for dsid, xml in {0: ds_xml(0, "ssh", REPLICA_HOST="host-b"), 1: ds_xml(1, "ssh", "IMAGE_DS")}.items():
        (world.fake / ("onedatastore-%s.xml" % dsid)).write_text(xml.replace("{M}", str(world.mnt)))
    return world


def _clone(runner, side, vmid):
    mnt = str(runner.world.mnt)
    args = ["fe:" + IMG.replace("{M}", mnt), "host-a:%s/%d/disk.0" % (L_SYS.replace("{M}", mnt), vmid), vmid, 1]
    proc = runner.run(side, "ssh" if side == "stock" else "onestor", "clone", args)
    assert proc.returncode == 0, (side, proc.stderr.decode(errors="replace")[-1500:])
    return proc.stderr.decode(errors="replace")


def _ours_rc(runner, **settings):
    """Our rc file with ``settings`` added (later lines win); returns a function restoring it."""
    path = runner.ours.base / "tm" / "onestor" / "onestorrc"
    before = path.read_text()
    path.write_text(before + "".join("%s=%s\n" % kv for kv in settings.items()))
    return lambda: path.write_text(before)


def _replica_state(world):
    mnt = str(world.mnt)
    copy = world.real("host-b", IMG.replace("{M}", mnt))
    stat = os.stat(copy)
    return {"ino": stat.st_ino, "mtime": stat.st_mtime_ns,
            "md5sum": (copy.parent / (copy.name + ".md5sum")).read_text().strip(),
            "monitor": (copy.parent / ".monitor").read_text().strip()}


def _disk(world, vmid):
    return world.real("host-a", "%s/%d/disk.0" % (L_SYS.replace("{M}", str(world.mnt)), vmid)).read_bytes()


def test_ours_reuses_a_cache_stock_filled(runner):
    world = _setup(runner)
    _clone(runner, "stock", VMID)
    stock_state = _replica_state(world)
    assert stock_state["monitor"] == "replica"
    restore = _ours_rc(runner, REPLICA_CACHE_LAYOUT="stock", DS_0_REPLICA_HOST="host-b")
    try:
        err = _clone(runner, "ours", VMID + 1)
    finally:
        restore()
    assert "is current" in err and "to the replica" not in err, err
    assert _replica_state(world) == stock_state   # the same file, not copied again
    image = world.real("fe", IMG.replace("{M}", str(world.mnt))).read_bytes()
    assert _disk(world, VMID + 1) == image == _disk(world, VMID)


def test_stock_reuses_a_cache_ours_filled(runner):
    world = _setup(runner)
    restore = _ours_rc(runner, REPLICA_CACHE_LAYOUT="stock", DS_0_REPLICA_HOST="host-b")
    try:
        err = _clone(runner, "ours", VMID)
    finally:
        restore()
    assert "to the replica host-b" in err, err
    ours_state = _replica_state(world)
    assert ours_state["monitor"] == "replica"
    _clone(runner, "stock", VMID + 1)
    # stock's repl_img_outdated compared the md5sums and found the copy current: it did not unpack it again
    assert _replica_state(world) == ours_state
    image = world.real("fe", IMG.replace("{M}", str(world.mnt))).read_bytes()
    assert _disk(world, VMID + 1) == image == _disk(world, VMID)


def test_own_layout_does_not_see_a_stock_cache(runner):
    """The default layout keeps its own cache (REPLICA_CACHE_DIR): a stock cache is not reused, by design of the
    setting; the README tells an operator switching from stock to set REPLICA_CACHE_LAYOUT=stock."""
    world = _setup(runner)
    _clone(runner, "stock", VMID)
    restore = _ours_rc(runner, DS_0_REPLICA_HOST="host-b")
    try:
        err = _clone(runner, "ours", VMID + 1)
    finally:
        restore()
    assert "to the replica host-b" in err, err
