"""Rendering a page in Debian's headless chromium for the report tests: every image's decoded size,
script errors, console lines, and every file or network address the page refers to; and a screenshot
of the page with a check that it is drawn (not blank, not broken)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Injected at the top of <head> of a copy of the page: records error events (scripts and resources,
# in the capture phase), then on load writes every image's decoded size and every resource the page
# fetched or refers to into the DOM, which --dump-dom prints. The report itself carries no script.
PROBE = """<script>
const probeErrors = [];
window.addEventListener('error', e => probeErrors.push(String(e.message || (e.target && e.target.outerHTML
  ? e.target.outerHTML.slice(0, 120) : e.type))), true);
window.addEventListener('load', () => {
  const images = [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
    height: i.naturalHeight, gif: i.src.startsWith('data:image/gif')}));
  const fetched = performance.getEntriesByType('resource').map(r => r.name);  // network requests
  const external = [...document.querySelectorAll('[src], [href]')].map(e => e.getAttribute('src')
    || e.getAttribute('href')).filter(u => !u.startsWith('data:') && !u.startsWith('#'));  // files too
  const pre = document.createElement('pre');
  pre.id = 'probe-result';
  pre.textContent = JSON.stringify({images, errors: probeErrors, fetched, external});
  document.body.appendChild(pre);
});
</script>"""


def need_chromium() -> str:
    """The chromium executable; skips the test where it is missing, except in CI, where it fails."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed in CI: .ci/run must call .ci/install-browser.sh")
        pytest.skip("chromium is not installed (bash .ci/install-browser.sh installs Debian's chromium)")
    return CHROMIUM


def render(chromium: str, page: Path, workdir: Path) -> tuple[dict, list[str]]:
    """Open ``page`` (with the probe injected) in headless chromium: the probe's findings and the
    console lines chromium logged."""
    text = page.read_text()
    assert "<head>" in text
    probed = workdir / "probed.html"
    probed.write_text(text.replace("<head>", "<head>" + PROBE, 1))
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={workdir / 'profile'}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the page never finished loading; chromium said: {proc.stderr[-2000:]}"
    console = [line for line in proc.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]
    return json.loads(html.unescape(found.group(1))), console


def screenshot(chromium: str, page: Path, workdir: Path, size: tuple[int, int] = (1280, 1600)) -> Path:
    """A PNG of the top ``size`` of ``page`` as headless chromium draws it (what a reader first sees)."""
    shot = workdir / f"{page.stem}-screenshot.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={workdir / 'profile-shot'}", f"--window-size={size[0]},{size[1]}",
           "--virtual-time-budget=10000", f"--screenshot={shot}", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    return shot


def looks_drawn(shot: Path) -> tuple[bool, str]:
    """Whether a screenshot shows a drawn page rather than a blank or broken one: enough of it is
    ink (not the white background) and it holds many colours (figures, not just text and broken-image
    icons). Returns the verdict and the numbers it rests on."""
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(np.int64)
    ink = float((pixels.min(1) < 235).mean())
    colours = len(np.unique(pixels[:, 0] * 65536 + pixels[:, 1] * 256 + pixels[:, 2]))
    return ink > 0.08 and colours > 200, f"{ink:.1%} of the pixels inked, {colours} distinct colours"
