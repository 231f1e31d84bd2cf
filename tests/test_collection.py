"""A collection's pages, their keys and the inputs that are no pages: hostile trees of real files, links, FIFOs and
names, found without reading a page."""

import os
from pathlib import Path

import pytest

from kuzu_lightning.collection import find_collection, output_keys


def touch(path: Path, content: bytes = b"\xff\xd8 not read here") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def keys(found) -> list[str]:
    return [key for key, _ in found.pages]


def reasons(found) -> dict[str, str]:
    return {rejected.input: rejected.reason for rejected in found.rejected}


def test_names_that_differ_by_a_second_suffix_get_keys_of_their_own(tmp_path):
    for name in ("a.jpg", "a.png", "a.jpg.png", "b.tif", "summary.jpg"):
        touch(tmp_path / "scans" / name)
    found = find_collection([str(tmp_path / "scans")])
    assert keys(found) == ["a.jpg", "a.jpg.png", "a.png", "b", "summary.jpg"]  # summary.json is the run's own
    assert len({key for key in keys(found)}) == len(found.pages)


def test_keys_stay_unique_whatever_the_names():
    root = Path("/scans")
    paths = [root / name for name in ("x.jpg", "x.png", "x.jpg.png", "x.jpg.png.tif", "summary", "y\\xff.jpg")]
    paths.append(Path(os.fsdecode(b"/scans/y\xff.jpg")))  # prints like the name before it
    found = output_keys(paths, [root])
    assert len(set(found)) == len(paths) and "summary" not in found
    assert found[-2:] == ["y\\xff.jpg", "y\\xff.jpg~2"]


def test_a_name_that_is_not_utf8_is_a_page_with_a_printable_key(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    touch(Path(os.fsdecode(bytes(folder) + b"/p\xe9ge.jpg")))
    found = find_collection([str(folder)])
    assert keys(found) == ["p\\xe9ge"]
    assert keys(found)[0].encode("utf-8")  # writable as UTF-8


def test_links_to_files_outside_the_folder_are_keyed_where_they_are(tmp_path):
    outside = touch(tmp_path / "elsewhere" / "real.jpg")
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "page.jpg").symlink_to(outside)
    (tmp_path / "scans" / "same.jpg").symlink_to(outside)  # the same file again: one page
    found = find_collection([str(tmp_path / "scans")])
    assert keys(found) == ["page"] and found.rejected == []


def test_what_cannot_be_read_is_rejected_with_its_reason_and_never_becomes_the_root(tmp_path):
    scans = tmp_path / "scans"
    touch(scans / "good.jpg")
    (scans / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (scans / "loop.jpg").symlink_to(scans / "loop.jpg")
    os.mkfifo(scans / "pipe.jpg")
    (tmp_path / "direct.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    os.mkfifo(tmp_path / "fifo.jpg")
    inputs = [str(scans), str(tmp_path / "direct.jpg"), str(tmp_path / "loop"), str(tmp_path / "fifo.jpg"),
              str(tmp_path / "misspelled"), str(tmp_path / "*.tiff")]
    found = find_collection(inputs)
    assert keys(found) == ["good"]  # the folder is the root: no broken link made it "/"
    assert reasons(found) == {
        str(scans / "gone.jpg"): "a broken symbolic link",
        str(scans / "loop.jpg"): "Too many levels of symbolic links",
        str(scans / "pipe.jpg"): "a FIFO, not an image file",
        str(tmp_path / "direct.jpg"): "a broken symbolic link",
        str(tmp_path / "loop"): "Too many levels of symbolic links",
        str(tmp_path / "fifo.jpg"): "a FIFO, not an image file",
        str(tmp_path / "misspelled"): "no such file or folder",
        str(tmp_path / "*.tiff"): "matches no file",
    }


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_a_folder_that_cannot_be_listed_is_rejected(tmp_path):
    locked = tmp_path / "scans" / "locked"
    touch(locked / "page.jpg")
    touch(tmp_path / "scans" / "open.jpg")
    locked.chmod(0)
    try:
        found = find_collection([str(tmp_path / "scans")])
    finally:
        locked.chmod(0o755)
    assert keys(found) == ["open"] and reasons(found) == {str(locked): "permission denied"}


def test_lists_read_once_with_or_without_a_byte_order_mark(tmp_path):
    touch(tmp_path / "a.jpg")
    touch(tmp_path / "b.jpg")
    listing = tmp_path / "pages.txt"
    listing.write_text("\ufeffa.jpg\npages.txt\nother.lst\n", encoding="utf-8")  # it lists itself, and another
    (tmp_path / "other.lst").write_text("b.jpg\npages.txt\n", encoding="utf-8")  # which lists the first
    found = find_collection([str(listing)])
    assert keys(found) == ["a", "b"] and found.rejected == []


def test_outputs_inside_the_inputs_are_never_read_as_pages(tmp_path):
    touch(tmp_path / "scans" / "001.jpg")
    touch(tmp_path / "scans" / "transcripts" / "001.png")  # a picture an earlier run wrote
    found = find_collection([str(tmp_path / "scans"), str(tmp_path / "scans" / "transcripts" / "001.png")],
                            out=tmp_path / "scans" / "transcripts")
    assert keys(found) == ["001"]


def test_folders_reached_twice_or_through_a_link_loop_are_walked_once(tmp_path):
    touch(tmp_path / "scans" / "book" / "001.jpg")
    (tmp_path / "scans" / "book" / "again").symlink_to(tmp_path / "scans" / "book")
    found = find_collection([str(tmp_path / "scans"), str(tmp_path / "scans" / "book")])
    assert keys(found) == ["book/001"] and found.rejected == []


def test_patterns_match_relative_to_the_working_folder_or_as_given(tmp_path, monkeypatch):
    for name in ("a/1.tif", "a/2.TIF", "b/3.tif"):
        touch(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    assert keys(find_collection(["*/*.tif"])) == ["a/1", "b/3"]
    assert keys(find_collection([str(tmp_path / "a" / "*")])) == ["1", "2"]
