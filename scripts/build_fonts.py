"""Rebuild the brush-font subsets shipped in ``kuzu_lightning/synthetic/brush_fonts/`` from Debian's packages.

    pip install fonttools brotli
    python scripts/build_fonts.py --class-table ../shared/kuzushiji-real/unicode_translation.csv

Downloads ``fonts-kouzan-mouhitsu``, ``fonts-aoyagi-soseki`` and ``fonts-aoyagi-kouzan-t`` with
``apt-get download`` (or takes the ``.deb`` files of ``--debs``), unpacks them with ``dpkg-deb``,
keeps in each font the glyphs of the Kaggle class table and of the hentaigana source kanji
(``kuzu_lightning/synthetic/hentaigana.csv``), without hinting or layout tables, and writes them as
WOFF2, each package's ``copyright`` file beside them, and ``fonts.json``: per style its file, the
Debian package and the characters of the class table it covers. The fonts are in the public domain (see the
``copyright`` files); IPAexGothic comes from the ``matplotlib-fontja`` package instead.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
from fontTools import subset
from fontTools.ttLib import TTFont

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "kuzu_lightning" / "synthetic" / "brush_fonts"
HENTAIGANA = ROOT / "kuzu_lightning" / "synthetic" / "hentaigana.csv"

FONTS = {  # style: (Debian package, font file inside it)
    "kaisho": ("fonts-kouzan-mouhitsu", "kouzan-mouhitsu.ttf"),
    "gyosho": ("fonts-kouzan-mouhitsu", "kouzan-mouhitsu-gyosho.ttf"),
    "sousho": ("fonts-kouzan-mouhitsu", "KouzanBrushFontSousyo.ttf"),
    "soseki": ("fonts-aoyagi-soseki", "aoyagi-soseki.ttf"),
    "kouzan_t": ("fonts-aoyagi-kouzan-t", "AoyagiKouzanT.ttf"),
}


def unpack(debs: Path, work: Path) -> Path:
    """Extract every ``.deb`` of ``debs`` into ``work/root``; that folder."""
    root = work / "root"
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def subset_font(source: Path, text: str, target: Path) -> str:
    """Write the glyphs of ``text`` that ``source`` draws (some fonts map characters to blank glyphs) to
    ``target`` as WOFF2; the characters kept."""
    font = TTFont(source)
    cmap, glyphs = font.getBestCmap(), font["glyf"]
    covered = "".join(c for c in text if ord(c) in cmap and glyphs[cmap[ord(c)]].numberOfContours != 0)  # not blank

    options = subset.Options()
    options.layout_features = []
    options.hinting = False
    options.notdef_outline = False  # a missing character renders no ink
    options.name_IDs = ["*"]
    options.drop_tables += ["gasp", "mort", "morx", "DSIG"]  # some of these fonts' gasp tables do not parse
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=covered)
    subsetter.subset(font)
    font.flavor = "woff2"
    font.save(target)
    return covered


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--class-table", type=Path, required=True, help="the Kaggle unicode_translation.csv")
    parser.add_argument("--debs", type=Path, help="a folder with the three .deb files (default: apt-get download)")
    args = parser.parse_args(argv)
    table = pd.read_csv(args.class_table)["char"].tolist()
    kanji = "".join(pd.read_csv(HENTAIGANA)["source_kanji"])
    text = "".join(dict.fromkeys(table + list(kanji)))
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        debs = args.debs
        if debs is None:
            debs = work / "debs"
            debs.mkdir()
            packages = sorted({package for package, _ in FONTS.values()})
            subprocess.run(["apt-get", "download", *packages], cwd=debs, check=True)
        root = unpack(debs, work)
        manifest = {}
        for style, (package, name) in FONTS.items():
            source = next(root.rglob(name))
            target = OUT / f"{Path(name).stem}.woff2"
            covered = subset_font(source, text, target)
            in_table = "".join(c for c in covered if c in table)
            shutil.copy(root / "usr/share/doc" / package / "copyright", OUT / f"{package}.copyright")
            manifest[style] = {"file": target.name, "package": package, "characters": in_table}
            print(f"{style}: {target.name}, {len(in_table)} class-table characters, {target.stat().st_size / 1e6:.2f} MB")
    (OUT / "fonts.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
