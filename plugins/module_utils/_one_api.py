# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small typed client for OpenNebula's oned XML-RPC API (private module_utils).

Only the Python standard library is used (``xmlrpc.client`` and
``xml.etree``), so a stock OpenNebula front-end needs no extra package.

Layers:

* discovery of the endpoint and the session string with the same rules as
  OpenNebula's CLI (``ONE_XMLRPC``, ``~/.one/one_endpoint``, default
  ``http://localhost:2633/RPC2``; ``ONE_AUTH``, ``~/.one/one_auth``);
* :class:`OneClient`, which calls ``one.*`` methods and turns every
  ``[success, body, error_code, ...]`` failure into :class:`OneError` carrying
  oned's own text;
* templates: parsing oned's ``TEMPLATE`` XML and its ``KEY = "value"`` text
  syntax, rendering both, and the attributes oned fills in itself.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import re
import socket
import xml.etree.ElementTree as ET

try:
    import xmlrpc.client as xmlrpc_client
except ImportError:  # pragma: no cover - Python 2 is not a target
    xmlrpc_client = None

try:
    from typing import Dict, List, Optional, Tuple  # noqa: F401
except ImportError:  # pragma: no cover
    pass

DEFAULT_ENDPOINT = 'http://localhost:2633/RPC2'

# Error codes of the XML-RPC API (OpenNebula docs, "XML-RPC API", and
# include/Request.h ErrorCode).
ERROR_NAMES = {
    0x0000: 'SUCCESS',
    0x0100: 'AUTHENTICATION',
    0x0200: 'AUTHORIZATION',
    0x0400: 'NO_EXISTS',
    0x0800: 'ACTION',
    0x1000: 'XML_RPC_API',
    0x2000: 'INTERNAL',
    0x4000: 'ALLOCATE',
    0x8000: 'LOCKED',
    0x10000: 'REPLICATION',
}
AUTHENTICATION = 0x0100

DATASTORE_TYPES = {'image': 'IMAGE_DS', 'system': 'SYSTEM_DS', 'file': 'FILE_DS'}
# <TYPE> integer of the DATASTORE XML (include/Datastore.h DatastoreType).
DATASTORE_TYPE_IDS = {0: 'IMAGE_DS', 1: 'SYSTEM_DS', 2: 'FILE_DS', 3: 'BACKUP_DS'}

# Attributes that oned writes into a datastore template itself, from
# TM_MAD_CONF / DS_MAD_CONF and defaults (src/datastore/Datastore.cc,
# set_tm_mad(), set_ds_mad(), set_ds_disk_type() and insert()).
_DS_OWNED_COMMON = ('ALLOW_ORPHANS', 'PERSISTENT_SNAPSHOTS', 'DISK_TYPE', 'SAFE_DIRS', 'RESTRICTED_DIRS', 'TYPE')
ONED_OWNED = {
    'SYSTEM_DS': frozenset(_DS_OWNED_COMMON + ('SHARED', 'DS_MIGRATE', 'DS_LIVE_MIGRATE', 'DS_MIGRATE_SNAP')),
    'IMAGE_DS': frozenset(_DS_OWNED_COMMON + ('LN_TARGET', 'CLONE_TARGET', 'DRIVER', 'TM_MAD_SYSTEM', 'DATASTORE_CAPACITY_CHECK')),
    'FILE_DS': frozenset(_DS_OWNED_COMMON + ('LN_TARGET', 'CLONE_TARGET', 'DRIVER', 'TM_MAD_SYSTEM', 'DATASTORE_CAPACITY_CHECK')),
    # Filled by the monitoring probes (im_mad) on every cycle.
    'HOST': frozenset(('ARCH', 'CGROUPS_VERSION', 'CPUSPEED', 'HOSTNAME', 'HYPERVISOR', 'IM_MAD', 'VM_MAD', 'KVM_CPU_MODEL',
                       'KVM_CPU_MODELS', 'KVM_MACHINES', 'KVM_SECURE_BOOT', 'MODELNAME', 'VERSION', 'RESERVED_CPU', 'RESERVED_MEM')),
}
# Per-system-TM attributes of image datastores: LN_TARGET_SSH, CLONE_TARGET_SSH, DISK_TYPE_SSH...
_DS_OWNED_PREFIXES = ('LN_TARGET_', 'CLONE_TARGET_', 'DISK_TYPE_')


# Values that oned upper-cases when it stores them (Image::str_to_disk_type()
# and disk_type_to_str(), Datastore::str_to_type() and type_to_str()).
CASE_INSENSITIVE_VALUES = frozenset(('DISK_TYPE', 'TYPE'))


def same_value(key, current, wanted):
    # type: (str, Optional[str], str) -> bool
    """Compare a stored value with a wanted one the way oned stores it."""
    if current is None:
        return False
    if key.upper() in CASE_INSENSITIVE_VALUES:
        return current.upper() == wanted.upper()
    return current == wanted


def is_oned_owned(key, object_type):
    # type: (str, str) -> bool
    """True if oned fills ``key`` itself in templates of ``object_type``."""
    key = key.upper()
    if key in ONED_OWNED.get(object_type, ()):
        return True
    if object_type in ('IMAGE_DS', 'FILE_DS'):
        return key.startswith(_DS_OWNED_PREFIXES)
    return False


class OneError(Exception):
    """A failed oned call; ``message`` includes oned's own text."""

    def __init__(self, message, code=None, method=None, oned_text=None):
        # type: (str, Optional[int], Optional[str], Optional[str]) -> None
        super(OneError, self).__init__(message)
        self.message = message
        self.code = code
        self.method = method
        self.oned_text = oned_text


class OneConfigError(OneError):
    """The endpoint or the credentials could not be determined."""


# --------------------------------------------------------------------------
# Endpoint and credentials, with the CLI's rules
# --------------------------------------------------------------------------

def _home():
    # type: () -> str
    return os.path.expanduser('~')


def discover_endpoint(api_url=None, environ=None, home=None):
    # type: (Optional[str], Optional[Dict[str, str]], Optional[str]) -> str
    """Option ``api_url``, then ``ONE_XMLRPC``, ``~/.one/one_endpoint``, the default."""
    env = os.environ if environ is None else environ
    if api_url:
        return api_url
    if env.get('ONE_XMLRPC'):
        return env['ONE_XMLRPC'].strip()
    path = os.path.join(home or _home(), '.one', 'one_endpoint')
    if os.path.isfile(path):
        with open(path) as f:
            value = f.read().strip()
        if value:
            return value
    return DEFAULT_ENDPOINT


def discover_session(api_username=None, api_password=None, environ=None, home=None):
    # type: (Optional[str], Optional[str], Optional[Dict[str, str]], Optional[str]) -> str
    """Return the session string ``user:password``.

    Options ``api_username``/``api_password`` win; otherwise the file named by
    ``ONE_AUTH``, otherwise ``~/.one/one_auth`` of the running user. Only the
    first line of the file counts.
    """
    env = os.environ if environ is None else environ
    if api_username is not None or api_password is not None:
        if not api_username or api_password is None:
            raise OneConfigError('api_username and api_password must be given together')
        return '%s:%s' % (api_username, api_password)
    if env.get('ONE_AUTH'):
        path = env['ONE_AUTH']
        source = 'ONE_AUTH=%s' % path
    else:
        path = os.path.join(home or _home(), '.one', 'one_auth')
        source = path
    try:
        with open(path) as f:
            line = f.readline().strip()
    except (IOError, OSError) as e:
        raise OneConfigError('Cannot read OpenNebula credentials from %s: %s. Set api_username/api_password, '
                             'ONE_AUTH or ~/.one/one_auth' % (source, e.strerror or e))
    if ':' not in line:
        raise OneConfigError('OpenNebula credentials in %s are not in the form user:password' % source)
    return line


# --------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------
# A template is a list of (KEY, value) pairs, keys upper-case, in order.
# value is a str (single attribute) or a list of (KEY, str) (vector attribute).

def normalize_value(value):
    """Turn a YAML scalar into the string oned stores (booleans as YES/NO)."""
    if isinstance(value, bool):
        return 'YES' if value else 'NO'
    if value is None:
        return ''
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    raise TypeError('value %r is not a string, number or boolean' % (value,))


_KEY_RE = re.compile(r'^[A-Za-z0-9_]+$')


def check_key(key):
    # type: (str) -> str
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError('attribute name %r is not valid: use letters, digits and _ only' % (key,))
    return key.upper()


def parse_template_xml(element):
    """Parse a ``TEMPLATE`` element (an Element or XML text) into pairs."""
    if not isinstance(element, ET.Element):
        element = ET.fromstring(element)
    pairs = []
    for child in element:
        if len(child):
            pairs.append((child.tag.upper(), [(sub.tag.upper(), sub.text or '') for sub in child]))
        else:
            pairs.append((child.tag.upper(), child.text or ''))
    return pairs


def render_template_xml(pairs):
    # type: (List[Tuple[str, object]]) -> str
    """Render pairs as ``<TEMPLATE>`` XML, which oned parses exactly."""
    root = ET.Element('TEMPLATE')
    for key, value in pairs:
        el = ET.SubElement(root, key)
        if isinstance(value, list):
            for sub_key, sub_value in value:
                ET.SubElement(el, sub_key).text = sub_value
        else:
            el.text = value
    return ET.tostring(root, encoding='unicode')


def _quote(value, strict=True):
    # type: (str, bool) -> str
    if strict and value.endswith('\\'):
        # oned's lexer reads a trailing \" as an escaped quote.
        raise ValueError('value %r ends with a backslash, which oned\'s text template syntax cannot express' % (value,))
    return '"%s"' % value.replace('"', '\\"')


def render_template_text(pairs, strict=True):
    # type: (List[Tuple[str, object]], bool) -> str
    """Render pairs in oned's text syntax: ``KEY = "value"`` lines.

    oned's parser (src/parsers/template_syntax.y) turns ``\\"`` into ``"`` and
    leaves every other backslash alone, so only quotes are escaped. A value
    ending with a backslash cannot be written in this syntax: ValueError, unless
    ``strict`` is false (for display only; oned is always sent XML).
    """
    lines = []
    for key, value in pairs:
        if isinstance(value, list):
            inner = ',\n  '.join('%s = %s' % (k, _quote(v, strict)) for k, v in value)
            lines.append('%s = [\n  %s ]' % (key, inner))
        else:
            lines.append('%s = %s' % (key, _quote(value, strict)))
    return '\n'.join(lines) + ('\n' if lines else '')


_TOKEN_RE = re.compile(r'''
    (?P<eqempty>[ \t]*=[ \t]*\n)
  | (?P<ws>[ \t\r\n]+)
  | (?P<comment>\#[^\n]*)
  | (?P<quoted>"(?:\\"|[^"])*")
  | (?P<punct>[=,\[\]])
  | (?P<word>[^=\#\s,\[\]"]+)
''', re.VERBOSE)


def parse_template_text(text):
    # type: (str) -> List[Tuple[str, object]]
    """Parse oned's ``KEY = value`` / ``KEY = [ A = b, ... ]`` text syntax."""
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise ValueError('syntax error in template at offset %d: %r' % (pos, text[pos:pos + 20]))
        pos = m.end()
        kind = m.lastgroup
        if kind in ('ws', 'comment'):
            continue
        val = m.group(kind)
        if kind == 'quoted':
            val = val[1:-1].replace('\\"', '"')
        tokens.append((kind, val))

    pairs = []
    i = 0

    def expect_value(j):
        if j < len(tokens) and tokens[j][0] in ('quoted', 'word'):
            return tokens[j][1], j + 1
        return '', j

    while i < len(tokens):
        kind, key = tokens[i]
        if kind == 'word' and i + 1 < len(tokens) and tokens[i + 1][0] == 'eqempty':
            pairs.append((check_key(key), ''))
            i += 2
            continue
        if kind != 'word' or i + 1 >= len(tokens) or tokens[i + 1] != ('punct', '='):
            raise ValueError('syntax error in template near %r' % (key,))
        key = check_key(key)
        i += 2
        if i < len(tokens) and tokens[i] == ('punct', '['):
            i += 1
            vector = []
            while i < len(tokens) and tokens[i] != ('punct', ']'):
                if tokens[i] == ('punct', ','):
                    i += 1
                    continue
                sub_key = tokens[i][1]
                if i + 1 >= len(tokens) or tokens[i + 1] != ('punct', '='):
                    raise ValueError('syntax error in vector attribute %s near %r' % (key, sub_key))
                value, i = expect_value(i + 2)
                vector.append((check_key(sub_key), value))
            if i >= len(tokens):
                raise ValueError('vector attribute %s is not closed with ]' % key)
            i += 1
            pairs.append((key, vector))
        else:
            value, i = expect_value(i)
            pairs.append((key, value))
    return pairs


def parse_template(text):
    """Parse a template given as XML (starting with ``<``) or as text."""
    if text.lstrip().startswith('<'):
        return parse_template_xml(text)
    return parse_template_text(text)


def singles(pairs):
    # type: (List[Tuple[str, object]]) -> Dict[str, str]
    """The single (non-vector) attributes of a template, last one wins."""
    return dict((k, v) for k, v in pairs if not isinstance(v, list))


# --------------------------------------------------------------------------
# Pool objects
# --------------------------------------------------------------------------

def _text(el, path, default=''):
    found = el.find(path)
    return default if found is None or found.text is None else found.text


def _ids(el, path):
    return [int(i.text) for i in el.findall(path + '/ID') if i.text is not None]


def datastore_from_xml(el):
    """Summary dict of a ``DATASTORE`` element (see share/doc/xsd/datastore.xsd)."""
    tmpl = el.find('TEMPLATE')
    type_id = int(_text(el, 'TYPE', '0'))
    return {
        'id': int(_text(el, 'ID')),
        'name': _text(el, 'NAME'),
        'type': DATASTORE_TYPE_IDS.get(type_id, str(type_id)),
        'ds_mad': _text(el, 'DS_MAD'),
        'tm_mad': _text(el, 'TM_MAD'),
        'base_path': _text(el, 'BASE_PATH'),
        'state': int(_text(el, 'STATE', '0')),
        'clusters': _ids(el, 'CLUSTERS'),
        'images': _ids(el, 'IMAGES'),
        'template': parse_template_xml(tmpl) if tmpl is not None else [],
    }


def host_from_xml(el):
    """Summary dict of a ``HOST`` element (see share/doc/xsd/host.xsd)."""
    tmpl = el.find('TEMPLATE')
    return {
        'id': int(_text(el, 'ID')),
        'name': _text(el, 'NAME'),
        'state': int(_text(el, 'STATE', '0')),
        'cluster_id': int(_text(el, 'CLUSTER_ID', '-1')),
        'cluster': _text(el, 'CLUSTER'),
        'template': parse_template_xml(tmpl) if tmpl is not None else [],
    }


def find_by_name(objects, name, kind):
    """The single object named ``name`` or None; OneError if the name is ambiguous."""
    found = [o for o in objects if o['name'] == name]
    if len(found) > 1:
        raise OneError('%d %ss are named %r (IDs %s); rename or delete all but one'
                       % (len(found), kind, name, ', '.join(str(o['id']) for o in found)))
    return found[0] if found else None


# --------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------

if xmlrpc_client is not None:
    class _TimeoutTransport(xmlrpc_client.Transport):
        def __init__(self, timeout):
            xmlrpc_client.Transport.__init__(self)
            self._timeout = timeout

        def make_connection(self, host):
            conn = xmlrpc_client.Transport.make_connection(self, host)
            conn.timeout = self._timeout
            return conn

    class _TimeoutSafeTransport(xmlrpc_client.SafeTransport):
        def __init__(self, timeout):
            xmlrpc_client.SafeTransport.__init__(self)
            self._timeout = timeout

        def make_connection(self, host):
            conn = xmlrpc_client.SafeTransport.make_connection(self, host)
            conn.timeout = self._timeout
            return conn


class OneClient:
    """Calls oned's XML-RPC methods with a session string."""

    def __init__(self, endpoint, session, timeout=30):
        # type: (str, str, float) -> None
        if xmlrpc_client is None:  # pragma: no cover
            raise OneConfigError('xmlrpc.client is not available on this Python')
        self.endpoint = endpoint
        self._session = session
        self._timeout = timeout
        if endpoint.startswith('https:'):
            transport = _TimeoutSafeTransport(timeout)  # type: xmlrpc_client.Transport
        else:
            transport = _TimeoutTransport(timeout)
        self._proxy = xmlrpc_client.ServerProxy(endpoint, transport=transport, allow_none=False)

    def call(self, method, *args):
        """Call ``method``; return the body of a successful answer or raise OneError."""
        try:
            response = getattr(self._proxy, method)(self._session, *args)
        except xmlrpc_client.Fault as e:
            raise OneError('%s: XML-RPC fault from oned at %s: %s' % (method, self.endpoint, e.faultString), method=method)
        except xmlrpc_client.ProtocolError as e:
            raise OneError('%s: HTTP error from %s: %s %s' % (method, self.endpoint, e.errcode, e.errmsg), method=method)
        except (socket.error, OSError) as e:
            raise OneError('%s: cannot reach oned at %s: %s' % (method, self.endpoint, e), method=method)
        except Exception as e:  # malformed responses
            raise OneError('%s: bad answer from %s: %s' % (method, self.endpoint, e), method=method)
        if not isinstance(response, (list, tuple)) or len(response) < 2:
            raise OneError('%s: unexpected answer from %s: %r' % (method, self.endpoint, response), method=method)
        if response[0]:
            return response[1]
        code = response[2] if len(response) > 2 else None
        text = str(response[1])
        name = ERROR_NAMES.get(code, 'error') if code is not None else 'error'
        hint = ''
        if code == AUTHENTICATION:
            hint = ' Check api_username/api_password, ONE_AUTH or ~/.one/one_auth.'
        raise OneError('oned refused %s (%s, code 0x%04x): %s%s' % (method, name, code or 0, text, hint),
                       code=code, method=method, oned_text=text)

    # --- datastores ------------------------------------------------------
    def datastores(self):
        body = self.call('one.datastorepool.info')
        return [datastore_from_xml(el) for el in ET.fromstring(body).findall('DATASTORE')]

    def datastore(self, oid):
        return datastore_from_xml(ET.fromstring(self.call('one.datastore.info', oid)))

    def datastore_allocate(self, template_pairs, cluster_id=-1):
        return int(self.call('one.datastore.allocate', render_template_xml(template_pairs), cluster_id))

    def datastore_update(self, oid, template_pairs, merge):
        return self.call('one.datastore.update', oid, render_template_xml(template_pairs), 1 if merge else 0)

    def datastore_delete(self, oid):
        return self.call('one.datastore.delete', oid)

    def datastore_enable(self, oid, enable):
        return self.call('one.datastore.enable', oid, bool(enable))

    def cluster_add_datastore(self, cluster_id, ds_id):
        return self.call('one.cluster.adddatastore', cluster_id, ds_id)

    def cluster_del_datastore(self, cluster_id, ds_id):
        return self.call('one.cluster.deldatastore', cluster_id, ds_id)

    # --- hosts -----------------------------------------------------------
    def hosts(self):
        body = self.call('one.hostpool.info')
        return [host_from_xml(el) for el in ET.fromstring(body).findall('HOST')]

    def host(self, oid):
        return host_from_xml(ET.fromstring(self.call('one.host.info', oid)))

    def host_update(self, oid, template_pairs, merge):
        return self.call('one.host.update', oid, render_template_xml(template_pairs), 1 if merge else 0)


# --------------------------------------------------------------------------
# Ansible glue
# --------------------------------------------------------------------------

API_ARGUMENT_SPEC = dict(
    api_url=dict(type='str'),
    api_username=dict(type='str'),
    api_password=dict(type='str', no_log=True),
)


def client_from_params(params):
    """A OneClient from the module's api_* options and the CLI's rules."""
    endpoint = discover_endpoint(params.get('api_url'))
    session = discover_session(params.get('api_username'), params.get('api_password'))
    return OneClient(endpoint, session)


def run_api_module(module, validate, run):
    """The body of an API module's ``main()``.

    ``validate(params)`` checks the input before oned is contacted, then
    ``run(module, client)`` does the work and returns the result. Bad input
    (``ValueError``) and oned's errors (``OneError``, with oned's error code)
    end in ``fail_json``; the result in ``exit_json``.
    """
    try:
        validate(module.params)
        result = run(module, client_from_params(module.params))
    except ValueError as e:
        module.fail_json(msg=str(e))
    except OneError as e:
        module.fail_json(msg=e.message, oned_error_code=e.code)
    module.exit_json(**result)
