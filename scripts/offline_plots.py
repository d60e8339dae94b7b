#!/usr/bin/env python3
"""Plots that render with no network: `dvc plots show` / `dvc plots diff` pages that carry Vega,
Vega-Lite and Vega-Embed inline instead of loading them from a CDN (DVC's default page stays blank
offline), and a check of such a page in headless Chromium.

    python scripts/offline_plots.py              # write .dvc/plots/offline.html (scripts/setup.sh does)
    python scripts/offline_plots.py --check      # dvc plots show, then Chromium (network blocked):
                                                 # every plot drawn? screenshot in dvc_plots/check.png

The template's JavaScript comes from vl-convert-python (a PyPI package that ships the Vega
bundles); .dvc/config names it (plots.html_template), so plain `dvc plots show` and `dvc plots
diff` use it. The file is generated, not committed: run this script after installing.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = Path(".dvc") / "plots" / "offline.html"   # in the project; .dvc/config names it
VEGA_LITE = "5.21"   # DVC's plot templates are Vega-Lite 5 specs
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot (offline)</title>
    <script>%s</script>
    <style>
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def write_template(path: Path) -> Path:
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE).replace("</script", "<\\/script")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(PAGE % bundle, encoding="utf-8")
    tmp.replace(path)
    return path


def chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def render(page: Path, screenshot: Path) -> str:
    """The page's DOM after its scripts ran, in headless Chromium with every network request sent
    to a closed local port (so nothing can come from a CDN); a screenshot beside it."""
    browser = chromium()
    if browser is None:
        raise SystemExit("error: no chromium on PATH (Debian: apt-get install chromium)")
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=15000", "--hide-scrollbars"]
    with tempfile.TemporaryDirectory() as profile:
        base.append(f"--user-data-dir={profile}")
        subprocess.run([*base, f"--screenshot={screenshot}", "--window-size=1400,3000", page.as_uri()],
                       capture_output=True, timeout=120, check=False)
        dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                             check=False).stdout
    return dom


def check(repo: Path, out_dir: Path) -> int:
    """dvc plots show into out_dir, then count the Vega plots Chromium drew against those on the page."""
    if not (repo / TEMPLATE).is_file():
        write_template(repo / TEMPLATE)
    shown = subprocess.run(["dvc", "plots", "show", "-o", str(out_dir.resolve())], cwd=repo, capture_output=True,
                           text=True, check=False)
    page = out_dir / "index.html"
    if shown.returncode or not page.is_file():
        print(f"error: dvc plots show failed: {shown.stderr.strip().splitlines()[-1:] or shown.stdout}", file=sys.stderr)
        return 1
    html = page.read_text(encoding="utf-8")
    expected = len(re.findall(r"vegaEmbed\('#", html))
    images = len(re.findall(r"<img ", html))
    dom = render(page, out_dir / "check.png")
    drawn = len(re.findall(r'class="marks"', dom))
    cdn = "cdn.jsdelivr.net" in html
    print(f"offline plots: {drawn} of {expected} Vega plots drawn, {images} images, "
          f"{'loads a CDN' if cdn else 'no CDN'}; screenshot {out_dir / 'check.png'}")
    return 0 if expected and drawn == expected and not cdn else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="render `dvc plots show` in headless Chromium, offline")
    ap.add_argument("--repo", type=Path, default=REPO, help="the DVC project (default: this repository)")
    ap.add_argument("--out", type=Path, help="with --check: where the page goes (default: REPO/dvc_plots)")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.repo, args.out or args.repo / "dvc_plots")
    path = write_template(args.repo / TEMPLATE)
    print(f"offline_plots: wrote {path} (Vega-Lite {VEGA_LITE}, inline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
