"""Screenshot a local HTML page with headless Chromium: `biascard eval screenshot report.html out.png`.

Prints how many <img> elements the page has and how many failed to load (naturalWidth 0);
exits 1 if any image is broken, so a report whose plots do not show fails loudly.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str | None:
    """$BIASCARD_CHROMIUM, else Debian's /usr/bin/chromium, else chromium on PATH."""
    for cand in (os.environ.get("BIASCARD_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if cand and Path(cand).is_file():
            return cand
    return None


def screenshot(page_path: str | Path, png_path: str | Path, *, width: int = 1280, full_page: bool = True) -> dict:
    """Open `page_path` (a file) in headless Chromium, save a PNG; return image load stats."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError("no Chromium found: install Debian's chromium (apt-get install chromium) "
                                "or set BIASCARD_CHROMIUM")
    url = Path(page_path).resolve().as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(url, wait_until="load")
            images = page.evaluate(
                "() => Array.from(document.images).map(i => ({src: i.getAttribute('src'), complete: i.complete, "
                "width: i.naturalWidth, height: i.naturalHeight}))"
            )
            frames = len(page.frames) - 1
            # a full-page capture paints iframes far below the viewport blank unless they were shown once
            for el in page.query_selector_all("iframe"):
                el.scroll_into_view_if_needed()
            page.evaluate("() => window.scrollTo(0, 0)")
            page.wait_for_timeout(200)
            page.screenshot(path=str(png_path), full_page=full_page)
        finally:
            browser.close()
    broken = [i for i in images if not i["width"]]
    return {"images": images, "broken": broken, "frames": frames}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="biascard eval screenshot", description=__doc__.splitlines()[0])
    ap.add_argument("page")
    ap.add_argument("png")
    ap.add_argument("--width", type=int, default=1280)
    args = ap.parse_args(argv)
    res = screenshot(args.page, args.png, width=args.width)
    print(f"{args.png}: {len(res['images'])} image(s), {len(res['broken'])} broken, {res['frames']} frame(s)")
    for b in res["broken"]:
        print(f"  broken: {b['src']}", file=sys.stderr)
    return 1 if res["broken"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
