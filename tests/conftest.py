"""Test-wide setup: make the repository importable as ``ansible_collections.nebula.storage``.

The repository root *is* the collection; ``ansible_collections/nebula/storage`` is
a committed symlink to ``../..``. Putting the root on ``sys.path`` lets Python
import the collection's plugins exactly as Ansible does on a target.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def fixtures_dir() -> Path:
    """Where the reference files are: $NEBULA_FIXTURES (set by `make test` from `scripts/fixtures.sh
    ensure`), else ../shared/fixtures beside the checkout, else .cache/fixtures (`scripts/fixtures.sh fetch`)."""
    if os.environ.get("NEBULA_FIXTURES"):
        return Path(os.environ["NEBULA_FIXTURES"])
    if (SHARED / "fixtures").is_dir():
        return SHARED / "fixtures"
    return ROOT / ".cache" / "fixtures"


FIXTURES = fixtures_dir()
if not FIXTURES.is_dir():  # one line instead of a traceback in every test that reads a fixture
    raise SystemExit("fixtures: %s; run scripts/fixtures.sh fetch" % (
        "NEBULA_FIXTURES=%s does not exist" % FIXTURES if os.environ.get("NEBULA_FIXTURES")
        else "neither %s nor %s exists" % (SHARED / "fixtures", ROOT / ".cache" / "fixtures")))

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ``ansible_collections`` is a namespace package shared with the ``ansible``
# distribution's bundled collections; extend it with ours.
import ansible_collections  # noqa: E402

_ours = str(ROOT / "ansible_collections")
if _ours not in list(ansible_collections.__path__):
    ansible_collections.__path__.append(_ours)
