"""The HumanRefine tab in a real browser: Debian's Chromium driven by Playwright, the tab mounted in a
bare gradio app (tests/tab_app.py) with the stand-in host. Runs on whichever gradio is installed
(the main venv: 4.x like Forge/Neo; .ci/run also runs it under 3.41 like A1111/reForge).

Skips when gradio, Playwright or Chromium is missing — unless HUMANREFINE_BROWSER_TESTS=require
(CI), where that is a failure.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from stand_in_host import ShiftHost

CHROMIUM = os.environ.get("HUMANREFINE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
REQUIRED = os.environ.get("HUMANREFINE_BROWSER_TESTS") == "require"


def need(condition: bool, why: str) -> None:
    if not condition:
        if REQUIRED:
            pytest.fail(f"browser tests required but {why}")
        pytest.skip(why)


os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
try:
    import gradio  # noqa: F401
    from playwright.sync_api import sync_playwright
except ImportError as exc:  # collected anyway, so REQUIRED can fail loudly
    sync_playwright, MISSING = None, f"{exc.name} is not installed"
else:
    MISSING = "" if shutil.which(CHROMIUM) else f"{CHROMIUM} is not installed (apt-get install chromium)"

import tab_app  # noqa: E402  (imports gradio lazily)


class SlowHost(ShiftHost):
    """Test double: a ShiftHost whose every pass takes 0.4 s (to press Stop in between)."""

    def inpaint(self, request):
        time.sleep(0.4)
        return super().inpaint(request)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory, models_ready):
    need(not MISSING, MISSING)
    folder = tmp_path_factory.mktemp("tab")
    state = SimpleNamespace(folder=folder, host=ShiftHost)
    picture = tab_app.sample_picture()
    demo = tab_app.make_app(folder, picture, host_factory=lambda: state.host())
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    state.url = f"http://127.0.0.1:{port}/"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", tab_app.GENERATED_INFOTEXT)
    state.input = folder / "input.png"
    picture.save(state.input, pnginfo=info)
    yield state
    demo.close()


@pytest.fixture(scope="module")
def browser(app):
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Nothing outside this machine (gradio's web fonts): fail fast instead of waiting for a timeout.
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())
    page.goto(app.url)
    page.locator("#tabs button", has_text=re.compile(r"^\s*HumanRefine\s*$")).click()
    page.locator("#humanrefine_image").first.wait_for()
    app.host = ShiftHost
    yield page
    context.close()
    assert not errors, errors  # no JavaScript error on the page


def first(page, selector):
    return page.locator(selector).first  # gradio 3 repeats some elem_ids on an inner element


def text(page, selector) -> str:
    return first(page, selector).inner_text()


def wait_text(page, selector, pattern, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = text(page, selector)
        if re.search(pattern, now):
            return now
        page.wait_for_timeout(100)
    raise AssertionError(f"{selector} never matched {pattern!r}; it says {now!r}")


def shot(locator) -> np.ndarray:
    locator.page.wait_for_function(
        "() => [...document.querySelectorAll('.humanrefine-compare img, #humanrefine_overlay img')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB")).astype(np.int16)


def near(image: np.ndarray, colour, tolerance=40) -> int:
    return int((np.abs(image - np.array(colour)).max(axis=2) <= tolerance).sum())


def upload_and_diagnose(page, app):
    page.set_input_files("#humanrefine_image input[type=file]", str(app.input))
    wait_text(page, "#humanrefine_note", "seed 40")
    # Diagnose sits right under the picture, in view without scrolling (the extra mask is folded away)
    button = first(page, "#humanrefine_diagnose").bounding_box()
    assert button["y"] + button["height"] <= page.viewport_size["height"], button
    assert button["y"] < first(page, "#humanrefine_mask_accordion").bounding_box()["y"]
    first(page, "#humanrefine_diagnose").click()
    wait_text(page, "#humanrefine_verdict", r"2 parts")
    first(page, "#humanrefine_part_0").wait_for(state="visible")


def part_row(page, name: str) -> int:
    for i in range(2):
        if name in first(page, f"#humanrefine_part_{i}_pick").inner_text():
            return i
    raise AssertionError(f"no row for {name}")


def boxes(page, selectors):
    """Each element's top in page coordinates (bounding_box is relative to the scrolled viewport)."""
    return {s: first(page, s).evaluate("el => el.getBoundingClientRect().top + window.scrollY") for s in selectors}


def pick_option(page, dropdown: str, pattern: str):
    first(page, f"{dropdown} input").click()
    options = page.locator("[data-testid=dropdown-option]")  # gradio 3 and 4 alike
    options.filter(has_text=re.compile(pattern.lstrip("^"))).first.click()


def teach_buttons_write_crops_and_verdicts(page, app, face: int):
    """The teach buttons of a diagnosed image write labels.csv rows and crops, never twice or contradicting."""
    first(page, f"#humanrefine_part_{face}_bad").click()
    wait_text(page, "#humanrefine_teach_note", r"Taught: P1 face is malformed")
    first(page, "#humanrefine_image_fine").click()
    wait_text(page, "#humanrefine_teach_note", r"Taught: whole image is fine")
    first(page, f"#humanrefine_part_{face}_bad").click()
    wait_text(page, "#humanrefine_teach_note", r"Already in the labels")
    first(page, f"#humanrefine_part_{face}_fine").click()
    wait_text(page, "#humanrefine_teach_note", r"already labelled the other way")

    labels = app.folder / "labels"
    with open(labels / "labels.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["path", "label", "kind", "part"]
    assert [r[1:] for r in rows[1:]] == [["1", "generated-user", "face"], ["0", "generated-user", "image"]]
    with Image.open(labels / rows[1][0]) as crop, Image.open(labels / rows[2][0]) as whole:
        assert crop.width == crop.height and 60 < crop.width < 600  # a square around the face
        assert whole.size == (512, 600)


def test_diagnose_teach_pick_refine_compare_choose_save_keep(page, app):
    steady = ["#humanrefine_compare", "#humanrefine_keep", "#humanrefine_refine", "#humanrefine_candidates"]
    before_diagnosis = boxes(page, steady)
    upload_and_diagnose(page, app)
    assert first(page, "#humanrefine_prompt textarea").input_value() == "a woman in a navy uniform"
    assert "model stand-in-model" in text(page, "#humanrefine_note")

    # The overlay: the picture with the parts' boxes drawn in the "ok" green the overlay uses.
    overlay = shot(first(page, "#humanrefine_overlay img"))
    picture = shot(first(page, "#humanrefine_image img"))
    green = (60, 200, 60)
    assert near(overlay, green) > 1000, near(overlay, green)
    assert near(overlay, green) > 10 * near(picture, green)

    face = part_row(page, "P1 face")
    assert "no reason to suspect it" in text(page, f"#humanrefine_part_{face}_reasons")
    teach_buttons_write_crops_and_verdicts(page, app, face)
    checkbox = first(page, f"#humanrefine_part_{face}_pick input[type=checkbox]")
    assert not checkbox.is_checked()  # nothing flagged: nothing preselected
    checkbox.check()
    count = first(page, f"#humanrefine_part_{face}_candidates input[type=number]")
    count.fill("2")
    count.press("Enter")
    before_results = boxes(page, steady)
    first(page, "#humanrefine_refine").click()
    done = wait_text(page, "#humanrefine_progress", r"Done in")
    assert "P1 face fixed (2/2 candidates passed)" in done
    assert "P1 face" in text(page, "#humanrefine_steps_table") and "2/2" in text(page, "#humanrefine_steps_table")
    assert page.locator("#humanrefine_candidates img").count() >= 3  # the original and two candidates
    # Nothing moved when the diagnosis and the results arrived (fixed-height areas).
    for selector, top in boxes(page, steady).items():
        for earlier in (before_diagnosis, before_results):
            assert abs(top - earlier[selector]) <= 1, (selector, top, earlier[selector])

    # The comparison slider, from the keyboard: End shows only "before", Home only "after".
    slider = first(page, ".humanrefine-compare")
    slider.focus()
    page.keyboard.press("End")
    assert slider.get_attribute("aria-valuenow") == "100"
    all_before = shot(slider)
    page.keyboard.press("Home")
    all_after = shot(slider)
    changed = np.abs(all_after - all_before).max(axis=2) > 20
    share = changed.mean()
    assert 0.002 < share < 0.3, share  # the face changed, the rest did not
    ys, xs = np.nonzero(changed)
    assert ys.mean() < 0.6 * changed.shape[0]  # and the face is in the upper part of the picture
    page.keyboard.press("ArrowRight")
    assert slider.get_attribute("aria-valuenow") == "5"

    # Dragging to the middle of the face: left of the pointer is "before", right of it "after".
    middle = int(np.median(xs))
    box = slider.bounding_box()
    page.mouse.click(box["x"] + middle * box["width"] / changed.shape[1], box["y"] + box["height"] / 2)
    assert abs(int(slider.get_attribute("aria-valuenow")) - 100 * middle / changed.shape[1]) <= 1
    split = shot(slider)
    for columns, expected in ((slice(0, middle - 4), all_before), (slice(middle + 4, None), all_after)):
        face_here = changed[:, columns]
        assert face_here.sum() > 50  # the face lies on both sides of the divider
        agree = np.abs(split[:, columns] - expected[:, columns]).max(axis=2)[face_here] < 12
        assert agree.mean() > 0.95, agree.mean()

    # The original, then the candidate the checks did not choose: the "after" picture follows.
    chosen = int(re.match(r"#(\d) seed", first(page, "#humanrefine_use input").input_value()).group(1))
    other = 3 - chosen
    pick_option(page, "#humanrefine_use", r"^original")
    wait_text(page, "#humanrefine_progress", "using original")
    page.keyboard.press("Escape")
    slider = first(page, ".humanrefine-compare")
    slider.focus()
    page.keyboard.press("Home")
    inner = slice(8, -8)  # without the divider, which sits at the left edge now and at the right one before
    assert (np.abs(shot(slider) - all_before)[:, inner].max(axis=2) > 20).mean() < 0.001
    pick_option(page, "#humanrefine_use", rf"^#{other} seed")
    wait_text(page, "#humanrefine_progress", rf"using #{other} seed")
    phrase = f"P1 face candidate {other} (chosen by hand)"
    assert phrase in first(page, "#humanrefine_result_infotext textarea").input_value()

    # Save writes the picture with its infotext; Keep makes the result the image and diagnoses it.
    first(page, "#humanrefine_save").click()
    saved = Path(re.search(r"Saved to (\S+\.png)", wait_text(page, "#humanrefine_progress", "Saved to")).group(1))
    with Image.open(saved) as png:
        assert f"HumanRefine result: {phrase}" in png.info["parameters"]
        assert png.info["parameters"].startswith("a woman in a navy uniform\nNegative prompt: blurry\n")
    first(page, "#humanrefine_keep").click()
    wait_text(page, "#humanrefine_note", "Kept")
    wait_text(page, "#humanrefine_verdict", r"2 parts")
    assert "HumanRefine result" in first(page, "#humanrefine_infotext textarea").input_value()
    assert first(page, "#humanrefine_keep").is_disabled()


def test_send_from_the_txt2img_gallery_then_diagnose_tick_and_refine_from_the_keyboard(page, app):
    page.locator("#tabs button", has_text=re.compile(r"^\s*txt2img\s*$")).click()
    first(page, "#txt2img_generate").click()
    page.locator("#txt2img_gallery img").first.wait_for()
    first(page, "#txt2img_send_to_humanrefine").click()
    wait_text(page, "#humanrefine_note", "seed 40")
    assert first(page, "#tab_humanrefine").is_visible()  # the tab opened
    assert first(page, "#humanrefine_prompt textarea").input_value() == "a woman in a navy uniform"
    assert first(page, "#humanrefine_negative textarea").input_value() == "blurry"

    def tab_to(selector, limit=60):
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"() => !!document.activeElement.closest('{selector}')"):
                return
        raise AssertionError(f"Tab never reached {selector}")

    first(page, "#humanrefine_image").focus()
    tab_to("#humanrefine_diagnose")
    page.keyboard.press("Enter")
    wait_text(page, "#humanrefine_verdict", r"2 parts")
    tab_to("#humanrefine_part_0_pick")
    page.keyboard.press("Space")
    tab_to("#humanrefine_refine")
    page.keyboard.press("Enter")
    wait_text(page, "#humanrefine_progress", r"Done in .*fixed")


def test_a_drawn_mask_alone_is_refined_and_stop_ends_a_run(page, app, tmp_path):
    upload_and_diagnose(page, app)
    first(page, "#humanrefine_refine").click()
    wait_text(page, "#humanrefine_progress", "tick at least one part")
    if tab_app.tab.gradio_major() >= 4:  # a plain mask upload outside a WebUI, folded away until wanted
        first(page, "#humanrefine_mask_accordion").get_by_text("Extra mask", exact=True).first.click()
        mask = np.zeros((600, 512), np.uint8)
        mask[470:560, 40:200] = 255  # the lower left corner
        Image.fromarray(mask).save(tmp_path / "mask.png")
        page.set_input_files("#humanrefine_mask input[type=file]", str(tmp_path / "mask.png"))
        first(page, "#humanrefine_mask img").wait_for()
    else:  # gradio 3's sketch tool over the image
        canvas = page.locator("#humanrefine_mask canvas").last
        canvas.scroll_into_view_if_needed()  # the mouse reaches only what is in the viewport
        box = canvas.bounding_box()
        page.mouse.move(box["x"] + 0.1 * box["width"], box["y"] + 0.85 * box["height"])
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(box["x"] + (0.1 + 0.02 * step) * box["width"], box["y"] + 0.85 * box["height"])
        page.mouse.up()
    first(page, "#humanrefine_refine").click()
    done = wait_text(page, "#humanrefine_progress", r"Done in")
    assert "drawn region fixed (not verified)" in done
    slider = first(page, ".humanrefine-compare")
    slider.focus()
    page.keyboard.press("End")
    all_before = shot(slider)
    page.keyboard.press("Home")
    changed = np.abs(shot(slider) - all_before)[:, 8:-8].max(axis=2) > 20  # without the divider at either edge
    ys, xs = np.nonzero(changed)
    assert len(ys) and ys.min() > 0.6 * changed.shape[0]  # only the lower part, where the mask is

    # Stop: a slow host with four candidates is stopped after its first pass.
    app.host = SlowHost
    face = part_row(page, "P1 face")
    first(page, f"#humanrefine_part_{face}_pick input[type=checkbox]").check()
    count = first(page, f"#humanrefine_part_{face}_candidates input[type=number]")
    count.fill("4")
    count.press("Enter")
    first(page, "#humanrefine_refine").click()
    wait_text(page, "#humanrefine_progress", r"Refining: P1 face")
    first(page, "#humanrefine_stop").click()
    stopped = wait_text(page, "#humanrefine_progress", r"Stopped in")
    assert "stopped: interrupted" in stopped


def test_the_sensitivity_preset_or_the_slider_sets_the_threshold_the_diagnosis_uses(page, app):
    # Each diagnosis gets a threshold the one before did not have: gradio ignores a click while the
    # previous run of that button is pending, so waiting for an unchanged text would race.
    def diagnose_with(sensitivity, expected):
        first(page, "#humanrefine_sensitivity").locator("label", has_text=sensitivity).click()
        first(page, "#humanrefine_diagnose").click()
        wait_text(page, "#humanrefine_verdict", rf"\(threshold {expected}\)")

    slider = first(page, "#humanrefine_threshold input[type=number]")
    upload_and_diagnose(page, app)  # balanced; the stand-in host's tab runs landmark signals only
    assert "(threshold 0.90)" in text(page, "#humanrefine_verdict")
    assert slider.is_disabled() and float(slider.input_value()) == 0.9  # the preset's own threshold, greyed
    diagnose_with("strict", "0.70")
    assert slider.is_disabled() and float(slider.input_value()) == 0.7  # follows the preset
    first(page, "#humanrefine_sensitivity").locator("label", has_text="threshold").click()
    page.wait_for_function("() => !document.querySelector('#humanrefine_threshold input[type=number]').disabled")
    slider.fill("0.3")
    slider.press("Enter")
    diagnose_with("threshold", "0.30")
    diagnose_with("relaxed", "1.00")  # a preset's threshold, not the slider's 0.3
    assert slider.is_disabled() and float(slider.input_value()) == 1.0
