"""plugins/module_utils/_nfs_plan.py: one test per rule of the nfs_shared exports and NFS_AUTO_* plans."""
from __future__ import annotations

import pytest

from ansible_collections.nebula.storage.plugins.module_utils import _nfs_plan as P

DS = "/var/lib/one/datastores"


def plan(clients=("198.51.100.0/24",), exports=(DS,), **kw):
    return P.plan_exports(list(exports), clients=list(clients), **kw)


def refusal(errors):
    assert len(errors) == 1, errors
    assert "refusing to export with no_root_squash" in errors[0]
    assert "nfs_shared_allow_wide_no_root_squash: true" in errors[0]
    return errors[0]


# -- root-owning exports ------------------------------------------------------

@pytest.mark.parametrize("options,owning", [
    ("rw,no_root_squash", True),
    ("rw,all_squash,anonuid=0,anongid=0", True),
    ("rw,root_squash,anonuid=0", True),
    ("rw,all_squash,anongid=00", True),
    ("rw,root_squash", False),
    ("rw,all_squash,anonuid=9869,anongid=9869", False),
])
def test_anonuid_or_anongid_0_counts_as_no_root_squash(options, owning):
    assert P.root_owning(options.split(",")) is owning
    errors = plan(clients=["*"], export_options=options)["errors"]
    assert bool(errors) is owning


def test_all_squash_anonuid_0_to_everyone_is_refused():
    """The issue's bypass: * with all_squash,anonuid=0,anongid=0 made every client root."""
    msg = refusal(plan(clients=["*"], export_options="rw,all_squash,anonuid=0,anongid=0")["errors"])
    assert "* (every machine)" in msg and "(from nfs_shared_clients)" in msg


@pytest.mark.parametrize("client,shown", [
    ("*", "* (every machine)"),
    ("0.0.0.0/0", "0.0.0.0/0 (wider than /16)"),
    ("0.0.0.0/1", "0.0.0.0/1 (wider than /16)"),
    ("198.18.0.0/1", "128.0.0.0/1 (wider than /16)"),
    ("::/0", "::/0 (wider than /48)"),
    ("::/1", "::/1 (wider than /48)"),
    ("10.0.0.0/8", "10.0.0.0/8 (wider than /16)"),
    ("198.18.0.0/15", "198.18.0.0/15 (wider than /16)"),
    ("2001:db8::/32", "2001:db8::/32 (wider than /48)"),
])
def test_wide_networks_are_refused_with_no_root_squash(client, shown):
    assert shown in refusal(plan(clients=[client])["errors"])


@pytest.mark.parametrize("client,shown", [
    ("::ffff:0.0.0.0/96", "::ffff:0.0.0.0/96 (IPv4 0.0.0.0/0) (wider than /16)"),
    ("::ffff:0:0/97", "::ffff:0.0.0.0/97 (IPv4 0.0.0.0/1) (wider than /16)"),
    ("::ffff:198.18.0.0/104", "::ffff:198.0.0.0/104 (IPv4 198.0.0.0/8) (wider than /16)"),
    ("::ffff:0:0:0/96", "::ffff:0:0:0/96 (IPv4 0.0.0.0/0) (wider than /16)"),
    ("64:ff9b::/96", "64:ff9b::/96 (IPv4 0.0.0.0/0) (wider than /16)"),
    ("::/80", "::/80 (IPv4 0.0.0.0/0) (wider than /16)"),
])
def test_ipv4_mapped_forms_are_judged_as_ipv4(client, shown):
    assert shown in refusal(plan(clients=[client])["errors"])


@pytest.mark.parametrize("client", ["::ffff:198.18.0.0/112", "::ffff:198.18.1.5", "198.18.0.0/16", "2001:db8:1::/48",
                                    "2001:db8::1"])
def test_narrow_networks_pass(client):
    assert plan(clients=[client])["errors"] == []


def test_the_prefix_limits_are_configurable_and_checked():
    assert plan(clients=["198.18.0.0/16"], min_prefix_v4=24)["errors"][0].count("198.18.0.0/16 (wider than /24)") == 1
    assert plan(clients=["10.0.0.0/8"], min_prefix_v4=8)["errors"] == []
    assert plan(clients=["2001:db8::/40"], min_prefix_v6=32)["errors"] == []
    assert plan(min_prefix_v4=33)["errors"] == ["nfs_shared_no_root_squash_min_prefix_ipv4: 33 is not between 0 and 32"]
    assert plan(min_prefix_v6="x")["errors"] == ['nfs_shared_no_root_squash_min_prefix_ipv6: "x" is not an integer']


def test_wide_is_allowed_only_explicitly():
    for allowed in (True, "true", "yes"):
        assert plan(clients=["*"], allow_wide=allowed)["errors"] == []
    for refused in (False, "false", "no"):
        refusal(plan(clients=["*"], allow_wide=refused)["errors"])
    assert plan(allow_wide="maybe")["errors"] == ['nfs_shared_allow_wide_no_root_squash: "maybe" is not a boolean']


def test_root_squashed_exports_may_go_wide():
    p = plan(clients=["*"], export_options="ro,root_squash")
    assert p["errors"] == [] and p["exports"][0]["squash"] == "Root_Squash" and p["exports"][0]["access"] == "RO"


def test_merged_networks_are_judged_after_the_merge():
    """Two /1 halves make the whole space; two adjacent /17s make a /16, which is allowed."""
    assert "0.0.0.0/0 (wider than /16)" in refusal(plan(clients=["0.0.0.0/1", "128.0.0.0/1"])["errors"])
    assert plan(clients=["198.18.0.0/17", "198.18.128.0/17"])["clients"] == ["198.18.0.0/16"]


def test_per_export_clients_name_their_variable():
    p = plan(exports=["/a", {"path": "/b", "clients": ["0.0.0.0/0"]}])
    assert "(from nfs_shared_exports[1].clients)" in refusal(p["errors"])


# -- paths --------------------------------------------------------------------

@pytest.mark.parametrize("path,normal", [
    ("/", "/"), ("//", "/"), ("/etc", "/etc"), ("/etc/", "/etc"), ("/usr", "/usr"), ("/bin", "/bin"), ("/boot", "/boot"),
    ("/dev", "/dev"), ("/proc", "/proc"), ("/sys", "/sys"), ("/root", "/root"), ("/var", "/var"), ("/var/lib", "/var/lib"),
    ("/var/lib/", "/var/lib"), ("/var/lib/one", "/var/lib/one"), ("/var/lib/one/datastores/..", "/var/lib/one"),
    ("/srv/x/../../etc//", "/etc"), ("/var/./lib//", "/var/lib"), ("/tmp/../", "/"), ("//etc", "/etc"),
    ("/etc/ssh", "/etc/ssh"), ("/var/lib/one/.one", "/var/lib/one/.one"), ("/var/lib/one/.ssh/x", "/var/lib/one/.ssh/x"),
    ("/usr/local/share", "/usr/local/share"),
])
def test_root_and_system_directories_are_refused(path, normal):
    errors = plan(exports=[path])["errors"]
    assert len(errors) == 1 and errors[0].startswith("nfs_shared_exports[0].path: refusing to export %s: " % normal), errors


@pytest.mark.parametrize("path,normal", [(DS, DS), (DS + "/", DS), ("/srv/nfs-squashed", "/srv/nfs-squashed"),
                                         ("/var/lib/one/datastores/100/../101", "/var/lib/one/datastores/101"),
                                         ("/data//one", "/data/one")])
def test_datastore_paths_pass_normalised(path, normal):
    p = plan(exports=[path])
    assert p["errors"] == [] and p["exports"][0]["path"] == normal


def test_the_same_path_twice_is_refused_after_normalising():
    assert plan(exports=["/x", "/y/../x/"])["errors"] == ["nfs_shared_exports[1].path: /x is exported twice"]


def test_bad_exports_are_named():
    errors = plan(exports=[{"path": "relative"}, {"path": "/a b"}, {"path": "/x", "options": "rw,no_root_squash,x(y)"},
                           {"path": "/x/"}, {"path": "/y", "mode": "999"}, {"path": "/z", "colour": "red"}, 5])["errors"]
    assert errors == [
        'nfs_shared_exports[0].path: "relative" must be an absolute path without blanks, quotes, commas or parentheses',
        'nfs_shared_exports[1].path: "/a b" must be an absolute path without blanks, quotes, commas or parentheses',
        'nfs_shared_exports[2].options: invalid export option "x(y)"',
        'nfs_shared_exports[3].path: /x is exported twice',
        'nfs_shared_exports[4].mode: "999" is not an octal mode such as 0750',
        'nfs_shared_exports[5]: unknown keys colour (known: path, options, clients, mount_options, mode)',
        'nfs_shared_exports[6] must be a dict with a path',
    ]
    assert plan(exports=[])["errors"] == ["nfs_shared_exports must be a non-empty list of {path: ...} items"]


# -- client networks ------------------------------------------------------------

HOSTS = [("198.51.100.21/24", "nfs_shared_host_address of kvm1"), ("198.51.100.22/24", "nfs_shared_host_address of kvm2"),
         ("203.0.113.9", "nfs_shared_host_address of kvm3")]


def test_per_host_is_the_default_mode():
    p = P.plan_exports([DS], host_values=HOSTS)
    assert p["errors"] == [] and p["clients"] == ["198.51.100.21/32", "198.51.100.22/32", "203.0.113.9/32"]
    assert "nfs_shared_client_networks_mode=per_host" in p["source"]


def test_networks_mode_exports_to_the_hosts_whole_networks():
    p = P.plan_exports([DS], host_values=HOSTS, mode="networks")
    assert p["clients"] == ["198.51.100.0/24", "203.0.113.9/32"]
    wide = P.plan_exports([DS], host_values=[("198.18.0.5/16", "a"), ("198.19.0.5/16", "b")], mode="networks")
    assert wide["clients"] == ["198.18.0.0/15"]
    assert "198.18.0.0/15 (wider than /16)" in refusal(wide["errors"])
    assert P.plan_exports([DS], host_values=HOSTS, mode="subnets")["errors"] == [
        'nfs_shared_client_networks_mode: "subnets" is not one of per_host, networks']


def test_networks_normalised_merged_and_sorted():
    p = plan(clients=["192.168.0.0/255.255.255.0", "192.168.0.77/24", "10.0.0.0/25", "10.0.0.128/25", "10.1.2.3",
                      " 10.1.2.3 ", "2001:db8::1/64"])
    assert p["errors"] == []
    assert p["clients"] == ["10.0.0.0/24", "10.1.2.3/32", "192.168.0.0/24", "2001:db8::/64"]


def test_bad_networks_are_named():
    errors = plan(clients=["10.1", "198.51.100.0/33", "192.168.0.0/255.0.255.0", "nfs-h1", 5, "010.0.0.1"])["errors"]
    assert [e.split(":", maxsplit=1)[0] for e in errors] == ["nfs_shared_clients[%d]" % i for i in range(6)] + ["nfs_shared_exports[0]"]
    assert errors[-1] == "nfs_shared_exports[0]: no client networks (set nfs_shared_clients, or put machines in group hosts)"


def test_flat_strings_from_awx_surveys():
    p = P.plan_exports("/a, /b/", clients="198.51.100.0/24, 203.0.113.0/255.255.255.0")
    assert p["errors"] == [] and p["clients"] == ["198.51.100.0/24", "203.0.113.0/24"]
    assert [e["path"] for e in p["exports"]] == ["/a", "/b"]


def test_host_addresses_from_vars_or_facts():
    hostvars = {"a": {"nfs_shared_host_address": "198.51.100.1"},
                "b": {"ansible_facts": {"default_ipv4": {"address": "198.51.100.2", "prefix": "24"}}},
                "c": {}}
    values, errors = P.host_addresses(["a", "b", "c", "d"], hostvars)
    assert values == [("198.51.100.1", "nfs_shared_host_address of a"), ("198.51.100.2/24", "address of b")]
    assert errors == ["no address for c: set nfs_shared_host_address for it, or nfs_shared_clients",
                      "no address for d: set nfs_shared_host_address for it, or nfs_shared_clients"]


def test_per_export_options_squash_and_mode():
    a, b = plan(exports=["/srv/a", {"path": "/srv/b", "options": ["ro", "all_squash", "anonuid=9869", "anongid=9869"],
                                    "mount_options": "ro,soft", "mode": "755"}])["exports"]
    assert (a["squash"], a["access"], a["mode"], a["mount_options"]) == ("No_Root_Squash", "RW", "0750", "")
    assert (b["squash"], b["access"], b["anonuid"], b["anongid"], b["mode"], b["mount_options"]) == \
        ("All_Squash", "RO", "9869", "9869", "0755", "ro,soft")


# -- NFS_AUTO_* -----------------------------------------------------------------

EXPORTS = [{"path": DS, "mount_options": ""}]


def result(name, oid, template, images=(), dtype="image"):
    return {"item": {"name": name, "type": dtype}, "id": oid,
            "datastore": {"id": oid, "name": name, "images": list(images), "base_path": "/var/lib/one//datastores/%d" % oid,
                          "template": template}}


def auto(results, mount_by):
    return P.nfs_auto_plan(results, mount_by, "nfs-fe", EXPORTS, "rw,hard,_netdev")


def test_opennebula_sets_the_nfs_auto_attributes():
    p = auto([result("img", 100, {"TM_MAD": "nfs_shared"})], "opennebula")
    assert p["errors"] == [] and p["paths"] == [DS + "/100"]
    assert p["updates"] == [{"name": "img", "type": "image", "attributes": "merge", "template": {
        "NFS_AUTO_ENABLE": "YES", "NFS_AUTO_HOST": "nfs-fe", "NFS_AUTO_PATH": DS + "/100", "NFS_AUTO_OPTS": "rw,hard,_netdev"}}]
    done = dict(p["updates"][0]["template"], NFS_AUTO_ENABLE="yes")
    assert auto([result("img", 100, done)], "opennebula")["updates"] == []


def test_new_datastores_are_planned_after_creation():
    assert auto([{"item": {"name": "new"}, "id": None, "datastore": {}}], "opennebula") == \
        {"errors": [], "updates": [], "paths": []}


def test_role_removes_every_nfs_auto_attribute():
    p = auto([result("sys", 0, {"TM_MAD": "nfs_shared", "TYPE": "SYSTEM_DS", "NFS_AUTO_ENABLE": "NO",
                                "NFS_AUTO_HOST": "x"}, dtype="system")], "role")
    assert p["updates"] == [{"name": "sys", "type": "system", "attributes": "exact", "template": {"TM_MAD": "nfs_shared"}}]
    assert auto([result("sys", 0, {"TM_MAD": "nfs_shared"})], "role")["updates"] == []


@pytest.mark.parametrize("mount_by,template", [
    ("opennebula", {"TM_MAD": "nfs_shared"}),
    ("opennebula", {"NFS_AUTO_ENABLE": "YES", "NFS_AUTO_HOST": "nfs-fe", "NFS_AUTO_PATH": DS + "/100",
                    "NFS_AUTO_OPTS": "defaults"}),
    ("role", {"NFS_AUTO_ENABLE": "YES"}),
])
def test_a_datastore_holding_images_is_refused_as_opennebula_does(mount_by, template):
    p = auto([result("img", 100, template, images=[7, 8])], mount_by)
    assert p["updates"] == []
    assert len(p["errors"]) == 1
    assert p["errors"][0].startswith("nfs_shared_datastores: datastore img (ID 100) holds images (7, 8), and OpenNebula "
                                     "refuses to change NFS_AUTO_")
    assert "nfs_shared_mount_by=%s" % mount_by in p["errors"][0]


def test_a_datastore_holding_images_that_needs_no_change_passes():
    done = {"NFS_AUTO_ENABLE": "YES", "NFS_AUTO_HOST": "nfs-fe", "NFS_AUTO_PATH": DS + "/100", "NFS_AUTO_OPTS": "rw,hard,_netdev"}
    assert auto([result("img", 100, done, images=[7])], "opennebula") == {"errors": [], "updates": [], "paths": [DS + "/100"]}
    assert auto([result("img", 100, {}, images=[7])], "role") == {"errors": [], "updates": [], "paths": []}


def test_a_datastore_outside_the_exports_is_refused():
    p = P.nfs_auto_plan([result("img", 100, {})], "opennebula", "nfs-fe", [{"path": "/srv/other"}], "")
    assert p["errors"] == ["nfs_shared_datastores: datastore img (ID 100) has its directory %s/100 in none of "
                           "nfs_shared_exports (/srv/other), so OpenNebula could not mount it from the NFS server" % DS]


def test_mount_by_is_checked():
    assert auto([], "fstab")["errors"] == ['nfs_shared_mount_by: "fstab" is not one of role, opennebula']


# -- sudo's answer for ONE_NFS --------------------------------------------------

ALLOWED = {c: 0 for c in P.ONE_NFS}
LISTING = """Matching Defaults entries for oneadmin on nfs-h1:
    env_reset, mail_badpass, secure_path=/usr/local/sbin\\:/usr/local/bin\\:/usr/sbin\\:/usr/bin\\:/sbin\\:/bin

User oneadmin may run the following commands on nfs-h1:
    (ALL : ALL) NOPASSWD: /usr/sbin/lvs, /usr/bin/mount, /usr/bin/umount, /usr/bin/sed -i -f /proc/self/fd/0 /etc/fstab
"""


def test_sudo_allowing_one_nfs_without_password_passes():
    assert P.one_nfs_missing("nfs-h1", "oneadmin", ALLOWED, LISTING) == []
    assert P.one_nfs_missing("h", "oneadmin", ALLOWED, "    (root) NOPASSWD: ALL\n") == []


def test_sudo_refusing_a_command_names_the_host():
    errors = P.one_nfs_missing("nfs-h2", "oneadmin", dict(ALLOWED, **{"/usr/bin/umount": 1}), LISTING)
    assert errors == ["nfs-h2: sudo does not let oneadmin run /usr/bin/umount (OpenNebula mounts NFS_AUTO datastores "
                      "through the ONE_NFS sudo alias of its opennebula-node package; nfs_shared_mount_by=opennebula "
                      "needs it)"]


def test_sudo_asking_a_password_names_the_host():
    listing = "    (ALL) /usr/bin/mount, /usr/bin/umount\n    (ALL) NOPASSWD: /usr/bin/sed -i -f /proc/self/fd/0 /etc/fstab\n"
    assert P.one_nfs_missing("h", "oneadmin", ALLOWED, listing) == [
        "h: sudo asks oneadmin for a password for /usr/bin/mount; /usr/bin/umount (ONE_NFS must be NOPASSWD, as in "
        "OpenNebula's sudoers)"]


def test_sudo_listing_tags_carry_and_change():
    listing = "    (ALL : ALL) NOPASSWD: /a, /b, PASSWD: /c, NOPASSWD: SETENV: /d\n    (nobody) NOPASSWD: /e\n"
    assert P.sudo_listing_commands(listing) == [("/a", True), ("/b", True), ("/c", False), ("/d", True)]


def test_the_last_matching_sudo_entry_decides():
    """As in sudoers: a later PASSWD entry overrides an earlier NOPASSWD one."""
    later = LISTING + "    (ALL) PASSWD: /usr/bin/umount\n"
    assert P.one_nfs_missing("h", "oneadmin", ALLOWED, later) == [
        "h: sudo asks oneadmin for a password for /usr/bin/umount (ONE_NFS must be NOPASSWD, as in OpenNebula's sudoers)"]
    assert P.one_nfs_missing("h", "oneadmin", ALLOWED, later + "    (root) NOPASSWD: ALL\n") == []


def test_long_sudo_entries_continue_on_deeper_lines():
    listing = "    (ALL : ALL) NOPASSWD: /usr/sbin/lvs,\n        /usr/bin/mount, /usr/bin/umount,\n" \
              "        /usr/bin/sed -i -f /proc/self/fd/0 /etc/fstab\n"
    assert P.one_nfs_missing("h", "oneadmin", ALLOWED, listing) == []


def test_account_ids_from_the_getent_facts():
    hostvars = {"fe": {"ansible_facts": {"getent_passwd": {"oneadmin": ["x", "9869", "9869", "", "/var/lib/one", "/bin/sh"]}}},
                "h1": {"ansible_facts": {"getent_passwd": {"oneadmin": None}}}, "h2": {}}
    assert P.account_ids(["fe", "h1", "h2", "gone"], hostvars, "oneadmin") == [
        ["fe", "uid=9869 gid=9869"], ["h1", "missing"], ["h2", "missing"], ["gone", "missing"]]


@pytest.mark.parametrize("client,written", [
    ("::ffff:198.18.0.0/112", "::ffff:198.18.0.0/112"),
    ("::ffff:c612:105", "::ffff:198.18.1.5/128"),
    ("::ffff:0:0:0/112", "::ffff:0:0:0/112"),  # IPv4-translated, not mapped: Python's own form
])
def test_mapped_networks_are_written_the_same_under_every_python(client, written):
    # Python 3.12 writes ::ffff:c612:0/112, 3.13 ::ffff:198.18.0.0/112; the exports file must not depend on it
    assert plan(clients=[client])["clients"] == [written]
