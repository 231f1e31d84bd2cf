"""PAGE XML (PRImA's schema of 2019-07-15) of a recognised page, as OCR-D, Transkribus and eScriptorium read it.

The page (``imageFilename``: the scan it was read from; vertical lines, ``readingDirection`` top to bottom and
``textLineOrder`` right to left) holds up to two text regions, in this order in its ``ReadingOrder``: ``main``, the
lines of the main text in reading order, and ``glosses``, the side glosses (furigana; ``type`` ``other``, marked
``custom="structure {type:gloss;}"``), each gloss line naming in its ``custom`` the ``line`` it stands beside and the
character it follows (``after``). Each line holds one ``Word`` (the text has no word breaks), whose glyphs are the
line's characters top to bottom. A glyph's ``id`` is ``c`` and its index in the page's JSON ``characters``
(a line's: ``l`` and its index in ``lines``); its ``Coords`` are its box (``conf``: the detection score), its
``TextEquiv`` its readings, best first (``index`` 1, 2...; ``conf``: their probabilities). Every line, word and region
also has the ``TextEquiv`` of its characters as read. Coordinates are whole pixels of the original scan. A page that
could not be read has no region, and its error in the metadata's ``Comments``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from xml.etree import ElementTree as ET

from kuzu_lightning.geometry import enclosing_box, pixel_box
from kuzu_lightning.records import Character, Reading, RecognizedPage

NAMESPACE = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _points(box: tuple[int, int, int, int]) -> str:
    x1, y1, x2, y2 = box
    return f"{x1},{y1} {x2},{y1} {x2},{y2} {x1},{y2}"


def _conf(value: float) -> str:
    return f"{min(max(value, 0.0), 1.0):.4f}"


def _element(parent: ET.Element, tag: str, **attributes) -> ET.Element:
    return ET.SubElement(parent, f"{{{NAMESPACE}}}{tag}", {key: str(value) for key, value in attributes.items()})


def _text(parent: ET.Element, text: str, **attributes) -> None:
    _element(_element(parent, "TextEquiv", **attributes), "Unicode").text = text


def _coords(parent: ET.Element, box: tuple[int, int, int, int], **attributes) -> None:
    _element(parent, "Coords", points=_points(box), **attributes)


def _readings(character: Character) -> tuple[Reading, ...]:
    return character.alternatives or (Reading(character.code, character.char, character.probability),)


def page_xml(page: RecognizedPage, image_filename: str, created: datetime | None = None) -> ET.ElementTree:
    """The PAGE XML document of ``page`` read from the scan ``image_filename`` (see the module docstring); ``created``:
    when it was read (default: now), in UTC."""
    from kuzu_lightning import __version__

    stamp = (created or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    root = ET.Element(f"{{{NAMESPACE}}}PcGts", {f"{{{XSI}}}schemaLocation": f"{NAMESPACE} {NAMESPACE}/pagecontent.xsd"})
    metadata = _element(root, "Metadata")
    _element(metadata, "Creator").text = f"kuzu_lightning {__version__}"
    _element(metadata, "Created").text = stamp
    _element(metadata, "LastChange").text = stamp
    if page.error:
        _element(metadata, "Comments").text = f"the page could not be read: {page.error}"
    xml_page = _element(root, "Page", imageFilename=image_filename, imageWidth=page.width, imageHeight=page.height,
                        primaryLanguage="Japanese", readingDirection="top-to-bottom", textLineOrder="right-to-left")
    regions = page.parts()
    if regions:
        group = _element(_element(xml_page, "ReadingOrder"), "OrderedGroup", id="reading_order")
        for index, (name, _) in enumerate(regions):
            _element(group, "RegionRefIndexed", index=index, regionRef=name)
    for name, lines in regions:
        glosses = name == "glosses"
        region = _element(xml_page, "TextRegion", id=name, type="other" if glosses else "paragraph",
                          **({"custom": "structure {type:gloss;}"} if glosses else {}))
        boxes = {j: pixel_box(page.lines[j].box, page.width, page.height) for j in lines}
        _coords(region, enclosing_box(boxes.values()))
        for index, j in enumerate(lines):
            line = page.lines[j]
            custom = {}
            if glosses:
                after = page.lines[line.parent].characters[line.anchor]
                custom = {"custom": f"structure {{type:gloss;}} gloss {{line:l{line.parent}; after:c{after};}}"}
            xml_line = _element(region, "TextLine", id=f"l{j}", index=index, **custom)
            _coords(xml_line, boxes[j])
            word = _element(xml_line, "Word", id=f"l{j}_w")
            _coords(word, boxes[j])
            for i in line.characters:
                character = page.characters[i]
                glyph = _element(word, "Glyph", id=f"c{i}")
                _coords(glyph, pixel_box(character.box, page.width, page.height), conf=_conf(character.score))
                for rank, reading in enumerate(_readings(character), 1):
                    _text(glyph, reading.char, index=rank, conf=_conf(reading.probability))
            _text(word, page.characters_of(line))
            _text(xml_line, page.characters_of(line))
        _text(region, "\n".join(page.characters_of(page.lines[j]) for j in lines))
    ET.indent(root, space=" ")
    return ET.ElementTree(root)

