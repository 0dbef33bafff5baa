"""Test-wide setup: make the repository importable as ``ansible_collections.nebula.storage``.

The repository root *is* the collection; ``ansible_collections/nebula/storage`` is
a committed symlink to ``../..``. Putting the root on ``sys.path`` lets Python
import the collection's plugins exactly as Ansible does on a target.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ``ansible_collections`` is a namespace package shared with the ``ansible``
# distribution's bundled collections; extend it with ours.
import ansible_collections  # noqa: E402

_ours = str(ROOT / "ansible_collections")
if _ours not in list(ansible_collections.__path__):
    ansible_collections.__path__.append(_ours)
