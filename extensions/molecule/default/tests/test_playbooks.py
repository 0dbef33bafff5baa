"""Operator playbooks against the default lab: preflight and report change nothing."""
import os
import re
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
INVENTORY = os.path.join(ROOT, "inventory", "demo", "hosts.yml")


def play(*args):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    cmd = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", INVENTORY, *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def recap_changed(output):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


def test_preflight_reports_every_machine_and_changes_nothing():
    proc = play("playbooks/preflight.yml", "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert set(recap_changed(proc.stdout).values()) == {0}
    table = proc.stdout[proc.stdout.index("MACHINE"):]
    for machine in ("fe", "host1", "host2"):
        assert re.search(r"- %s\s+(front-end|host)\s+9869:9869" % machine, table), table
    # The default lab has no ssh mesh: preflight must say so rather than pass it.
    assert "ssh to" in table


def test_report_has_a_section_per_backend():
    proc = play("playbooks/report.yml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert re.findall(r"^\s*== (\w+) =+$", out, re.M) == ["nfs_shared", "onestor_replica"], out
    nfs, one = out.split("== nfs_shared ")[1].split("== onestor_replica ")
    assert re.search(r"^\s+fe\s+/var/lib/one/datastores\s+198\.18\.\S+\s+RW,No_Root_Squash$", nfs, re.M), nfs
    assert re.search(r"^\s+host1\s+fe:/var/lib/one/datastores\s+/var/lib/one/datastores\s+\S+$", nfs, re.M), nfs
    assert re.search(r"^\s+\d+\s+nfs_system\s+nfs_shared\s+-\s+", nfs, re.M), nfs
    assert re.search(r"^\s+\d+\s+nfs_images\s+nfs_shared\s+fs\s+", nfs, re.M), nfs
    assert re.search(r"^\s+fe\s+nfs_shared\s+sha256:[0-9a-f]{16}\s+\d+$", nfs, re.M), nfs
    assert re.search(r"^\s+\d+\s+onestor_system_100\s+onestor\s+-\s+100\s+host2$", one, re.M), one
    assert re.search(r"^\s+100\s+host2$", one, re.M), one


def test_site_and_report_print_no_warning():
    """A newcomer's run prints no Ansible warning (make demo runs exactly these two)."""
    for playbook in ("site.yml", "playbooks/report.yml"):
        proc = play(playbook)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if "WARNING" in line]
        assert not warnings, (playbook, warnings)
