"""The gfs2_clvm LVM wrapper (module_utils/_lvm_wrapper.py), rule by rule, then as the installed process: the role's
template rendered around the module, run with a recording FAKE LVM directory (a test double) and, for the hostile
calls of issue 14, with the machine's real /usr/sbin/lvs."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.nebula.storage.plugins.module_utils import _lvm_wrapper as w
from tests.unit.roles.gfs2_clvm.lvm_wrapper_install import install_wrapper

CONFIG = {"vgs": ["vg-one"], "lvm_bin_dir": "/usr/sbin", "dev_dir": "/dev"}
IMG = "lv-oneimg-" + "0123456789abcdef" * 2
HOSTILE_LOG = 'log{file="%s" level=7 overwrite=1}'
EVIL_NAME = "x\n/lib/evil.so\n"


def refused(argv, config=None):
    with pytest.raises(w.Refused) as info:
        w.check(argv, CONFIG if config is None else config)
    return str(info.value)


# --------------------------------------------------------------------------- what the driver needs

@pytest.mark.parametrize("argv", [
    ["vgs", "--noheadings", "--nosuffix", "--units", "m", "-o", "vg_size,vg_free", "vg-one"],
    ["lvs", "--noheadings", "-o", "lv_name", "vg-one"],
    ["lvs", "--noheadings", "--nosuffix", "--units", "m", "-o", "lv_size", "/dev/vg-one/lv-one-5-0"],
    ["lvs", "--noheadings", "--nosuffix", "--units", "m", "-o", "lv_size", "/dev/vg-one/" + IMG],
    ["lvcreate", "-L", "1024M", "-n", "lv-one-5-0", "vg-one"],
    ["lvcreate", "-L", "3M", "-n", IMG, "vg-one"],
    ["lvcreate", "-s", "-L", "2M", "-n", "lv-one-9-0", "/dev/vg-one/lv-one-4-0"],
    ["lvremove", "-f", "vg-one/lv-one-5-0"],
    ["lvremove", "-f", "vg-one/" + IMG],
])
def test_the_driver_calls_are_accepted_and_run_by_absolute_path(argv):
    assert w.check(argv, CONFIG) == ["/usr/sbin/" + argv[0]] + argv[1:]


def test_the_bin_and_dev_directories_come_from_the_configuration():
    config = {"vgs": ["a", "vg-one"], "lvm_bin_dir": "/opt/lvm/sbin/", "dev_dir": "/srv/dev"}
    assert w.check(["lvs", "--noheadings", "--nosuffix", "--units", "m", "-o", "lv_size", "/srv/dev/a/lv-one-1-2"],
                   config) == ["/opt/lvm/sbin/lvs", "--noheadings", "--nosuffix", "--units", "m", "-o", "lv_size",
                               "/srv/dev/a/lv-one-1-2"]
    assert "not a device /srv/dev/" in refused(["lvs", "--noheadings", "--nosuffix", "--units", "m", "-o", "lv_size",
                                                "/dev/a/lv-one-1-2"], config)


# --------------------------------------------------------------------------- the hostile calls of issue 14

@pytest.mark.parametrize("argv", [
    ["lvs", "--config", HOSTILE_LOG % "/etc/ld.so.preload", EVIL_NAME],
    ["lvs", "--config=" + HOSTILE_LOG % "/etc/ld.so.preload", "vg-one"],
    ["lvs", "--noheadings", "-o", "lv_name", "vg-one", "--config", "global/use_lvmlockd=0"],
    ["vgs", "--profile", "x", "vg-one"],
    ["lvcreate", "--commandprofile", "x", "-L", "1M", "-n", "lv-one-1-0", "vg-one"],
    ["lvcreate", "--metadataprofile", "x", "-L", "1M", "-n", "lv-one-1-0", "vg-one"],
    ["lvs", "--configreport", "x"],
])
def test_config_and_profile_options_are_never_allowed(argv):
    assert "is never allowed" in refused(argv)


def test_lvremove_of_another_volume_group_is_refused():
    assert refused(["lvremove", "-f", "othervg/x"]) == \
        "lvremove: volume group 'othervg' is not the configured one (vg-one)"
    assert "volume group 'othervg'" in refused(["lvremove", "-f", "othervg/lv-one-5-0"])


@pytest.mark.parametrize("argv,reason", [
    (["lvremove", "-f", "vg-one"], "is not <VG>/<LV>"),
    (["lvremove", "-f", "vg-one/root"], "neither lv-one-<vmid>-<diskid> nor lv-oneimg-"),
    (["lvremove", "-f", "vg-one/lv-one-gfs2"], "neither lv-one-"),
    (["lvremove", "-f", "vg-one/lv-one-05-0"], "neither lv-one-"),
    (["lvremove", "-f", "vg-one/lv-one-5-0x"], "neither lv-one-"),
    (["lvremove", "-f", "vg-one/lv-oneimg-" + "A" * 32], "neither lv-one-"),
    (["lvremove", "-f", "vg-one/lv-oneimg-" + "a" * 31], "neither lv-one-"),
    (["lvremove", "-f", "vg-one/lv-one-5-0/x"], "neither lv-one-"),
    (["lvremove", "vg-one/lv-one-5-0"], "lvremove takes exactly: -f <VG>/<LV>"),
    (["lvremove", "-f", "vg-one/lv-one-5-0", "vg-one/lv-one-5-1"], "lvremove takes exactly"),
    (["lvremove", "-ff", "vg-one/lv-one-5-0"], "option -ff is not allowed with lvremove (only -f)"),
    (["lvremove", "-f", "-y", "vg-one/lv-one-5-0"], "option -y is not allowed"),
    (["lvremove", "-f", "-S", "lv_name"], "option -S is not allowed"),
    (["lvcreate", "-L", "10M", "-n", "lv-one-5-0", "othervg"], "volume group 'othervg'"),
    (["lvcreate", "-L", "0M", "-n", "lv-one-5-0", "vg-one"], "size '0M' is not <n>M"),
    (["lvcreate", "-L", "1G", "-n", "lv-one-5-0", "vg-one"], "size '1G'"),
    (["lvcreate", "-L", "10m", "-n", "lv-one-5-0", "vg-one"], "size '10m'"),
    (["lvcreate", "-L", "99999999999M", "-n", "lv-one-5-0", "vg-one"], "size '99999999999M'"),
    (["lvcreate", "-n", "lv-one-5-0", "-L", "10M", "vg-one"], "argument 1 is '-n', expected '-L'"),
    (["lvcreate", "-L", "10M", "-n", "root", "vg-one"], "logical volume 'root'"),
    (["lvcreate", "-l", "100%FREE", "-n", "lv-one-5-0", "vg-one"], "characters outside"),
    (["lvcreate", "-l", "100", "-n", "lv-one-5-0", "vg-one"], "option -l is not allowed with lvcreate"),
    (["lvcreate", "-L", "10M", "-n", "lv-one-5-0", "vg-one", "/dev/sdb"], "argument 1 is '-L', expected '-s'"),
    (["lvcreate", "-L", "10M", "-n", "lv-one-5-0"], "lvcreate takes exactly"),
    (["lvcreate", "-s", "-L", "2M", "-n", "lv-one-9-0", "/etc/passwd"], "is not a device /dev/<VG>/<LV>"),
    (["lvcreate", "-s", "-L", "2M", "-n", "lv-one-9-0", "/dev/othervg/lv-one-4-0"], "volume group 'othervg'"),
    (["lvcreate", "-s", "-L", "2M", "-n", "lv-one-9-0", "/dev/vg-one/../../etc/passwd"], "logical volume '../../etc/passwd'"),
    (["lvcreate", "-s", "-L", "2M", "-n", "lv-one-9-0", "vg-one/lv-one-4-0"], "is not a device"),
    (["lvs", "--noheadings", "-o", "lv_name,lv_path", "vg-one"], "argument 3 is 'lv_name,lv_path', expected 'lv_name'"),
    (["lvs", "--noheadings", "-o", "lv_name", "othervg"], "volume group 'othervg'"),
    (["lvs", "--noheadings", "--nosuffix", "--units", "m", "-o", "lv_size", "/dev/sda"], "is not a device"),
    (["lvs"], "lvs takes exactly"),
    (["lvs", "-a", "vg-one"], "option -a is not allowed with lvs"),
    (["lvs", "--reportformat", "json"], "is never allowed"),
    (["vgs"], "vgs takes exactly"),
    (["vgs", "--noheadings", "--nosuffix", "--units", "m", "-o", "vg_size,vg_free", "othervg"], "volume group 'othervg'"),
    (["vgs", "--noheadings", "--nosuffix", "--units", "m", "-o", "+vg_tags", "vg-one"], "expected 'vg_size,vg_free'"),
    (["vgs", "-v", "vg-one"], "option -v is not allowed with vgs"),
])
def test_other_forms_names_and_options_are_refused(argv, reason):
    assert reason in refused(argv)


@pytest.mark.parametrize("command", ["lvm", "vgremove", "lvchange", "pvs", "vgchange", "lvextend", "/usr/sbin/lvs",
                                     "../lvs", "LVS", "lvs2"])
def test_only_four_lvm_commands(command):
    assert "is not an allowed LVM command (lvcreate, lvremove, lvs, vgs)" in refused([command, "vg-one"])


@pytest.mark.parametrize("value", [EVIL_NAME, "vg-one\n", "vg-one/lv-one-5-0\n", "lv one", "a'b", 'a"b', "a;b",
                                   "$(id)", "`id`", "a{b}", "", "x" * 256, "vg-\u00e9", "a\x00b", "a\tb", "a=b", "*"])
def test_arguments_with_newlines_or_odd_characters_are_refused(value):
    assert "characters outside [A-Za-z0-9_.,/+-]" in refused(["lvremove", "-f", value])


def test_no_command_and_too_many_arguments():
    assert "no LVM command given" in refused([])
    assert "too many arguments (9)" in refused(["lvs"] + ["vg-one"] * 8)


@pytest.mark.parametrize("config,reason", [
    ({"vgs": [], "lvm_bin_dir": "/usr/sbin"}, "vgs must be a list"),
    ({"vgs": "vg-one", "lvm_bin_dir": "/usr/sbin"}, "vgs must be a list"),
    ({"vgs": ["-vg"], "lvm_bin_dir": "/usr/sbin"}, "vgs must be a list"),
    ({"vgs": ["vg-one"]}, "lvm_bin_dir must be an absolute"),
    ({"vgs": ["vg-one"], "lvm_bin_dir": "usr/sbin"}, "lvm_bin_dir must be an absolute"),
    ({"vgs": ["vg-one"], "lvm_bin_dir": "/usr/../tmp"}, "lvm_bin_dir must be an absolute, normalised"),
    ({"vgs": ["vg-one"], "lvm_bin_dir": "/usr/sbin", "dev_dir": "/dev/./x"}, "dev_dir must be"),
])
def test_a_bad_configuration_refuses_everything(config, reason):
    assert reason in refused(["lvremove", "-f", "vg-one/lv-one-5-0"], config)


# --------------------------------------------------------------------------- main(): exec or refuse

def test_main_execs_the_absolute_path_with_a_fixed_environment(monkeypatch):
    monkeypatch.setenv("LVM_SYSTEM_DIR", "/tmp/evil")
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    calls = []
    code = w.main(["lvremove", "-f", "vg-one/lv-one-5-0"], CONFIG, stderr=io.StringIO(),
                  execve=lambda *a: calls.append(a))
    assert code == 0
    assert calls == [("/usr/sbin/lvremove", ["/usr/sbin/lvremove", "-f", "vg-one/lv-one-5-0"],
                      {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})]


def test_main_refuses_without_running_anything():
    err = io.StringIO()
    calls = []
    assert w.main(["lvremove", "-f", "othervg/x"], CONFIG, stderr=err, execve=lambda *a: calls.append(a)) == w.REFUSED
    assert calls == []
    assert err.getvalue() == "one-gfs2clvm-lvm: refused: lvremove: volume group 'othervg' is not the configured one (vg-one)\n"


def test_main_reports_a_missing_lvm_command(tmp_path):
    err = io.StringIO()
    config = dict(CONFIG, lvm_bin_dir=str(tmp_path))
    assert w.main(["lvs", "--noheadings", "-o", "lv_name", "vg-one"], config, stderr=err) == 127
    assert "cannot run %s/lvs" % tmp_path in err.getvalue()


# --------------------------------------------------------------------------- the installed wrapper, as a process

RECORDER = r"""#!%(python)s -I
# FAKE LVM command (test double): records its argv and environment, prints a line, exits with $FAKE_RC of its file.
import json, os, sys
with open(%(log)r, "a") as log:
    log.write(json.dumps({"argv": sys.argv, "env": dict(os.environ)}) + "\n")
print("  fake " + os.path.basename(sys.argv[0]))
sys.exit(int(open(%(rc)r).read() or 0))
"""


@pytest.fixture
def fake_bin(tmp_path):
    directory = tmp_path / "lvmbin"
    directory.mkdir()
    log, rc = tmp_path / "calls.log", tmp_path / "rc"
    rc.write_text("0")
    for name in w.SUBCOMMANDS:
        path = directory / name
        path.write_text(RECORDER % {"python": sys.executable, "log": str(log), "rc": str(rc)})
        path.chmod(0o755)
    return directory, log, rc


def calls(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_rendered_wrapper_is_the_module_plus_its_configuration(tmp_path):
    path = install_wrapper(tmp_path / "one-gfs2clvm-lvm", vgs=["vg-x"], lvm_bin_dir="/usr/sbin", python="/usr/bin/python3")
    text = path.read_text()
    assert text.startswith("#!/usr/bin/python3 -I\n")
    with open(w.__file__) as handle:
        assert handle.read().rstrip("\n") in text
    assert '\nCONFIG = {"vgs": ["vg-x"], "lvm_bin_dir": "/usr/sbin", "dev_dir": "/dev"}\n' in text
    assert text.endswith('\nif __name__ == "__main__":\n    raise SystemExit(main(sys.argv[1:], CONFIG))\n')
    compile(text, str(path), "exec")


def test_wrapper_process_runs_the_fake_with_a_clean_environment(tmp_path, fake_bin):
    directory, log, rc = fake_bin
    wrapper = install_wrapper(tmp_path / "wrapper", lvm_bin_dir=str(directory))
    marker = tmp_path / "sitecustomize-ran"
    pydir = tmp_path / "pythonpath"
    pydir.mkdir()
    (pydir / "sitecustomize.py").write_text("open(%r, 'w').close()\n" % str(marker))
    env = dict(os.environ, LVM_SYSTEM_DIR=str(tmp_path), PYTHONPATH=str(pydir), DM_DEV_DIR="/tmp")
    rc.write_text("5")
    proc = subprocess.run([str(wrapper), "lvremove", "-f", "vg-one/lv-one-5-0"], capture_output=True, text=True,
                          env=env, check=False)
    assert proc.returncode == 5, proc.stderr  # the LVM command's own exit code
    assert proc.stdout == "  fake lvremove\n"
    [call] = calls(log)
    assert call["argv"] == [str(directory / "lvremove"), "-f", "vg-one/lv-one-5-0"]
    assert call["env"] == {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    assert not marker.exists()  # python -I: the caller's PYTHONPATH is not read


@pytest.mark.parametrize("argv", [
    ["lvs", "--config", HOSTILE_LOG, EVIL_NAME],
    ["lvremove", "-f", "othervg/x"],
    ["lvremove", "-f", "vg-one/lv-one-5-0", "--yes"],
    ["vgs", "--profile", "x", "--noheadings", "vg-one"],
    ["lvs", "--noheadings", "-o", "lv_name", "vg-one\n"],
])
def test_wrapper_process_refuses_the_hostile_calls_and_runs_nothing(tmp_path, fake_bin, argv):
    directory, log, _rc = fake_bin
    wrapper = install_wrapper(tmp_path / "wrapper", lvm_bin_dir=str(directory))
    target = tmp_path / "ld.so.preload"
    argv = [a % str(target) if "%s" in a else a for a in argv]
    proc = subprocess.run([str(wrapper)] + argv, capture_output=True, text=True, check=False)
    assert proc.returncode == w.REFUSED
    assert proc.stderr.startswith("one-gfs2clvm-lvm: refused: ")
    assert proc.stdout == ""
    assert calls(log) == [] and not target.exists()


def _real_lvs():
    if not os.path.exists("/usr/sbin/lvs") or os.geteuid() != 0:
        pytest.skip("needs root and the real /usr/sbin/lvs")


def test_the_real_lvs_writes_the_hostile_log_file_but_not_through_the_wrapper(tmp_path):
    """The attack of issue 14 with the real LVM: run directly (what the old sudoers rule allowed), lvs creates a
    root-owned file holding the caller's line; through the wrapper it is refused and no file appears."""
    _real_lvs()
    direct = tmp_path / "direct.log"
    subprocess.run(["/usr/sbin/lvs", "--config", HOSTILE_LOG % direct, EVIL_NAME], capture_output=True, check=False)
    assert direct.exists() and "/lib/evil.so" in direct.read_text(errors="replace")  # the hole is real
    wrapper = install_wrapper(tmp_path / "wrapper", lvm_bin_dir="/usr/sbin")
    through = tmp_path / "through.log"
    proc = subprocess.run([str(wrapper), "lvs", "--config", HOSTILE_LOG % through, EVIL_NAME],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == w.REFUSED
    assert "option '--config' is never allowed" in proc.stderr
    assert not through.exists()


def test_the_real_vgs_runs_through_the_wrapper(tmp_path):
    _real_lvs()
    wrapper = install_wrapper(tmp_path / "wrapper", vgs=["vg-h14-absent"], lvm_bin_dir="/usr/sbin")
    proc = subprocess.run([str(wrapper), "vgs", "--noheadings", "--nosuffix", "--units", "m", "-o", "vg_size,vg_free",
                           "vg-h14-absent"], capture_output=True, text=True, check=False)
    assert proc.returncode == 5  # LVM's own answer, not a refusal
    assert 'Volume group "vg-h14-absent" not found' in proc.stderr


def test_the_wrapper_module_uses_only_the_standard_library():
    import ast
    with open(w.__file__) as handle:
        tree = ast.parse(handle.read())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= {"__future__", "os", "re", "sys", "typing"}
