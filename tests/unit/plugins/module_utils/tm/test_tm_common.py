"""The runtime helpers of tm/common.py and tm/rc.py on real processes and files."""
from __future__ import annotations

import io
import multiprocessing
import os
import socket
import time

import pytest

from ansible_collections.nebula.storage.plugins.module_utils.tm import common, rc as tm_rc, registry
from ansible_collections.nebula.storage.plugins.module_utils.tm.common import Context, TMError
from tests.conftest import FIXTURES
from tm_helpers import ssh_hosts


def ctx_for(action="clone", legacy=False, **settings):
    return Context(action, settings, legacy=legacy, stderr=io.StringIO())


# --------------------------------------------------------------------------- arguments

@pytest.mark.parametrize("arg,host,path", [
    ("node1:/var/lib/one//datastores/0/5/disk.0", "node1", "/var/lib/one/datastores/0/5/disk.0"),
    ("node1:/var/lib/one/datastores/0/5/", "node1", "/var/lib/one/datastores/0/5"),
    ("/var/lib/one/datastores/1/abc", "", "/var/lib/one/datastores/1/abc"),
    ("fe:/a:b/c", "fe", "/a:b/c"),
    ("h:/", "h", "/"),
    ("h:///x///y//", "h", "/x/y"),
])
def test_arg_host_and_path(arg, host, path):
    assert common.arg_host(arg) == host
    assert common.arg_path(arg) == path


def test_arg_path_nofix_keeps_slashes():
    assert common.arg_path("h:/a//b/", fix=False) == "/a//b/"


def test_is_disk():
    assert common.is_disk("/var/lib/one/datastores/0/5/disk.0")
    assert common.is_disk("/ds/0/5/disk.12.snap/0")
    assert not common.is_disk("/var/lib/one/datastores/0/5")
    assert not common.is_disk("/ds/0/5/disk.x")


# --------------------------------------------------------------------------- logging and errors

def test_log_and_log_error_format():
    ctx = ctx_for("clone")
    common.log(ctx, "Cloning a in b")
    common.log_error(ctx, "boom")
    assert ctx.stderr.getvalue() == "INFO: clone: Cloning a in b\nERROR: clone: boom\n"


def test_failure_exit_code_and_plain_stderr():
    ctx = ctx_for("delete")

    def action(_ctx, _args):
        common.fail("Error deleting /x", 7)

    assert common.run_action(ctx, action, []) == 7
    assert ctx.stderr.getvalue() == "Error deleting /x\n"


def test_failure_legacy_protocol_markers():
    ctx = ctx_for("delete", legacy=True)
    assert common.run_action(ctx, lambda c, a: common.fail("Error deleting /x"), []) == 1
    assert ctx.stderr.getvalue() == "ERROR MESSAGE --8<------\nError deleting /x\nERROR MESSAGE ------>8--\n"


def test_unexpected_exception_is_a_failure_not_a_traceback():
    ctx = ctx_for("mv")
    assert common.run_action(ctx, lambda c, a: {}["missing"], []) == 1
    assert "mv: unexpected error: KeyError" in ctx.stderr.getvalue()


def test_registry_main_reads_rc_and_legacy_switch(tmp_path):
    rc_file = tmp_path / "nfs_sharedrc"
    rc_file.write_text("LEGACY_ERRORS=yes\n")
    err = io.StringIO()
    code = registry.main("nfs_shared", "clone", ["only-one-arg"], rc_path=str(rc_file), stderr=err)
    assert code == 1
    assert err.getvalue().startswith("ERROR MESSAGE --8<------\nclone: expected arguments")


def test_registry_main_unknown_action_and_bad_rc(tmp_path):
    err = io.StringIO()
    assert registry.main("nfs_shared", "no_such_action", [], stderr=err) == 1
    assert "Operation not supported" in err.getvalue()
    bad = tmp_path / "rc"
    bad.write_text("GOOD=1\nthis is not an assignment\n")
    err = io.StringIO()
    assert registry.main("nfs_shared", "premigrate", [], rc_path=str(bad), stderr=err) == 1
    assert "line 2" in err.getvalue()


# --------------------------------------------------------------------------- execution

def test_exec_and_log_returns_stdout():
    assert common.exec_and_log(ctx_for(), ["printf", "%s", "a b"]) == "a b"


def test_exec_and_log_failure_logs_command_and_raises_message():
    ctx = ctx_for("mkimage")
    with pytest.raises(TMError) as exc:
        common.exec_and_log(ctx, ["sh", "-c", "echo nope >&2; exit 3"], "Could not create image")
    assert exc.value.rc == 3 and exc.value.msg == "Could not create image"
    assert 'ERROR: mkimage: Command "sh -c \'echo nope >&2; exit 3\'" failed: nope' in ctx.stderr.getvalue()


def test_exec_refuses_shell_strings():
    with pytest.raises(TypeError):
        common.run_command("rm -rf /tmp/x")


def test_missing_binary_is_rc_127():
    rc, _out, err = common.run_command(["/nonexistent/binary"])
    assert rc == 127 and "/nonexistent/binary" in err


def test_timeout_exec_and_log_kills_the_process_group(tmp_path):
    marker = tmp_path / "survived"
    start = time.time()
    with pytest.raises(TMError) as exc:
        common.timeout_exec_and_log(ctx_for(), 0.5, ["sh", "-c", "sleep 3; touch %s" % marker])
    assert time.time() - start < 2.5
    assert exc.value.rc == 124
    time.sleep(3)
    assert not marker.exists()


# --------------------------------------------------------------------------- hosts

@pytest.mark.parametrize("host", ["node1", "node-1.example.com", "a", "10.0.0.1", "::1", "fe80::1", "[::1]",
                                  "host_underscore", "FQDN.example.org."])
def test_valid_hosts(host):
    assert common.is_valid_host(host)


@pytest.mark.parametrize("host", ["", "-oProxyCommand=x", "node1;id", "a b", "$(id)", "`id`", "h'q", "a..b",
                                  "user@host", "host:22", "x" * 64 + ".com", "-node"])
def test_invalid_hosts_rejected(host):
    assert not common.is_valid_host(host)
    with pytest.raises(TMError, match="Invalid host"):
        common.check_host(host)


def test_local_host_detection():
    assert common.is_local_host("")
    assert common.is_local_host("localhost")
    assert common.is_local_host("127.0.0.1")
    assert common.is_local_host("127.3.2.1")
    assert common.is_local_host("::1")
    assert common.is_local_host(socket.gethostname())
    assert common.is_local_host(socket.gethostname().upper())
    assert common.is_local_host(socket.getfqdn())
    assert not common.is_local_host("node-that-is-not-here")
    assert not common.is_local_host("192.0.2.10")


def test_local_shortcut_runs_without_ssh(tmp_path, fake_ssh):
    ctx = ctx_for(SSH=str(fake_ssh))
    out = common.ssh_exec_and_log(ctx, "localhost", ["echo", "local"])
    assert out.strip() == "local"
    assert ssh_hosts(fake_ssh) == []
    assert common.remote_argv(ctx, socket.gethostname(), ["true"]) == ["true"]


def test_remote_host_goes_through_ssh_with_options(tmp_path, fake_ssh):
    ctx = ctx_for(SSH=str(fake_ssh), SSH_OPTS="-p 2222 -o BatchMode=yes")
    argv = common.remote_argv(ctx, "node1", ["ls", "-l", "/a b"])
    assert argv == [str(fake_ssh), "-p", "2222", "-o", "BatchMode=yes", "--", "node1", "ls -l '/a b'"]
    assert common.ssh_exec_and_log(ctx, "node1", ["echo", "a  b"]).strip() == "a  b"
    assert ssh_hosts(fake_ssh) == ["node1"]


def test_local_shortcut_can_be_disabled(fake_ssh):
    ctx = ctx_for(SSH=str(fake_ssh), LOCAL_SHORTCUT="no")
    common.ssh_exec_and_log(ctx, "127.0.0.1", ["true"])
    assert ssh_hosts(fake_ssh) == ["127.0.0.1"]


def test_invalid_host_never_reaches_ssh(fake_ssh):
    ctx = ctx_for(SSH=str(fake_ssh))
    with pytest.raises(TMError, match="Invalid host"):
        common.ssh_exec_and_log(ctx, "-oProxyCommand=touch /tmp/x", ["true"])
    assert ssh_hosts(fake_ssh) == []


def test_ssh_make_path_local_and_remote(tmp_path, fake_ssh):
    ctx = ctx_for(SSH=str(fake_ssh))
    common.ssh_make_path(ctx, "", str(tmp_path / "a" / "b"))
    common.ssh_make_path(ctx, "node1", str(tmp_path / "c d" / "e"))
    assert (tmp_path / "a" / "b").is_dir() and (tmp_path / "c d" / "e").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(TMError, match="Error creating directory"):
        common.ssh_make_path(ctx, "", str(tmp_path / "file" / "sub"))


def test_ssh_script_passes_data_as_positional_parameters(fake_ssh):
    ctx = ctx_for(SSH=str(fake_ssh))
    out = common.ssh_script(ctx, "node1", 'printf "%s|" "$@"', ["a b", "$(id)", "'q'"])
    assert out == "a b|$(id)|'q'|"


# --------------------------------------------------------------------------- locking

def _hold(path, ready, release):
    with common.flock(path, timeout=5):
        ready.set()
        release.wait(10)


def test_flock_excludes_and_times_out(tmp_path):
    path = str(tmp_path / "lock")
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(target=_hold, args=(path, ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        start = time.time()
        with pytest.raises(TMError, match="Could not acquire exclusive lock"):
            with common.flock(path, timeout=0.3):
                pass
        assert 0.25 < time.time() - start < 5
    finally:
        release.set()
        proc.join(10)
    with common.flock(path, timeout=1):
        pass


def test_lock_for_falls_back_when_lock_dir_unusable(tmp_path):
    (tmp_path / "file").write_text("")
    ctx = ctx_for(LOCK_DIR=str(tmp_path / "file" / "locks"))
    with common.lock_for(ctx, "node1:/a b/c") as path:
        assert os.path.exists(path) and " " not in os.path.basename(path)


# --------------------------------------------------------------------------- rc files

def test_parse_rc_shell_syntax():
    text = '# comment\nSSH_OPTS="-p 2222 -o BatchMode=yes"\nexport QCOW2_OVERLAY=yes\nEMPTY=\nQUOTED=\'a b\'  # tail\n'
    assert tm_rc.parse_rc(text) == {"SSH_OPTS": "-p 2222 -o BatchMode=yes", "QCOW2_OVERLAY": "yes",
                                    "EMPTY": "", "QUOTED": "a b"}


def test_parse_rc_names_the_bad_line():
    with pytest.raises(tm_rc.RcError, match="line 2"):
        tm_rc.parse_rc("A=1\nB = 2\n")
    with pytest.raises(tm_rc.RcError, match="line 1"):
        tm_rc.parse_rc('A="unterminated\n')


def test_render_and_update_rc_round_trip():
    text = tm_rc.render_rc({"SSH_OPTS": "-p 22 -o X=y", "A": "plain"}, header="hello")
    assert text.startswith("# hello\n")
    assert tm_rc.parse_rc(text) == {"SSH_OPTS": "-p 22 -o X=y", "A": "plain"}
    edited = "# operator note\nA=plain\nCUSTOM=kept\n"
    updated = tm_rc.update_rc(edited, {"A": "new value", "B": "2"})
    assert updated == "# operator note\nA='new value'\nCUSTOM=kept\nB=2\n"


def test_read_rc_missing_file_is_empty(tmp_path):
    assert tm_rc.read_rc(str(tmp_path / "nope")) == {}


def test_mapping_file_matches_opennebula_3_format():
    real = tm_rc.parse_mapping((FIXTURES / "rc" / "tm_shared-3.0.conf").read_text())
    assert real["CLONE"] == "shared/tm_clone.sh"
    actions = ["clone", "ln", "mkswap", "mkimage", "delete", "mv", "context"]
    ours = tm_rc.parse_mapping(tm_rc.render_mapping("shared", actions))
    assert ours == real
