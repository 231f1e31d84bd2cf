"""ALTO v4.4 of a recognised page, as libraries' viewers and eScriptorium read it.

The page's print space holds up to two text blocks, in this order (ALTO's reading order: the order of the elements,
also written out as ``ReadingOrder``): ``main``, the lines of the main text in reading order, and ``glosses``, the
side glosses (furigana), tagged ``TAGREFS="gloss"`` (a ``LayoutTag``). Each line holds one ``String`` (the text has
no word breaks; ``WC``: its characters' mean probability) whose glyphs are the line's characters top to bottom: a
glyph's ``ID`` is ``c`` and its index in the page's JSON ``characters`` (a line's: ``l`` and its index in ``lines``),
its ``CONTENT`` and ``GC`` its best reading and that reading's probability, and its ``Variant`` elements the other
readings with theirs (``VC``), best first. Positions (``HPOS VPOS WIDTH HEIGHT``) are whole pixels of the original
scan. A page that could not be read has an empty print space, and its error in the processing step's description.
"""

from __future__ import annotations

from datetime import datetime, timezone
from xml.etree import ElementTree as ET

from kuzu_lightning.geometry import enclosing_box, pixel_box
from kuzu_lightning.records import RecognizedPage

NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _element(parent: ET.Element, tag: str, text: str | None = None, **attributes) -> ET.Element:
    element = ET.SubElement(parent, f"{{{NAMESPACE}}}{tag}", {key: str(value) for key, value in attributes.items()})
    element.text = text
    return element


def _position(box: tuple[int, int, int, int]) -> dict:
    x1, y1, x2, y2 = box
    return {"HPOS": x1, "VPOS": y1, "WIDTH": x2 - x1, "HEIGHT": y2 - y1}


def _conf(value: float) -> str:
    return f"{min(max(value, 0.0), 1.0):.4f}"


def alto_xml(page: RecognizedPage, image_filename: str, created: datetime | None = None) -> ET.ElementTree:
    """The ALTO document of ``page`` read from the scan ``image_filename`` (see the module docstring); ``created``:
    when it was read (default: now), in UTC."""
    from kuzu_lightning import __version__

    root = ET.Element(f"{{{NAMESPACE}}}alto", {f"{{{XSI}}}schemaLocation": f"{NAMESPACE} {SCHEMA}",
                                               "SCHEMAVERSION": "4.4"})
    description = _element(root, "Description")
    _element(description, "MeasurementUnit", "pixel")
    _element(_element(description, "sourceImageInformation"), "fileName", image_filename)
    step = _element(_element(description, "OCRProcessing", ID="recognition"), "ocrProcessingStep")
    stamp = (created or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    _element(step, "processingDateTime", stamp)
    if page.error:
        _element(step, "processingStepDescription", f"the page could not be read: {page.error}")
    software = _element(step, "processingSoftware")
    _element(software, "softwareName", "kuzu_lightning")
    _element(software, "softwareVersion", __version__)
    blocks = page.parts()
    if any(name == "glosses" for name, _ in blocks):
        _element(_element(root, "Tags"), "LayoutTag", ID="gloss", LABEL="gloss",
                 DESCRIPTION="a side gloss (furigana) beside a line of the main text")
    if blocks:
        group = _element(_element(root, "ReadingOrder"), "OrderedGroup", ID="reading_order")
        for name, _ in blocks:
            _element(group, "ElementRef", ID=f"reading_order_{name}", REF=name)
    layout_page = _element(_element(root, "Layout"), "Page", ID="page", WIDTH=page.width, HEIGHT=page.height,
                           PHYSICAL_IMG_NR=1, LANG="ja")
    space = _element(layout_page, "PrintSpace", **_position((0, 0, page.width, page.height)))
    for name, lines in blocks:
        boxes = {j: pixel_box(page.lines[j].box, page.width, page.height) for j in lines}
        tags = {"TAGREFS": "gloss"} if name == "glosses" else {}
        block = _element(space, "TextBlock", ID=name, **tags, **_position(enclosing_box(boxes.values())))
        for j in lines:
            line = page.lines[j]
            characters = [page.characters[i] for i in line.characters]
            xml_line = _element(block, "TextLine", ID=f"l{j}", **tags, **_position(boxes[j]))
            string = _element(xml_line, "String", ID=f"l{j}_s", CONTENT=page.characters_of(line),
                              WC=_conf(sum(c.probability for c in characters) / len(characters)),
                              **_position(boxes[j]))
            for i, character in zip(line.characters, characters):
                glyph = _element(string, "Glyph", ID=f"c{i}", CONTENT=character.char, GC=_conf(character.probability),
                                 **_position(pixel_box(character.box, page.width, page.height)))
                for reading in character.alternatives[1:]:
                    _element(glyph, "Variant", CONTENT=reading.char, VC=_conf(reading.probability))
    ET.indent(root, space=" ")
    return ET.ElementTree(root)

