"""Parity: the addon's own install.sh and the storpool_addon role on the same tree and the same front-end layout.

For each release install.sh supports among the layouts we can build (6.10.0, 6.10.5, 7.2.0: see
addon_layout.py, whose stock files are generated from the addon's patches), both run on a fresh
front-end:

* install.sh (the real one, from the addon tarball, AUTOCONF=1) runs inside a private mount namespace
  (``unshare -m``) where /etc, /var and the augeas lenses are overlays whose upper directories are the
  layout: everything it writes lands there, nothing on this machine;
* the role runs with its paths (storpool_addon_one_var, _oned_conf, _vmm_execrc, _etc) on a copy of
  the same layout.

systemctl, systemd-tmpfiles, onehook, onehost and crontab are TEST DOUBLES (logging stubs, first in PATH
for both). The comparison covers the installed files (list, contents, modes), the patched stock
files, oned.conf and vmm_execrc. Every difference is asserted here as intended, with its reason in
roles/storpool_addon/README.md ("Differences from install.sh").
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT
from tests.functional.storpool_addon.addon_layout import build_layout, extract_addon

from ansible_collections.nebula.storage.plugins.module_utils import _storpool_plan as plan_mod
from ansible_collections.nebula.storage.plugins.module_utils._oned_template import parse as parse_oned

TARBALL = FIXTURES / "addon-storpool" / "addon-storpool-b279d18.tar.gz"
RELEASES = {"6.10.0": "oned-6.10.5.conf", "6.10.5": "oned-6.10.5.conf", "7.2.0": "oned-7.4.0.conf"}
# files install.sh copies with cp -a (mode 0775 kept from the tarball); the role installs them 0755
CP_A = re.compile(r"^remotes/vmm/kvm/(deploy-tweaks(\.d\.example/.*)?|(attach|detach)_disk\.(storpool|cdrom))$")

STUB = """#!/bin/bash
# TEST DOUBLE of {name}: logs its arguments{extra}
printf '%s\\n' "{name} $*" >> "$STUB_LOG"
{body}
"""
STUBS = {
    "systemctl": ("", "exit 0"),
    "systemd-tmpfiles": ("", "exit 0"),
    "onehost": ("", "exit 0"),
    "onehook": (" and keeps the created hooks' names in $STUB_LOG.hooks",
                'h="$STUB_LOG.hooks"; touch "$h"\n'
                'if [ "$1" = create ]; then '
                'sed -n \'s/^[[:space:]]*NAME[[:space:]]*=[[:space:]]*"\\{0,1\\}\\([^"]*\\)"\\{0,1\\}.*/\\1/p\' "$2" '
                '| head -n1 >> "$h"; fi\n'
                'if [ "$1" = list ]; then echo "<HOOK_POOL>"; while read -r n; do '
                'echo "<HOOK><NAME>$n</NAME><TEMPLATE><COMMAND>x</COMMAND></TEMPLATE></HOOK>"; done < "$h"; echo "</HOOK_POOL>"; fi\n'
                'exit 0'),
    "crontab": (" and keeps one crontab per user in $STUB_CRON",
                'u=root; [ "$1" = -u ] && { u=$2; shift 2; }\n'
                'if [ "$1" = -l ]; then [ -f "$STUB_CRON/$u" ] || { echo "no crontab for $u" >&2; exit 1; }; '
                'cat "$STUB_CRON/$u"; exit 0; fi\n'
                'if [ "$1" = - ]; then cat > "$STUB_CRON/$u.new" && mv "$STUB_CRON/$u.new" "$STUB_CRON/$u"; exit 0; fi\nexit 2'),
}
OLD_CRON = {
    "oneadmin": "*/4 * * * * /var/lib/one/remotes/datastore/storpool/monitor_helper-sync\n0 1 * * * /usr/local/bin/keep-me\n",
    "root": "*/5 * * * * storpool -j volume list > /tmp/x\n0 2 * * * /usr/local/bin/keep-me-too\n",
}
# TEST ADAPTER: Debian 12's ruby-augeas is 0.5.0; the addon's autoconf.rb uses the 0.6 API
# (Augeas.create and the CommandExecutionError raised by save). Loaded with RUBYOPT for install.sh only.
AUGEAS_ADAPTER = """require 'augeas'
class Augeas
  class CommandExecutionError < Error; end unless const_defined?(:CommandExecutionError)
  unless respond_to?(:create)
    def self.create(opts = {}, &block)
      flags = NONE
      flags |= NO_MODL_AUTOLOAD if opts[:no_modl_autoload]
      flags |= NO_LOAD if opts[:no_load]
      open(opts[:root], opts[:loadpath], flags, &block)
    end
    alias_method :save_05, :save
    def save
      save_05 or raise CommandExecutionError, 'augeas save failed'
    end
  end
end
"""
KEPT_CRON = {"oneadmin": "0 1 * * * /usr/local/bin/keep-me\n", "root": "0 2 * * * /usr/local/bin/keep-me-too\n"}


@pytest.fixture(scope="module")
def oned_lens(tmp_path_factory):
    """OpenNebula's augeas lens for oned.conf (the opennebula package installs it), from the 7.4.0 source fixture."""
    import tarfile
    with tarfile.open(FIXTURES / "opennebula" / "opennebula-7.4.0-src.tar.gz") as tar:
        data = tar.extractfile("opennebula-7.4.0/share/augeas/oned.aug").read()
    path = tmp_path_factory.mktemp("lens") / "oned.aug"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    if shutil.which("unshare") is None or shutil.which("patch") is None:
        pytest.fail("unshare and patch are needed (util-linux, patch: scripts/bootstrap.sh installs them)")
    return extract_addon(TARBALL, tmp_path_factory.mktemp("addon"))


def stubs(d: Path) -> Path:
    d.mkdir()
    for name, (extra, body) in STUBS.items():
        p = d / name
        p.write_text(STUB.format(name=name, extra=extra, body=body))
        p.chmod(0o755)
    return d


def tree_files(addon: Path):
    out = {}
    for dirpath, _dirs, names in os.walk(addon, followlinks=True):
        for n in names:
            out[os.path.relpath(os.path.join(dirpath, n), addon)] = ""
    return out


def layout(root: Path, version: str, addon: Path):
    patches = plan_mod.plan_patches(tree_files(addon), version)
    return build_layout(root, version, addon, patches, FIXTURES / "oned" / RELEASES[version], FIXTURES / "rc" / "vmm_execrc")


def seed_cron(d: Path, users):
    d.mkdir()
    for u in users:
        (d / u).write_text(OLD_CRON[u])


def run_install_sh(addon: Path, root: Path, bindir: Path, log: Path, cron: Path, lens: Path):
    work = root.parent / (root.name + "-work")
    lenses = root.parent / (root.name + "-lenses")
    for d in (work / "etc", work / "var", work / "lenses", lenses):
        d.mkdir(parents=True, exist_ok=True)
    shutil.copy(lens, lenses / "oned.aug")
    script = (
        "set -e\n"
        "mount -t overlay overlay -o lowerdir=/etc,upperdir={r}/etc,workdir={w}/etc /etc\n"
        "mount -t overlay overlay -o lowerdir=/var,upperdir={r}/var,workdir={w}/var /var\n"
        "mount -t overlay overlay -o lowerdir=/usr/share/augeas/lenses,upperdir={l},workdir={w}/lenses /usr/share/augeas/lenses\n"
        # install.sh puts /bin:/usr/bin:/sbin:/usr/sbin first in PATH: the doubles of commands that exist
        # there are bind-mounted over them, in this namespace only
        "for c in systemctl systemd-tmpfiles crontab onehook onehost; do\n"
        "  for d in /bin /usr/bin /sbin /usr/sbin; do [ -e $d/$c ] && mount --bind {b}/$c $d/$c; done\n"
        "done\n"
        "cd {a}\n"
        "exec bash install.sh\n"
    ).format(r=root, w=work, l=lenses, a=addon, b=bindir)
    adapter = root.parent / "augeas_06_adapter.rb"
    adapter.write_text(AUGEAS_ADAPTER)
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]), STUB_LOG=str(log), STUB_CRON=str(cron),
               AUTOCONF="1", ONE_USER="root", ONE_GROUP="root", RUBYOPT="-r%s" % adapter)
    env.pop("ONE_LOCATION", None)
    return subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", script],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def run_role(addon: Path, root: Path, bindir: Path, log: Path, cron: Path, tmp: Path, check=False, **extra):
    variables = {
        "storpool_addon_src": str(addon),
        "storpool_addon_one_var": str(root / "var/lib/one"),
        "storpool_addon_oned_conf": str(root / "etc/one/oned.conf"),
        "storpool_addon_vmm_execrc": str(root / "etc/one/vmm_exec/vmm_execrc"),
        "storpool_addon_etc": str(root / "etc"),
        "storpool_addon_src_cache": str(tmp / "cache"),
        "storpool_addon_one_user": "root",
        "storpool_addon_one_group": "root",
        "storpool_addon_oned_service": "no-such-oned-service",
        "storpool_addon_manage_packages": False,
        "storpool_addon_timers": False,
        "storpool_addon_oned_conf_backup": False,
        "storpool_addon_vm_mad_tweaks": True,
        # the addon's autoconf writes MARKETPLACE_ACTIONS="" (the role's default is export, see README)
        "storpool_addon_marketplace_actions": "",
    }
    variables.update(extra)
    (tmp / "vars.json").write_text(json.dumps(variables))
    (tmp / "play.yml").write_text("- hosts: all\n  gather_facts: false\n  roles: [nebula.storage.storpool_addon]\n")
    (tmp / "inv.yml").write_text(
        "all:\n  children:\n    frontend:\n      hosts:\n        localhost:\n"
        "          ansible_connection: local\n          ansible_python_interpreter: %s\n" % (ROOT / ".venv/bin/python"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH="%s:%s" % (bindir, os.environ["PATH"]), STUB_LOG=str(log), STUB_CRON=str(cron),
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-local"), ANSIBLE_REMOTE_TEMP=str(tmp / "ansible-remote"))
    cmd = [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(tmp / "inv.yml"), "-e", "@" + str(tmp / "vars.json"),
           "-e", "ansible_become=false", str(tmp / "play.yml")]
    if check:
        cmd += ["--check", "--diff"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT), check=False, timeout=600)


def changed_tasks(out):
    return [section.split("]")[0] for section in out.split("TASK [")[1:] if "\nchanged:" in section]


def recap(out):
    return {k: int(v) for k, v in re.findall(r"(ok|changed|failed)=(\d+)", out.split("PLAY RECAP")[-1])}


def snapshot(base: Path):
    """{relative path: (mode, bytes or link target)} of every file under base."""
    out = {}
    if not base.exists():
        return out
    for dirpath, _dirs, names in os.walk(base):
        for n in names:
            p = Path(dirpath) / n
            st = p.lstat()
            rel = str(p.relative_to(base))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = (stat.S_IMODE(st.st_mode), p.read_bytes())
            elif stat.S_ISCHR(st.st_mode):
                continue  # an overlay whiteout
    return out


def oned_view(text):
    """The storpool-relevant parts of an oned.conf, normalised (case, quotes, order)."""
    doc = parse_oned(text)
    view = {}

    def vec(pair):
        return {p.ukey: (p.value or "") for p in pair.node.pairs}
    for pair in doc.attributes:
        if not pair.is_vector:
            if pair.ukey == "VM_RESTRICTED_ATTR":
                view.setdefault("VM_RESTRICTED_ATTR", set()).add(pair.value)
            continue
        v = vec(pair)
        if pair.ukey in ("TM_MAD_CONF", "DS_MAD_CONF") and v.get("NAME") == "storpool":
            view[pair.ukey] = {k: x.lower() for k, x in v.items()}
        if pair.ukey in ("TM_MAD", "DATASTORE_MAD"):
            view[pair.ukey] = " ".join(v.get("ARGUMENTS", "").split())
        if pair.ukey == "VM_MAD" and v.get("NAME") == "kvm":
            view["VM_MAD kvm -l"] = set(re.search(r"-l\s+(\S+)", v.get("ARGUMENTS", "")).group(1).split(","))
    return view


def option_words(args, option):
    m = re.search(r"(?:^|\s)%s\s+(\S+)" % re.escape(option), args)
    return set(m.group(1).split(",")) if m else set()


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_role_matches_install_sh(addon, oned_lens, tmp_path, version):
    sh_root, role_root = tmp_path / "sh", tmp_path / "role"
    layout(sh_root, version, addon)
    layout(role_root, version, addon)
    stock_before = snapshot(role_root / "var/lib/one")
    bindir = stubs(tmp_path / "bin")
    sh_log, role_log = tmp_path / "sh.log", tmp_path / "role.log"
    seed_cron(tmp_path / "sh-cron", ["oneadmin", "root"])
    seed_cron(tmp_path / "role-cron", ["root"])
    (tmp_path / "role-cron" / "root").write_text(OLD_CRON["oneadmin"] + OLD_CRON["root"])
    # upgrade leftovers both must remove
    for root in (sh_root, role_root):
        (root / "var/lib/one/remotes/vmm/kvm/save.storpool").write_text("old\n")
        (root / "etc/cron.d/vc-policy").write_text("old\n")

    sh = run_install_sh(addon, sh_root, bindir, sh_log, tmp_path / "sh-cron", oned_lens)
    assert sh.returncode == 0, sh.stdout[-3000:] + sh.stderr[-3000:]
    assert "*** Using scripts/install-%s.sh" % plan_mod.major_minor(version) in sh.stdout
    (tmp_path / "role-tmp").mkdir()
    first = run_role(addon, role_root, bindir, role_log, tmp_path / "role-cron", tmp_path / "role-tmp")
    assert first.returncode == 0, first.stdout[-5000:]

    sh_files = snapshot(sh_root / "var/lib/one")
    role_files = snapshot(role_root / "var/lib/one")
    # 1. file lists: the role adds the hook template; install.sh leaves numbered patch backups
    only_role = sorted(set(role_files) - set(sh_files))
    only_sh = sorted(set(sh_files) - set(role_files))
    assert only_role == ["remotes/hooks/volumecare/volumecare.hook"], only_role
    assert all(re.search(r"\.~\d+~$", p) for p in only_sh), only_sh
    assert only_sh, "install.sh keeps numbered backups of the files it patches"
    # 2. contents (patched stock files and the patched xpath-sp.rb included) and 3. modes
    differences = []
    for rel in sorted(set(sh_files) & set(role_files)):
        sh_mode, sh_data = sh_files[rel]
        role_mode, role_data = role_files[rel]
        if role_data != sh_data:
            differences.append((rel, "content"))
        if (sh_mode, role_mode) != ((0o775, 0o755) if CP_A.match(rel) else (sh_mode, sh_mode)):
            differences.append((rel, oct(sh_mode), oct(role_mode)))
    assert differences == []
    patched = [rel for rel in stock_before if rel != "remotes/VERSION" and stock_before[rel][1] != role_files[rel][1]]
    assert patched, "the release's patches changed the stock files"
    assert "remotes/vmm/kvm/save.storpool" not in role_files and "remotes/vmm/kvm/save.storpool" not in sh_files
    # /etc: units, tmpfiles.d, old cron files
    for sub in ("systemd/system", "tmpfiles.d"):
        assert snapshot(role_root / "etc" / sub) == snapshot(sh_root / "etc" / sub), sub
    assert not (role_root / "etc/cron.d/vc-policy").exists()
    assert not (sh_root / "etc/cron.d/vc-policy").exists()
    # crontabs: the same lines dropped
    assert (tmp_path / "sh-cron/oneadmin").read_text() == KEPT_CRON["oneadmin"]
    assert (tmp_path / "sh-cron/root").read_text() == KEPT_CRON["root"]
    assert (tmp_path / "role-cron/root").read_text() == KEPT_CRON["oneadmin"] + KEPT_CRON["root"]
    # 4. oned.conf: same drivers, DS_MAD_CONF, VM_MAD -l list and restricted attributes
    sh_oned = oned_view((sh_root / "etc/one/oned.conf").read_text())
    role_oned = oned_view((role_root / "etc/one/oned.conf").read_text())
    for key in ("DS_MAD_CONF", "VM_MAD kvm -l", "VM_RESTRICTED_ATTR"):
        assert role_oned[key] == sh_oned[key], key
    for key, opts in (("TM_MAD", ["-d"]), ("DATASTORE_MAD", ["-d", "-s"])):
        for opt in opts:
            assert option_words(role_oned[key], opt) == option_words(sh_oned[key], opt), (key, opt)
    # TM_MAD_CONF: the addon's block; on 7.2 the role adds the release's DS_LIVE_MIGRATE/DS_MIGRATE_SNAP
    extra = {"DS_LIVE_MIGRATE": "yes", "DS_MIGRATE_SNAP": "no"} if version >= "7.2" else {}
    assert role_oned["TM_MAD_CONF"] == dict(sh_oned["TM_MAD_CONF"], **extra)
    # 5. vmm_execrc
    sh_rc = (sh_root / "etc/one/vmm_exec/vmm_execrc").read_text()
    role_rc = (role_root / "etc/one/vmm_exec/vmm_execrc").read_text()

    def pick(text):
        return set(re.search(r'(?m)^LIVE_DISK_SNAPSHOTS="([^"]*)"', text).group(1).split())
    assert pick(role_rc) == pick(sh_rc) and "kvm-storpool" in pick(role_rc)
    # the hook: both register it once with the same template
    hooks_sh = [line for line in sh_log.read_text().splitlines() if line.startswith("onehook create")]
    hooks_role = [line for line in role_log.read_text().splitlines() if line.startswith("onehook create")]
    assert len(hooks_sh) == len(hooks_role) == 1
    assert (addon / "misc/volumecare.hook").read_bytes() == (Path(hooks_role[0].split()[-1])).read_bytes()
    # the role syncs the hosts; install.sh asks the operator to
    assert "onehost sync --force" in role_log.read_text() and "onehost" not in sh_log.read_text()

    # second runs: the role changes nothing; install.sh rewrites
    second = run_role(addon, role_root, bindir, role_log, tmp_path / "role-cron", tmp_path / "role-tmp")
    assert second.returncode == 0, second.stdout[-5000:]
    assert recap(second.stdout)["changed"] == 0, changed_tasks(second.stdout)
    assert snapshot(role_root / "var/lib/one") == role_files
