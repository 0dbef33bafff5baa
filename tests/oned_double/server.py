# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TEST DOUBLE of OpenNebula's oned XML-RPC API. This is NOT oned.

oned has no Debian or PyPI package, so the modules ``nebula.storage.one_datastore``
and ``nebula.storage.one_host_attributes`` are tested at the process boundary
against this server. It is test code only and is never shipped in ``plugins/``.

It answers a handful of methods (datastores, clusters, hosts) with the response
shapes of OpenNebula's XML-RPC reference (6.x/7.x): ``[success, body, error_code]``
on success and ``[false, message, error_code, object_id]`` on failure, and pool
XML following ``share/doc/xsd/datastore.xsd`` and ``host.xsd``. It keeps state
between calls (optionally in a JSON file), checks the session string
``user:password`` and rejects TM_MAD/DS_MAD drivers that are not configured,
with oned's wording (src/rm/Request.cc failure_message(),
src/datastore/Datastore.cc set_tm_mad()/set_ds_mad()/insert()/
post_update_template(), src/datastore/DatastorePool.cc).

What it does not do: ACLs, quotas, monitoring, images/VMs (image IDs can be
seeded to make a datastore non-empty), federation, gRPC.

Run it standalone (stdlib only, Python >= 3.8)::

    python3 tests/oned_double/server.py --port 2633 --auth oneadmin:secret --state /var/lib/oned-double/state.json
    python3 -m tests.oned_double --port 0 --auth oneadmin:secret --port-file /tmp/port
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import threading
import xml.etree.ElementTree as ET
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

# Error codes (OpenNebula docs "XML-RPC API"; include/Request.h).
AUTHENTICATION = 0x0100
AUTHORIZATION = 0x0200
NO_EXISTS = 0x0400
ACTION = 0x0800
XML_RPC_API = 0x1000
INTERNAL = 0x2000
ALLOCATE = 0x4000

# Stock drivers of OpenNebula 7.4 (etc/oned.conf, TM_MAD_CONF / DS_MAD_CONF).
# Test data, typed from the shipped configuration; load a real oned.conf with
# --oned-conf to use exactly what a given release ships.
STOCK_TM_MAD_CONF = {
    "dummy": dict(LN_TARGET="NONE", CLONE_TARGET="SYSTEM", SHARED="YES", DS_MIGRATE="YES", DS_LIVE_MIGRATE="YES", DS_MIGRATE_SNAP="YES"),
    "shared": dict(LN_TARGET="NONE", CLONE_TARGET="SYSTEM", SHARED="YES", TM_MAD_SYSTEM="ssh", LN_TARGET_SSH="SYSTEM",
                   CLONE_TARGET_SSH="SYSTEM", DISK_TYPE_SSH="FILE", ALLOW_ORPHANS="FORMAT", DS_MIGRATE="YES",
                   DS_LIVE_MIGRATE="YES", DS_MIGRATE_SNAP="YES"),
    "lvm": dict(LN_TARGET="NONE", CLONE_TARGET="SELF", SHARED="YES", DRIVER="raw", DISK_TYPE="BLOCK", ALLOW_ORPHANS="YES",
                DS_MIGRATE="YES", DS_LIVE_MIGRATE="NO", DS_MIGRATE_SNAP="NO"),
    "fs_lvm": dict(LN_TARGET="SYSTEM", CLONE_TARGET="SYSTEM", SHARED="YES", DRIVER="raw", DISK_TYPE="BLOCK", DS_MIGRATE="YES",
                   DS_LIVE_MIGRATE="NO", DS_MIGRATE_SNAP="NO"),
    "fs_lvm_ssh": dict(LN_TARGET="SYSTEM", CLONE_TARGET="SYSTEM", SHARED="YES", DRIVER="raw", DISK_TYPE="BLOCK",
                       PERSISTENT_SNAPSHOTS="NO", ALLOW_ORPHANS="YES", DS_MIGRATE="YES", DS_LIVE_MIGRATE="YES", DS_MIGRATE_SNAP="NO"),
    "qcow2": dict(LN_TARGET="NONE", CLONE_TARGET="SYSTEM", SHARED="YES", TM_MAD_SYSTEM="ssh", LN_TARGET_SSH="SYSTEM",
                  CLONE_TARGET_SSH="SYSTEM", DISK_TYPE_SSH="FILE", DRIVER="qcow2", ALLOW_ORPHANS="FORMAT", DS_MIGRATE="YES",
                  DS_LIVE_MIGRATE="YES", DS_MIGRATE_SNAP="YES"),
    "ssh": dict(LN_TARGET="SYSTEM", CLONE_TARGET="SYSTEM", SHARED="NO", ALLOW_ORPHANS="YES", DS_MIGRATE="YES", DS_LIVE_MIGRATE="YES",
                DS_MIGRATE_SNAP="YES"),
    "local": dict(LN_TARGET="SYSTEM", CLONE_TARGET="SYSTEM", SHARED="NO", ALLOW_ORPHANS="FORMAT", DS_MIGRATE="YES",
                  DS_LIVE_MIGRATE="YES", DS_MIGRATE_SNAP="YES"),
    "ceph": dict(LN_TARGET="NONE", CLONE_TARGET="SELF", SHARED="YES", DRIVER="raw", ALLOW_ORPHANS="mixed", TM_MAD_SYSTEM="ssh",
                 LN_TARGET_SSH="SYSTEM", CLONE_TARGET_SSH="SYSTEM", DISK_TYPE_SSH="FILE", DS_MIGRATE="NO", DS_LIVE_MIGRATE="NO",
                 DS_MIGRATE_SNAP="NO"),
    "iscsi_libvirt": dict(LN_TARGET="NONE", CLONE_TARGET="SELF", SHARED="YES", DRIVER="raw", DS_MIGRATE="NO", DS_LIVE_MIGRATE="NO",
                          DS_MIGRATE_SNAP="NO"),
    "dev": dict(LN_TARGET="NONE", CLONE_TARGET="NONE", SHARED="YES", DRIVER="raw", DS_MIGRATE="NO", DS_LIVE_MIGRATE="NO",
                DS_MIGRATE_SNAP="NO"),
    "netapp": dict(LN_TARGET="NONE", CLONE_TARGET="SELF", SHARED="YES", DRIVER="raw", DISK_TYPE="BLOCK", ALLOW_ORPHANS="LINEAR",
                   DS_MIGRATE="NO", DS_LIVE_MIGRATE="NO", DS_MIGRATE_SNAP="NO"),
    "purefa": dict(LN_TARGET="NONE", CLONE_TARGET="SELF", SHARED="YES", DRIVER="raw", DISK_TYPE="BLOCK", ALLOW_ORPHANS="YES",
                   DS_MIGRATE="NO", DS_LIVE_MIGRATE="NO", DS_MIGRATE_SNAP="NO"),
    "virtiofs": dict(LN_TARGET="NONE", CLONE_TARGET="NONE", SHARED="YES", DRIVER="virtiofs", DISK_TYPE="filesystem",
                     DS_MIGRATE="NO", DS_LIVE_MIGRATE="NO", DS_MIGRATE_SNAP="NO"),
}
STOCK_DS_MAD_CONF = {
    "ceph": dict(REQUIRED_ATTRS="DISK_TYPE,BRIDGE_LIST", PERSISTENT_ONLY="NO", MARKETPLACE_ACTIONS="export"),
    "dev": dict(REQUIRED_ATTRS="DISK_TYPE", PERSISTENT_ONLY="YES"),
    "iscsi_libvirt": dict(REQUIRED_ATTRS="DISK_TYPE,ISCSI_HOST", PERSISTENT_ONLY="YES"),
    "dummy": dict(REQUIRED_ATTRS="", PERSISTENT_ONLY="NO"),
    "fs": dict(REQUIRED_ATTRS="", PERSISTENT_ONLY="NO", MARKETPLACE_ACTIONS="export"),
    "lvm": dict(REQUIRED_ATTRS="", PERSISTENT_ONLY="NO"),
    "restic": dict(REQUIRED_ATTRS="RESTIC_PASSWORD", PERSISTENT_ONLY="YES"),
    "rsync": dict(REQUIRED_ATTRS="RSYNC_HOST,RSYNC_USER", PERSISTENT_ONLY="YES"),
    "netapp": dict(PERSISTENT_ONLY="NO",
                   REQUIRED_ATTRS="NETAPP_HOST,NETAPP_USER,NETAPP_PASS,NETAPP_AGGREGATES,NETAPP_SVM,NETAPP_IGROUP,NETAPP_TARGET"),
    "purefa": dict(PERSISTENT_ONLY="NO", REQUIRED_ATTRS="PUREFA_HOST,PUREFA_API_TOKEN,PUREFA_TARGET"),
    "virtiofs": dict(REQUIRED_ATTRS="", PERSISTENT_ONLY="NO", DATASTORE_CAPACITY_CHECK="NO"),
    "interactive": dict(REQUIRED_ATTRS="", PERSISTENT_ONLY="NO", DATASTORE_CAPACITY_CHECK="NO"),
}

DS_TYPES = {"IMAGE_DS": 0, "SYSTEM_DS": 1, "FILE_DS": 2, "BACKUP_DS": 3}
DS_TYPE_NAMES = {v: k for k, v in DS_TYPES.items()}
DISK_TYPES = {"FILE": 0, "CDROM": 1, "BLOCK": 2, "RBD": 3, "RBD_CDROM": 4, "GLUSTER": 5, "GLUSTER_CDROM": 6,
              "SHEEPDOG": 7, "SHEEPDOG_CDROM": 8, "ISCSI": 9, "FILESYSTEM": 10}
DISK_TYPE_NAMES = {v: k for k, v in DISK_TYPES.items()}
TARGET_TYPES = ("NONE", "SELF", "SYSTEM")


class OnedFailure(Exception):
    def __init__(self, code, text, oid=-1):
        super().__init__(text)
        self.code = code
        self.text = text
        self.oid = oid


# ---------------------------------------------------------------------------
# Templates: list of [KEY, value]; value is a str or a list of [KEY, str].
# Independent of plugins/module_utils on purpose: the double must not share
# code with what it tests. Follows src/parsers/template_parser.l.
# ---------------------------------------------------------------------------
_TOKENS = re.compile(r'(?P<e>[ \t]*=[ \t]*\n)|(?P<ws>\s+)|(?P<comment>#[^\n]*)|(?P<q>"(?:\\"|[^"])*")|(?P<p>[=,\[\]])|(?P<w>[^=#\s,\[\]"]+)')


# Datastore::post_update_template (OpenNebula 7.4): unchangeable while a datastore holds images.
RO_WITH_IMAGES = ("LVM_THIN_ENABLE", "NFS_AUTO_ENABLE", "NFS_AUTO_HOST", "NFS_AUTO_PATH", "NFS_AUTO_OPTS")


def parse_text_template(text):
    toks = []
    pos = 0
    while pos < len(text):
        m = _TOKENS.match(text, pos)
        if not m:
            raise ValueError(f"syntax error, unexpected character at offset {pos}")
        pos = m.end()
        if m.lastgroup in ("ws", "comment"):
            continue
        v = m.group(m.lastgroup)
        if m.lastgroup == "q":
            v = v[1:-1].replace('\\"', '"')
        toks.append((m.lastgroup, v))
    out, i = [], 0

    def value(j):
        if j < len(toks) and toks[j][0] in ("q", "w"):
            return toks[j][1], j + 1
        return "", j

    while i < len(toks):
        if toks[i][0] == "w" and i + 1 < len(toks) and toks[i + 1][0] == "e":
            out.append([toks[i][1].upper(), ""])
            i += 2
            continue
        if toks[i][0] != "w" or i + 1 >= len(toks) or toks[i + 1] != ("p", "="):
            raise ValueError(f"syntax error, unexpected {toks[i][1]!r}")
        key = toks[i][1].upper()
        i += 2
        if i < len(toks) and toks[i] == ("p", "["):
            i += 1
            vec = []
            while i < len(toks) and toks[i] != ("p", "]"):
                if toks[i] == ("p", ","):
                    i += 1
                    continue
                sub = toks[i][1].upper()
                if i + 1 >= len(toks) or toks[i + 1] != ("p", "="):
                    raise ValueError(f"syntax error in vector {key}")
                v, i = value(i + 2)
                vec.append([sub, v])
            if i >= len(toks):
                raise ValueError(f"syntax error, vector {key} not closed")
            i += 1
            out.append([key, vec])
        else:
            v, i = value(i)
            out.append([key, v])
    return out


def parse_any_template(text):
    if text.lstrip().startswith("<"):
        try:
            root = ET.fromstring(text)
        except ET.ParseError as e:
            raise ValueError(f"Error parsing XML template: {e}") from None
        if root.tag != "TEMPLATE":
            raise ValueError("Error parsing XML template: root element must be TEMPLATE")
        out = []
        for child in root:
            if len(child):
                out.append([child.tag.upper(), [[s.tag.upper(), s.text or ""] for s in child]])
            else:
                out.append([child.tag.upper(), child.text or ""])
        return out
    return parse_text_template(text)


def tget(tmpl, key, default=""):
    for k, v in tmpl:
        if k == key and isinstance(v, str):
            return v
    return default


def tremove(tmpl, key):
    tmpl[:] = [kv for kv in tmpl if kv[0] != key]


def treplace(tmpl, key, value):
    for i, kv in enumerate(tmpl):
        if kv[0] == key:
            tmpl[i] = [key, value]
            tmpl[i + 1:] = [x for x in tmpl[i + 1:] if x[0] != key]
            return
    tmpl.append([key, value])


def tmerge(tmpl, new):
    # Template::merge: attributes in the new template replace the old ones of the same name.
    names = {k for k, unused in new}
    return [kv for kv in tmpl if kv[0] not in names] + [list(kv) for kv in new]


def template_xml(parent, tmpl):
    el = ET.SubElement(parent, "TEMPLATE")
    for key, value in tmpl:
        sub = ET.SubElement(el, key)
        if isinstance(value, list):
            for k, v in value:
                ET.SubElement(sub, k).text = v
        else:
            sub.text = value
    return el


def yes(value, default=False):
    if value is None or value == "":
        return default
    return str(value).strip().upper() in ("YES", "TRUE", "1")


# ---------------------------------------------------------------------------
# oned.conf reader for TM_MAD_CONF / DS_MAD_CONF
# ---------------------------------------------------------------------------
def read_oned_conf(path):
    with open(path, encoding="utf-8") as f:
        text = "\n".join(line for line in f.read().splitlines() if not line.lstrip().startswith("#"))
    tm, ds = {}, {}
    for kind, body in re.findall(r"^(TM_MAD_CONF|DS_MAD_CONF)\s*=\s*\[(.*?)\]", text, re.M | re.S):
        attrs = {k.upper(): (q if q or not u else u) for k, q, u in re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s\]]+))', body)}
        name = attrs.pop("NAME", "")
        (tm if kind == "TM_MAD_CONF" else ds)[name] = attrs
    return tm, ds


def parse_driver_flag(spec):
    """``name`` or ``name:KEY=VAL,KEY=VAL``."""
    name, unused, rest = spec.partition(":")
    attrs = {}
    for item in filter(None, rest.split(",")):
        k, unused, v = item.partition("=")
        attrs[k.strip().upper()] = v.strip()
    return name, attrs


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------
class OnedState:
    def __init__(self, session, tm_conf=None, ds_conf=None, state_file=None, fresh=True):
        self.session = session
        self.tm_conf = dict(STOCK_TM_MAD_CONF if tm_conf is None else tm_conf)
        self.ds_conf = dict(STOCK_DS_MAD_CONF if ds_conf is None else ds_conf)
        self.state_file = state_file
        self.lock = threading.RLock()
        self.datastores = {}
        self.clusters = {0: {"name": "default", "template": []}}
        self.hosts = {}
        self.next_ds = 100
        self.next_host = 0
        self.calls = []  # (method, args without session) for tests
        if fresh:
            # A fresh oned creates system (0), default (1) and files (2) in cluster 0.
            self._insert_ds(0, "system", [["TM_MAD", "ssh"], ["TYPE", "SYSTEM_DS"]], [0])
            self._insert_ds(1, "default", [["DS_MAD", "fs"], ["TM_MAD", "ssh"], ["TYPE", "IMAGE_DS"]], [0])
            self._insert_ds(2, "files", [["DS_MAD", "fs"], ["TM_MAD", "ssh"], ["TYPE", "FILE_DS"]], [0])
        if state_file and os.path.exists(state_file):
            self.load(state_file)

    # -- persistence -----------------------------------------------------
    def to_json(self):
        return {
            "datastores": {str(k): v for k, v in self.datastores.items()},
            "clusters": {str(k): v for k, v in self.clusters.items()},
            "hosts": {str(k): v for k, v in self.hosts.items()},
            "next_ds": self.next_ds, "next_host": self.next_host,
            "tm_mad_conf": self.tm_conf, "ds_mad_conf": self.ds_conf,
        }

    def load(self, path):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        self.datastores = {int(k): v for k, v in data.get("datastores", {}).items()}
        self.clusters = {int(k): v for k, v in data.get("clusters", {}).items()}
        self.hosts = {int(k): v for k, v in data.get("hosts", {}).items()}
        self.next_ds = data.get("next_ds", 100)
        self.next_host = data.get("next_host", 0)
        self.tm_conf = data.get("tm_mad_conf", self.tm_conf)
        self.ds_conf = data.get("ds_mad_conf", self.ds_conf)

    def save(self):
        if not self.state_file:
            return
        d = os.path.dirname(os.path.abspath(self.state_file))
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".oned-double-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=1, sort_keys=True)
        os.replace(tmp, self.state_file)

    # -- seeding ---------------------------------------------------------
    def seed(self, data):
        """Seed from a dict: clusters, hosts, datastores, tm_mad_conf, ds_mad_conf."""
        self.tm_conf.update(data.get("tm_mad_conf", {}))
        self.ds_conf.update(data.get("ds_mad_conf", {}))
        for c in data.get("clusters", []):
            self.clusters[int(c["id"])] = {"name": c["name"], "template": [[k.upper(), str(v)] for k, v in c.get("template", {}).items()]}
        for h in data.get("hosts", []):
            self.add_host(h["name"], int(h.get("cluster_id", 0)), h.get("template", {}), h.get("id"))
        for d in data.get("datastores", []):
            tmpl = [[k.upper(), str(v)] for k, v in d.get("template", {}).items()]
            oid = d.get("id")
            if oid is None:
                oid = self.next_ds
            # Seeding bypasses the duplicate-name check on purpose, to model a
            # pool that ended up with two datastores of the same name.
            self._insert_ds(int(oid), d["name"], tmpl, d.get("clusters", [0]), images=d.get("images", []))

    def add_host(self, name, cluster_id=0, template=None, oid=None):
        oid = self.next_host if oid is None else int(oid)
        self.next_host = max(self.next_host, oid + 1)
        tmpl = [["ARCH", "x86_64"], ["HOSTNAME", name], ["HYPERVISOR", "kvm"]]
        tmpl += [[k.upper(), str(v)] for k, v in (template or {}).items()]
        self.hosts[oid] = {"name": name, "cluster_id": cluster_id, "state": 2, "im_mad": "kvm", "vm_mad": "kvm", "template": tmpl}
        if cluster_id not in self.clusters:
            self.clusters[cluster_id] = {"name": f"cluster{cluster_id}", "template": []}
        return oid

    # -- datastore logic (mirrors Datastore::insert) ------------------------
    def _apply_tm_mad(self, dtype, tmpl, tm_mad):
        if dtype == "BACKUP_DS":
            return
        if not tm_mad:
            raise OnedFailure(INTERNAL, "No TM_MAD in template.")
        conf = self.tm_conf.get(tm_mad)
        if conf is None:
            raise OnedFailure(INTERNAL, f'TM_MAD named "{tm_mad}" is not defined in oned.conf')
        bad = (f"Attribute shared, ln_target or clone_target in TM_MAD_CONF for {tm_mad} "
               "is missing or has wrong value in oned.conf")
        if dtype == "SYSTEM_DS":
            if "SHARED" not in conf:
                raise OnedFailure(INTERNAL, bad)
            treplace(tmpl, "SHARED", "YES" if yes(conf["SHARED"]) else "NO")
            treplace(tmpl, "DS_MIGRATE", "YES" if yes(conf.get("DS_MIGRATE"), True) else "NO")
            treplace(tmpl, "DS_LIVE_MIGRATE", "YES" if yes(conf.get("DS_LIVE_MIGRATE")) else "NO")
            treplace(tmpl, "DS_MIGRATE_SNAP", "YES" if yes(conf.get("DS_MIGRATE_SNAP")) else "NO")
            tremove(tmpl, "LN_TARGET")
            tremove(tmpl, "CLONE_TARGET")
        else:
            st = conf.get("TM_MAD_SYSTEM", "")
            if st:
                treplace(tmpl, "TM_MAD_SYSTEM", st)
                for mode in filter(None, (m.strip().upper() for m in st.split(","))):
                    for attr in ("LN_TARGET_", "CLONE_TARGET_"):
                        v = conf.get(attr + mode, "")
                        if v.upper() not in TARGET_TYPES:
                            raise OnedFailure(INTERNAL, bad)
                        treplace(tmpl, attr + mode, v)
                    v = conf.get("DISK_TYPE_" + mode, "")
                    if not v:
                        raise OnedFailure(INTERNAL, bad)
                    treplace(tmpl, "DISK_TYPE_" + mode, v)
            for attr in ("LN_TARGET", "CLONE_TARGET"):
                v = conf.get(attr, "")
                if v.upper() not in TARGET_TYPES:
                    raise OnedFailure(INTERNAL, bad)
                treplace(tmpl, attr, v)
            for attr in ("DRIVER", "DISK_TYPE"):
                if conf.get(attr):
                    treplace(tmpl, attr, conf[attr])
            tremove(tmpl, "SHARED")
        treplace(tmpl, "ALLOW_ORPHANS", conf.get("ALLOW_ORPHANS", "NO"))
        treplace(tmpl, "PERSISTENT_SNAPSHOTS", "YES" if yes(conf.get("PERSISTENT_SNAPSHOTS"), True) else "NO")

    def _apply_ds_mad(self, dtype, tmpl, ds_mad):
        if dtype == "SYSTEM_DS":
            return
        conf = self.ds_conf.get(ds_mad)
        if conf is None:
            raise OnedFailure(INTERNAL, f'DS_MAD named "{ds_mad}" is not defined in oned.conf')
        if "DATASTORE_CAPACITY_CHECK" in conf:
            treplace(tmpl, "DATASTORE_CAPACITY_CHECK", "YES" if yes(conf["DATASTORE_CAPACITY_CHECK"]) else "NO")
        for attr in filter(None, (a.strip().upper() for a in conf.get("REQUIRED_ATTRS", "").split(","))):
            if not tget(tmpl, attr):
                raise OnedFailure(INTERNAL, f"Datastore template is missing the \"{attr}\" attribute or it's empty.")

    @staticmethod
    def _disk_type(dtype, s_dt):
        if dtype in ("FILE_DS", "BACKUP_DS"):
            return 0, False
        dt = DISK_TYPES.get((s_dt or "FILE").upper())
        if dt is None:
            raise OnedFailure(INTERNAL, "Unknown DISK_TYPE in template.")
        if dtype == "IMAGE_DS" and dt in (1, 4, 6, 8):
            raise OnedFailure(INTERNAL, "Invalid DISK_TYPE for an Image Datastore.")
        if dtype == "SYSTEM_DS" and dt not in (0, 2, 3, 10):
            raise OnedFailure(INTERNAL, "Invalid DISK_TYPE for a System Datastore.")
        return dt, True

    def _build_ds(self, oid, name, tmpl):
        tmpl = [list(kv) for kv in tmpl]
        tremove(tmpl, "NAME")
        dtype = tget(tmpl, "TYPE").upper()
        dtype = dtype if dtype in DS_TYPES else "IMAGE_DS"
        ds_mad = tget(tmpl, "DS_MAD")
        if dtype == "SYSTEM_DS":
            if ds_mad:
                raise OnedFailure(INTERNAL, "SYSTEM datastores cannot have DS_MAD defined.")
            ds_mad = "-"
        elif not ds_mad:
            raise OnedFailure(INTERNAL, "No DS_MAD in template.")
        self._apply_ds_mad(dtype, tmpl, ds_mad)
        tm_mad = tget(tmpl, "TM_MAD")
        self._apply_tm_mad(dtype, tmpl, tm_mad)
        tremove(tmpl, "BASE_PATH")
        s_dt = tget(tmpl, "DISK_TYPE")
        tremove(tmpl, "DISK_TYPE")
        dt, add = self._disk_type(dtype, s_dt)
        if add:
            tmpl.append(["DISK_TYPE", DISK_TYPE_NAMES[dt]])
        if not tget(tmpl, "SAFE_DIRS") and not tget(tmpl, "RESTRICTED_DIRS"):
            treplace(tmpl, "SAFE_DIRS", "/var/tmp")
            treplace(tmpl, "RESTRICTED_DIRS", "/")
        treplace(tmpl, "TYPE", dtype)
        return {"name": name, "type": DS_TYPES[dtype], "ds_mad": ds_mad, "tm_mad": tm_mad or "-", "disk_type": dt,
                "state": 0, "base_path": f"/var/lib/one//datastores/{oid}", "template": tmpl}

    def _insert_ds(self, oid, name, tmpl, clusters, images=()):
        ds = self._build_ds(oid, name, tmpl)
        ds.update(clusters=sorted(int(c) for c in clusters), images=sorted(int(i) for i in images),
                  total_mb=102400, free_mb=81920, used_mb=20480)
        self.datastores[oid] = ds
        self.next_ds = max(self.next_ds, oid + 1)
        return oid

    def ds_allocate(self, text, cluster_id):
        try:
            tmpl = parse_any_template(text)
        except ValueError as e:
            raise OnedFailure(INTERNAL, f"Parse error: {e}") from None
        name = tget(tmpl, "NAME")
        if not name:
            raise OnedFailure(INTERNAL, "Invalid NAME, it cannot be empty")
        if cluster_id == -1:
            cluster_id = 0  # DatastoreAllocateAPI: NONE_CLUSTER_ID -> DEFAULT_CLUSTER_ID
        if cluster_id not in self.clusters:
            raise OnedFailure(NO_EXISTS, f"Error getting cluster [{cluster_id}].", cluster_id)
        for oid, ds in self.datastores.items():
            if ds["name"] == name:
                raise OnedFailure(INTERNAL, f"NAME is already taken by DATASTORE {oid}.")
        return self._insert_ds(self.next_ds, name, tmpl, [cluster_id])

    def ds_get(self, oid):
        ds = self.datastores.get(oid)
        if ds is None:
            raise OnedFailure(NO_EXISTS, f"Error getting datastore [{oid}].", oid)
        return ds

    def ds_update(self, oid, text, mode):
        ds = self.ds_get(oid)
        if mode not in (0, 1):
            raise OnedFailure(XML_RPC_API, "Wrong update type", oid)
        try:
            new = parse_any_template(text)
        except ValueError as e:
            raise OnedFailure(INTERNAL, f"Cannot update template. Parse error: {e}", oid) from None
        tmpl = [list(kv) for kv in new] if mode == 0 else tmerge(ds["template"], new)
        # Datastore::post_update_template: read-only values while the datastore holds images
        if ds["images"]:
            for opt in RO_WITH_IMAGES:
                if tget(ds["template"], opt) != tget(tmpl, opt):
                    raise OnedFailure(INTERNAL, f"Cannot update template. Cannot update option {opt} in a datastore "
                                                "with existing images", oid)
        try:
            # Datastore::post_update_template
            s_type = tget(tmpl, "TYPE").upper()
            dtype = DS_TYPE_NAMES[ds["type"]]
            if s_type:
                dtype = s_type if s_type in DS_TYPES else "IMAGE_DS"
            if oid == 0:
                dtype = "SYSTEM_DS"
            treplace(tmpl, "TYPE", dtype)
            disk_type = ds["disk_type"]
            s_dt = tget(tmpl, "DISK_TYPE")
            tremove(tmpl, "DISK_TYPE")
            if s_dt:
                disk_type, add = self._disk_type(dtype, s_dt)
                if add:
                    tmpl.append(["DISK_TYPE", DISK_TYPE_NAMES[disk_type]])
            tm_mad = tget(tmpl, "TM_MAD")
            if tm_mad:
                self._apply_tm_mad(dtype, tmpl, tm_mad)
            else:
                tm_mad = ds["tm_mad"]
                treplace(tmpl, "TM_MAD", tm_mad)
            ds_mad = tget(tmpl, "DS_MAD")
            if dtype == "SYSTEM_DS":
                ds_mad = "-"
                tremove(tmpl, "DS_MAD")
            elif not ds_mad:
                ds_mad = ds["ds_mad"]
                treplace(tmpl, "DS_MAD", ds_mad)
            self._apply_ds_mad(dtype, tmpl, ds_mad)
        except OnedFailure as e:
            raise OnedFailure(INTERNAL, f"Cannot update template. {e.text}", oid) from None
        ds.update(type=DS_TYPES[dtype], disk_type=disk_type, tm_mad=tm_mad, ds_mad=ds_mad, template=tmpl)
        return oid

    def ds_delete(self, oid):
        ds = self.ds_get(oid)
        if ds["images"]:
            raise OnedFailure(ACTION, f"Cannot delete datastore. Datastore {oid} is not empty.", oid)
        del self.datastores[oid]
        return oid

    def ds_enable(self, oid, flag):
        ds = self.ds_get(oid)
        if ds["type"] != DS_TYPES["SYSTEM_DS"]:
            raise OnedFailure(INTERNAL, "Only SYSTEM_DS can be disabled or enabled", oid)
        ds["state"] = 0 if flag else 1
        return oid

    def cluster_get(self, cid):
        c = self.clusters.get(cid)
        if c is None:
            raise OnedFailure(NO_EXISTS, f"Error getting cluster [{cid}].", cid)
        return c

    def cluster_ds(self, cid, oid, add):
        self.cluster_get(cid)
        ds = self.ds_get(oid)
        if add:
            if cid in ds["clusters"]:
                raise OnedFailure(INTERNAL, "DATASTORE ID is already in the cluster set.", cid)
            ds["clusters"] = sorted(ds["clusters"] + [cid])
        else:
            if cid not in ds["clusters"]:
                raise OnedFailure(INTERNAL, "DATASTORE is not in the cluster set.", cid)
            ds["clusters"] = [c for c in ds["clusters"] if c != cid]
        return cid

    def host_get(self, oid):
        h = self.hosts.get(oid)
        if h is None:
            raise OnedFailure(NO_EXISTS, f"Error getting host [{oid}].", oid)
        return h

    def host_update(self, oid, text, mode):
        h = self.host_get(oid)
        if mode not in (0, 1):
            raise OnedFailure(XML_RPC_API, "Wrong update type", oid)
        try:
            new = parse_any_template(text)
        except ValueError as e:
            raise OnedFailure(INTERNAL, f"Cannot update template. Parse error: {e}", oid) from None
        h["template"] = [list(kv) for kv in new] if mode == 0 else tmerge(h["template"], new)
        return oid

    # -- XML ---------------------------------------------------------------
    def ds_element(self, oid, parent=None):
        ds = self.datastores[oid]
        el = ET.Element("DATASTORE") if parent is None else ET.SubElement(parent, "DATASTORE")
        for tag, val in (("ID", oid), ("UID", 0), ("GID", 0), ("UNAME", "oneadmin"), ("GNAME", "oneadmin"), ("NAME", ds["name"])):
            ET.SubElement(el, tag).text = str(val)
        perms = ET.SubElement(el, "PERMISSIONS")
        for tag, val in zip(("OWNER_U", "OWNER_M", "OWNER_A", "GROUP_U", "GROUP_M", "GROUP_A", "OTHER_U", "OTHER_M", "OTHER_A"),
                            (1, 1, 0, 1, 0, 0, 0, 0, 0)):
            ET.SubElement(perms, tag).text = str(val)
        for tag in ("DS_MAD", "TM_MAD", "BASE_PATH", "TYPE", "DISK_TYPE", "STATE"):
            ET.SubElement(el, tag).text = str(ds[tag.lower()])
        clusters = ET.SubElement(el, "CLUSTERS")
        for c in ds["clusters"]:
            ET.SubElement(clusters, "ID").text = str(c)
        for tag in ("TOTAL_MB", "FREE_MB", "USED_MB"):
            ET.SubElement(el, tag).text = str(ds[tag.lower()])
        images = ET.SubElement(el, "IMAGES")
        for i in ds["images"]:
            ET.SubElement(images, "ID").text = str(i)
        template_xml(el, ds["template"])
        return el

    def cluster_element(self, cid, parent=None):
        c = self.clusters[cid]
        el = ET.Element("CLUSTER") if parent is None else ET.SubElement(parent, "CLUSTER")
        ET.SubElement(el, "ID").text = str(cid)
        ET.SubElement(el, "NAME").text = c["name"]
        hosts = ET.SubElement(el, "HOSTS")
        for hid, h in sorted(self.hosts.items()):
            if h["cluster_id"] == cid:
                ET.SubElement(hosts, "ID").text = str(hid)
        dss = ET.SubElement(el, "DATASTORES")
        for oid, ds in sorted(self.datastores.items()):
            if cid in ds["clusters"]:
                ET.SubElement(dss, "ID").text = str(oid)
        ET.SubElement(el, "VNETS")
        template_xml(el, c["template"])
        return el

    def host_element(self, oid, parent=None):
        h = self.hosts[oid]
        el = ET.Element("HOST") if parent is None else ET.SubElement(parent, "HOST")
        cluster = self.clusters.get(h["cluster_id"], {}).get("name", "")
        for tag, val in (("ID", oid), ("NAME", h["name"]), ("STATE", h["state"]), ("PREV_STATE", h["state"]),
                         ("IM_MAD", h["im_mad"]), ("VM_MAD", h["vm_mad"]), ("CLUSTER_ID", h["cluster_id"]), ("CLUSTER", cluster)):
            ET.SubElement(el, tag).text = str(val)
        ET.SubElement(el, "VMS")
        template_xml(el, h["template"])
        return el


def _xml(el):
    return ET.tostring(el, encoding="unicode")


class OnedDouble:
    """The XML-RPC front of the double: dispatches ``one.*`` calls to OnedState."""

    def __init__(self, state):
        self.state = state

    def _dispatch(self, method, params):
        st = self.state
        with st.lock:
            st.calls.append((method, list(params[1:])))
            handler = self.METHODS.get(method)
            if handler is None:
                # Like xmlrpc-c in oned: an unknown method is an XML-RPC fault.
                from xmlrpc.client import Fault
                raise Fault(-506, f"Method '{method}' not defined")
            if not params or params[0] != st.session:
                return [False, f"[{method}] User couldn't be authenticated, aborting call.", AUTHENTICATION, -1]
            try:
                body = handler(self, *params[1:])
            except OnedFailure as e:
                return [False, f"[{method}] {e.text}", e.code, e.oid]
            except TypeError as e:
                return [False, f"[{method}] Wrong parameters: {e}", XML_RPC_API, -1]
            if method.split(".")[-1] not in ("info",):
                st.save()
            return [True, body, 0]

    def m_dspool_info(self, *_filters):
        root = ET.Element("DATASTORE_POOL")
        for oid in sorted(self.state.datastores):
            self.state.ds_element(oid, root)
        return _xml(root)

    def m_ds_info(self, oid, _decrypt=False):
        self.state.ds_get(oid)
        return _xml(self.state.ds_element(oid))

    def m_ds_allocate(self, text, cluster_id=-1):
        return self.state.ds_allocate(text, int(cluster_id))

    def m_ds_update(self, oid, text, mode=0):
        return self.state.ds_update(oid, text, mode)

    def m_ds_delete(self, oid):
        return self.state.ds_delete(oid)

    def m_ds_enable(self, oid, flag):
        return self.state.ds_enable(oid, bool(flag))

    def m_cl_add(self, cid, oid):
        return self.state.cluster_ds(cid, oid, True)

    def m_cl_del(self, cid, oid):
        return self.state.cluster_ds(cid, oid, False)

    def m_clpool_info(self, *_filters):
        root = ET.Element("CLUSTER_POOL")
        for cid in sorted(self.state.clusters):
            self.state.cluster_element(cid, root)
        return _xml(root)

    def m_hostpool_info(self, *_filters):
        root = ET.Element("HOST_POOL")
        for oid in sorted(self.state.hosts):
            self.state.host_element(oid, root)
        return _xml(root)

    def m_host_info(self, oid, _decrypt=False):
        self.state.host_get(oid)
        return _xml(self.state.host_element(oid))

    def m_host_update(self, oid, text, mode=0):
        return self.state.host_update(oid, text, mode)

    METHODS = {
        "one.datastorepool.info": m_dspool_info,
        "one.datastore.info": m_ds_info,
        "one.datastore.allocate": m_ds_allocate,
        "one.datastore.update": m_ds_update,
        "one.datastore.delete": m_ds_delete,
        "one.datastore.enable": m_ds_enable,
        "one.cluster.adddatastore": m_cl_add,
        "one.cluster.deldatastore": m_cl_del,
        "one.clusterpool.info": m_clpool_info,
        "one.hostpool.info": m_hostpool_info,
        "one.host.info": m_host_info,
        "one.host.update": m_host_update,
    }


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2",)

    def log_message(self, fmt, *args):  # quiet unless --verbose
        if getattr(self.server, "verbose", False):
            super().log_message(fmt, *args)


def make_server(state, host="127.0.0.1", port=0, verbose=False):
    server = SimpleXMLRPCServer((host, port), requestHandler=_Handler, allow_none=False, logRequests=verbose)
    server.verbose = verbose
    server.register_instance(OnedDouble(state))
    return server


def build_state(args):
    tm_conf, ds_conf = None, None
    if args.oned_conf:
        tm_conf, ds_conf = read_oned_conf(args.oned_conf)
    state = OnedState(args.auth, tm_conf, ds_conf, state_file=None, fresh=not args.empty)
    for spec in args.tm_mad or []:
        name, attrs = parse_driver_flag(spec)
        state.tm_conf[name] = {"LN_TARGET": "NONE", "CLONE_TARGET": "SYSTEM", "SHARED": "YES", **attrs}
    for spec in args.ds_mad or []:
        name, attrs = parse_driver_flag(spec)
        state.ds_conf[name] = {"REQUIRED_ATTRS": "", **attrs}
    for spec in args.cluster or []:
        cid, unused, name = spec.partition(":")
        state.clusters[int(cid)] = {"name": name or f"cluster{cid}", "template": []}
    for spec in args.host or []:
        name, unused, cid = spec.partition("@")
        state.add_host(name, int(cid or 0))
    if args.seed:
        with open(args.seed, encoding="utf-8") as f:
            state.seed(json.load(f))
    state.state_file = args.state
    if args.state and os.path.exists(args.state):
        # Like oned, the driver tables come from the configuration at every
        # start (oned.conf, flags, seed), never from the saved state: a driver
        # added to oned.conf is known after a restart.
        tm_conf, ds_conf = dict(state.tm_conf), dict(state.ds_conf)
        state.load(args.state)
        state.tm_conf, state.ds_conf = tm_conf, ds_conf
    state.save()
    return state


def main(argv=None):
    p = argparse.ArgumentParser(prog="oned_double", description="TEST DOUBLE of OpenNebula oned's XML-RPC API (not oned).")
    p.add_argument("--listen", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=2633, help="port, 0 for an ephemeral one (default 2633)")
    p.add_argument("--port-file", help="write the bound port to this file once listening")
    p.add_argument("--auth", default="oneadmin:oneadmin", help="the only accepted session string user:password")
    p.add_argument("--state", help="JSON file to load the state from (if it exists) and save it to after each change")
    p.add_argument("--seed", help="JSON file with clusters, hosts, datastores, tm_mad_conf, ds_mad_conf to add at start")
    p.add_argument("--oned-conf", help="take TM_MAD_CONF/DS_MAD_CONF from this oned.conf instead of the stock 7.4 list")
    p.add_argument("--tm-mad", action="append", metavar="NAME[:K=V,...]", help="add a TM_MAD_CONF entry (repeatable)")
    p.add_argument("--ds-mad", action="append", metavar="NAME[:K=V,...]", help="add a DS_MAD_CONF entry (repeatable)")
    p.add_argument("--cluster", action="append", metavar="ID[:NAME]", help="add a cluster (repeatable)")
    p.add_argument("--host", action="append", metavar="NAME[@CLUSTER_ID]", help="add a host (repeatable)")
    p.add_argument("--empty", action="store_true", help="start without the default datastores 0, 1 and 2")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    state = build_state(args)
    server = make_server(state, args.listen, args.port, args.verbose)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"oned TEST DOUBLE listening on http://{args.listen}:{port}/RPC2", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
