"""Running a page's own script in headless Chromium and catching the CSV it would download."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest


def chromium_or_skip() -> str:
    """The Chromium binary, or a skip (CI installs it; a bare machine may not have it)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed")
    return chromium


def download_from_page(page: Path, actions: str, download: str, tmp_path: Path) -> tuple[str, str]:
    """Open ``page`` with ``actions`` (JavaScript) run on load and then ``download()`` called, the browser's download
    replaced by a capture: (the downloaded text, the page's DOM afterwards)."""
    chromium = chromium_or_skip()
    probe = f"""<script>
window.addEventListener("load", () => {{
{actions}
  const Original = Blob;
  window.Blob = function (parts, options) {{ document.body.setAttribute("data-csv", parts.join("")); return new Original(parts, options); }};
  HTMLAnchorElement.prototype.click = () => {{}};
  {download}();
}});
</script></body>"""
    probed = tmp_path / "probe.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", probe), encoding="utf-8")
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom",
                          probed.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-500:]
    found = re.search(r'data-csv="([^"]*)"', dom.stdout)
    assert found, dom.stdout[-1500:]
    return html.unescape(found.group(1)), dom.stdout
