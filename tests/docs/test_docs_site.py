"""The built documentation site (`make docs`) in a real browser: headless Chromium (Debian's package)
loads the pages from file:// with networking shut off, dumps the DOM and takes screenshots.

Run by the `docs` step of `make test` after scripts/docs.sh; the screenshots are kept in
.cache/docs-screenshots/ to look at. Not collected by the plain pytest step (pytest.ini testpaths).
"""
from __future__ import annotations

import html.parser
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("DOCS_SITE", ROOT / "docs" / "build" / "html"))
SHOTS = ROOT / ".cache" / "docs-screenshots"
PAGES = {
    "index": "index.html",
    "oned_conf": "collections/nebula/storage/oned_conf_module.html",
    "nfs_shared": "collections/nebula/storage/nfs_shared_role.html",
    "guide_awx": "guide/awx.html",
}
# Chromium must never reach the network: these turn off its background services, and every host name
# resolves to nothing; the pages come from file://.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1280,1600"]


def chromium() -> str:
    exe = shutil.which("chromium")
    if not exe:
        pytest.fail("chromium is not installed (Debian package `chromium`, in requirements/host-packages.txt)")
    return exe


def run_chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="nebula-chromium-") as profile:
        return subprocess.run([chromium(), *CHROMIUM_FLAGS, "--user-data-dir=%s" % profile, *args],
                              capture_output=True, text=True, timeout=120, check=False)


class Tables(html.parser.HTMLParser):
    """Option names of antsibull-docs' option tables: the <strong> of each first-column cell."""

    def __init__(self):
        super().__init__()
        self.tables = 0
        self.headers: list[str] = []
        self.names: list[str] = []
        self._in_th = self._in_strong = False
        self._in_table = 0

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables += 1
            self._in_table += 1
        elif tag == "th":
            self._in_th = True
            self.headers.append("")
        elif tag == "strong" and self._in_table:
            self._in_strong = True

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table -= 1
        elif tag == "th":
            self._in_th = False
        elif tag == "strong":
            self._in_strong = False

    def handle_data(self, data):
        if self._in_th:
            self.headers[-1] += data.strip()
        if self._in_strong and data.strip():
            self.names.append(data.strip())


@pytest.fixture(scope="module")
def site() -> Path:
    if not (SITE / "index.html").is_file():
        pytest.fail("no built site in %s: run `make docs` first" % SITE)
    return SITE


@pytest.fixture(scope="module")
def dom(site) -> dict[str, str]:
    out = {}
    for key, page in PAGES.items():
        p = run_chromium("--dump-dom", (site / page).as_uri())
        assert p.returncode == 0, p.stderr[-2000:]
        assert "<html" in p.stdout, p.stderr[-2000:]
        out[key] = p.stdout
    return out


def options_table(text: str) -> Tables:
    t = Tables()
    t.feed(text)
    return t


def test_index_lists_the_guide_and_the_reference(dom):
    page = dom["index"]
    for guide in ("guide/backends.html", "guide/awx.html", "guide/security.html", "guide/lab.html"):
        assert 'href="%s"' % guide in page, guide
    assert 'href="collections/index.html"' in page


def test_guide_pages_hold_the_readme_sections(dom):
    readme = (ROOT / "README.md").read_text()
    assert "ansible-runner" in readme.split("## AWX / Automation Controller")[1].split("\n## ")[0]
    page = dom["guide_awx"]
    assert "<h1>AWX / Automation Controller" in page
    assert "ansible-runner" in page and "Execution environment" in page


def test_oned_conf_page_has_every_option_in_its_table(dom):
    from ansible_collections.nebula.storage.plugins.modules import oned_conf
    options = yaml.safe_load(oned_conf.DOCUMENTATION)["options"]
    t = options_table(dom["oned_conf"])
    assert "Parameter" in t.headers and "Comments" in t.headers
    assert "Key" in t.headers  # the return values table
    missing = set(options) - set(t.names)
    assert not missing, missing
    # sub-options of the blocks list are rendered too
    assert {"attribute", "match", "set", "unset"} <= set(t.names)


def test_nfs_shared_role_page_has_every_variable_in_its_table(dom):
    spec = yaml.safe_load((ROOT / "roles" / "nfs_shared" / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    t = options_table(dom["nfs_shared"])
    assert "Parameter" in t.headers
    missing = set(options) - set(t.names)
    assert not missing, missing
    assert "nfs_shared_one_version" in t.names


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


@pytest.mark.parametrize("key", sorted(PAGES))
def test_screenshot(site, key):
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / ("%s.png" % key)
    shot.unlink(missing_ok=True)
    p = run_chromium("--screenshot=%s" % shot, (site / PAGES[key]).as_uri())
    assert p.returncode == 0 and shot.is_file(), p.stderr[-2000:]
    assert png_size(shot) == (1280, 1600)
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one (a blank 1280x1600 PNG is ~10 KB)
