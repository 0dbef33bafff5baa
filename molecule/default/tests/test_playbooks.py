"""Operator playbooks against the default lab: preflight and report change nothing."""
import os
import re
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
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


def test_report_lists_every_machine():
    proc = play("playbooks/report.yml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for machine in ("fe", "host1", "host2"):
        assert re.search(r"%s\s+role=" % machine, proc.stdout)
