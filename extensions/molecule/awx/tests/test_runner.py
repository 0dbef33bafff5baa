"""site.yml through ansible-runner, the engine AWX runs jobs with.

The private data dir is laid out as AWX lays it out for a job: ``project/`` is
the project checkout (here: the files git tracks, plus the development
collection symlink), ``inventory/hosts`` the job's inventory, ``env/extravars``
the survey answers (flat scalars: the client networks as a comma string) and
``env/cmdline`` the job type and "Show Changes" switches (``--check --diff``).
"""
import os
import shutil
import subprocess

import ansible_runner
import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))

testinfra_hosts = ["podman://awx-fe", "podman://awx-h1", "podman://awx-h2"]

INVENTORY = {
    "all": {
        "vars": {"ansible_connection": "containers.podman.podman", "ansible_python_interpreter": "/usr/bin/python3"},
        "children": {
            "frontend": {"hosts": {"awx-fe": None}},
            "hosts": {"hosts": {"awx-h1": None, "awx-h2": None}},
            "nfs_shared": {"children": {"frontend": None, "hosts": None}},
        },
    }
}

# Survey answers: flat scalars only, as an AWX survey produces them.
EXTRAVARS = {
    "nfs_shared_clients": "198.18.7.0/24",
    "nfs_shared_server_backend": "ganesha",
    # The lab has no kernel NFS client: mounts are recorded in fstab only.
    "nfs_shared_mount_state": "present",
    # Real oned in the lab (lab/oned): the stock service name.
    "nfs_shared_oned_service": "opennebula",
}


@pytest.fixture(scope="module")
def private_data_dir(tmp_path_factory):
    pdd = tmp_path_factory.mktemp("awx-job")
    project = pdd / "project"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = os.path.join(ROOT, name)
        if name.startswith("ansible_collections/") or not os.path.lexists(src):
            continue
        dst = project / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    (project / "ansible_collections" / "nebula").mkdir(parents=True)
    os.symlink("../..", project / "ansible_collections" / "nebula" / "storage")
    (pdd / "inventory").mkdir()
    (pdd / "inventory" / "hosts").write_text(yaml.safe_dump(INVENTORY))
    (pdd / "env").mkdir()
    (pdd / "env" / "extravars").write_text(yaml.safe_dump(EXTRAVARS))
    return pdd


def run_job(pdd, cmdline=None):
    cmdfile = pdd / "env" / "cmdline"
    if cmdline:
        cmdfile.write_text(cmdline)
    elif cmdfile.exists():
        cmdfile.unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env["PATH"] = os.path.join(ROOT, ".venv", "bin") + os.pathsep + env.get("PATH", "")
    runner = ansible_runner.run(private_data_dir=str(pdd), playbook="site.yml", envvars=env, quiet=True,
                                settings={"suppress_ansible_output": True})
    stdout = runner.stdout.read()
    assert runner.status == "successful", (runner.status, runner.rc, stdout[-4000:])
    return runner.stats, stdout


def test_job_converges_then_changes_nothing(private_data_dir):
    first, unused = run_job(private_data_dir)
    assert sum(first["changed"].values()) > 0, first
    second, out = run_job(private_data_dir)
    assert set(second["ok"]) == {"awx-fe", "awx-h1", "awx-h2"}
    assert sum(second["changed"].values()) == 0, (second, out[-4000:])


def test_check_job_with_show_changes(private_data_dir):
    """AWX's "Check" job type with "Show Changes": --check --diff, no changes reported."""
    stats, out = run_job(private_data_dir, cmdline="--check --diff")
    assert sum(stats["changed"].values()) == 0, (stats, out[-4000:])
    assert sum(stats["failures"].values()) == 0


def test_job_left_the_exports_in_place(host):
    if host.backend.get_hostname() != "awx-fe":
        pytest.skip("front-end only")
    conf = host.file("/etc/ganesha/opennebula.conf")
    assert conf.exists and "198.18.7.0/24" in conf.content_string


def test_real_oned_runs_with_the_jobs_oned_conf(host):
    """The job's role edited oned.conf and restarted real oned, which accepted it and runs."""
    if host.backend.get_hostname() != "awx-fe":
        pytest.skip("front-end only")
    assert host.service("opennebula").is_running
    started = int(host.check_output("date -d \"$(systemctl show -P ActiveEnterTimestamp opennebula)\" +%s"))
    assert started >= int(host.check_output("stat -c %Y /etc/one/oned.conf"))
    assert "nfs_shared" in host.check_output("grep -E '^ *ARGUMENTS.*-d .*nfs_shared' /etc/one/oned.conf")
