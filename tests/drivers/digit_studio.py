"""Browser driver for nbs/apps/digit_studio.ipynb: wait for both models, steer a direction, sample
a new GAN digit, reset, as a learner would."""
import re, sys, time

from browser_helpers import press_slider, slider_readout, wait_for_text

READS = r"The classifier reads a (\d) \((\d+(?:\.\d+)?)%\)"


def _sources(pictures):
    "The src (a blob URL, new at each redraw) of the VAE's and the GAN's picture."
    return [p.get_attribute("src") for p in pictures]


def _changed(page, pictures, before, which, timeout=30):
    "Wait until the pictures numbered `which` show something new; seconds waited."
    t0 = time.perf_counter()
    while any(_sources(pictures)[i] == before[i] for i in which):
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"pictures {which} were not redrawn within {timeout}s")
        page.wait_for_timeout(10)
    return time.perf_counter() - t0


def _kernel_ms(page):
    "The redraw times the app reports, in ms: {'VAE': ..., 'GAN': ...}."
    text = page.locator(".widget-html", has_text="redrawn in").first.inner_text()
    return {name: int(ms) for name, ms in re.findall(r"(VAE|GAN) (\d+) ms", text)}


def drive(page, app, files):
    "Both models load behind the page and are read; a step redraws both; a GAN sample, the GAN."
    # the suite's timing table, when run by it
    record = getattr(sys.modules.get("test_browser"), "record", lambda *args: None)
    t0 = time.perf_counter()
    # the models load behind the page (a fresh checkout trains both first)
    wait_for_text(page, rf"{READS}.*{READS}", timeout=600)
    record(app, "page shown -> both models drawn and read", time.perf_counter() - t0)
    assert page.locator(".widget-slider").count() == 6, "six direction sliders"
    body = page.locator("body").inner_text()
    assert "VAE" in body and "GAN" in body and "of the pictures' variance" in body, body[:2000]
    pictures = [page.locator(".widget-image").nth(i) for i in range(2)]   # the VAE's, the GAN's

    for _ in range(3):                       # direction 1, step by step: both redrawn each time
        before = _sources(pictures)
        t0 = time.perf_counter()
        press_slider(page, 0, "ArrowRight")
        _changed(page, pictures, before, (0, 1))
        record(app, "direction slider step -> both redrawn", time.perf_counter() - t0)
        assert all(ms < 100 for ms in _kernel_ms(page).values()), _kernel_ms(page)
    assert slider_readout(page, 0) == "0.75"

    before = _sources(pictures)
    page.locator(".widget-button", has_text="Sample a GAN digit").click()
    _changed(page, pictures, before, (1,))
    assert _sources(pictures)[0] == before[0], "a GAN sample leaves the VAE's digit alone"
    assert len(re.findall(READS, page.locator("body").inner_text())) == 2

    page.locator(".widget-button", has_text="Sliders to 0").click()
    page.wait_for_function("() => [...document.querySelectorAll('.widget-slider .widget-readout')]"
                           ".every(r => r.innerText.trim() === '0.00')")
    before = _sources(pictures)
    page.locator(".widget-button", has_text="Random directions").click()
    _changed(page, pictures, before, (0, 1))
    assert not page.get_by_text("Something went wrong").count()
