"""Browser driver for nbs/apps/digit_mixer.ipynb: morph between two digits, steer a direction, pick
another digit, as a learner would."""
import re, sys, time

from browser_helpers import press_slider, slider_readout, wait_for_change, wait_for_text

READS = r"The classifier reads a (\d) \((\d+(?:\.\d+)?)%\)"


def _new_picture(page, img, before, timeout=30):
    """Wait until the ipywidgets Image shows a new picture (each redraw gets a new blob URL);
    seconds waited."""
    t0 = time.perf_counter()
    while img.get_attribute("src") == before:
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"the digit was not redrawn within {timeout}s")
        page.wait_for_timeout(10)
    return time.perf_counter() - t0


def _reading(page):
    "(digit, percent) the app says the classifier reads now."
    m = re.search(READS, page.locator(".widget-html", has_text=re.compile("The classifier reads a"))
                  .first.inner_text())
    assert m, page.locator("body").inner_text()[:2000]
    return m.group(1), float(m.group(2))


def _kernel_ms(page):
    "The redraw time the app reports under the picture, in ms."
    return int(re.search(r"redrawn in (\d+) ms",
                         page.locator(".widget-html", has_text="redrawn in").first.inner_text())
               .group(1))


def drive(page, app, files):
    """Morph from the first digit to the second (the reading follows), step a direction slider
    (redraws), reset, pick a 7 (reads 7)."""
    # the suite's timing table, when run by it
    record = getattr(sys.modules.get("test_browser"), "record", lambda *args: None)
    # the big digit; the two small ones are the chosen digits
    picture = page.locator(".widget-image").first
    guess = page.locator(".widget-html", has_text=re.compile("The classifier reads a")).first
    assert page.locator(".widget-slider").count() == 7, "a morph slider and six direction sliders"
    assert "of the variance" in page.locator("body").inner_text()
    start, start_p = _reading(page)
    selects = page.locator(".widget-dropdown select")
    end = re.match(r"a (\d)", selects.nth(1).input_value()).group(1)
    assert start != end and start_p > 50, (start, end, start_p)

    before, text = picture.get_attribute("src"), guess.inner_text()
    t0 = time.perf_counter()
    press_slider(page, 0, "End")                         # morph all the way to the "to" digit
    _new_picture(page, picture, before)
    _, text = wait_for_change(page, guess, text)
    record(app, "morph slider to the end -> redraw", time.perf_counter() - t0)
    assert slider_readout(page, 0) == "1.00"
    assert _reading(page)[0] == end, text

    # direction 1, one step at a time: a new drawing each time
    for _ in range(3):
        before = picture.get_attribute("src")
        t0 = time.perf_counter()
        press_slider(page, 1, "ArrowRight")
        _new_picture(page, picture, before)
        record(app, "direction slider step -> redraw", time.perf_counter() - t0)
        assert _kernel_ms(page) < 100, f"the kernel took {_kernel_ms(page)} ms to redraw"
    assert slider_readout(page, 1) == "0.75"

    page.locator(".widget-button", has_text="Sliders to 0").click()
    page.wait_for_function("() => [...document.querySelectorAll('.widget-slider .widget-readout')]"
                           ".slice(1).every(r => r.innerText.trim() === '0.00')")
    # texts use no-break spaces
    seven = next(o for o in selects.nth(1).evaluate("s => [...s.options].map(o => o.value)")
                 if o.startswith("a 7"))
    before = picture.get_attribute("src")
    # morph is at 1: the picture is now a validation 7
    selects.nth(1).select_option(value=seven)
    _new_picture(page, picture, before)
    wait_for_text(page, r"The classifier reads a 7 \(")
    before = picture.get_attribute("src")
    page.locator(".widget-button", has_text="Random directions").click()
    _new_picture(page, picture, before)
    assert (re.search(READS, guess.inner_text())
            and not page.get_by_text("Something went wrong").count())
