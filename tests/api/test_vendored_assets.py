"""The pages' browser libraries are ours to serve: each vendored file is the one its npm package pins
(package.json), byte for byte as VERSIONS records it, with its licence beside it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "api" / "http" / "static" / "vendor"
TEST_VENDOR = ROOT / "tests" / "browser" / "vendor"  # the browser tests' own tools (axe-core)
LICENCES = {
    "ethers": "ethers-LICENSE.md",
    "htmx.org": "htmx.org-LICENSE",
    "axe-core": "axe-core-LICENSE",
}


def _versions(folder: Path = VENDOR) -> list[tuple[Path, str, str, str]]:
    rows = []
    for line in (folder / "VERSIONS").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            file, package, version, _source, digest = line.split()
            rows.append((folder / file, package, version, digest))
    return rows


def test_versions_lists_every_vendored_script() -> None:
    listed = {file.name for file, *_ in _versions()}
    assert listed == {p.name for p in VENDOR.glob("*.js")} == {"ethers.min.js", "htmx.min.js"}


def test_the_browser_tests_vendor_axe_core_and_nothing_else() -> None:
    assert {file.name for file, *_ in _versions(TEST_VENDOR)} == {p.name for p in TEST_VENDOR.glob("*.js")}
    assert {p.name for p in TEST_VENDOR.glob("*.js")} == {"axe.min.js"}


@pytest.mark.parametrize(("file", "package", "version", "digest"), _versions() + _versions(TEST_VENDOR))
def test_vendored_file_is_the_pinned_package_s(file: Path, package: str, version: str, digest: str) -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]
    assert pinned[package] == version, (
        f"package.json pins {package} {pinned.get(package)}, VERSIONS {version}"
    )
    locked = json.loads((ROOT / "package-lock.json").read_text())["packages"][f"node_modules/{package}"]
    assert locked["version"] == version
    assert hashlib.sha256(file.read_bytes()).hexdigest() == digest
    assert (file.parent / "licenses" / LICENCES[package]).stat().st_size > 0


def test_no_page_asset_names_another_host() -> None:
    """Templates, our scripts and our styles load nothing from elsewhere (no CDN, no web font)."""
    http = ROOT / "api" / "http"
    ours = [p for p in http.rglob("*") if p.suffix in {".html", ".js", ".css"} and "vendor" not in p.parts]
    assert ours, "no templates or scripts found"
    for path in ours:
        text = path.read_text()
        for marker in ("http://", "https://", "//cdn", "@import url("):
            assert marker not in text, f"{path.relative_to(ROOT)} names {marker!r}"
