"""Browser driver for nbs/apps/fool_classifier.ipynb: attack the cat, raise ε, make it a toaster
with PGD, upload a photo and a broken file, as a learner would."""
import re, sys, time

from browser_helpers import press_slider, slider_readout, upload, wait_for_change, wait_for_text


def _top(page, which):
    "The first label of the 'original' or 'adversarial' top-3 table."
    table = page.locator(".widget-html", has_text=f"{which}: top 3").first
    return table.locator("td b").first.inner_text()


def drive(page, app, files):
    """FGSM on the cat at 2/255 fools it; one more grey level redraws within a second; PGD to
    'toaster' fills its progress bar; uploads."""
    # the suite's timing table, when run by it
    record = getattr(sys.modules.get("test_browser"), "record", lambda *args: None)
    verdict = page.locator(".widget-html",
                           has_text=re.compile(r"Fooled|Not fooled|unchanged")).first
    wait_for_text(page, r"Fooled: at ε = 2/255", timeout=120)
    assert re.search(r"tabby|tiger cat|Egyptian cat", _top(page, "original")), \
        _top(page, "original")
    assert _top(page, "adversarial") != _top(page, "original")
    assert slider_readout(page, 0) == "2"

    text = verdict.inner_text()
    t0 = time.perf_counter()
    press_slider(page, 0, "ArrowRight")                   # ε 2 -> 3: a new FGSM attack
    _, text = wait_for_change(page, verdict, text)
    record(app, "ε slider step -> FGSM answer", time.perf_counter() - t0)
    assert "ε = 3/255" in text and slider_readout(page, 0) == "3", text
    assert int(re.search(r"\((\d+) ms\)", text).group(1)) < 1000, text

    page.locator(".widget-dropdown select").nth(1).select_option(label="toaster")
    _, text = wait_for_change(page, verdict, text)
    t0 = time.perf_counter()
    page.locator(".widget-toggle-button", has_text="PGD").click()
    wait_for_text(page, r"Fooled: .* now says toaster", timeout=60)
    record(app, "PGD, 10 steps, towards toaster", time.perf_counter() - t0)
    assert _top(page, "adversarial") == "toaster"

    upload(page, files/"notes.png")
    wait_for_text(page, r"notes\.png is not an image this app can read", timeout=30)
    page.locator(".widget-toggle-button", has_text="FGSM").click()
    page.locator(".widget-dropdown select").nth(1).select_option(label="any other class")
    t0 = time.perf_counter()
    upload(page, files/"coffee.jpg")
    wait_for_text(page, r"Fooled: at ε = 3/255 .* instead of espresso", timeout=60)
    record(app, "upload a photo -> FGSM answer", time.perf_counter() - t0)
    assert not page.get_by_text("Something went wrong").count()
