"""PAGE XML and ALTO of a recognised page: a hand-built page with two columns and a side gloss, every file validated
against the official schema (``SHARED/schemas``), its glyphs, readings and reading order read back."""

import numpy as np
import pytest
from helpers.pages import CHARS, hand_built_page
from lxml import etree

from kuzu_lightning.alto import alto_xml
from kuzu_lightning.geometry import pixel_box
from kuzu_lightning.outputs import write_xml
from kuzu_lightning.page_xml import page_xml
from kuzu_lightning.records import recognized_page

PAGE = {"pc": "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"}
ALTO = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}
def valid(schema, path) -> etree._ElementTree:
    tree = etree.parse(str(path))
    assert schema.validate(tree), f"{path}: {schema.error_log}"
    return tree


def test_page_xml_holds_lines_in_reading_order_and_each_character_with_its_readings(xml_schemas, tmp_path):
    page = recognized_page(hand_built_page())
    tree = valid(xml_schemas["page"], write_xml(tmp_path / "page1.page.xml", page_xml(page, "scans/book/page1.jpg")))
    xml_page = tree.find("pc:Page", PAGE)
    assert (xml_page.get("imageFilename"), xml_page.get("imageWidth"), xml_page.get("imageHeight")) == (
        "scans/book/page1.jpg", "900", "760")
    assert [ref.get("regionRef") for ref in xml_page.iterfind("pc:ReadingOrder//pc:RegionRefIndexed", PAGE)] == [
        "main", "glosses"]
    main, glosses = xml_page.findall("pc:TextRegion", PAGE)
    assert [line.get("id") for line in main.iterfind("pc:TextLine", PAGE)] == ["l0", "l2"]
    assert [line.findtext("pc:TextEquiv/pc:Unicode", namespaces=PAGE) for line in main.iterfind("pc:TextLine", PAGE)
            ] == ["あいうえおか", "きくけこさし"]
    assert main.findtext("pc:TextEquiv/pc:Unicode", namespaces=PAGE) == "あいうえおか\nきくけこさし"
    gloss = glosses.find("pc:TextLine", PAGE)
    assert "type:gloss" in glosses.get("custom") and gloss.findtext("pc:TextEquiv/pc:Unicode", namespaces=PAGE) == "カナルビ"
    assert page.text.startswith("あい《カナルビ》う")  # the gloss stands beside い and う, written after い:
    assert "line:l0" in gloss.get("custom") and "after:c1" in gloss.get("custom")
    glyphs = tree.findall(".//pc:Glyph", PAGE)
    assert sorted(glyph.get("id") for glyph in glyphs) == sorted(f"c{i}" for i in range(len(CHARS)))
    for glyph in glyphs:
        character = page.characters[int(glyph.get("id")[1:])]
        x1, y1, x2, y2 = pixel_box(character.box, 900, 760)
        coords = glyph.find("pc:Coords", PAGE)
        assert coords.get("points") == f"{x1},{y1} {x2},{y1} {x2},{y2} {x1},{y2}"
        assert float(coords.get("conf")) == pytest.approx(character.score, abs=1e-4)
        readings = glyph.findall("pc:TextEquiv", PAGE)
        assert [(int(r.get("index")), r.findtext("pc:Unicode", namespaces=PAGE), float(r.get("conf"))) for r in readings
                ] == [(rank, reading.char, pytest.approx(reading.probability, abs=1e-4))
                      for rank, reading in enumerate(character.alternatives, 1)]
        assert readings[0].findtext("pc:Unicode", namespaces=PAGE) == character.char
    assert tree.find(".//pc:Glyph[@id='c0']/pc:Coords", PAGE).get("points").startswith("660,0 ")  # clipped to the page


def test_alto_holds_lines_in_reading_order_and_each_character_with_its_variants(xml_schemas, tmp_path):
    page = recognized_page(hand_built_page())
    tree = valid(xml_schemas["alto"], write_xml(tmp_path / "page1.alto.xml", alto_xml(page, "scans/book/page1.jpg")))
    assert tree.findtext("a:Description/a:sourceImageInformation/a:fileName", namespaces=ALTO) == "scans/book/page1.jpg"
    assert [ref.get("REF") for ref in tree.iterfind("a:ReadingOrder//a:ElementRef", ALTO)] == ["main", "glosses"]
    main, glosses = tree.findall(".//a:TextBlock", ALTO)
    assert [block.get("ID") for block in (main, glosses)] == ["main", "glosses"] and glosses.get("TAGREFS") == "gloss"
    assert tree.find("a:Tags/a:LayoutTag", ALTO).get("ID") == "gloss"
    assert [string.get("CONTENT") for string in main.iterfind(".//a:String", ALTO)] == ["あいうえおか", "きくけこさし"]
    assert [string.get("CONTENT") for string in glosses.iterfind(".//a:String", ALTO)] == ["カナルビ"]
    first = main.find("a:TextLine/a:String", ALTO)
    assert float(first.get("WC")) == pytest.approx(np.mean([page.characters[i].probability for i in range(6)]), abs=1e-4)
    glyphs = tree.findall(".//a:Glyph", ALTO)
    assert len(glyphs) == len(CHARS)
    for glyph in glyphs:
        character = page.characters[int(glyph.get("ID")[1:])]
        x1, y1, x2, y2 = pixel_box(character.box, 900, 760)
        assert [int(glyph.get(key)) for key in ("HPOS", "VPOS", "WIDTH", "HEIGHT")] == [x1, y1, x2 - x1, y2 - y1]
        assert glyph.get("CONTENT") == character.char
        assert float(glyph.get("GC")) == pytest.approx(character.probability, abs=1e-4)
        assert [(v.get("CONTENT"), float(v.get("VC"))) for v in glyph.iterfind("a:Variant", ALTO)] == [
            (reading.char, pytest.approx(reading.probability, abs=1e-4)) for reading in character.alternatives[1:]]


def test_a_page_that_could_not_be_read_is_valid_and_says_why(xml_schemas, tmp_path):
    page = recognized_page(hand_built_page(error="cannot decode: truncated JPEG"))
    page_tree = valid(xml_schemas["page"], write_xml(tmp_path / "bad.page.xml", page_xml(page, "bad.jpg")))
    assert "truncated JPEG" in page_tree.findtext("pc:Metadata/pc:Comments", namespaces=PAGE)
    assert page_tree.find(".//pc:TextRegion", PAGE) is None
    alto_tree = valid(xml_schemas["alto"], write_xml(tmp_path / "bad.alto.xml", alto_xml(page, "bad.jpg")))
    assert "truncated JPEG" in alto_tree.findtext(".//a:processingStepDescription", namespaces=ALTO)
    assert alto_tree.find(".//a:TextBlock", ALTO) is None


def test_what_is_not_xml_in_a_reading_or_a_file_name_is_escaped(xml_schemas, tmp_path):
    page = recognized_page(hand_built_page())
    name = 'scans/<a & "b">/page1.jpg'
    for kind, document in (("page", page_xml), ("alto", alto_xml)):
        tree = valid(xml_schemas[kind], write_xml(tmp_path / f"p.{kind}.xml", document(page, name)))
        assert name in {element.get("imageFilename") or element.text for element in tree.iter()}
