"""Emulating test double of virsh for libvirt's checkpoints and pull-mode backups (changed block tracking).

It is a template: the differential suite installs ``SCRIPT % {"log": ..., "mnt": ...}`` as ``virsh`` on every
machine (see ``test_backup_cbt_live``). It logs its argv and the XML files it is given (``--xmlfile``,
``--backupxml``, ``--checkpointxml``, blanks between tags removed) as the recording virsh does, then does to the
domain's disk files what libvirt does to a running domain's, with the real qemu-img and qemu-nbd:

* ``checkpoint-create``: adds the checkpoint's persistent bitmap to each of its disks (``--redefine``: checks that
  it is there, as libvirt does, and only records the checkpoint); ``checkpoint-list --name``; ``checkpoint-delete``:
  removes the bitmap (``--metadata``: only the record). Every bitmap stays enabled, as libvirt keeps them since 6.x,
  so ``one-<VM>-<N>`` holds what was written since checkpoint N;
* ``backup-begin`` in pull mode: creates the new checkpoint, then exports the disk read-only over NBD on the
  backup's unix socket (export name the disk's target), with the temporary bitmap ``backup-<target>`` holding the
  changes since the ``<incremental>`` checkpoint; ``domjobinfo`` shows the job; ``domjobabort`` stops the export and
  removes the temporary bitmap;
* every other subcommand is only logged (exit 0), as the recording virsh.

What it does not emulate: a guest (the tests write to the disks with qemu-io between backups), external snapshots
(``snapshot-create-as`` and ``blockcommit --active`` change no file: the guest's writes go to the disk itself, which
carries the bitmaps), and a backup of more than one disk (qemu-nbd serves one export a socket; it fails).

The domain ``one-<VM_ID>``'s disks are read as libvirt reads its definition: from the VM's XML the CLI doubles
print (``onevm-<VM_ID>.xml`` next to the log), ``MNT/datastores/<DS_ID of the last history>/<VM_ID>/disk.<DISK_ID>``
for each TARGET. Its state (checkpoints, the running job) is ``virsh-cbt.json`` next to the log.
"""

SCRIPT = r'''#!/usr/bin/python3
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

LOG = %(log)r
MNT = %(mnt)r
FAKE = os.path.dirname(LOG)
STATE = os.path.join(FAKE, "virsh-cbt.json")
VALUED = ("--connect", "-c", "--xmlfile", "--backupxml", "--checkpointxml", "--checkpointname", "--top", "--base",
          "--path", "--dest", "--format", "--diskspec", "--snapshotname", "--timeout", "--bandwidth")


def log(line):
    with open(LOG, "a") as handle:
        handle.write(line + "\n")


def die(msg):
    sys.stderr.write("error: %%s\n" %% msg)
    sys.exit(1)


def run(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if proc.returncode:
        die("%%s: %%s" %% (" ".join(argv), proc.stderr.strip()))
    return proc.stdout


def load():
    try:
        with open(STATE) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {"checkpoints": {}, "jobs": {}}


def save(state):
    with open(STATE, "w") as handle:
        json.dump(state, handle)


def disks(dom):
    match = re.match(r"^one-([0-9]+)$", dom or "")
    if not match:
        die("failed to get domain '%%s'" %% dom)
    vid = match.group(1)
    doc = ET.parse(os.path.join(FAKE, "onevm-%%s.xml" %% vid)).getroot()
    ds = doc.findall("./HISTORY_RECORDS/HISTORY")[-1].findtext("DS_ID")
    return dict((d.findtext("TARGET"), os.path.join(MNT, "datastores", ds, vid, "disk.%%s" %% d.findtext("DISK_ID")))
                for d in doc.findall("./TEMPLATE/DISK"))


def bitmaps(path):
    info = json.loads(run(["qemu-img", "info", "-U", "--output=json", path]))
    return [b["name"] for b in ((info.get("format-specific") or {}).get("data") or {}).get("bitmaps") or []]


def checkpoint_disks(doc, dom):
    names = [d.get("name") for d in doc.findall("./disks/disk") if d.get("checkpoint", "bitmap") != "no"]
    table = disks(dom)
    if not doc.findall("./disks/disk"):
        names = sorted(table)
    for name in names:
        if name not in table:
            die("invalid argument: no disk named '%%s'" %% name)
    return [(name, table[name]) for name in names]


def create_checkpoint(state, dom, path, redefine):
    doc = ET.parse(path).getroot()
    name = doc.findtext("name")
    listed = state["checkpoints"].setdefault(dom, [])
    for target, disk in checkpoint_disks(doc, dom):
        if redefine:
            if name not in bitmaps(disk):
                die("invalid argument: missing or broken bitmap '%%s' for disk '%%s'" %% (name, target))
        elif name in listed:
            die("operation failed: domain checkpoint %%s already exists" %% name)
        else:
            run(["qemu-img", "bitmap", "-f", "qcow2", "--add", disk, name])
    if name not in listed:
        listed.append(name)


def stop_job(job):
    try:
        os.kill(job["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    for _ in range(100):
        try:
            os.kill(job["pid"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    if os.path.exists(job["socket"]):
        os.unlink(job["socket"])
    for disk, name in job["bitmaps"]:
        run(["qemu-img", "bitmap", "-f", "qcow2", "--remove", disk, name])


def main(argv):
    log("virsh " + " ".join(argv))
    sub, opts, args, flags, i = None, {}, [], set(), 0
    while i < len(argv):
        item = argv[i]
        if item in VALUED or (item == "--name" and sub == "snapshot-create-as"):
            opts[item] = argv[i + 1]
            i += 2
            continue
        if item.startswith("-"):
            flags.add(item)
        elif sub is None:
            sub = item
        else:
            args.append(item)
        i += 1
    for key in ("--xmlfile", "--backupxml", "--checkpointxml"):
        if key in opts:
            with open(opts[key]) as handle:
                text = handle.read().replace("\n", " ")
            log("virsh-xml " + re.sub(r">\s*<", "><", text).strip())
    dom = args[0] if args else None
    state = load()
    if sub == "checkpoint-list":
        print("\n".join(state["checkpoints"].get(dom, [])) + "\n")
    elif sub == "checkpoint-create":
        create_checkpoint(state, dom, opts["--xmlfile"], "--redefine" in flags)
    elif sub == "checkpoint-delete":
        name = opts.get("--checkpointname") or (args[1] if len(args) > 1 else None)
        listed = state["checkpoints"].get(dom, [])
        if name not in listed:
            die("Domain checkpoint not found: no domain checkpoint with matching name '%%s'" %% name)
        if "--metadata" not in flags:
            for disk in disks(dom).values():
                if os.path.exists(disk) and name in bitmaps(disk):
                    run(["qemu-img", "bitmap", "-f", "qcow2", "--remove", disk, name])
        listed.remove(name)
    elif sub == "backup-begin":
        if dom in state["jobs"]:
            die("Operation not supported: another backup job is already running")
        doc = ET.parse(opts["--backupxml"]).getroot()
        if doc.get("mode") != "pull":
            die("the emulating virsh does pull-mode backups only")
        incremental = doc.findtext("incremental")
        socket = doc.find("server").get("socket")
        table = disks(dom)
        chosen = [d.get("name") for d in doc.findall("./disks/disk") if d.get("backup", "yes") == "yes"]
        if len(chosen) != 1:
            die("the emulating virsh exports one disk a backup (qemu-nbd), not %%d" %% len(chosen))
        target = chosen[0]
        disk = table[target]
        if incremental and incremental not in state["checkpoints"].get(dom, []):
            die("invalid argument: missing or broken bitmap '%%s' for disk '%%s'" %% (incremental, target))
        if "--checkpointxml" in opts:
            create_checkpoint(state, dom, opts["--checkpointxml"], False)
        job = {"socket": socket, "bitmaps": []}
        command = ["qemu-nbd", "-r", "-t", "-k", socket, "-x", target, "-f", "qcow2"]
        if incremental:
            temp = "backup-" + target
            run(["qemu-img", "bitmap", "-f", "qcow2", "--add", "--merge", incremental, disk, temp])
            job["bitmaps"].append([disk, temp])
            command += ["-B", temp]
        pid_file = os.path.join(FAKE, "virsh-nbd.pid")
        if os.path.exists(socket):
            os.unlink(socket)
        subprocess.run(command + ["--pid-file", pid_file, "--fork", disk], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(pid_file) as handle:
            job["pid"] = int(handle.read().strip())
        os.unlink(pid_file)
        state["jobs"][dom] = job
    elif sub == "domjobinfo":
        if dom in state["jobs"]:
            print("Job type:         Unbounded\nOperation:        Backup\nTime elapsed:     1 ms\n")
        else:
            print("Job type:         None\n")
    elif sub == "domjobabort":
        job = state["jobs"].pop(dom, None)
        if job is None:
            die("Requested operation is not valid: no job is active on the domain")
        stop_job(job)
    save(state)


if __name__ == "__main__":
    main(sys.argv[1:])
'''


def stop_all(state_file):
    """Stop what a failed test left running (the exports of unfinished jobs)."""
    import json  # pylint: disable=import-outside-toplevel
    import os  # pylint: disable=import-outside-toplevel
    import signal  # pylint: disable=import-outside-toplevel
    try:
        with open(state_file) as handle:
            jobs = json.load(handle).get("jobs", {})
    except (OSError, ValueError):
        return
    for job in jobs.values():
        try:
            os.kill(job["pid"], signal.SIGTERM)
        except (OSError, KeyError, TypeError):
            pass
