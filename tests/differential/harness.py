"""Differential harness: OpenNebula 7.4.0's stock TM scripts and ours, run on identical inputs.

The world
---------
* Machines ``fe`` (the front-end), ``host-a`` and ``host-b``: each is a private
  sshd on 127.0.0.1 (the ``LoopbackSshd`` of tests/functional/tm) started in its
  own mount namespace (``unshare -m``), where the machine's own disk
  ``<base>/disk/<machine>`` is bind-mounted on the one path every machine sees,
  ``MNT`` (the stand-in for ``/var/lib/one``). An ssh config gives each machine
  its host alias. The actions themselves run as the front-end does: in a mount
  namespace with the front-end's disk.
* Shared datastores (the ``shared`` TM: system 100, images 101) are one
  directory ``<base>/nfs/<id>`` bind-mounted at ``MNT/datastores/<id>`` on every
  machine (the stand-in for NFS). The ``ssh`` TM's system datastore 0 is local
  to each machine, its image datastore 1 lives on the front-end.
* ``onevm``, ``onedatastore`` and ``onehost`` on PATH are *recording test doubles* of
  OpenNebula's CLI: they log their argv and print the VM / datastore XML that
  the case wrote (``show -x``). ``virsh``, ``lxc-freeze``, ``lxc-unfreeze``, ``systemd-run`` and ``systemctl`` are
  recording test doubles too. Each machine's ``~/.config`` is its own (``home-config/<machine>``).
* ``OnedXmlRpc`` is a *test double* of oned's XML-RPC API for the stock Ruby actions that call it through
  OpenNebula's own Ruby API (``one.vm.info``, ``one.image.info``, ``one.datastore.info``): it answers with the
  same documents the CLI doubles print, and logs the calls.
* The hosts see the stock remotes at ``/var/tmp/one`` (where oned copies them), with ``RUBYLIB`` set for the
  stock Ruby that runs there (``tm/lib/backup_qcow2.rb``).

The stock scripts are extracted unmodified from
``../shared/fixtures/opennebula/opennebula-7.4.0-drivers.tar.gz`` into an
``ONE_LOCATION`` tree (``var/remotes/tm``, ``var/remotes/datastore``,
``lib/sh``). Ours are installed as ``nebula.storage.tm_driver`` installs them
(its own file list and executable template).
"""
from __future__ import annotations

import hashlib
import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
import tarfile
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "functional" / "tm"))

from tm_functional import LoopbackSshd  # noqa: E402  pylint: disable=wrong-import-position

sys.path.insert(0, str(ROOT))
from tests.conftest import FIXTURES  # noqa: E402  pylint: disable=wrong-import-position

FIXTURE = FIXTURES / "opennebula" / "opennebula-7.4.0-drivers.tar.gz"
SOURCE = FIXTURES / "opennebula" / "opennebula-7.4.0-src.tar.gz"   # for OpenNebula's Ruby API (src/oca/ruby)
MACHINES = ("fe", "host-a", "host-b")
SHARED_DS = ("100", "101")      # shared TM: system 100, images 101 (NFS on every machine)
LOCAL_DS = ("0", "1")           # ssh TM: system 0 (each machine's own), images 1 (front-end)
ROWS = []   # (driver, sequence, step, status, detail): filled by the tests, printed by conftest at the end
MOUNT_POINTS = ("datastores",) + tuple("datastores/%s" % ds for ds in SHARED_DS)

# ---------------------------------------------------------------------------
# Test doubles on PATH
# ---------------------------------------------------------------------------

FAKE_ONE_CLI = """#!/bin/sh
# Recording test double of OpenNebula's CLI (%(name)s): logs its argv, prints the case's XML.
printf '%%s\\n' "%(name)s $*" >>"$DT_FAKE/calls.log"
case "$1 $2 $3" in
  "show -x "*) id=$3 ;;
  "show "*" -x") id=$2 ;;   # stock's get_replica_host: onedatastore show ID -x
  *) id="" ;;
esac
if [ -n "$id" ]; then
  f="$DT_FAKE/%(name)s-$id.xml"
  if [ -f "$f" ]; then cat "$f"; exit 0; fi
  echo "[one.%(kind)s.info] Error getting %(kind)s [$id]." >&2; exit 255
fi
echo "%(name)s test double: unsupported call: $*" >&2
exit 255
"""

# Recording test double of virsh, on the front-end's PATH and in every machine's /usr/local/bin (the
# hosts' ssh sessions get neither the harness's PATH nor DT_FAKE, so its log path is written in):
# logs its argv and, for --xmlfile, the file's XML with the blanks between tags removed; prints the case's answer
# for the subcommand (DT_FAKE/virsh-<subcommand>.out, next to the log) when there is one; exits 0.
FAKE_VIRSH = """#!/bin/sh
log=%(log)s
printf '%%s\\n' "virsh $*" >>"$log"
sub=; skip=
for a in "$@"; do
  if [ -n "$skip" ]; then skip=; continue; fi
  case $a in -c|--connect) skip=1 ;; -*) ;; *) sub=$a; break ;; esac
done
answer="$(dirname "$log")/virsh-$sub.out"
if [ -n "$sub" ] && [ -f "$answer" ]; then cat "$answer"; fi
prev=
for a in "$@"; do
  if [ "$prev" = --xmlfile ]; then
    printf 'virsh-xml %%s\\n' "$(tr '\\n' ' ' <"$a" | sed 's/>[[:space:]]*</></g; s/^[[:space:]]*//; s/[[:space:]]*$//')" >>"$log"
  fi
  prev=$a
done
exit 0
"""

# Recording test doubles of LXC's lxc-freeze and lxc-unfreeze (run through sudo, which finds them in /usr/local/bin).
FAKE_LXC = """#!/bin/sh
printf '%%s\\n' "$(basename "$0") $*" >>%(log)s
"""

# Recording test doubles of systemd-run and systemctl (a backup confined in a systemd user slice; no user manager
# here): systemd-run logs its options, then runs its command in the foreground with its stdin; systemctl logs.
FAKE_SYSTEMD_RUN = """#!/bin/sh
opts=
while [ $# -gt 0 ]; do case $1 in -*) opts="$opts $1"; shift ;; *) break ;; esac; done
printf 'systemd-run%%s\\n' "$opts" >>%(log)s
exec "$@"
"""
FAKE_SYSTEMCTL = """#!/bin/sh
printf '%%s\\n' "systemctl $*" >>%(log)s
"""

LOAD_PATHS_RB = """# Written by the differential harness: the stock install generates this file.
ONE_LOCATION = ENV['ONE_LOCATION'] unless defined?(ONE_LOCATION)
RUBY_LIB_LOCATION ||= ONE_LOCATION + '/lib/ruby'
GEMS_LOCATION     ||= ONE_LOCATION + '/share/gems'
LIB_LOCATION      ||= ONE_LOCATION + '/lib'
$LOAD_PATH << RUBY_LIB_LOCATION
"""


class OnedXmlRpc:
    """Test double of oned's XML-RPC API: ``one.<kind>.info`` answers with ``DT_FAKE/one<kind>-ID.xml``.

    The calls are logged to ``calls.log`` as ``xmlrpc one.vm.info 7``. Anything else is a fault, as oned
    answers an unknown call.
    """

    FILES = {"one.vm.info": "onevm", "one.image.info": "oneimage", "one.datastore.info": "onedatastore"}

    def __init__(self, fake: Path):
        import threading  # pylint: disable=import-outside-toplevel
        from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer  # pylint: disable=import-outside-toplevel

        class Quiet(SimpleXMLRPCRequestHandler):
            rpc_paths = ("/RPC2",)

            def log_message(self, *args):   # pylint: disable=arguments-differ
                pass

        self.fake = fake
        self.server = SimpleXMLRPCServer(("127.0.0.1", 0), requestHandler=Quiet, allow_none=True, logRequests=False)
        self.server.register_instance(self, allow_dotted_names=False)
        self.url = "http://127.0.0.1:%d/RPC2" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _dispatch(self, method, params):
        with open(self.fake / "calls.log", "a") as log:
            log.write("xmlrpc %s %s\n" % (method, params[1] if len(params) > 1 else ""))
        name = self.FILES.get(method)
        if name is None:
            return [False, "[%s] test double: unsupported call" % method, 0x0100, -1]
        path = self.fake / ("%s-%s.xml" % (name, params[1]))
        if not path.exists():
            return [False, "[%s] Error getting object [%s]." % (method, params[1]), 0x0400, -1]
        return [True, path.read_text(), 0, -1]

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


class StockTree:
    """``ONE_LOCATION`` with the stock 7.4.0 remotes, extracted unmodified from the fixture."""

    def __init__(self, base: Path):
        self.location = base / "one"
        src = base / "src"
        src.mkdir(parents=True, exist_ok=True)
        with tarfile.open(FIXTURE) as tar:
            members = [m for m in tar.getmembers()
                       if "/src/tm_mad/" in m.name or "/src/mad/sh/" in m.name
                       or "/src/datastore_mad/remotes/" in m.name or "/src/mad/ruby/" in m.name
                       or m.name.endswith("/src/vmm_mad/remotes/kvm/kvmrc")]
            tar.extractall(src, members=members, filter="tar")
        top = src / "opennebula-7.4.0" / "src"
        remotes = self.location / "var" / "remotes"
        shutil.copytree(top / "tm_mad", remotes / "tm", symlinks=True)
        shutil.copytree(top / "datastore_mad" / "remotes", remotes / "datastore", symlinks=True)
        shutil.copytree(top / "mad" / "sh", self.location / "lib" / "sh", symlinks=True)
        # install.sh also puts scripts_common.sh in remotes (ssh_utils.sh sources it from there)
        shutil.copy(top / "mad" / "sh" / "scripts_common.sh", remotes / "scripts_common.sh")
        shutil.copytree(top / "mad" / "ruby", self.location / "lib" / "ruby", symlinks=True)
        (remotes / "etc" / "tm" / "ssh").mkdir(parents=True)
        # the rc files install.sh puts under remotes/etc
        shutil.copy(top / "tm_mad" / "ssh" / "sshrc", remotes / "etc" / "tm" / "ssh" / "sshrc")
        (remotes / "etc" / "datastore").mkdir(parents=True)
        shutil.copy(top / "datastore_mad" / "remotes" / "datastore.conf", remotes / "etc" / "datastore")
        (remotes / "etc" / "vmm" / "kvm").mkdir(parents=True)
        shutil.copy(top / "vmm_mad" / "remotes" / "kvm" / "kvmrc", remotes / "etc" / "vmm" / "kvm")
        _write(self.location / "lib" / "ruby" / "load_opennebula_paths.rb", LOAD_PATHS_RB)
        # OpenNebula's Ruby API, which the stock Ruby actions (backups, restore, rsync) load
        with tarfile.open(SOURCE) as tar:
            members = [m for m in tar.getmembers() if "/src/oca/ruby/" in m.name]
            tar.extractall(src, members=members, filter="tar")
        oca = src / "opennebula-7.4.0" / "src" / "oca" / "ruby"
        shutil.copy(oca / "opennebula.rb", self.location / "lib" / "ruby")
        shutil.copytree(oca / "opennebula", self.location / "lib" / "ruby" / "opennebula")
        (self.location / "share" / "gems").mkdir(parents=True)

    def action(self, driver: str, action: str) -> Path:
        return self.location / "var" / "remotes" / "tm" / driver / action


class OursTree:
    """Our drivers as nebula.storage.tm_driver installs them (layout ``remotes``)."""

    def __init__(self, base: Path, rc: dict, stock=None):
        import tests.conftest  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
        from ansible_collections.nebula.storage.plugins.modules import tm_driver  # pylint: disable=import-outside-toplevel
        self.base = base / "ours"
        for name in ("nfs_shared", "onestor"):
            params = {"name": name, "layout": "remotes", "dest": str(self.base), "legacy_conf_dir": "/nonexistent"}
            inst = tm_driver.Installer(types.SimpleNamespace(params=params, check_mode=False))
            for path, data in inst.library_files():
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_bytes(data)
            for action in inst.actions:
                target = Path(inst.action_path(action))
                target.write_bytes(inst.executable(action))
                target.chmod(0o755)
            _write(Path(inst.rc_path), "".join("%s=%s\n" % (k, shlex.quote(str(v))) for k, v in rc.items()))
        if stock is not None:   # one remotes tree, as on a front-end: the datastore drivers are stock's
            (self.base / "datastore").symlink_to(stock.location / "var" / "remotes" / "datastore")

    def action(self, driver: str, action: str) -> Path:
        return self.base / "tm" / driver / action


# ---------------------------------------------------------------------------
# Machines
# ---------------------------------------------------------------------------

class World:
    """Three machines with their own disks, the shared datastores, the CLI doubles."""

    def __init__(self, base: Path):
        self.base = base
        self.mnt = base / "mnt"            # the path every machine sees (stand-in for /var/lib/one)
        self.mnt.mkdir(parents=True)
        self.fake = base / "fake"
        self.fake.mkdir()
        self.bin = base / "bin"
        _write(self.bin / "onevm", FAKE_ONE_CLI % {"name": "onevm", "kind": "vm"}, 0o755)
        _write(self.bin / "onedatastore", FAKE_ONE_CLI % {"name": "onedatastore", "kind": "datastore"}, 0o755)
        _write(self.bin / "onehost", FAKE_ONE_CLI % {"name": "onehost", "kind": "host"}, 0o755)
        _write(self.bin / "oneimage", FAKE_ONE_CLI % {"name": "oneimage", "kind": "image"}, 0o755)
        _write(base / "one_auth", "oneadmin:test-double\n", 0o600)
        self.oned = OnedXmlRpc(self.fake)
        self.remotes = None       # the stock remotes the hosts see at /var/tmp/one (set before start)
        self.ruby_lib = None      # RUBYLIB of the hosts' ssh sessions
        self.vartmp = base / "vartmp"
        (self.vartmp / "one").mkdir(parents=True)
        log = {"log": shlex.quote(str(self.fake / "calls.log"))}   # where the recording doubles log
        _write(self.bin / "virsh", FAKE_VIRSH % log, 0o755)
        for name in ("lxc-freeze", "lxc-unfreeze"):
            _write(self.bin / name, FAKE_LXC % log, 0o755)
        _write(self.bin / "systemd-run", FAKE_SYSTEMD_RUN % log, 0o755)
        _write(self.bin / "systemctl", FAKE_SYSTEMCTL % log, 0o755)
        self.home_config = base / "home-config"   # each machine's ~/.config (systemd user units)
        for machine in MACHINES:
            (self.home_config / machine).mkdir(parents=True)
        self.locks = base / "locks"
        self.locks.mkdir()
        self.varlock = base / "varlock"
        (self.varlock / "one").mkdir(parents=True)
        self.hosts = {}
        for machine in MACHINES:
            disk = self.disk(machine)
            for ds in SHARED_DS:
                (disk / "datastores" / ds).mkdir(parents=True)
        for ds in SHARED_DS:
            (base / "nfs" / ds).mkdir(parents=True)
        self.dotssh = base / "dotssh"
        self.dotssh.mkdir(mode=0o700)
        self.ssh_config = self.dotssh / "config"

    def disk(self, machine: str) -> Path:
        return self.base / "disk" / machine

    def ds(self, dsid) -> str:
        """The path of datastore ``dsid`` as every machine sees it."""
        return "%s/datastores/%s" % (self.mnt, dsid)

    def mount_prefix(self, machine: str) -> list:
        """argv prefix: a private mount namespace with ``machine``'s disk and the shared datastores."""
        script = 'mount --bind "$1" "$2" || exit 97\n'
        args = [str(self.disk(machine)), str(self.mnt)]
        for i, ds in enumerate(SHARED_DS):
            script += 'mount --bind "${%d}" "$2/datastores/%s" || exit 97\n' % (i + 3, ds)
            args.append(str(self.base / "nfs" / ds))
        # stock ssh/mv calls plain `ssh HOST`: its config is the world's, in the namespace only
        # (ssh reads the passwd entry's home, not $HOME; a machine that never used ssh has no ~/.ssh yet: made
        # here, empty and 0700 as ssh-keygen would make it, because a bind mount needs a directory to cover)
        home = pwd.getpwuid(os.getuid()).pw_dir
        home_ssh = os.path.join(home, ".ssh")
        os.makedirs(home_ssh, mode=0o700, exist_ok=True)
        script += 'mount --bind "${%d}" "${%d}" || exit 97\n' % (len(args) + 1, len(args) + 2)
        args += [str(self.dotssh), home_ssh]
        # the machine's own ~/.config, where a confined backup writes its systemd user slice
        home_config = os.path.join(home, ".config")
        os.makedirs(home_config, mode=0o700, exist_ok=True)
        script += 'mount --bind "${%d}" "${%d}" || exit 97\n' % (len(args) + 1, len(args) + 2)
        args += [str(self.home_config / machine), home_config]
        # the recording virsh (and the CLI doubles) on the hosts' default PATH
        script += 'mount --bind "${%d}" /usr/local/bin || exit 97\n' % (len(args) + 1)
        args.append(str(self.bin))
        # stock's `exclusive` locks in the fixed /var/lock/one: a private one per world
        script += 'mount --bind "${%d}" /var/lock || exit 97\n' % (len(args) + 1)
        args.append(str(self.varlock))
        # oned copies the remotes to the hosts' /var/tmp/one: stock's, over a private /var/tmp
        if self.remotes is not None:
            script += 'mount --bind "${%d}" /var/tmp || exit 97\n' % (len(args) + 1)
            script += 'mount --bind "${%d}" /var/tmp/one || exit 97\n' % (len(args) + 2)
            args += [str(self.vartmp), str(self.remotes)]
        script += 'shift %d\nexec "$@"\n' % len(args)
        return ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script, "sh"] + args

    def start(self):
        lines = []
        for machine in MACHINES:
            (self.base / "sshd" / machine).mkdir(parents=True, exist_ok=True)
            server = LoopbackSshd(self.base / "sshd" / machine, prefix=self.mount_prefix(machine),
                                  environment={"RUBYLIB": self.ruby_lib} if self.ruby_lib else None)
            server.start()
            self.hosts[machine] = server
            lines += ["Host %s" % machine, "  HostName 127.0.0.1", "  Port %d" % server.port, "  User root",
                      "  IdentityFile %s" % server.key, "  BatchMode yes", "  StrictHostKeyChecking no",
                      "  UserKnownHostsFile /dev/null", "  LogLevel ERROR", ""]
        self.ssh_config.write_text("\n".join(lines))
        self.ssh_config.chmod(0o600)
        self.oned.start()
        return self

    def stop(self):
        for server in self.hosts.values():
            server.stop()
        self.oned.stop()

    @property
    def ssh(self) -> str:
        return "ssh -F %s" % self.ssh_config

    # -- state --------------------------------------------------------------
    def reset(self):
        """Empty every disk, keep the mount points (bind mounts hold their inodes)."""
        for top in [self.disk(m) for m in MACHINES] + [self.base / "nfs" / ds for ds in SHARED_DS]:
            for root, dirs, files in os.walk(top, topdown=False):
                for name in files:
                    os.unlink(os.path.join(root, name))
                for name in dirs:
                    path = os.path.join(root, name)
                    rel = os.path.relpath(path, top)
                    if os.path.islink(path):
                        os.unlink(path)
                    elif rel not in MOUNT_POINTS:
                        os.rmdir(path)
        for item in self.fake.iterdir():
            item.unlink()
        for machine in MACHINES:   # emptied, kept: the machines' bind mounts hold its inode
            for item in (self.home_config / machine).iterdir():
                if item.is_dir() and not item.is_symlink():
                    shutil.rmtree(item)
                else:
                    item.unlink()

    def user_units(self) -> dict:
        """``{machine: {path under ~/.config: text}}``: what the machines' ~/.config hold."""
        units = {}
        for machine in MACHINES:
            top = self.home_config / machine
            for root, _dirs, files in os.walk(top):
                for name in files:
                    path = os.path.join(root, name)
                    with open(path, encoding="utf-8", errors="replace") as handle:
                        units.setdefault(machine, {})[os.path.relpath(path, top)] = handle.read()
        return units

    def real(self, machine: str, path: str) -> Path:
        """Where ``machine``'s ``path`` (under MNT) is, seen from outside the namespaces."""
        rel = os.path.relpath(path, self.mnt)
        parts = rel.split(os.sep)
        if parts[0] == "datastores" and len(parts) > 1 and parts[1] in SHARED_DS:
            return self.base / "nfs" / os.path.join(*parts[1:])
        return self.disk(machine) / rel

    def snapshot(self) -> dict:
        """Every file each machine holds: type, mode, owner, size, blocks, hash, link target, qemu-img info."""
        result = {}
        tops = [(m, self.disk(m)) for m in MACHINES] + [("nfs", self.base / "nfs")]
        for label, top in tops:
            for root, dirs, files in os.walk(top):
                for name in sorted(dirs + files):
                    path = os.path.join(root, name)
                    rel = os.path.relpath(path, top)
                    if label != "nfs" and rel in MOUNT_POINTS:
                        continue   # mount points of the shared datastores (listed under nfs)
                    inside = os.path.join(str(self.mnt), "datastores" if label == "nfs" else "", rel)
                    ns = (self.mount_prefix("fe" if label == "nfs" else label), inside)
                    result["%s:%s" % (label, rel)] = describe(path, ns)
        return result


def describe(path: str, ns=None) -> dict:
    """``ns``: (argv prefix entering the machine's namespace, the path there), for qcow2 backing chains."""
    st = os.lstat(path)
    entry = {"mode": oct(stat.S_IMODE(st.st_mode)), "uid": st.st_uid}
    if stat.S_ISLNK(st.st_mode):
        entry.update(type="link", target=os.readlink(path))
        entry.pop("mode")
    elif stat.S_ISDIR(st.st_mode):
        entry.update(type="dir")
    else:
        entry.update(type="file", size=st.st_size, alloc_kib=st.st_blocks // 2)
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(0)
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        if head == b"QFI\xfb":
            info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", path], capture_output=True,
                                             text=True, check=True).stdout)
            entry["qemu"] = {k: info.get(k) for k in ("format", "virtual-size", "backing-filename",
                                                      "backing-filename-format")}
            entry["qemu"]["data"] = qcow2_data_hash(path, ns)
        elif iso_files(path) is not None:   # an ISO holds build times: compare the files it holds
            entry["iso"] = iso_files(path)
        else:
            fs = filesystem(path)
            if fs:   # mkfs and mkswap write a random UUID: compare type and label instead of the bytes
                entry["fs"] = fs
            else:
                entry["sha256"] = digest.hexdigest()
    return entry


def iso_files(path: str):
    """``{name: sha256}`` of the files in an ISO 9660 image (Rock Ridge names); None for other files."""
    with open(path, "rb") as handle:
        handle.seek(0x8001)
        if handle.read(5) != b"CD001":
            return None
    listing = subprocess.run(["isoinfo", "-R", "-f", "-i", path], capture_output=True, text=True, check=True).stdout
    files = {}
    for name in listing.split():
        data = subprocess.run(["isoinfo", "-R", "-i", path, "-x", name], capture_output=True, check=True).stdout
        files[name] = hashlib.sha256(data).hexdigest()
    return files


def filesystem(path: str) -> dict:
    """``blkid -p``'s TYPE and LABEL of a file holding a filesystem or swap, else {}."""
    proc = subprocess.run(["blkid", "-p", "-o", "export", path], capture_output=True, text=True, check=False)
    fields = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return {k: fields.get(k) for k in ("TYPE", "LABEL")} if fields.get("TYPE") else {}


def qcow2_data_hash(path: str, ns=None) -> str:
    """The hash of what the guest sees (qcow2 headers differ between qemu-img runs by design).

    Read inside the machine's namespace (``ns``), where absolute backing files resolve.
    """
    import tempfile  # pylint: disable=import-outside-toplevel
    prefix, inside = ns if ns else ([], path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw")
        try:
            proc = subprocess.run(prefix + ["qemu-img", "convert", "-U", "-O", "raw", inside, raw],
                                  capture_output=True, check=False, timeout=60)
        except subprocess.TimeoutExpired:
            return "unreadable: qemu-img convert did not finish (a backing chain loop?)"
        if proc.returncode != 0:
            return "unreadable: " + proc.stderr.decode(errors="replace").strip()[-200:]
        with open(raw, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()


# ---------------------------------------------------------------------------
# Running one action
# ---------------------------------------------------------------------------

class Runner:
    """Runs an action of the stock tree or ours, as oned does on the front-end."""

    def __init__(self, world: World, stock: StockTree, ours: OursTree):
        self.world, self.stock, self.ours = world, stock, ours

    def env(self) -> dict:
        world = self.world
        return {
            "PATH": "%s:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" % world.bin,
            "HOME": os.environ.get("HOME", "/root"), "LANG": "C",
            "ONE_LOCATION": str(self.stock.location), "RUBYLIB": str(self.stock.location / "lib" / "ruby"),
            "SSH": world.ssh, "SSH_FWD": world.ssh + " -o ForwardAgent=yes",
            "DT_FAKE": str(world.fake),
            "ONE_XMLRPC": world.oned.url, "ONE_AUTH": str(world.base / "one_auth"),
        }

    def run(self, side: str, driver: str, action: str, args, stdin: bytes = b"") -> subprocess.CompletedProcess:
        tree = self.stock if side == "stock" else self.ours
        argv = self.world.mount_prefix("fe") + [str(tree.action(driver, action))] + [str(a) for a in args]
        return subprocess.run(argv, input=stdin, capture_output=True, env=self.env(), timeout=120, check=False)

    def on(self, machine: str, script: str, *args) -> subprocess.CompletedProcess:
        """Run ``sh -c script`` in ``machine``'s namespace (case setup and checks)."""
        argv = self.world.mount_prefix(machine) + ["sh", "-c", script, "sh"] + [str(a) for a in args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
