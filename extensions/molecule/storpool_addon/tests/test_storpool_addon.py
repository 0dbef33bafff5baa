"""Verify the storpool_addon scenario.

The addon is the REAL one (OpenNebula/addon-storpool at b279d18, unpacked by prepare.yml on
the controller) on an OpenNebula 7.2.0 layout whose stock files are generated from the addon's
patches (tests/functional/storpool_addon/addon_layout.py); storpool, onehook and
onehost on the front-ends are recording FAKES (test doubles). oned is REAL OpenNebula 7.4
(lab/oned, ../shared/oned.yml) on sp-fe and sp-fresh: it must run with the oned.conf the role
wrote and restarted it with, the datastores and the hosts' reserved resources are read back
through its XML-RPC API, and sp-h1 and sp-h2 are dummy hypervisors of sp-fe's oned. sp-fresh is
a front-end the converge leaves alone: the check-mode and failure tests run the role there.
"""
import difflib
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ansible_collections.nebula.storage.plugins.module_utils._oned_template import parse  # noqa: E402  pylint: disable=wrong-import-position

testinfra_hosts = ["podman://sp-fe", "podman://sp-h1", "podman://sp-h2"]

FIXTURES = os.environ.get("NEBULA_FIXTURES") or os.path.join(os.path.dirname(ROOT), "shared", "fixtures")
EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")
ADDON_TREE = os.path.join(EPHEMERAL, "addon", "addon-storpool")
LAYOUT = os.path.join(EPHEMERAL, "layout-7.2.0", "var", "lib", "one")
REMOTES = "/var/lib/one/remotes"
VM_MAD_ARGS = "-t 15 -r 0 kvm -p -l deploy=deploy-tweaks,attach_disk=attach_disk.storpool,save=tmsave,restore=tmrestore"
RC_SET = {"ONE_PX": "lab", "RAFT_LEADER_IP": "disabled", "SP_CHECKPOINT_BD": "1", "DELAY_DELETE": "24h",
          "VMSNAPSHOT_FSFREEZE": "1", "EXPORT_QEMU_IMG_ARGS": "-c -T none -t none"}

# Files of the addon that the role installs (as install.sh does), and where.
INSTALLED = {
    "datastore/storpool/cp": REMOTES + "/datastore/storpool/cp",
    "datastore/storpool/monitor_helper-sync": REMOTES + "/datastore/storpool/monitor_helper-sync",
    "datastore/xpath_multi.py": REMOTES + "/datastore/xpath_multi.py",
    "tm/storpool/clone": REMOTES + "/tm/storpool/clone",
    "tm/storpool/storpool_common.sh": REMOTES + "/tm/storpool/storpool_common.sh",
    "hooks/volumecare/volumecare": REMOTES + "/hooks/volumecare/volumecare",
    "hooks/volumecare/vc-policy.sh": REMOTES + "/hooks/volumecare/vc-policy.sh",
    "vmm/kvm/deploy-tweaks": REMOTES + "/vmm/kvm/deploy-tweaks",
    "vmm/kvm/deploy-tweaks.d.example/cpu.py": REMOTES + "/vmm/kvm/deploy-tweaks.d.example/cpu.py",
    "vmm/kvm/deploy-tweaks.d.example/volatile2dev.py": REMOTES + "/vmm/kvm/deploy-tweaks.d/volatile2dev.py",
    "vmm/kvm/deploy-tweaks.d.example/persistent-cdrom.py": REMOTES + "/vmm/kvm/deploy-tweaks.d/persistent-cdrom.py",
    "vmm/kvm/attach_disk.storpool": REMOTES + "/vmm/kvm/attach_disk.storpool",
    "vmm/kvm/detach_disk.cdrom": REMOTES + "/vmm/kvm/detach_disk.cdrom",
    "vmm/kvm/tmsave": REMOTES + "/vmm/kvm/tmsave",
    "vmm/kvm/tmrestore": REMOTES + "/vmm/kvm/tmrestore",
    "vmm/kvm/snapshot_create-storpool": REMOTES + "/vmm/kvm/snapshot_create-storpool",
    "misc/reserved.sh": REMOTES + "/reserved.sh",
    # the 7.2.0 layout has the kvm host probe directory, as a real front-end does
    "misc/storpool_probe.sh": REMOTES + "/im/kvm-probes.d/host/system/storpool_probe.sh",
}
UNITS = ["monitor_helper-sync.service", "monitor_helper-sync.timer", "vc-policy.service", "vc-policy.timer"]
NOT_INSTALLED = [REMOTES + "/vmm/kvm/save.storpool", REMOTES + "/vmm/kvm/vmTweakHypervEnlightenments.py",
                 REMOTES + "/vmm/kvm/deploy-tweaks.d/cpu.py", REMOTES + "/hooks/hookmux.sh", REMOTES + "/install.sh",
                 REMOTES + "/autoconf.rb"]


def name_of(host):
    return host.backend.get_hostname()


def frontend_only(host):
    if name_of(host) != "sp-fe":
        pytest.skip("front-end only")


def hosts_only(host):
    if name_of(host) == "sp-fe":
        pytest.skip("hypervisor hosts only")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fixture_text(*parts):
    with open(os.path.join(FIXTURES, *parts), encoding="utf-8") as f:
        return f.read()


def oned_xmlrpc(host, method, *args):
    script = (
        "import json, sys, xmlrpc.client;"
        "auth = open('/var/lib/one/.one/one_auth').read().strip();"
        "s = xmlrpc.client.ServerProxy('http://localhost:2633/RPC2');"
        "print(json.dumps(getattr(s, sys.argv[1])(auth, *json.loads(sys.argv[2]))))"
    )
    out = host.run("python3 -c %s %s %s", script, method, json.dumps(list(args)))
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def oned_pool(host, method):
    """A pool of real oned (one.*pool.info through XML-RPC), parsed."""
    ok, body = oned_xmlrpc(host, method)[:2]
    assert ok, body
    return ET.fromstring(body)


# --- front-end: files ----------------------------------------------------------

def test_addon_files_installed_with_content_owner_and_mode(host):
    frontend_only(host)
    for rel, dest in INSTALLED.items():
        f = host.file(dest)
        assert f.is_file, dest
        assert (f.user, f.group, f.mode) == ("oneadmin", "oneadmin", 0o755), dest
        assert f.sha256sum == sha256(os.path.join(ADDON_TREE, rel)), dest
    hook = host.file(REMOTES + "/hooks/volumecare/volumecare.hook")
    assert (hook.user, hook.mode) == ("oneadmin", 0o644)


def patched_copy(patches):
    """sha256 of the layout's files after the addon's patches, applied here with GNU patch."""
    with tempfile.TemporaryDirectory() as tmp:
        work = os.path.join(tmp, "one")
        subprocess.run(["cp", "-a", LAYOUT, work], check=True)
        for rel in patches:
            with open(os.path.join(ADDON_TREE, rel), "rb") as f:
                subprocess.run(["patch", "-p0", "--batch", "--forward", "-d", work], stdin=f, check=True, capture_output=True)
        return {rel: sha256(os.path.join(work, "remotes", rel)) for rel in PATCHED_STOCK}


PATCHED_STOCK = ["scripts_common.sh", "vmm/kvm/attach_disk", "vnm/tproxy.rb"]


def test_release_patches_applied_to_the_stock_files(host):
    frontend_only(host)
    want = patched_copy(["patches/vmm/7.2/00-attach_disk-fixes.patch", "patches/vnm/7.2/00-tproxy-disable-arp_ignore_in_netns.patch",
                         "patches/vnm/7.2/01-tproxy-add-local-config.patch"])
    for rel in PATCHED_STOCK:
        f = host.file(REMOTES + "/" + rel)
        assert f.sha256sum == want[rel] != sha256(os.path.join(LAYOUT, "remotes", rel)), rel
        assert (f.user, f.group) == ("oneadmin", "oneadmin"), rel
    # no backup or reject files next to them
    assert host.run("find %s -name '*.orig' -o -name '*.rej' -o -name '*.~*~'" % REMOTES).stdout == ""
    # the addon's own xpath-sp.rb is installed with 7.2's patch applied
    xpath = host.file(REMOTES + "/datastore/xpath-sp.rb")
    assert xpath.sha256sum != sha256(os.path.join(ADDON_TREE, "datastore/xpath-sp.rb")) and xpath.mode == 0o755


def test_unsupported_release_fails_before_any_change(host):
    frontend_only(host)
    fresh = host.get_host("podman://sp-fresh")
    before = snapshot(fresh)
    result = run_role(fresh, {"storpool_addon_one_version": "7.4.0"})
    assert result.returncode != 0
    assert ("OpenNebula 7.4.0 is not supported by this StorPool addon: it has no scripts/install-7.4.0.sh nor "
            "scripts/install-7.4.sh (supported: 6.4, 6.6, 6.7, 6.8, 6.10, 7.0, 7.2)") in " ".join(result.stdout.split())
    assert snapshot(fresh) == before


def test_files_outside_install_sh_are_not_installed(host):
    frontend_only(host)
    for path in NOT_INSTALLED:
        assert not host.file(path).exists, path


def test_systemd_units_and_tmpfiles(host):
    frontend_only(host)
    for unit in UNITS:
        f = host.file("/etc/systemd/system/" + unit)
        assert (f.user, f.group, f.mode) == ("root", "root", 0o644), unit
        assert f.sha256sum == sha256(os.path.join(ADDON_TREE, "misc/etc/systemd/system", unit))
    tmpfiles = host.file("/etc/tmpfiles.d/addon-storpool-monitor.conf")
    assert (tmpfiles.user, tmpfiles.mode) == ("root", 0o644)
    cache = host.file("/var/cache/addon-storpool-monitor")
    assert cache.is_directory and cache.user == "oneadmin"


def test_timers_enabled_and_active(host):
    frontend_only(host)
    for timer in ("monitor_helper-sync.timer", "vc-policy.timer"):
        svc = host.service(timer)
        assert svc.is_enabled, timer
        assert svc.is_running, timer


# --- front-end: configuration files ----------------------------------------------

def test_oned_conf_has_every_block_once(host):
    frontend_only(host)
    doc = parse(host.file("/etc/one/oned.conf").content_string)

    def named(attr, name):
        return [p for p in doc.find(attr) if p.is_vector and (p.node.get("NAME") or "").lower() == name]

    tm = named("TM_MAD_CONF", "storpool")
    ds = named("DS_MAD_CONF", "storpool")
    assert len(tm) == 1 and len(ds) == 1
    # the addon's current block, with the attributes of OpenNebula 7.2's stock blocks
    assert tm[0].node.get("CLONE_TARGET") == "SELF" and tm[0].node.get("TM_MAD_SYSTEM") == ""
    assert tm[0].node.get("DISK_TYPE_SHARED") is None and tm[0].node.get("LN_TARGET_SSH") is None
    assert tm[0].node.get("DS_LIVE_MIGRATE") == "YES" and tm[0].node.get("DS_MIGRATE_SNAP") == "NO"
    assert ds[0].node.get("REQUIRED_ATTRS") == "DISK_TYPE" and ds[0].node.get("MARKETPLACE_ACTIONS") == "export"
    restricted = [p.value for p in doc.find("VM_RESTRICTED_ATTR")]
    for attr in ("VMSNAPSHOT_LIMIT", "DISKSNAPSHOT_LIMIT", "VC_POLICY", "SP_QOSCLASS"):
        assert restricted.count(attr) == 1, attr
    for attr, option in (("TM_MAD", "-d"), ("DATASTORE_MAD", "-d"), ("DATASTORE_MAD", "-s")):
        args = doc.find(attr)[0].node.get("ARGUMENTS").split()
        assert args[args.index(option) + 1].split(",").count("storpool") == 1, (attr, option)
    assert named("VM_MAD", "kvm")[0].node.get("ARGUMENTS") == VM_MAD_ARGS


def test_oned_conf_otherwise_unchanged(host):
    """Apart from the edited ARGUMENTS lines and the added lines, the file is the release's oned.conf as
    the lab's preparation left it (prepare.yml kept that copy before the role ran)."""
    frontend_only(host)
    before = host.file("/root/oned.conf.lab").content_string.splitlines()
    # the lab's copy is the release's oned.conf with the lab's own edits (../shared/oned.yml)
    assert any(re.match(r'^LISTEN_ADDRESS\s*=\s*"?127\.0\.0\.1', line) for line in before)
    after = host.file("/etc/one/oned.conf").content_string.splitlines()
    removed = [line for line in difflib.ndiff(before, after) if line.startswith("- ")]
    assert len(removed) == 3, removed
    assert all(re.match(r"-\s+ARGUMENTS\s*=", line) for line in removed), removed
    added = [line[2:] for line in difflib.ndiff(before, after) if line.startswith("+ ")]
    assert sum(1 for line in added if "ARGUMENTS" in line) == 3
    assert sum(1 for line in added if line.startswith("VM_RESTRICTED_ATTR")) == 4


def test_vmm_execrc_has_kvm_storpool_once(host):
    frontend_only(host)
    before = fixture_text("rc", "vmm_execrc").splitlines()
    after = host.file("/etc/one/vmm_exec/vmm_execrc").content_string.splitlines()
    changed = [(b, a) for b, a in zip(before, after) if b != a]
    assert len(before) == len(after) and len(changed) == 1
    old, new = changed[0]
    assert old.startswith("LIVE_DISK_SNAPSHOTS=")
    value = host.check_output(". /etc/one/vmm_exec/vmm_execrc; echo \"$LIVE_DISK_SNAPSHOTS\"")
    assert value.split().count("kvm-storpool") == 1
    assert value.split()[:-1] == re.search(r'"(.*)"', old).group(1).split()
    assert new.endswith('kvm-storpool"')


def test_addon_storpoolrc_variables_set_and_comments_kept(host):
    frontend_only(host)
    rc = REMOTES + "/addon-storpoolrc"
    f = host.file(rc)
    assert (f.user, f.mode) == ("oneadmin", 0o644)
    for key, value in RC_SET.items():
        got = host.check_output(". %s; printf %%s \"$%s\"" % (rc, key))
        assert got == value, key
    text = f.content_string
    comments = [line for line in fixture_text("rc", "addon-storpoolrc").splitlines() if line.lstrip().startswith("#")]
    kept = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert kept == comments
    assert text.count("\nONE_PX=") == 1


# --- front-end: real oned ---------------------------------------------------------

def test_real_oned_runs_after_the_roles_oned_conf_edit(host):
    frontend_only(host)
    assert host.service("opennebula").is_running
    # an authenticated call through real oned's API
    version = oned_xmlrpc(host, "one.system.version")
    assert version[0] and version[1].startswith("7.4."), version
    # oned was (re)started after the role's last edit of oned.conf and vmm_execrc, and is still up
    started = int(host.check_output("date -d \"$(systemctl show -P ActiveEnterTimestamp opennebula)\" +%s"))
    for path in ("/etc/one/oned.conf", "/etc/one/vmm_exec/vmm_execrc"):
        assert started >= int(host.check_output("stat -c %Y " + path)), path
    assert "storpool" in host.check_output("grep -E '^ *ARGUMENTS.*-d .*storpool' /etc/one/oned.conf")


# --- front-end: OpenNebula and StorPool (real oned, and the recording fakes) ---------

def test_volumecare_hook_registered_once(host):
    frontend_only(host)
    assert json.loads(host.file("/var/lib/nebula-fakes/hooks.json").content_string) == ["vc-policy"]
    calls = [json.loads(line) for line in host.file("/var/log/nebula-fakes/onehook.log").content_string.splitlines()]
    assert [c for c in calls if c[1] == "create"] == [[9869, "create", REMOTES + "/hooks/volumecare/volumecare.hook"]]
    assert [9869, "list", "-x"] in calls


def test_hosts_synced_as_oneadmin(host):
    frontend_only(host)
    calls = [json.loads(line) for line in host.file("/var/log/nebula-fakes/onehost.log").content_string.splitlines()]
    assert calls and all(c == [9869, "sync", "--force"] for c in calls)


def test_datastores_created_in_oned(host):
    frontend_only(host)
    pool = {d.findtext("NAME"): d for d in oned_pool(host, "one.datastorepool.info").iter("DATASTORE")}
    images, system = pool["storpool_images"], pool["storpool_system"]
    assert images.findtext("TYPE") == "0" and system.findtext("TYPE") == "1"
    assert images.findtext("TM_MAD") == system.findtext("TM_MAD") == "storpool"
    assert images.findtext("DS_MAD") == "storpool"
    assert images.findtext("TEMPLATE/DISK_TYPE") == "BLOCK" or images.findtext("TEMPLATE/DISK_TYPE") == "block"
    assert images.findtext("TEMPLATE/BRIDGE_LIST") == "sp-h1 sp-h2"
    assert system.findtext("TEMPLATE/SP_SYSTEM") == "ssh"
    # oned copied the attributes of the role's TM_MAD_CONF into the datastores (it read the block at start)
    assert images.findtext("TEMPLATE/CLONE_TARGET") == "SELF"
    assert int(images.findtext("ID")) >= 100 and int(system.findtext("ID")) >= 100


def test_storpool_template_created_once(host):
    frontend_only(host)
    templates = json.loads(host.file("/var/lib/nebula-fakes/storpool-templates.json").content_string)
    assert len(templates) == 1
    (name, tpl), = templates.items()
    assert re.match(r"^lab-ds-\d+$", name)  # ONE_PX=lab
    assert tpl == {"name": name, "replication": 3, "placeHead": "hdd", "placeAll": "hdd", "placeTail": "ssd"}
    calls = [json.loads(line) for line in host.file("/var/log/nebula-fakes/storpool.log").content_string.splitlines()]
    writes = [c for c in calls if c[:1] == ["template"]]
    assert len(writes) == 1 and writes[0][:2] == ["template", name]
    words = writes[0][2:]  # KEY VALUE pairs, in the order of the inventory's dict
    assert dict(zip(words[::2], words[1::2])) == {"replication": "3", "placeHead": "hdd", "placeAll": "hdd", "placeTail": "ssd"}
    assert len(words) == 8
    assert ["-B", "-j", "template", "list"] in calls


def test_reserved_resources_set_on_the_hosts(host):
    frontend_only(host)
    pool = {h.findtext("NAME"): h for h in oned_pool(host, "one.hostpool.info").iter("HOST")}
    assert sorted(pool) == ["sp-h1", "sp-h2"]
    for name in ("sp-h1", "sp-h2"):
        assert pool[name].findtext("IM_MAD") == pool[name].findtext("VM_MAD") == "dummy"
        assert pool[name].findtext("TEMPLATE/RESERVED_CPU") == "100", name
        assert pool[name].findtext("TEMPLATE/RESERVED_MEM") == "2097152", name


# --- nodes -----------------------------------------------------------------------

def test_oneadmin_in_disk_group(host):
    hosts_only(host)
    groups = host.user("oneadmin").groups
    assert "disk" in groups
    assert ("mysyslog" in groups) == (name_of(host) == "sp-h1")  # only sp-h1 has a mysyslog group


def test_node_tools_installed(host):
    hosts_only(host)
    for pkg in ("jq", "pigz", "python3-lxml", "xmlstarlet", "tar"):
        assert host.package(pkg).is_installed, pkg


# --- ansible-playbook against sp-fresh: check mode and failures -----------------------

WATCHED = ["/etc/one", "/var/lib/one", "/etc/systemd/system", "/etc/tmpfiles.d", "/var/lib/nebula-fakes"]
# What real oned (running on sp-fresh, ONE_LOCATION=/opt/one, /opt/one/var -> /var/lib/one) writes by
# itself while the tests run, whatever the role does: its SQLite database and journal (datastore
# monitoring every 60 s), its logs (oned.log, monitor.log, ...) and its lock directory.
ONED_OWN = ["/var/lib/one/one.db", "/var/lib/one/one.db-journal", "/var/lib/one/one.db-wal",
            "/var/lib/one/one.db-shm", "/var/lib/one/*.log", "/var/lib/one/lock"]


def snapshot(host):
    """Path, type, owner, mode and checksum of everything below WATCHED on the machine, but ONED_OWN.
    (The paths are put into the command as separate words: host.run's %s would quote them as one.)"""
    paths = " ".join(shlex.quote(p) for p in WATCHED)
    prune = "\\( %s \\) -prune -o" % " -o ".join("-path %s" % shlex.quote(p) for p in ONED_OWN)
    out = host.run("find %s -xdev %s -printf '%%y %%u:%%g %%m %%p\\n' | sort; "
                   "find %s -xdev %s -type f -exec sha256sum {} + | sort" % (paths, prune, paths, prune))
    assert out.rc == 0 and "/var/lib/one/remotes" in out.stdout, out.stderr
    return out.stdout


def run_role(host, extra_vars, check=False):
    inventory = {
        "all": {
            "vars": {"ansible_connection": "containers.podman.podman", "ansible_python_interpreter": "/usr/bin/python3"},
            "children": {
                "frontend": {"hosts": {"sp-fresh": {}}},
                "storpool_addon": {"hosts": {"sp-fresh": {}}},
                "hosts": {"hosts": {}},
            },
        }
    }
    variables = {
        "storpool_addon_src": ADDON_TREE,
        "storpool_addon_oned_service": "opennebula",
        "storpool_addon_vm_mad_tweaks": True,
        "storpool_addon_rc": RC_SET,
        "storpool_addon_datastores": [
            {"name": "storpool_images", "type": "image", "template": {"BRIDGE_LIST": "sp-h1"},
             "sp_template": {"replication": 3}},
        ],
    }
    variables.update(extra_vars)
    with tempfile.TemporaryDirectory() as tmp:
        inv = os.path.join(tmp, "inventory.json")
        ev = os.path.join(tmp, "vars.json")
        play = os.path.join(tmp, "play.yml")
        with open(inv, "w", encoding="utf-8") as f:
            json.dump(inventory, f)
        with open(ev, "w", encoding="utf-8") as f:
            json.dump(variables, f)
        with open(play, "w", encoding="utf-8") as f:
            f.write("- hosts: storpool_addon\n  gather_facts: false\n  roles: [nebula.storage.storpool_addon]\n")
        cmd = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inv, "-e", "@" + ev, play]
        if check:
            cmd += ["--check", "--diff"]
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0")
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=900)


def test_check_diff_on_fresh_frontend_shows_changes_and_writes_nothing(host):
    frontend_only(host)
    fresh = host.get_host("podman://sp-fresh")
    before = snapshot(fresh)
    result = run_role(fresh, {}, check=True)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    assert snapshot(fresh) == before
    # every change is shown: files, rc, oned.conf, vmm_execrc, timers, hook, datastore
    assert "/var/lib/one/remotes/tm/storpool/clone" in out
    assert "/etc/systemd/system/vc-policy.timer" in out
    assert '+TM_MAD_CONF = [' in out or '+TM_MAD_CONF=[' in out.replace(' ', '')
    assert "deploy=deploy-tweaks" in out
    assert "kvm-storpool" in out
    assert "+ONE_PX=lab" in out
    assert re.search(r"changed: \[sp-fresh\] => \(item=vc-policy\.timer\)", out)
    assert re.search(r"Register the volumecare hook with onehook create.*?\n.*?(changed|skipping): \[sp-fresh\]", out, re.S)
    assert re.search(r"Create or update the StorPool datastores.*?changed: \[sp-fresh\] => \(item=storpool_images\)", out, re.S)


def test_frontend_without_remotes_fails_clearly(host):
    frontend_only(host)
    fresh = host.get_host("podman://sp-fresh")
    assert fresh.run("mv /var/lib/one/remotes /var/lib/one/remotes.away").rc == 0
    try:
        before = snapshot(fresh)
        result = run_role(fresh, {})
        after = snapshot(fresh)
    finally:
        assert fresh.run("mv /var/lib/one/remotes.away /var/lib/one/remotes").rc == 0
    assert result.returncode != 0
    assert "sp-fresh is not an OpenNebula front-end: /var/lib/one/remotes does not exist" in result.stdout
    assert after == before


@pytest.mark.parametrize("src, message", [
    ("/nonexistent/addon-storpool", "storpool_addon_src: /nonexistent/addon-storpool is not a directory on the controller"),
    (ROOT + "/roles", "does not look like the StorPool addon (OpenNebula/addon-storpool): it has no datastore/storpool or tm/storpool"),
    ("/nonexistent/addon-storpool.tar.gz", "storpool_addon_src: the tarball /nonexistent/addon-storpool.tar.gz does not exist on the controller"),
])
def test_bad_source_fails_clearly(host, src, message):
    frontend_only(host)
    fresh = host.get_host("podman://sp-fresh")
    before = snapshot(fresh)
    result = run_role(fresh, {"storpool_addon_src": src})
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split()), result.stdout[-3000:]
    assert snapshot(fresh) == before
