"""The nfs_shared role's controller-side logic, run by a real ansible-playbook on localhost.

- The export plan through the filter the role calls (nebula.storage.nfs_exports,
  rules unit-tested in tests/unit/plugins/module_utils/test_nfs_plan.py), with
  real hostvars: client networks, the refusals and their messages as
  ansible-playbook shows them, rendered through the role's own templates.
- The kernel backend's exports rescue (tasks/server_kernel.yml) on a full
  tmpfs in a private mount namespace (unshare -m), with the real exportfs.
- The oned.conf part (tasks/oned_facts.yml + tasks/opennebula.yml) on temp
  copies of the real oned.conf of OpenNebula 3.0, 3.8.5, 4.14.2 and 7.4.0:
  layout detected, driver registered once, driver installed, second run
  changed=0.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap

import pytest

from tests.conftest import FIXTURES, ROOT

ROLE = ROOT / "roles" / "nfs_shared"

DEFAULTS = {
    "nfs_shared_hosts_group": "hosts",
    "nfs_shared_client_networks_mode": "per_host",
    "nfs_shared_export_options": "rw,sync,no_subtree_check,no_root_squash",
    "nfs_shared_allow_wide_no_root_squash": False,
    "nfs_shared_no_root_squash_min_prefix_ipv4": 16,
    "nfs_shared_no_root_squash_min_prefix_ipv6": 48,
    "nfs_shared_export_mode": "0750",
    "nfs_shared_clients": [],
    "nfs_shared_exports": [{"path": "/var/lib/one/datastores"}],
    "nfs_shared_ganesha_export_id_base": 1000,
    "nfs_shared_ganesha_protocols": [3, 4],
    "nfs_shared_ganesha_extra_config": "",
    "nfs_shared_ganesha_main_config": "/etc/ganesha/ganesha.conf",
}

CASES = {
    "netmask-and-merge": {"nfs_shared_clients": ["192.168.0.0/255.255.255.0", "192.168.0.77/24", "10.0.0.0/25",
                                                 "10.0.0.128/25", "10.1.2.3", " 10.1.2.3 ", "2001:db8::1/64"]},
    "from-host-networks": {"nfs_shared_client_networks_mode": "networks"},
    "per-host": {},
    "world": {"nfs_shared_clients": ["*"]},
    "world-by-merge": {"nfs_shared_clients": ["0.0.0.0/1", "128.0.0.0/1"]},
    "world-v6": {"nfs_shared_clients": ["198.51.100.0/24", "::/0"]},
    "world-allowed": {"nfs_shared_clients": ["*"], "nfs_shared_allow_wide_no_root_squash": True},
    "anonuid-0": {"nfs_shared_clients": ["*"], "nfs_shared_export_options": "rw,all_squash,anonuid=0,anongid=0"},
    "v4-mapped": {"nfs_shared_clients": ["::ffff:0.0.0.0/96"]},
    "half-space": {"nfs_shared_clients": ["198.18.0.0/1"]},
    "system-dir": {"nfs_shared_clients": ["198.51.100.0/24"], "nfs_shared_exports": ["/var/lib/one/datastores/../../"]},
    "world-root-squashed": {"nfs_shared_clients": ["*"], "nfs_shared_export_options": "ro,root_squash"},
    "world-per-export": {"nfs_shared_clients": ["198.51.100.0/24"],
                         "nfs_shared_exports": [{"path": "/a"}, {"path": "/b", "clients": ["0.0.0.0/0"]}]},
    "survey-strings": {"nfs_shared_clients": "198.51.100.0/24, 203.0.113.0/255.255.255.0", "nfs_shared_exports": "/a, /b/"},
    "survey-world": {"nfs_shared_clients": "*", "nfs_shared_allow_wide_no_root_squash": "false"},
    "bad-networks": {"nfs_shared_clients": ["10.1", "198.51.100.0/33", "192.168.0.0/255.0.255.0", "nfs-h1", 5]},
    "bad-exports": {"nfs_shared_clients": ["198.51.100.0/24"],
                    "nfs_shared_exports": [{"path": "relative"}, {"path": "/a b"}, {"path": "/x", "options": "rw,no_root_squash,x(y)"},
                                           {"path": "/x/"}, {"path": "/y", "mode": "999"}, {"path": "/z", "colour": "red"}]},
    "options-and-squash": {"nfs_shared_clients": ["198.51.100.0/24"],
                           "nfs_shared_exports": ["/srv/a", {"path": "/srv/b", "options": ["ro", "all_squash", "anonuid=9869", "anongid=9869"],
                                                             "mount_options": "ro,soft", "mode": "755"}]},
}

PLAN_PLAYBOOK = textwrap.dedent("""\
    - hosts: localhost
      gather_facts: false
      vars_files: [cases.json]
      tasks:
        - name: Render the plan of every case
          ansible.builtin.set_fact:
            results: "{{ results | default({}) | combine({item.key: plan}) }}"
          vars:
            case: "{{ defaults | combine(item.value) }}"
            nfs_shared_ganesha_export_id_base: "{{ case.nfs_shared_ganesha_export_id_base }}"
            nfs_shared_ganesha_protocols: "{{ case.nfs_shared_ganesha_protocols }}"
            nfs_shared_ganesha_extra_config: "{{ case.nfs_shared_ganesha_extra_config }}"
            nfs_shared_ganesha_main_config: "{{ case.nfs_shared_ganesha_main_config }}"
            ansible_managed: managed
            # the call of roles/nfs_shared/tasks/preflight.yml
            raw: >-
              {{ case.nfs_shared_exports | nebula.storage.nfs_exports(
                   clients=case.nfs_shared_clients, hosts=groups[case.nfs_shared_hosts_group] | default([]), hostvars=hostvars,
                   hosts_group=case.nfs_shared_hosts_group, mode=case.nfs_shared_client_networks_mode,
                   export_options=case.nfs_shared_export_options, export_mode=case.nfs_shared_export_mode,
                   allow_wide=case.nfs_shared_allow_wide_no_root_squash,
                   min_prefix_v4=case.nfs_shared_no_root_squash_min_prefix_ipv4,
                   min_prefix_v6=case.nfs_shared_no_root_squash_min_prefix_ipv6) }}
            nfs_shared__exports: "{{ raw.exports }}"
            plan: >-
              {{ raw | combine({'kernel': lookup('ansible.builtin.template', role + '/templates/opennebula.exports.j2'),
                                'ganesha': lookup('ansible.builtin.template', role + '/templates/ganesha-opennebula.conf.j2')}) }}
          loop: "{{ cases | dict2items }}"

        - name: Save them
          ansible.builtin.copy:
            content: "{{ results | to_json }}"
            dest: "{{ out }}"
            mode: "0644"
    """)

INVENTORY = textwrap.dedent("""\
    all:
      hosts:
        localhost: {ansible_connection: local, ansible_python_interpreter: "%s"}
      children:
        frontend:
          hosts:
            localhost:
        hosts:
          hosts:
            kvm1: {nfs_shared_host_address: 198.51.100.21/24}
            kvm2: {nfs_shared_host_address: 198.51.100.22/24}
            kvm3: {nfs_shared_host_address: 203.0.113.9}
    """)


def playbook(tmp_path, play, *args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"), ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote"))
    (tmp_path / "inventory.yml").write_text(INVENTORY % (ROOT / ".venv" / "bin" / "python"))
    (tmp_path / "play.yml").write_text(play)
    return subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
                           str(tmp_path / "play.yml"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plans")
    (tmp / "cases.json").write_text(json.dumps({"cases": CASES, "defaults": DEFAULTS}))
    proc = playbook(tmp, PLAN_PLAYBOOK, "-e", "role=%s out=%s" % (ROLE, tmp / "out.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((tmp / "out.json").read_text())


def lines(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_networks_normalised_merged_and_sorted(plans):
    p = plans["netmask-and-merge"]
    assert p["errors"] == []
    assert p["clients"] == ["10.0.0.0/24", "10.1.2.3/32", "192.168.0.0/24", "2001:db8::/64"]
    opts = "(rw,sync,no_subtree_check,no_root_squash)"
    assert lines(p["kernel"]) == ["/var/lib/one/datastores " + " ".join(c + opts for c in p["clients"])]
    assert "Clients = 10.0.0.0/24, 10.1.2.3/32, 192.168.0.0/24, 2001:db8::/64;" in p["ganesha"]


def test_clients_from_the_hosts_networks(plans):
    assert plans["from-host-networks"]["clients"] == ["198.51.100.0/24", "203.0.113.9/32"]
    assert plans["per-host"]["clients"] == ["198.51.100.21/32", "198.51.100.22/32", "203.0.113.9/32"]


@pytest.mark.parametrize("case,wide,source", [
    ("world", "* (every machine)", "nfs_shared_clients"),
    ("world-by-merge", "0.0.0.0/0 (wider than /16)", "nfs_shared_clients"),
    ("world-v6", "::/0 (wider than /48)", "nfs_shared_clients"),
    ("world-per-export", "0.0.0.0/0 (wider than /16)", "nfs_shared_exports[1].clients"),
    ("anonuid-0", "* (every machine)", "nfs_shared_clients"),
    ("v4-mapped", "::ffff:0.0.0.0/96 (IPv4 0.0.0.0/0) (wider than /16)", "nfs_shared_clients"),
    ("half-space", "128.0.0.0/1 (wider than /16)", "nfs_shared_clients"),
])
def test_root_owning_exports_to_wide_networks_are_refused(plans, case, wide, source):
    errors = plans[case]["errors"]
    assert len(errors) == 1
    assert "refusing to export with no_root_squash (or anonuid/anongid=0) to %s (from %s)" % (wide, source) in errors[0]
    assert "nfs_shared_allow_wide_no_root_squash: true" in errors[0]


def test_system_directories_are_refused(plans):
    assert plans["system-dir"]["errors"] == [
        'nfs_shared_exports[0].path: refusing to export /var/lib: it is / or a system directory '
        '(given as "/var/lib/one/datastores/../../")']


def test_world_allowed_explicitly_or_when_squashed(plans):
    assert plans["world-allowed"]["errors"] == []
    assert lines(plans["world-allowed"]["kernel"]) == ["/var/lib/one/datastores *(rw,sync,no_subtree_check,no_root_squash)"]
    assert plans["world-allowed"]["ganesha"].count("Clients = *;") == 1
    squashed = plans["world-root-squashed"]
    assert squashed["errors"] == []
    assert squashed["exports"][0]["squash"] == "Root_Squash" and squashed["exports"][0]["access"] == "RO"


def test_flat_strings_from_awx_surveys(plans):
    p = plans["survey-strings"]
    assert p["errors"] == []
    assert p["clients"] == ["198.51.100.0/24", "203.0.113.0/24"]
    assert [e["path"] for e in p["exports"]] == ["/a", "/b"]
    assert "refusing to export with no_root_squash (or anonuid/anongid=0) to *" in plans["survey-world"]["errors"][0]


def test_bad_networks_are_named(plans):
    errors = plans["bad-networks"]["errors"]
    assert [e.split(":")[0] for e in errors] == ["nfs_shared_clients[%d]" % i for i in range(5)] + ["nfs_shared_exports[0]"]
    assert errors[5] == "nfs_shared_exports[0]: no client networks (set nfs_shared_clients, or put machines in group hosts)"
    for value, error in zip(["10.1", "198.51.100.0/33", "192.168.0.0/255.0.255.0", "nfs-h1", "5"], errors):
        assert 'invalid network "%s"' % value in error


def test_bad_exports_are_named(plans):
    errors = plans["bad-exports"]["errors"]
    assert errors == [
        'nfs_shared_exports[0].path: "relative" must be an absolute path without blanks, quotes, commas or parentheses',
        'nfs_shared_exports[1].path: "/a b" must be an absolute path without blanks, quotes, commas or parentheses',
        'nfs_shared_exports[2].options: invalid export option "x(y)"',
        'nfs_shared_exports[3].path: /x is exported twice',
        'nfs_shared_exports[4].mode: "999" is not an octal mode such as 0750',
        'nfs_shared_exports[5]: unknown keys colour (known: path, options, clients, mount_options, mode)',
    ]


def test_per_export_options_squash_and_mode(plans):
    p = plans["options-and-squash"]
    assert p["errors"] == []
    a, b = p["exports"]
    assert (a["path"], a["squash"], a["access"], a["mode"], a["mount_options"]) == ("/srv/a", "No_Root_Squash", "RW", "0750", "")
    assert (b["squash"], b["access"], b["anonuid"], b["anongid"], b["mode"], b["mount_options"]) == \
        ("All_Squash", "RO", "9869", "9869", "0755", "ro,soft")
    assert lines(p["kernel"]) == ["/srv/a 198.51.100.0/24(rw,sync,no_subtree_check,no_root_squash)",
                                  "/srv/b 198.51.100.0/24(ro,all_squash,anonuid=9869,anongid=9869)"]
    blocks = re.findall(r"EXPORT \{(.*?)\n\}", p["ganesha"], re.S)
    assert "Export_Id = 1000;" in blocks[0] and "Export_Id = 1001;" in blocks[1]
    assert "Squash = All_Squash;" in blocks[1] and "Anonymous_Uid = 9869;" in blocks[1] and "Access_Type = RO;" in blocks[1]


ONED_PLAYBOOK = textwrap.dedent("""\
    - hosts: localhost
      gather_facts: false
      vars:
        nfs_shared_oneadmin_user: "{{ lookup('env', 'USER') | default('root', true) }}"
        nfs_shared_oneadmin_group: "{{ nfs_shared_oneadmin_user }}"
        nfs_shared_remotes_dir: "{{ base }}/remotes"
        nfs_shared_oned_conf: "{{ base }}/etc/oned.conf"
      tasks:
        - name: Read oned.conf
          ansible.builtin.include_role:
            name: nebula.storage.nfs_shared
            tasks_from: oned_facts.yml
        - name: Register and install the driver
          ansible.builtin.include_role:
            name: nebula.storage.nfs_shared
            tasks_from: opennebula.yml
        - name: Report
          ansible.builtin.copy:
            content: "{{ {'layout': nfs_shared__oned_layout, 'sqlite': nfs_shared__sqlite} | to_json }}"
            dest: "{{ base }}/facts.json"
            mode: "0644"
    """)


@pytest.mark.parametrize("version,layout,sqlite", [("3.0", "legacy", True), ("3.8.5", "driver_list", True),
                                                   ("4.14.2", "tm_mad_conf", True), ("7.4.0", "tm_mad_conf", True),
                                                   ("7.4.0", "tm_mad_conf", False)])
def test_oned_conf_of_every_layout(tmp_path, version, layout, sqlite):
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "etc" / "oned.conf"
    text = (FIXTURES / "oned" / ("oned-%s.conf" % version)).read_text()
    if not sqlite:
        # the live DB block becomes MySQL; the commented-out examples stay
        text, count = re.subn(r'^DB = \[ BACKEND = "sqlite"', 'DB = [ BACKEND = "mysql"', text, flags=re.M)
        assert count == 1
    conf.write_text(text)
    args = ("-e", "base=%s" % tmp_path)
    first = playbook(tmp_path, ONED_PLAYBOOK, *args)
    assert first.returncode == 0, first.stdout + first.stderr
    facts = json.loads((tmp_path / "facts.json").read_text())
    assert facts == {"layout": layout, "sqlite": sqlite}
    text = conf.read_text()
    live = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    if layout == "legacy":
        blocks = re.findall(r"^TM_MAD\s*=\s*\[([^\]]*tm_nfs_shared[^\]]*)\]", live, re.M | re.I)
        assert len(blocks) == 1
        assert re.search(r'arguments\s*=\s*"tm_nfs_shared/tm_nfs_shared.conf"', blocks[0], re.I)
        assert re.search(r'executable\s*=\s*"one_tm"', blocks[0], re.I)
        assert (tmp_path / "etc" / "tm_nfs_shared" / "tm_nfs_shared.conf").is_file()
        assert (tmp_path / "remotes" / "nfs_shared" / "tm_clone.sh").is_file()
    else:
        args_line = re.search(r"^TM_MAD\s*=\s*\[[^\]]*?arguments\s*=\s*\"([^\"]*)\"", live, re.M | re.I | re.S).group(1)
        assert re.search(r"-d\s+(\S+)", args_line).group(1).split(",").count("nfs_shared") == 1
        confs = [b for b in re.findall(r"^TM_MAD_CONF\s*=\s*\[(.*?)\]", live, re.M | re.S) if '"nfs_shared"' in b]
        assert len(confs) == (1 if layout == "tm_mad_conf" else 0)
        assert (tmp_path / "remotes" / "tm" / "nfs_shared" / "clone").is_file()
        # oned monitors system datastores through DATASTORE_MAD for the drivers of its -s list (5.x on)
        ds_args = re.search(r"^DATASTORE_MAD\s*=\s*\[[^\]]*?arguments\s*=\s*\"([^\"]*)\"", live,
                            re.M | re.I | re.S).group(1)
        if version in ("3.8.5", "4.14.2"):
            assert " -s " not in ds_args, "a release without -s is left alone"
        else:
            assert re.search(r"-s\s+(\S+)", ds_args).group(1).split(",").count("nfs_shared") == 1
    second = playbook(tmp_path, ONED_PLAYBOOK, *args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0\b", second.stdout), second.stdout
    assert conf.read_text() == text


# -- the kernel backend's rescue on a full file system --------------------------

RESCUE_PLAYBOOK = textwrap.dedent("""\
    - hosts: localhost
      gather_facts: true
      gather_subset: [min]
      vars:
        nfs_shared_oneadmin_user: root
        nfs_shared_oneadmin_group: root
        nfs_shared_exports_file: /etc/exports.d/opennebula.exports
        nfs_shared_server_service_manage: false
        nfs_shared_kernel_service: ""
      tasks:
        - name: Plan the exports as preflight.yml does
          ansible.builtin.set_fact:
            nfs_shared__exports: >-
              {{ (exports | nebula.storage.nfs_exports(clients=clients, export_options=options)).exports }}
        - name: Export them as the role does
          ansible.builtin.include_role:
            name: nebula.storage.nfs_shared
            tasks_from: server_kernel.yml
    """)

# In a private mount namespace: /etc is an overlay (so that /etc/exports.d can
# be created without touching the machine's /etc), /etc/exports.d a 16 KiB
# tmpfs, /var/lib/nfs (exportfs's etab) a private tmpfs. The real exportfs runs.
RESCUE_SCRIPT = textwrap.dedent("""\
    set -e
    T="$1"; shift
    mount -t tmpfs tmpfs "$T/ovl"
    mkdir "$T/ovl/u" "$T/ovl/w"
    mount -t overlay overlay -o lowerdir=/etc,upperdir="$T/ovl/u",workdir="$T/ovl/w" /etc
    mkdir -p /etc/exports.d
    mount -t tmpfs -o size=16k tmpfs /etc/exports.d
    mount -t tmpfs -o size=1m tmpfs /var/lib/nfs
    run() { name="$1"; shift; set +e; "$@" >"$T/$name.log" 2>&1; echo $? >"$T/$name.rc"; set -e
            cat /etc/exports.d/opennebula.exports >"$T/$name.exports" 2>/dev/null || true
            cat /var/lib/nfs/etab >"$T/$name.etab" 2>/dev/null || true; }
    run first "$@" -e "{\\"clients\\": [\\"198.51.100.0/24\\"], \\"options\\": \\"rw,sync,no_subtree_check\\"}"
    # fill the file system: the next write of the exports file fails with ENOSPC
    dd if=/dev/zero of=/etc/exports.d/filler bs=1k 2>/dev/null || true
    run full "$@" -e "{\\"clients\\": [\\"203.0.113.0/24\\"], \\"options\\": \\"rw,sync,no_subtree_check\\"}"
    rm -f /etc/exports.d/filler
    # a file exportfs refuses: written, refused, the previous one put back
    run refused "$@" -e "{\\"clients\\": [\\"203.0.113.0/24\\"], \\"options\\": \\"rw,sync,no_subtree_check,bogus_option\\"}"
    ls -A /etc/exports.d >"$T/files"
    """)


def test_exports_rescue_keeps_the_previous_file_on_a_full_file_system(tmp_path):
    """A failing write leaves the previous, working exports file and its exports applied (issue 14, item 5)."""
    if os.geteuid() != 0:
        pytest.skip("needs root for unshare -m and mount")
    export = tmp_path / "export"
    (tmp_path / "ovl").mkdir()
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"), ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote"))
    (tmp_path / "inventory.yml").write_text(INVENTORY % (ROOT / ".venv" / "bin" / "python"))
    (tmp_path / "play.yml").write_text(RESCUE_PLAYBOOK)
    (tmp_path / "script.sh").write_text(RESCUE_SCRIPT)
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml"),
           "-e", json.dumps({"exports": [str(export)]})]
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", str(tmp_path / "script.sh"), str(tmp_path)] + cmd,
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def read(name):
        return (tmp_path / name).read_text()

    assert read("first.rc").strip() == "0", read("first.log")
    good = "%s 198.51.100.0/24(rw,sync,no_subtree_check)" % export
    assert lines(read("first.exports")) == [good]
    assert "%s\t198.51.100.0/24(" % export in read("first.etab")

    # full file system: the play fails, names the cause, and the previous file and exports stay
    log = re.sub(r"\s+", " ", read("full.log"))
    assert read("full.rc").strip() != "0", log
    assert read("full.exports") == read("first.exports")
    assert read("full.etab") == read("first.etab")
    assert "writing /etc/exports.d/opennebula.exports failed; the previous file was left as it was and its exports stay applied" in log
    assert "No space left on device" in log or "ENOSPC" in log or "Errno 28" in log, log

    # exportfs refuses the new file: the previous one goes back and is applied again
    log = re.sub(r"\s+", " ", read("refused.log"))
    assert read("refused.rc").strip() != "0", log
    assert "exportfs -ra refused /etc/exports.d/opennebula.exports; the previous file was put back" in log
    assert 'unknown keyword "bogus_option"' in log
    assert read("refused.exports") == read("first.exports")
    assert "%s\t198.51.100.0/24(" % export in read("refused.etab")
    assert read("files").split() == ["opennebula.exports"]


def test_the_datastore_location_reaches_the_drivers_delete_guard(tmp_path):
    """nfs_shared_datastore_location becomes the driver's rc DATASTORE_LOCATION: the installed delete action
    removes a VM directory there and still refuses one outside it (the default location would refuse both)."""
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "etc" / "oned.conf"
    conf.write_text((FIXTURES / "oned" / "oned-7.4.0.conf").read_text())
    location = tmp_path / "srv" / "datastores"
    res = playbook(tmp_path, ONED_PLAYBOOK, "-e", "base=%s" % tmp_path, "-e", "nfs_shared_datastore_location=%s" % location)
    assert res.returncode == 0, res.stdout + res.stderr
    rc = (tmp_path / "remotes" / "tm" / "nfs_shared" / "nfs_sharedrc").read_text()
    assert "DATASTORE_LOCATION=%s" % location in rc
    inside, outside = location / "0" / "5", tmp_path / "elsewhere" / "0" / "5"
    for vm_dir in (inside, outside):
        vm_dir.mkdir(parents=True)
        (vm_dir / "disk.0").write_text("x")
    delete = tmp_path / "remotes" / "tm" / "nfs_shared" / "delete"
    env = dict(os.environ, ONE_LOOKUP="no")
    ok = subprocess.run([str(delete), "localhost:%s" % inside, "5", "0"], capture_output=True, text=True, env=env,
                        check=False)
    assert ok.returncode == 0 and not inside.exists(), ok.stderr
    refused = subprocess.run([str(delete), "localhost:%s" % outside, "5", "0"], capture_output=True, text=True,
                             env=env, check=False)
    assert refused.returncode != 0 and (outside / "disk.0").exists(), refused.stderr
    assert "DATASTORE_LOCATION" in refused.stderr
