"""Browser driver for nbs/apps/review.ipynb: pick a real review, type one, paste HTML, empty the
box, as a learner would."""
import re, sys, time

from browser_helpers import wait_for_text

VERDICT = r"This review reads (positive|negative) \((\d+\.\d)% sure\)"


def drive(page, app, files):
    """Pick the real negative reviews (most read negative), type a positive one, paste a <script>,
    empty the box."""
    # the suite's timing table, when run by it
    record = getattr(sys.modules.get("test_browser"), "record", lambda *args: None)
    # the model is ready (trained first on a first launch)
    wait_for_text(page, r"Type a review or pick an example", timeout=300)
    assert "weaker on film reviews" in page.locator("body").inner_text()
    select = page.locator(".widget-dropdown select").first
    options = select.evaluate("s => [...s.options].map(o => o.value)")
    assert sum(o.startswith("a film review") for o in options) == 2, options
    verdicts = []
    # the model misreads some
    for option in [o for o in options if o.startswith("a real negative review")]:
        before = page.locator("body").inner_text()
        t0 = time.perf_counter()
        select.select_option(value=option)
        page.wait_for_function("b => document.body.innerText !== b", arg=before)
        _, m = wait_for_text(page, VERDICT)
        record(app, "example picked -> verdict and coloured words", time.perf_counter() - t0)
        verdicts.append(m.group(1))
    assert verdicts.count("negative") >= 2, verdicts
    assert page.locator(".widget-html span[title]").count() > 5, \
        "the words of the review are coloured"

    box = page.locator(".widget-textarea textarea").first
    t0 = time.perf_counter()
    box.fill("Gorgeous dress, it fits perfectly and the colour is lovely.")
    wait_for_text(page, r"This review reads positive")
    record(app, "review typed -> verdict (0.1 s pause included)", time.perf_counter() - t0)

    box.fill("<script>document.title='hacked'</script><b>Cheap</b> fabric and an awful fit.")
    wait_for_text(page, r"The review contains HTML: it is shown as plain text, never run")
    assert page.title() != "hacked"
    assert page.get_by_text(re.compile(r"<script>document\.title")).count() >= 1, \
        "the script is shown as text"
    assert page.locator(".widget-html b", has_text="Cheap").count() == 0, "the <b> is not rendered"

    box.fill("")
    wait_for_text(page, r"The box is empty: type or paste a review")
    box.fill("Soft, warm and well made: I wear this sweater every day.")
    wait_for_text(page, r"This review reads positive")
    assert not page.get_by_text("Something went wrong").count()
