"""PDF input: real PDFs (written by Pillow and PDFium) rendered page by page, found in a collection, read by
``kuzu recognize`` and resumed per page."""

import json
import os
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image

from kuzu_lightning.collection import find_collection
from kuzu_lightning.data.images import PageDecodeError, decode_page, read_image_size
from kuzu_lightning.data.pdf import PdfPage
from kuzu_lightning.data.pseudo_labels import read_pseudo_labels


def write_pdf(path: Path, images: list[Path], resolution: float = 100) -> Path:
    """A PDF of ``images``, one a page, each ``resolution`` pixels an inch (Pillow embeds them as JPEGs)."""
    first, *rest = [Image.open(image).convert("RGB") for image in images]
    first.save(path, save_all=True, append_images=rest, resolution=resolution)
    return path


@pytest.fixture(scope="module")
def pdf_scans(synthetic_dir, module_dir) -> Path:
    """``book.pdf`` (three synthetic pages, the second turned a quarter by the PDF's own page rotation), ``loose.jpg``,
    a folder ``book/`` whose ``0001.jpg`` would take the key of the PDF's first page, a truncated PDF and one without
    pages (which PDFium refuses to load)."""
    root = module_dir("pdf") / "scans"
    root.mkdir()
    sources = sorted((synthetic_dir / "train_images").glob("*.jpg"))
    write_pdf(root / "book.pdf", sources[:3])
    document = pdfium.PdfDocument(str(root / "book.pdf"))
    document[1].set_rotation(90)
    document.save(str(root / "turned.pdf"))
    document.close()
    os.replace(root / "turned.pdf", root / "book.pdf")
    (root / "loose.jpg").write_bytes(sources[3].read_bytes())
    (root / "book").mkdir()
    (root / "book" / "0001.jpg").write_bytes(sources[4].read_bytes())
    (root / "broken.pdf").write_bytes((root / "book.pdf").read_bytes()[:600])
    empty = pdfium.PdfDocument.new()
    empty.save(str(root / "empty.pdf"))
    empty.close()
    return root


def test_a_pdf_page_renders_at_its_resolution_and_its_size_is_known_before(pdf_scans, synthetic_dir):
    original = decode_page(sorted((synthetic_dir / "train_images").glob("*.jpg"))[0])
    page = PdfPage(pdf_scans / "book.pdf", 1, dpi=100)
    image = decode_page(page)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert read_image_size(page) == (image.shape[1], image.shape[0])
    assert abs(image.shape[0] - original.shape[0]) <= 1 and abs(image.shape[1] - original.shape[1]) <= 1
    height, width = min(image.shape[0], original.shape[0]), min(image.shape[1], original.shape[1])
    assert np.abs(image[:height, :width].astype(int) - original[:height, :width]).mean() < 8  # the same page
    double = PdfPage(pdf_scans / "book.pdf", 1, dpi=200)
    assert abs(read_image_size(double)[0] - 2 * image.shape[1]) <= 1
    turned = PdfPage(pdf_scans / "book.pdf", 2, dpi=100)  # a quarter turn: width and height swap
    turned_image = decode_page(turned)
    assert read_image_size(turned) == (turned_image.shape[1], turned_image.shape[0])
    assert turned_image.shape[1] > turned_image.shape[0] and original.shape[0] > original.shape[1]
    assert decode_page(page, longest_side=200).shape[:2] == (200, round(200 * image.shape[1] / image.shape[0]))


def test_a_pdf_page_that_cannot_be_read_names_the_file_and_page(pdf_scans):
    with pytest.raises(PageDecodeError, match=r"book\.pdf#page=9: the PDF has 3 pages"):
        decode_page(PdfPage(pdf_scans / "book.pdf", 9))
    with pytest.raises(PageDecodeError, match=r"book\.pdf#page=1: refused, .* pixels at 3000 dpi is above the limit"):
        read_image_size(PdfPage(pdf_scans / "book.pdf", 1, dpi=3000))
    with pytest.raises(PageDecodeError, match=r"broken\.pdf: not a readable PDF"):
        decode_page(PdfPage(pdf_scans / "broken.pdf", 1))


def test_each_pdf_page_is_a_page_keyed_by_file_and_number_and_a_broken_pdf_is_rejected(pdf_scans):
    found = find_collection([str(pdf_scans)], pdf_dpi=150)
    assert [key for key, _ in found.pages] == ["book/0001", "book/0001~2", "book/0002", "book/0003", "loose"]
    pages = dict(found.pages)
    assert pages["book/0001"] == PdfPage(pdf_scans / "book.pdf", 1, 150)
    assert pages["book/0001~2"] == pdf_scans / "book" / "0001.jpg"  # a key taken, as for names that print alike
    assert pages["book/0003"] == PdfPage(pdf_scans / "book.pdf", 3, 150)
    reasons = {Path(r.input).name: r.reason for r in found.rejected}
    assert set(reasons) == {"broken.pdf", "empty.pdf"}
    assert all(reason.startswith("not a readable PDF (") for reason in reasons.values())  # PDFium loads no page-less PDF


def test_kuzu_recognize_reads_a_pdf_page_by_page_and_resumes_per_page(pdf_scans, checkpoints, tmp_path):
    from kuzu_lightning import Recognizer
    from kuzu_lightning.tools.kuzu import run

    book = tmp_path / "scans"
    book.mkdir()
    (book / "book.pdf").write_bytes((pdf_scans / "book.pdf").read_bytes())
    (book / "broken.pdf").write_bytes((pdf_scans / "broken.pdf").read_bytes())
    out = tmp_path / "out"

    def recognize() -> dict:
        return run(["recognize", str(book), "--detector", str(checkpoints[0]), "--classifier", str(checkpoints[1]),
                    "--out", str(out), "--pdf_dpi", "100", "--formats", "json,page", "--accelerator", "cpu",
                    "--num_workers", "0"])

    summary = recognize()
    assert (summary["pages"], summary["done"], summary["recognised_now"]) == (3, 3, 3)
    assert [failure["input"] for failure in summary["failed"]] == [str(book / "broken.pdf")]
    recognizer = Recognizer.from_checkpoints(*checkpoints)
    for number in (1, 2, 3):
        page = json.loads((out / "book" / f"{number:04d}.json").read_text(encoding="utf-8"))
        assert page["source"]["path"] == str(book / "book.pdf")
        assert (page["source"]["page"], page["source"]["dpi"]) == (number, 100)
        rendered = decode_page(PdfPage(book / "book.pdf", number, 100))
        assert (page["width"], page["height"]) == (rendered.shape[1], rendered.shape[0])
        expected = recognizer.recognize(rendered)  # the page as a user who rendered it would read it
        assert [c["code"] for c in page["characters"]] == [c.code for c in expected.characters]
        assert f'imageFilename="{book / "book.pdf"}#page={number}"' in (
            out / "book" / f"{number:04d}.page.xml").read_text(encoding="utf-8")
    taught = read_pseudo_labels(out, confidence=0.0)  # what a run read trains again, cut from the PDF's pages
    read = [n for n in (1, 2, 3) if json.loads((out / "book" / f"{n:04d}.json").read_text())["characters"]]
    assert read and [page.image_path for page in taught] == [PdfPage(book / "book.pdf", n, 100) for n in read]
    (out / "book" / "0002.json").unlink()
    assert recognize()["recognised_now"] == 1  # the page whose outputs are gone, alone
    os.utime(book / "book.pdf", ns=(1, 1))  # the PDF changed: each of its pages is read again
    assert recognize()["recognised_now"] == 3
