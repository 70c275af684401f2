"""Make the gallery's thumbnails from the browser tests' screenshots.

Run the browser tests first (after driving each app they save test-output/screenshots/<app>-app.png,
the app's widgets only), then `.venv/bin/python tests/make_thumbnails.py`: each screenshot is
cropped to what the app drew, fitted into 240x150 px and stored as a small palette PNG in
nbs/apps/thumbnails/<app>.png (commit those).
"""
import sys
from pathlib import Path

from PIL import Image, ImageChops

from browser_helpers import APPS_DIR, SCREENSHOTS, app_names

WIDTH, MAX_HEIGHT, COLOURS = 240, 150, 64


def thumbnail(screenshot):
    """The drawn part of a screenshot (white margins cropped), at most WIDTH x MAX_HEIGHT, as a
    64-colour image."""
    im = Image.open(screenshot).convert("RGB")
    box = (ImageChops.difference(im, Image.new("RGB", im.size, (255, 255, 255))).getbbox()
           or (0, 0, *im.size))
    pad = 8
    im = im.crop((max(box[0] - pad, 0), max(box[1] - pad, 0), min(box[2] + pad, im.width),
                  min(box[3] + pad, im.height)))
    # the top of tall apps
    im = im.crop((0, 0, im.width, min(im.height, int(im.width * MAX_HEIGHT / WIDTH))))
    im.thumbnail((WIDTH, MAX_HEIGHT), Image.LANCZOS)
    canvas = Image.new("RGB", (WIDTH, MAX_HEIGHT), (255, 255, 255))   # every card the same size
    canvas.paste(im, ((WIDTH - im.width) // 2, 0))
    im = canvas
    return im.quantize(COLOURS, method=Image.Quantize.MEDIANCUT)


def main(apps_dir=APPS_DIR):
    out = Path(apps_dir)/"thumbnails"
    out.mkdir(exist_ok=True)
    missing = [a for a in app_names(apps_dir) if not (SCREENSHOTS/f"{a}-app.png").exists()]
    for app in app_names(apps_dir):
        if app in missing: continue
        dest = out/f"{app}.png"
        tmp = dest.with_name(f".{dest.name}.partial")
        thumbnail(SCREENSHOTS/f"{app}-app.png").save(tmp, format="PNG", optimize=True)
        tmp.replace(dest)
        print(f"{dest}: {Image.open(dest).size}, {dest.stat().st_size // 1024} KB")
    if missing: sys.exit(f"no screenshot for {missing}: run "
                         "`.venv/bin/python -m pytest tests/test_browser.py` first")


if __name__ == "__main__": main()
