"""The gfs2_clvm role's rendered files against the real validators: visudo, lvmconfig --validate,
pkla-check-authorization (in a private mount namespace), node (syntax and behaviour of the .rules)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ROLE = os.path.join(ROOT, "roles", "gfs2_clvm")


def defaults(**overrides):
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        data = yaml.safe_load(handle)
    with open(os.path.join(ROLE, "vars", "main.yml")) as handle:
        data.update(yaml.safe_load(handle))
    data.update(overrides)
    return data


def render(name, **overrides):
    with open(os.path.join(ROLE, "templates", name)) as handle:
        source = handle.read()
    return Templar(loader=DataLoader(), variables=defaults(**overrides)).template(trust_as_template(source)) + "\n"


def host_tasks():
    with open(os.path.join(ROLE, "tasks", "host.yml")) as handle:
        return yaml.safe_load(handle)


def host_task(name):
    return next(t for t in host_tasks() if t["name"] == name)


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip("%s is not installed" % tool)


# --------------------------------------------------------------------------- sudoers

def test_sudoers_passes_visudo_and_allows_only_the_wrapper(tmp_path):
    need("visudo")
    text = render("sudoers.j2")
    path = tmp_path / "oneadmin-lvm"
    path.write_text(text)
    res = subprocess.run(["visudo", "-cf", str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert rules == ["Defaults:oneadmin !requiretty", "oneadmin ALL=(root) NOPASSWD: /usr/local/sbin/one-gfs2clvm-lvm"]
    for raw in ("/usr/sbin/lvcreate", "/usr/sbin/lvremove", "/usr/sbin/lvs", "/usr/sbin/vgs", "/bin/echo", "ALL\n"):
        assert raw not in text


def test_sudoers_follows_the_wrapper_variable(tmp_path):
    text = render("sudoers.j2", gfs2_clvm_lvm_wrapper="/opt/one/sbin/lvm-wrapper", gfs2_clvm_oneadmin_user="one")
    assert "\none ALL=(root) NOPASSWD: /opt/one/sbin/lvm-wrapper\n" in text


def test_sudoers_with_a_bad_user_fails_visudo(tmp_path):
    need("visudo")
    path = tmp_path / "oneadmin-lvm"
    path.write_text(render("sudoers.j2", gfs2_clvm_oneadmin_user="one admin"))
    res = subprocess.run(["visudo", "-cf", str(path)], capture_output=True, text=True, check=False)
    assert res.returncode != 0


def test_the_sudoers_task_validates_before_installing_and_comes_after_the_wrapper():
    names = [t["name"] for t in host_tasks()]
    task = host_task("Allow oneadmin only the LVM wrapper (sudoers, checked by visudo before it is installed)")
    assert task["ansible.builtin.template"]["validate"] == "visudo -cf %s"
    assert task["ansible.builtin.template"]["mode"] == "0440"
    assert names.index("Install the LVM wrapper, the only command oneadmin may run as root") < names.index(task["name"])


# --------------------------------------------------------------------------- the LVM wrapper

def test_wrapper_template_renders_the_module_and_the_configuration():
    """Ansible's templar (the file lookup included) on the role's template: the module's text, the configuration of
    the role's variables, and the same text as the tests' installer writes."""
    from tests.unit.roles.gfs2_clvm.lvm_wrapper_install import SOURCE, render_template, render_wrapper
    config = {"vgs": ["vg-one-san"], "lvm_bin_dir": "/usr/sbin", "dev_dir": "/dev"}
    text = render_template("lvm_wrapper.j2", gfs2_clvm_lvm_wrapper_source=SOURCE, gfs2_clvm_lvm_wrapper_config=config)
    assert text.startswith("#!/usr/bin/python3 -I\n")
    with open(SOURCE) as handle:
        assert handle.read().rstrip("\n") + "\n" in text
    assert '\nCONFIG = {"vgs": ["vg-one-san"], "lvm_bin_dir": "/usr/sbin", "dev_dir": "/dev"}\n' in text
    assert text == render_wrapper(vgs=["vg-one-san"], python="/usr/bin/python3")
    compile(text, "one-gfs2clvm-lvm", "exec")


def test_wrapper_source_and_configuration_variables():
    """vars/main.yml: the source is the collection's module_utils file (role_path/../../plugins), the configuration
    the role's VG and LVM directory."""
    data = defaults()
    source = data["gfs2_clvm_lvm_wrapper_source"].replace("{{ role_path }}", ROLE)
    assert os.path.samefile(source, os.path.join(ROOT, "plugins", "module_utils", "_lvm_wrapper.py"))
    assert data["gfs2_clvm_lvm_wrapper_config"] == {"vgs": ["{{ gfs2_clvm_vg_name }}"],
                                                    "lvm_bin_dir": "{{ gfs2_clvm_lvm_bin_dir }}", "dev_dir": "/dev"}


def test_wrapper_task_installs_it_root_owned_and_checks_its_syntax(tmp_path):
    """The wrapper task's validate command (with the default interpreter) accepts the rendered wrapper and refuses
    a broken one."""
    import shlex
    from tests.unit.roles.gfs2_clvm.lvm_wrapper_install import render_wrapper
    task = host_task("Install the LVM wrapper, the only command oneadmin may run as root")
    args = task["ansible.builtin.template"]
    assert (args["owner"], args["group"], args["mode"]) == ("root", "root", "0755")
    command = args["validate"].replace("{{ gfs2_clvm_lvm_wrapper_python }}", defaults()["gfs2_clvm_lvm_wrapper_python"])
    need(shlex.split(command)[0])
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text(render_wrapper())
    bad.write_text(render_wrapper().replace("CONFIG = {", "CONFIG = {{"))
    for path, code in ((good, 0), (bad, 1)):
        res = subprocess.run([a.replace("%s", str(path)) for a in shlex.split(command)], capture_output=True, check=False)
        assert res.returncode == code, res.stderr


def test_wrapper_directory_must_be_root_owned_and_not_writable_by_others():
    """Checked in main.yml on every host, and asserted on every machine of the play before any change (so that the
    front-end does not write an rc file naming a wrapper the hosts refuse)."""
    fact = main_task("Tell whether someone other than root could write to the wrapper's directory")
    unsafe = fact["ansible.builtin.set_fact"]["gfs2_clvm_wrapper_dir_unsafe"]
    for needed in ("stat.uid == 0", "not gfs2_clvm_wrapper_dir.stat.wgrp", "not gfs2_clvm_wrapper_dir.stat.woth",
                   "stat.isdir"):
        assert needed in unsafe
    check = main_task("Refuse a wrapper directory writable by someone other than root (every machine stops before any change)")
    assert "when" not in check
    assert "ansible_play_hosts" in check["vars"]["gfs2_clvm_unsafe_hosts"]
    with open(os.path.join(ROLE, "tasks", "main.yml")) as handle:
        names = [t["name"] for t in yaml.safe_load(handle)]
    assert names.index(check["name"]) < names.index("Configure a hypervisor host")
    assert names.index(check["name"]) < names.index("Configure the front-end")


# --------------------------------------------------------------------------- udev

@pytest.mark.parametrize("vg,dm", [("vg-one", "vg--one"), ("san_vg", "san_vg"), ("a-b-c", "a--b--c")])
def test_udev_rule_doubles_dashes_of_the_vg(vg, dm):
    lines = [line for line in render("udev.rules.j2", gfs2_clvm_vg_name=vg).splitlines() if line and not line.startswith("#")]
    assert lines == [
        'SUBSYSTEM=="block", KERNEL=="dm-*", ACTION=="add|change", ENV{DM_NAME}=="%s-lv--one--[0-9]*", OWNER="oneadmin", '
        'GROUP="oneadmin", MODE="0660"' % dm,
        'SUBSYSTEM=="block", KERNEL=="dm-*", ACTION=="add|change", ENV{DM_NAME}=="%s-lv--oneimg--[0-9a-f]*", OWNER="oneadmin", '
        'GROUP="oneadmin", MODE="0660"' % dm,
    ]


@pytest.mark.parametrize("lv,oneadmin", [
    ("lv-one-5-0", True), ("lv-one-12-3", True), ("lv-oneimg-" + "0a" * 16, True),
    ("lv-one-gfs2", False), ("lv-gfs2", False), ("lv-oneimg-gfs2", False), ("root", False), ("lv-one", False),
])
def test_udev_rule_gives_oneadmin_only_vm_disks_and_images(lv, oneadmin):
    """udev matches ENV{DM_NAME} with fnmatch-style globs: the GFS2 volume of the example inventory (lv-one-gfs2)
    must stay root's, or oneadmin could write its blocks (setuid files on /var/lib/one)."""
    import fnmatch
    import re
    dm_name = "vg--one-" + lv.replace("-", "--")
    globs = re.findall(r'ENV\{DM_NAME\}=="([^"]+)"', render("udev.rules.j2"))
    assert len(globs) == 2
    assert any(fnmatch.fnmatchcase(dm_name, g) for g in globs) == oneadmin


# --------------------------------------------------------------------------- lvm.conf

def _lvm_validate(tmp_path, text):
    """Run the role's own validate command (from tasks/host.yml) on a candidate lvm.conf."""
    task = host_task("Clustered locking in lvm.conf (checked with lvmconfig --validate on a copy)")
    command = task["ansible.builtin.lineinfile"]["validate"].strip()
    candidate = tmp_path / "candidate.conf"
    candidate.write_text(text)
    import shlex
    argv = [a.replace("%s", str(candidate)) for a in shlex.split(command)]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("setting", ["use_lvmlockd = 1", "locking_type = 3"])
def test_lvm_conf_edits_pass_lvmconfig_validate(tmp_path, setting):
    need("lvmconfig")
    res = _lvm_validate(tmp_path, "global {\n\t%s\n}\n" % setting)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_broken_lvm_conf_fails_the_validation(tmp_path):
    need("lvmconfig")
    res = _lvm_validate(tmp_path, "global {\n\tuse_lvmlockd = \n")
    assert res.returncode != 0


def test_lvm_conf_task_edits_the_commented_setting_in_place():
    task = host_task("Clustered locking in lvm.conf (checked with lvmconfig --validate on a copy)")
    import re
    regexp = re.compile(task["ansible.builtin.lineinfile"]["regexp"].replace("{{ item.key }}", "use_lvmlockd"))
    assert regexp.search("\t# use_lvmlockd = 0")
    assert not regexp.search("\t# Configuration option global/use_lvmlockd.")


# --------------------------------------------------------------------------- polkit

PKLA_CHECK = r"""
set -e
cp /etc/passwd "$1/passwd"
echo "oneadmin:x:9869:9869::/var/lib/one:/bin/sh" >> "$1/passwd"
mount --bind "$1/passwd" /etc/passwd
mount -t tmpfs tmpfs /etc/polkit-1/localauthority/50-local.d
cp "$1/50-opennebula-libvirt.pkla" /etc/polkit-1/localauthority/50-local.d/
for user in oneadmin nobody; do
  echo "$user=$(pkla-check-authorization "$user" true true org.libvirt.unix.manage)"
done
"""


def test_pkla_says_yes_for_oneadmin_and_not_for_nobody(tmp_path):
    """pkla-check-authorization on the rendered .pkla, in a private mount namespace (the system's files stay)."""
    need("pkla-check-authorization")
    need("unshare")
    if os.geteuid() != 0 or not os.path.isdir("/etc/polkit-1/localauthority/50-local.d"):
        pytest.skip("needs root and polkit's local authority directories")
    (tmp_path / "50-opennebula-libvirt.pkla").write_text(render("polkit.pkla.j2"))
    res = subprocess.run(["unshare", "-m", "sh", "-c", PKLA_CHECK, "sh", str(tmp_path)],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    answers = dict(line.split("=", 1) for line in res.stdout.split())
    assert answers["oneadmin"] == "yes"
    assert answers.get("nobody", "") != "yes"


NODE_HARNESS = r"""
const fs = require("fs");
const rules = [];
const polkit = { Result: { YES: "yes", NO: "no", NOT_HANDLED: null }, addRule: (f) => rules.push(f) };
eval(fs.readFileSync(process.argv[1], "utf8"));
const ask = (id, user) => rules.map((f) => f({ id: id }, { user: user })).find((r) => r !== null) || "none";
console.log(JSON.stringify({
  oneadmin: ask("org.libvirt.unix.manage", "oneadmin"),
  nobody: ask("org.libvirt.unix.manage", "nobody"),
  other: ask("org.freedesktop.login1.reboot", "oneadmin"),
}));
"""


def test_rules_file_parses_and_allows_only_oneadmin(tmp_path):
    need("node")
    path = tmp_path / "50-opennebula-libvirt.rules"
    path.write_text(render("polkit.rules.j2"))
    as_js = tmp_path / "rules.js"  # node --check reads only known extensions
    as_js.write_text(path.read_text())
    res = subprocess.run(["node", "--check", str(as_js)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    res = subprocess.run(["node", "-e", NODE_HARNESS, str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    import json
    assert json.loads(res.stdout) == {"oneadmin": "yes", "nobody": "none", "other": "none"}


def test_rules_file_quotes_a_hostile_user_name(tmp_path):
    need("node")
    path = tmp_path / "x.rules"
    path.write_text(render("polkit.rules.j2", gfs2_clvm_oneadmin_user='x" || true || "'))
    res = subprocess.run(["node", "-e", NODE_HARNESS, str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert '"oneadmin":"none"' in res.stdout


# --------------------------------------------------------------------------- datastore action wrapper

def test_ds_action_wrapper_is_valid_python(tmp_path):
    text = render("ds_action.j2", item="monitor")
    compile(text, "monitor", "exec")
    assert text.startswith("#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n")
    assert 'datastore_main("monitor", sys.argv[1:]' in text


def test_argument_specs_match_defaults():
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        values = yaml.safe_load(handle)
    assert set(options) == set(values)
    for name, spec in options.items():
        assert spec["default"] == values[name], name
        assert all(name.startswith("gfs2_clvm_") for name in options)


# --------------------------------------------------------------------------- checks of main.yml

def main_task(name):
    with open(os.path.join(ROLE, "tasks", "main.yml")) as handle:
        return next(t for t in yaml.safe_load(handle) if t["name"] == name)


def _regexes(task, test):
    import re
    found = [re.search(r"is %s\('([^']+)'\)" % test, c) for c in task["ansible.builtin.assert"]["that"]]
    return [m.group(1) for m in found if m]


@pytest.mark.parametrize("name,refused", [
    ("lv-one-gfs2", False), ("lv-gfs2", False), ("", False), ("gfs2", False),
    ("lv-one-1-0", True), ("lv-one-7gfs", True), ("lv-oneimg-abc", True), ("lv-oneimg-0", True),
])
def test_a_gfs2_lv_named_like_a_vm_disk_or_image_is_refused(name, refused):
    """The same prefixes as the udev rule and the wrapper: such a GFS2 volume would be oneadmin's to write and remove."""
    import re
    task = main_task("Keep the GFS2 volume out of oneadmin's reach")
    assert any(re.match(r, name) for r in _regexes(task, "not match")) == refused


@pytest.mark.parametrize("path,ok", [
    ("/usr/local/sbin/one-gfs2clvm-lvm", True), ("/opt/one/sbin/w", True),
    ("bin/w", False), ("/usr/local/../tmp/w", False), ("/usr/local/./w", False), ("/usr/local/sbin/", False),
    ("/usr/local/sbin/w x", False), ("/usr/local/sbin/w\n", False), ("/", False),
])
def test_wrapper_path_check(path, ok):
    """The path goes into the sudoers file: absolute, plain characters, no . or .. parts."""
    import re
    task = main_task("Check the paths of the LVM wrapper (they go into the sudoers file and run as root)")
    regex = _regexes(task, "match")[0]
    newline = task["ansible.builtin.assert"]["that"][-1]
    assert newline.endswith("is not search('\\n')")
    assert bool(re.match(regex, path) and not re.search("\n", path)) == ok
