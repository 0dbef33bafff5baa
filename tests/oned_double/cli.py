"""TEST DOUBLE of OpenNebula's ``onedatastore``/``onehost``/``onevm`` CLI (``show -x`` only), not OpenNebula.

The lab front-ends that run the oned test double (server.py) get this script as
/usr/local/bin/onedatastore, onehost and onevm: the transfer drivers read
datastores, hosts and VMs with ``<cmd> show -x ID`` as OpenNebula's stock
drivers do. It asks the double over XML-RPC (ONE_XMLRPC, default
http://127.0.0.1:2633/RPC2; credentials from ONE_AUTH or ~/.one/one_auth) and
prints the object's XML. The double keeps no VMs: ``onevm show`` fails, and
the drivers then use their defaults, as they do when oned cannot be asked.
"""
import os
import sys
import xmlrpc.client


def main(argv):
    cmd = os.path.basename(argv[0])
    if len(argv) != 4 or argv[1] != "show" or argv[2] != "-x":
        sys.stderr.write("%s (oned test double CLI): only 'show -x ID' is supported\n" % cmd)
        return 2
    auth_file = os.environ.get("ONE_AUTH") or os.path.expanduser("~/.one/one_auth")
    try:
        with open(auth_file) as handle:
            session = handle.read().strip()
    except OSError as exc:
        sys.stderr.write("%s: cannot read %s: %s\n" % (cmd, auth_file, exc))
        return 1
    server = xmlrpc.client.ServerProxy(os.environ.get("ONE_XMLRPC", "http://127.0.0.1:2633/RPC2"))
    key = argv[3]
    if cmd == "onedatastore":
        answer = server.one.datastore.info(session, int(key)) if key.isdigit() else [False, "bad id"]
    elif cmd == "onehost":
        answer = server.one.hostpool.info(session)
        if answer[0]:
            import xml.etree.ElementTree as ET
            hosts = [h for h in ET.fromstring(answer[1]).findall("HOST")
                     if h.findtext("NAME") == key or h.findtext("ID") == key]
            answer = [True, ET.tostring(hosts[0], encoding="unicode")] if hosts else [False, "host %s not found" % key]
    else:
        answer = [False, "[one.vm.info] Error getting virtual machine [%s]: the oned test double keeps no VMs" % key]
    if not answer[0]:
        sys.stderr.write("%s\n" % answer[1])
        return 255
    sys.stdout.write(answer[1] + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
