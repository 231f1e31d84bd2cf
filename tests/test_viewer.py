"""The viewer (``--html``): its pages opened from disk in a real headless Chromium (Debian's ``chromium``, driven by
Playwright), hovered and clicked; and ``kuzu recognize --html`` writing the site, also for pages read before.

The screenshots are kept in ``build/test-artifacts/`` (or ``$KUZU_TEST_ARTIFACTS``)."""

import json
import os
import shutil
from pathlib import Path

import cv2
import pytest
from helpers.pages import CHARS, hand_built_page

from kuzu_lightning.records import recognized_page
from kuzu_lightning.viewer import DOUBTFUL, write_page_view, write_site

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("KUZU_TEST_ARTIFACTS") or ROOT / "build" / "test-artifacts")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium; skipped where there is none (CI installs Debian's)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("no chromium here (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(synthetic_dir, module_dir) -> Path:
    """The hand-built page (16 characters, a side gloss, five doubtful) on a real synthetic scan of its size, and a
    page that could not be read."""
    out = module_dir("site")
    scan = cv2.imread(str(sorted((synthetic_dir / "train_images").glob("*.jpg"))[0]))
    image = cv2.cvtColor(cv2.resize(scan, (900, 760)), cv2.COLOR_BGR2RGB)
    for key, page, picture in (("book/page1", hand_built_page(), image),
                               ("book/page2", hand_built_page(error="cannot decode: truncated JPEG"), None)):
        record = recognized_page({**page, "image_id": key}).to_dict()
        (out / f"{key}.json").parent.mkdir(parents=True, exist_ok=True)
        (out / f"{key}.json").write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        write_page_view(out, key, record, picture)
    write_site(out, ["book/page1", "book/page2"])
    return out


def test_a_page_shows_the_scan_its_boxes_and_its_text_in_reading_order(site, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto((site / "book" / "page1.html").as_uri())
    assert page.locator("svg image").evaluate("image => image.getBBox().width") == 900  # the scan, loaded
    assert page.locator("svg image").evaluate("image => image.href.baseVal") == "page1.view.jpg"
    assert page.evaluate("() => new Promise(done => { const i = new Image(); i.onload = () => done(i.naturalWidth); "
                         "i.src = 'page1.view.jpg'; })") == 900
    assert page.locator("rect.box").count() == len(CHARS)
    scan, first = page.locator("svg").bounding_box(), page.locator("#b0").bounding_box()
    assert first["width"] > 0 and scan["x"] <= first["x"] < scan["x"] + scan["width"]  # drawn on the scan
    lines = page.locator(".text .line")
    assert lines.count() == 2 and lines.first.inner_text().replace("\n", "") == "あい" + "カナルビ" + "うえおか"
    writing = page.locator(".text").evaluate("e => getComputedStyle(e).writingMode")
    assert writing == "vertical-rl"
    doubtful = page.locator(".char.doubtful")
    assert doubtful.count() == sum(p < DOUBTFUL for p in hand_built_page()["probabilities"].tolist()) == 5
    colour = "e => getComputedStyle(e).backgroundColor"
    assert doubtful.first.evaluate(colour) != page.locator('.char[data-i="0"]').evaluate(colour)
    page.screenshot(path=str(ARTIFACTS / "viewer-page.png"), full_page=True)


def test_hovering_a_character_lights_its_box_and_clicking_shows_its_readings(site, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto((site / "book" / "page1.html").as_uri())
    fill = "e => getComputedStyle(e).fill"
    before = page.locator("#b2").evaluate(fill)
    page.locator('.char[data-i="2"]').hover()
    assert "hover" in page.locator("#b2").get_attribute("class") and page.locator("#b2").evaluate(fill) != before
    assert page.locator("#alternatives").is_hidden()
    page.locator('.char[data-i="2"]').click()
    panel = page.locator("#alternatives")
    assert panel.is_visible()
    rows = panel.locator("tr")
    record = recognized_page(hand_built_page()).characters[2]
    assert rows.count() == 3 == len(record.alternatives)
    assert [rows.nth(n).locator("td").first.inner_text() for n in range(3)] == [r.char for r in record.alternatives]
    assert rows.first.inner_text().split("\t")[-1] == f"{100 * record.alternatives[0].probability:.1f} %"
    page.screenshot(path=str(ARTIFACTS / "viewer-alternatives.png"), full_page=True)
    page.locator("#b13").click(force=True)  # a box on the scan: a gloss character's readings
    assert "character 13" in panel.inner_text() and "selected" in page.locator('.char[data-i="13"]').get_attribute("class")


def test_the_index_lists_every_page_and_opens_it(site, browser):
    page = browser.new_page()
    page.goto((site / "index.html").as_uri())
    rows = page.locator("table.pages tr")
    assert rows.count() == 3
    assert "truncated JPEG" in rows.nth(2).inner_text()
    assert rows.nth(1).locator("td").nth(2).inner_text() == "5"  # doubtful
    rows.nth(1).locator("a").click()
    assert page.url.endswith("/book/page1.html") and page.locator("rect.box").count() == len(CHARS)
    page.goto((site / "book" / "page2.html").as_uri())
    assert "could not be read" in page.locator(".error").inner_text() and page.locator("svg").count() == 0


def test_kuzu_recognize_writes_the_site_also_for_pages_read_before(checkpoints, synthetic_dir, tmp_path):
    from kuzu_lightning.tools.kuzu import run

    scans = tmp_path / "scans"
    scans.mkdir()
    for source in sorted((synthetic_dir / "test_images").glob("*.jpg"))[:2]:
        cv2.imwrite(str(scans / f"{source.stem}.tif"), cv2.imread(str(source)))  # a TIFF: no browser shows one
    out = tmp_path / "out"
    models = ["--detector", str(checkpoints[0]), "--classifier", str(checkpoints[1]), "--accelerator", "cpu",
              "--num_workers", "0"]
    run(["recognize", str(scans), "--out", str(out), *models])  # no site
    assert not (out / "index.html").exists()
    keys = sorted(p.stem for p in scans.iterdir())
    run(["recognize", str(scans), "--out", str(out), "--html", *models])  # nothing to read again: the site alone
    index = (out / "index.html").read_text(encoding="utf-8")
    for key in keys:
        page = json.loads((out / f"{key}.json").read_text(encoding="utf-8"))
        assert f'href="{key}.html"' in index
        view = cv2.imread(str(out / f"{key}.view.jpg"))
        assert view.shape[:2] == (page["height"], page["width"])  # the scan, as a JPEG
        assert (out / f"{key}.html").read_text(encoding="utf-8").count('class="box') == len(page["characters"])
    (out / f"{keys[0]}.json").unlink()
    run(["recognize", str(scans), "--out", str(out), "--html", *models])  # read now: written with the page
    assert (out / f"{keys[0]}.html").stat().st_mtime_ns >= (out / f"{keys[0]}.view.jpg").stat().st_mtime_ns
    broken = scans / f"{keys[1]}.tif"
    broken.write_bytes(broken.read_bytes()[:3000])  # the scan changed and cannot be read: no picture of it stays
    run(["recognize", str(scans), "--out", str(out), "--html", *models])
    assert not (out / f"{keys[1]}.view.jpg").exists()
    assert "this page could not be read" in (out / f"{keys[1]}.html").read_text(encoding="utf-8")
