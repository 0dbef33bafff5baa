"""Helpers for the real-oned scenario: the OpenNebula CLI as oneadmin on the front-end, XML parsed."""
import time
import xml.etree.ElementTree as ET

import testinfra

FE = testinfra.get_host("podman://olc-fe")
H1 = testinfra.get_host("podman://olc-h1")
H2 = testinfra.get_host("podman://olc-h2")
HOSTS = {"olc-h1": H1, "olc-h2": H2}
DATASTORES = "/var/lib/one/datastores"

# VM states and LCM states of OpenNebula 7.4 (include/VirtualMachine.h)
PENDING, HOLD, ACTIVE, STOPPED, DONE, POWEROFF, UNDEPLOYED = 1, 2, 3, 4, 6, 8, 9
RUNNING = 3


def one(*argv, check=True):
    """Run an OpenNebula CLI command as oneadmin on the front-end."""
    # ONE_XMLRPC_TIMEOUT: oned answers an allocate only after the driver's stat, which can take
    # over a minute on a loaded 2-core machine (the CLI's default read timeout is 60 s).
    cmd = FE.run("runuser -u oneadmin -- env HOME=/var/lib/one ONE_XMLRPC_TIMEOUT=600 "
                 + " ".join(["%s"] * len(argv)), *argv)
    if check:
        assert cmd.rc == 0, (argv, cmd.stdout, cmd.stderr)
    return cmd


def xml(*argv):
    return ET.fromstring(one(*argv, "-x").stdout)


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


def remove_stale(kind, name):
    """Delete an object left by an interrupted run (oned refuses a second one of the same name)."""
    if one(kind, "show", name, check=False).rc == 0:
        # an image whose copy was cut short stays LOCKED: only --force deletes it
        one(kind, "delete", *(["--force"] if kind == "oneimage" else []), name)
        wait("stale %s %s gone" % (kind, name), lambda: one(kind, "show", name, check=False).rc != 0)


def vm_state(vmid):
    doc = xml("onevm", "show", str(vmid))
    return int(doc.findtext("STATE")), int(doc.findtext("LCM_STATE"))


def wait_vm(vmid, state, lcm=None, timeout=300):
    """Wait for a VM state; a FAILURE LCM state or an ERROR in the VM's template fails at once."""
    def probe():
        doc = xml("onevm", "show", str(vmid))
        now, lcm_now = int(doc.findtext("STATE")), int(doc.findtext("LCM_STATE"))
        if now == ACTIVE and lcm_now in FAILURE_LCM:
            raise AssertionError("VM %s went to LCM state %d: %s" % (
                vmid, lcm_now, doc.findtext("USER_TEMPLATE/ERROR")))
        return (now, lcm_now) if now == state and (lcm is None or lcm_now == lcm) else None
    return wait("VM %s in state %s/%s" % (vmid, state, lcm), probe, timeout)


# LCM states that mean a driver action failed: BOOT_FAILURE (36) to EPILOG_UNDEPLOY_FAILURE (42),
# PROLOG_MIGRATE_POWEROFF_FAILURE (44), PROLOG_MIGRATE_SUSPEND_FAILURE (46) to PROLOG_UNDEPLOY_FAILURE (50),
# PROLOG_MIGRATE_UNKNOWN_FAILURE (61).
FAILURE_LCM = {36, 37, 38, 39, 40, 41, 42, 44, 46, 47, 48, 49, 50, 61}
