"""Helpers for the scenarios that run real oned (shared/oned.yml): the OpenNebula CLI as oneadmin on a
front-end, XML parsed, and waits on oned's states. A scenario's tests/conftest.py binds them to its front-end:

    sys.path.insert(0, <this directory>)
    from lab_oned import OneCLI
    CLI = OneCLI(testinfra.get_host("podman://NAME-fe"))
"""
import time
import xml.etree.ElementTree as ET

# VM states and LCM states of OpenNebula 7.4 (include/VirtualMachine.h)
PENDING, HOLD, ACTIVE, STOPPED, DONE, POWEROFF, UNDEPLOYED = 1, 2, 3, 4, 6, 8, 9
RUNNING = 3
# LCM states that mean a driver action failed: BOOT_FAILURE (36) to EPILOG_UNDEPLOY_FAILURE (42),
# PROLOG_MIGRATE_POWEROFF_FAILURE (44), PROLOG_MIGRATE_SUSPEND_FAILURE (46) to PROLOG_UNDEPLOY_FAILURE (50),
# PROLOG_MIGRATE_UNKNOWN_FAILURE (61).
FAILURE_LCM = {36, 37, 38, 39, 40, 41, 42, 44, 46, 47, 48, 49, 50, 61}

# oned's environment in the lab's self-contained install (lab/oned), for running driver actions as oned does
ONED_ENV = ("HOME=/var/lib/one ONE_LOCATION=/opt/one ONE_AUTH=/var/lib/one/.one/one_auth RUBYLIB=/opt/one/lib/ruby "
            "PATH=/opt/one/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")


def as_oneadmin(node, command, *args, stdin=None):
    """Run ``command`` (a format with %s for ``args``) as oneadmin on ``node`` (a testinfra host), in oned's
    environment, ``stdin`` from a file; returns its stdout."""
    res = node.run("runuser -u oneadmin -- env " + ONED_ENV + " sh -c %s" + (" < %s" % stdin if stdin else ""),
                   command % tuple(args) if args else command)
    assert res.rc == 0, (command, res.stdout, res.stderr)
    return res.stdout


def wait(what, probe, timeout=300, interval=1):
    """Poll probe() until it returns a true value; fail naming what was awaited and the last value."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class OneCLI:
    """The OpenNebula CLI of one front-end (a testinfra host), run as oneadmin."""

    def __init__(self, fe):
        self.fe = fe

    def one(self, *argv, check=True):
        """Run an OpenNebula CLI command as oneadmin on the front-end."""
        # ONE_XMLRPC_TIMEOUT: oned answers an allocate only after the driver's stat, which can take
        # over a minute on a loaded 2-core machine (the CLI's default read timeout is 60 s).
        cmd = self.fe.run("runuser -u oneadmin -- env HOME=/var/lib/one ONE_XMLRPC_TIMEOUT=600 "
                          + " ".join(["%s"] * len(argv)), *argv)
        if check:
            assert cmd.rc == 0, (argv, cmd.stdout, cmd.stderr)
        return cmd

    def xml(self, *argv):
        return ET.fromstring(self.one(*argv, "-x").stdout)

    def new_id(self, *argv):
        """Run a create/instantiate command and return the ID it prints ("ID: 12")."""
        return int(self.one(*argv).stdout.split(":")[1])

    def ds_id(self, name):
        return int(self.xml("onedatastore", "show", name).findtext("ID"))

    def remove_stale(self, kind, name):
        """Delete an object left by an interrupted run (oned refuses a second one of the same name)."""
        if self.one(kind, "show", name, check=False).rc == 0:
            # an image whose copy was cut short stays LOCKED: only --force deletes it
            self.one(kind, "delete", *(["--force"] if kind == "oneimage" else []), name)
            wait("stale %s %s gone" % (kind, name), lambda: self.one(kind, "show", name, check=False).rc != 0)

    def vm_state(self, vmid):
        doc = self.xml("onevm", "show", str(vmid))
        return int(doc.findtext("STATE")), int(doc.findtext("LCM_STATE"))

    def vm_host(self, vmid):
        return self.xml("onevm", "show", str(vmid)).findtext("HISTORY_RECORDS/HISTORY[last()]/HOSTNAME")

    def vm_ds(self, vmid):
        """The system datastore the VM is on (its last history record's DS_ID)."""
        return int(self.xml("onevm", "show", str(vmid)).findtext("HISTORY_RECORDS/HISTORY[last()]/DS_ID"))

    def wait_vm(self, vmid, state, lcm=None, timeout=300):
        """Wait for a VM state; a FAILURE LCM state fails at once, with the error oned recorded."""
        def probe():
            doc = self.xml("onevm", "show", str(vmid))
            now, lcm_now = int(doc.findtext("STATE")), int(doc.findtext("LCM_STATE"))
            if now == ACTIVE and lcm_now in FAILURE_LCM:
                raise AssertionError("VM %s went to LCM state %d: %s" % (
                    vmid, lcm_now, doc.findtext("USER_TEMPLATE/ERROR")))
            return (now, lcm_now) if now == state and (lcm is None or lcm_now == lcm) else None
        return wait("VM %s in state %s/%s" % (vmid, state, lcm), probe, timeout)

    def resume_on(self, vmid, host, system_ds):
        """resume of an undeployed or stopped VM makes it PENDING. oned's scheduler places it when it gets to it
        (seconds, or minutes on a busy lab), so deploy it to ``host`` here unless the scheduler was first.
        Returns the host it runs on."""
        self.one("onevm", "resume", str(vmid))
        wait("VM %d pending or placed" % vmid,
             lambda: int(self.xml("onevm", "show", str(vmid)).findtext("STATE")) in (PENDING, ACTIVE))
        res = self.one("onevm", "deploy", str(vmid), host, str(system_ds), check=False)
        assert res.rc == 0 or "not available for state" in res.stderr, res.stderr
        self.wait_vm(vmid, ACTIVE, RUNNING)
        return self.vm_host(vmid)

    def backup_through_drivers(self, vmid, *, tm_mad, host, vm_dir,  # pylint: disable=too-many-arguments,too-many-locals
                               system_ds, backup_ds, rsync_node, workdir, check_prebackup, check_stored):
        """A full backup of powered-off VM ``vmid`` (disk 0) as the KVM driver makes it, then registered by oned.

        The lab's oned runs the dummy VM driver, whose backup answers at once without the three steps of the KVM
        driver (one_vmm_exec.rb: TM prebackup, the datastore's backup, TM postbackup). So these steps run here as
        the KVM driver runs them (its argv, the VM's XML on stdin) on the front-end: ``tm_mad``'s prebackup, the
        stock rsync datastore's backup, ``tm_mad``'s postbackup. Then ``onevm backup`` registers the backup image,
        and the backup on ``rsync_node`` is renamed to that image's SOURCE (``dummy-backup-id``, the dummy
        driver's answer), where the rsync driver's ``ls``, ``downloader.sh`` and ``rm`` look for it.

        ``host`` is ``(name, testinfra host)`` of the VM's host, ``vm_dir`` the VM's directory there, ``workdir`` a
        directory on the front-end that oneadmin can read. ``check_prebackup(path)`` checks the disk prebackup
        left on the host, ``check_stored(path)`` the disk the backup stored on ``rsync_node``. Returns the backup
        image's id, its SOURCE and the VM's backup directory on ``rsync_node``.
        """
        host_name, host_node = host
        deploy_id = self.xml("onevm", "show", str(vmid)).findtext("DEPLOY_ID")
        self.fe.check_output("runuser -u oneadmin -- env HOME=/var/lib/one onevm show -x %s > %s/vm.xml",
                             str(vmid), workdir)
        ds_text = self.one("onedatastore", "show", "-x", str(backup_ds)).stdout
        vm_text = self.fe.file(workdir + "/vm.xml").content_string
        self.fe.check_output("printf %%s %s > %s/action.xml",
                             "<DS_DRIVER_ACTION_DATA>%s%s</DS_DRIVER_ACTION_DATA>" % (ds_text, vm_text), workdir)
        # TM_COMMAND of oned's backup: BACKUP TM_MAD host:VM_DIR DISK_IDS DEPLOY_ID BJ_ID VM_ID DS_ID (the image disk)
        args = "%s:%s 0 %s - %d %d" % (host_name, vm_dir, deploy_id, vmid, system_ds)
        remotes = "/var/lib/one/remotes"
        as_oneadmin(self.fe, "%s/tm/%s/prebackup %s", remotes, tm_mad, args, stdin=workdir + "/vm.xml")
        check_prebackup(vm_dir + "/backup/disk.0.0")
        out = as_oneadmin(self.fe, "%s/datastore/rsync/backup %s", remotes, args, stdin=workdir + "/action.xml")
        backup_id = out.split()[0]
        as_oneadmin(self.fe, "%s/tm/%s/postbackup %s", remotes, tm_mad, args, stdin=workdir + "/vm.xml")
        assert not host_node.file(vm_dir + "/backup").exists
        stored = "/var/lib/one/datastores/%d/%d" % (backup_ds, vmid)
        check_stored("%s/%s/disk.0.0" % (stored, backup_id))
        # oned registers the backup image (the dummy driver's id)
        self.one("onevm", "backup", "-d", str(backup_ds), str(vmid))
        iid = wait("backup image", lambda: self.xml("onevm", "show", str(vmid)).findtext("BACKUPS/BACKUP_IDS/ID"),
                   120)
        wait("backup image READY", lambda: self.xml("oneimage", "show", iid).findtext("STATE") == "1", 120)
        self.wait_vm(vmid, POWEROFF)
        source = self.xml("oneimage", "show", iid).findtext("SOURCE")
        as_oneadmin(rsync_node, "mv %s/%s %s/%s", stored, backup_id, stored, source)
        return iid, source, stored
