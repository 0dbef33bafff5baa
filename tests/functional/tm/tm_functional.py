"""Helpers for the TM functional tests: real ansible-playbook runs and a private sshd on 127.0.0.1."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
VENV = ROOT / ".venv" / "bin"


def run_playbook(playbook: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0")
    cmd = [str(VENV / "ansible-playbook"), "-i", "localhost,", "-c", "local",
           "-e", "ansible_python_interpreter=%s" % (VENV / "python"), str(playbook), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=300, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopbackSshd:
    """A private sshd on 127.0.0.1 with temp host keys and one authorized key for root.

    ``prefix``: an argv that runs sshd (e.g. ``unshare -m ...`` for a machine with its own disk).
    ``environment``: variables every session gets (sshd's ``SetEnv``).
    """

    def __init__(self, workdir: Path, prefix=None, environment=None):
        self.dir = workdir
        self.prefix = list(prefix or [])
        self.environment = dict(environment or {})
        self.port = _free_port()
        self.key = workdir / "client_key"
        self.proc = None

    def start(self):
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / "host_key")], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        (self.dir / "authorized_keys").write_text((self.dir / "client_key.pub").read_text())
        config = self.dir / "sshd_config"
        config.write_text("\n".join([
            "Port %d" % self.port,
            "ListenAddress 127.0.0.1",
            "HostKey %s" % (self.dir / "host_key"),
            "PidFile %s" % (self.dir / "sshd.pid"),
            "AuthorizedKeysFile %s" % (self.dir / "authorized_keys"),
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "UsePAM no",
            "StrictModes no",
            "MaxStartups 100",
            "MaxSessions 100",
            "LogLevel ERROR",
        ] + ["SetEnv %s=%s" % kv for kv in sorted(self.environment.items())] + [""]))
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = subprocess.Popen([*self.prefix, sshd, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "sshd.log", "w"))
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sshd exited: %s" % (self.dir / "sshd.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        probe = subprocess.run(["ssh", *self.options_list(), "127.0.0.1", "true"], capture_output=True, text=True,
                               timeout=30, check=False)
        if probe.returncode != 0:
            raise RuntimeError("ssh to the loopback sshd failed: %s" % probe.stderr)
        return self

    def options_list(self):
        return ["-F", "/dev/null", "-p", str(self.port), "-i", str(self.key), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]

    def options(self) -> str:
        return " ".join(self.options_list())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
