"""Character crops, cut once from each page and kept on disk.

A crop is the crop square of a character's box (:func:`kuzu_lightning.geometry.crop_squares`: the
box's longer side plus a context ``margin`` on each side, centred), resampled to ``size x size``:
the aspect ratio is kept, and parts of the square beyond the page repeat the page's edge. Each page
is decoded once, ever: the cache holds every crop of every page as one ``uint8`` array
``N x size x size x 3`` on disk (memory-mapped, about 28 KB per crop at 96 px: 19 GB for the full
Kaggle train set), with an index of page, code point, box (xyxy, original-scan pixels) and kind.

With ``context > 1`` (training with :class:`~kuzu_lightning.data.box_jitter.BoxJitter`) each crop is
kept with more of the page around it: the crop square widened ``context`` times about its centre,
at the same scale, ``size + 2 * pad`` px (:func:`context_pad`). Its centre ``size x size`` pixels are
the crop without context, to rounding (one grey level; :meth:`CropCache.exact`); a box placed off the
true one is cut from the rest (:func:`recrop`).

With ``unk_per_page > 0`` each page also gives that many "not a character" crops (code
:data:`~kuzu_lightning.data.vocabulary.UNK`): half on unlabeled ink (side glosses, seals, pictures,
show-through), half anywhere, none centred inside a labelled box, sized like the page's
characters.

With detected boxes (:mod:`~kuzu_lightning.data.detected_boxes`), a page also gives the crops of its
detections, labelled by the true box each matches (IoU 0.5 or more), else ``unk``.

A cache is keyed by the pages' labels, their images' resolved paths and the crop settings; delete its
folder to rebuild it. A build runs in a temporary folder renamed into place at the end; what an
interrupted build left is deleted by the next one.
A page that fails to decode is skipped with a logged error naming the file, and counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from kuzu_lightning.atomic import partial_name, remove_abandoned_partials
from kuzu_lightning.data.detected_boxes import label_detections
from kuzu_lightning.data.images import PageDecodeError, decode_page
from kuzu_lightning.data.kaggle import Page
from kuzu_lightning.data.loaders import map_in_processes
from kuzu_lightning.data.vocabulary import UNK
from kuzu_lightning.geometry import CROP_MARGIN, CROP_SIZE, crop_squares

log = logging.getLogger(__name__)

TRUE_BOX, UNK_SAMPLE, DETECTED = 0, 1, 2
"""What a crop's box is: a labelled character's, a drawn "not a character" box, a detection of the page."""


@dataclass(frozen=True)
class CropSpec:
    """How crops are cut: output ``size``, context ``margin``, ``unk_per_page`` negatives, pixel limit, and
    the ``context`` kept around each crop (see the module docstring)."""

    size: int = CROP_SIZE
    margin: float = CROP_MARGIN
    unk_per_page: int = 0
    max_pixels: int | None = None
    context: float = 1.0


def context_pad(size: int, context: float) -> int:
    """Pixels kept on each side of a ``size`` px crop for a ``context`` times wider square."""
    return round(size * (context - 1) / 2)


def crop_square(image: np.ndarray, box: np.ndarray, size: int, margin: float, pad: int = 0) -> np.ndarray:
    """The ``size x size`` crop around one xyxy ``box`` of an RGB page (see the module docstring), with
    ``pad`` more pixels of the page, at the same scale, on each side.

    Shrinking samples at twice the output resolution and averages 2 x 2, an anti-aliased resample.
    """
    x0, y0, x1, _ = crop_squares(box, margin)[0].tolist()
    side = x1 - x0
    factor = 2 if side > size else 1
    scale = side / (size * factor)
    x0, y0, out = x0 - pad * factor * scale, y0 - pad * factor * scale, (size + 2 * pad) * factor
    # Output pixel centre u + 0.5 samples the page at x0 + (u + 0.5) * scale (pixel centres at k + 0.5).
    crop = _warp(image, scale, x0, y0, out)
    return cv2.resize(crop, (size + 2 * pad,) * 2, interpolation=cv2.INTER_AREA) if factor > 1 else crop


def recrop(crop: np.ndarray, square: np.ndarray, size: int) -> np.ndarray:
    """The ``size x size`` resample of the xyxy ``square`` (pixels of ``crop``) of a crop with context;
    beyond ``crop`` its edge repeats."""
    x0, y0, x1, _ = np.asarray(square, np.float64).tolist()
    return _warp(crop, (x1 - x0) / size, x0, y0, size)


def _warp(image: np.ndarray, scale: float, x0: float, y0: float, out: int) -> np.ndarray:
    """``out x out`` pixels of ``image``, output pixel ``u`` sampling ``x0 + (u + 0.5) * scale`` (bilinear)."""
    matrix = np.array([[scale, 0, x0 + 0.5 * scale - 0.5], [0, scale, y0 + 0.5 * scale - 0.5]], np.float64)
    return cv2.warpAffine(image, matrix, (out, out), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def unk_boxes(image: np.ndarray, boxes: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` xyxy boxes of "not a character": centred on unlabeled ink or anywhere off the labels."""
    h, w = image.shape[:2]
    sizes = boxes[:, 2:] - boxes[:, :2] if len(boxes) else np.array([[w * 0.05, w * 0.05]])
    step = max(1, max(h, w) // 512)  # look for ink on a reduced grid
    gray = cv2.cvtColor(image[::step, ::step], cv2.COLOR_RGB2GRAY)
    _, ink = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    labelled = np.zeros_like(ink, dtype=bool)
    text_block = np.zeros_like(labelled) if len(boxes) else np.ones_like(labelled)
    for x1, y1, x2, y2 in (boxes / step).astype(int):
        labelled[y1:y2 + 1, x1:x2 + 1] = True
    if len(boxes):  # unlabeled ink near the text, not the dark scanner background around the book
        (bx1, by1), (bx2, by2) = (boxes[:, :2].min(0) / step).astype(int), (boxes[:, 2:].max(0) / step).astype(int)
        pad = int(0.05 * max(ink.shape))
        text_block[max(0, by1 - pad):by2 + pad, max(0, bx1 - pad):bx2 + pad] = True
    ink_points = np.argwhere(ink.astype(bool) & text_block & ~labelled)[:, ::-1] * step
    found = []
    for attempt in range(count * 20):
        if len(found) == count:
            break
        if attempt % 2 == 0 and len(ink_points):
            cx, cy = ink_points[rng.integers(len(ink_points))] + rng.uniform(0, step, 2)
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        if labelled[min(int(cy / step), labelled.shape[0] - 1), min(int(cx / step), labelled.shape[1] - 1)]:
            continue
        bw, bh = sizes[rng.integers(len(sizes))]
        found.append((max(0, cx - bw / 2), max(0, cy - bh / 2), min(w, cx + bw / 2), min(h, cy + bh / 2)))
    return np.asarray(found, np.float32).reshape(-1, 4)


def _cut_page(args: tuple[Page, CropSpec, np.ndarray]) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray] | str:
    """All crops of one page and its ``detected`` boxes: ``(crops, codes, boxes, kinds)``, or the error text
    when it fails to decode."""
    page, spec, detected = args
    try:
        image = decode_page(page.image_path, max_pixels=spec.max_pixels)
    except PageDecodeError as error:
        return str(error)
    boxes, codes = page.boxes, list(page.codes)
    if spec.unk_per_page:
        seed = int.from_bytes(hashlib.sha1(page.image_id.encode()).digest()[:8], "little")
        extra = unk_boxes(image, page.boxes, spec.unk_per_page, np.random.default_rng(seed))
        boxes, codes = np.concatenate([boxes, extra]), codes + [UNK] * len(extra)
    kinds = np.repeat(np.array([TRUE_BOX, UNK_SAMPLE, DETECTED], np.uint8),
                      [len(page), len(boxes) - len(page), len(detected)])
    boxes = np.concatenate([boxes, detected]).astype(np.float32)
    codes += label_detections(detected, page.boxes, page.codes)
    pad = context_pad(spec.size, spec.context)
    crops = np.stack([crop_square(image, b, spec.size, spec.margin, pad) for b in boxes]) if len(boxes) else \
        np.zeros((0, spec.size + 2 * pad, spec.size + 2 * pad, 3), np.uint8)
    return crops, codes, boxes, kinds


class CropCache:
    """A built cache: ``crops`` (memory-mapped ``N x S' x S' x 3`` uint8, ``S' = size + 2 * pad``) and its
    index arrays.

    ``image_ids[page[i]]`` is the page of crop ``i``, ``codes[i]`` its code point (or ``unk``),
    ``boxes[i]`` its xyxy box in original-scan pixels, ``kind[i]`` what the box is (:data:`TRUE_BOX`,
    :data:`UNK_SAMPLE`, :data:`DETECTED`); crops of a page are contiguous, in that order of kinds,
    the labelled ones in their listed order.
    """

    VERSION = 1

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        index = np.load(self.directory / "index.npz")
        self.image_ids: list[str] = index["image_ids"].tolist()
        self.page = index["page"]
        self.codes = index["codes"]
        self.boxes = index["boxes"]
        self.size = int(index["size"])
        self.pad = int(index["pad"]) if "pad" in index else 0  # caches cut before context existed have none
        self.kind = index["kind"] if "kind" in index else np.where(self.codes == UNK, UNK_SAMPLE, TRUE_BOX)
        self._crops: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.page)

    def __getstate__(self) -> dict:  # workers reopen the memory map rather than copying it
        return {**self.__dict__, "_crops": None}

    @property
    def crops(self) -> np.ndarray:
        if self._crops is None:
            side = self.size + 2 * self.pad
            self._crops = np.memmap(self.directory / "crops.u8", np.uint8, "r", shape=(len(self), side, side, 3))
        return self._crops

    def recut(self, row: int, box: np.ndarray, margin: float) -> np.ndarray:
        """Crop ``row`` (``S x S x 3``) cut around xyxy ``box`` (original-scan pixels, near the crop's own
        box) instead of its own box, from its context; ``margin`` is the cache's."""
        own = crop_squares(self.boxes[row], margin)[0]
        scale = (own[2] - own[0]) / self.size  # page pixels per crop pixel
        origin = np.tile(own[:2] - self.pad * scale, 2)
        return recrop(self.crops[row], (crop_squares(box, margin)[0] - origin) / scale, self.size)

    def exact(self, index: int | slice) -> np.ndarray:
        """Crops ``index`` (``S x S x 3``, or ``N x S x S x 3`` for a slice) without their context."""
        crops = self.crops[index]
        return np.asarray(crops[..., self.pad:self.pad + self.size, self.pad:self.pad + self.size, :])

    @staticmethod
    def key(pages: list[Page], spec: CropSpec, detected: list[np.ndarray]) -> str:
        settings = asdict(spec)
        if spec.context == 1:  # caches cut before context existed keep their key
            del settings["context"]
        digest = hashlib.sha1(json.dumps({"version": CropCache.VERSION, **settings}).encode())
        for page, found in zip(pages, detected):
            digest.update(f"{page.image_id}|{Path(page.image_path).resolve()}|{' '.join(page.codes)}|".encode())
            digest.update(np.ascontiguousarray(page.boxes, np.float32).tobytes())
            if len(found):  # caches cut before detected boxes existed keep their key
                digest.update(b"detected" + np.ascontiguousarray(found, np.float32).tobytes())
        return digest.hexdigest()[:16]

    @classmethod
    def ensure(cls, pages: list[Page], spec: CropSpec, root: str | Path, workers: int = 0,
               detected: dict[str, np.ndarray] | None = None) -> CropCache:
        """The cache of ``pages`` under ``root``, built first (by ``workers`` processes) if absent; with
        ``detected`` (``image_id -> N x 4`` xyxy boxes, original-scan pixels), their crops too."""
        found = [np.asarray((detected or {}).get(page.image_id, np.zeros((0, 4))), np.float32) for page in pages]
        directory = Path(root) / f"crops-{spec.size}px-{cls.key(pages, spec, found)}"
        remove_abandoned_partials(directory.parent)
        if not (directory / "index.npz").is_file():
            cls._build(pages, spec, found, directory, workers)
        return cls(directory)

    @staticmethod
    def _build(pages: list[Page], spec: CropSpec, detected: list[np.ndarray], directory: Path, workers: int) -> None:
        log.info("cutting character crops of %d pages into %s", len(pages), directory)
        partial = directory.with_name(partial_name(directory.name))
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        image_ids, page_index, codes, boxes, kinds = [], [], [], [], []
        jobs = [(page, spec, found) for page, found in zip(pages, detected)]
        with open(partial / "crops.u8", "wb") as out:
            results = map_in_processes(_cut_page, jobs, workers)
            failed = _write(results, pages, out, image_ids, page_index, codes, boxes, kinds)
        np.savez(partial / "index.npz", image_ids=np.array(image_ids, dtype=str), size=spec.size,
                 pad=context_pad(spec.size, spec.context),
                 page=np.concatenate(page_index or [np.zeros(0, np.int64)]), codes=np.array(codes, dtype=str),
                 boxes=np.concatenate(boxes or [np.zeros((0, 4), np.float32)]).astype(np.float32),
                 kind=np.concatenate(kinds or [np.zeros(0, np.uint8)]))
        if failed:
            log.error("%d of %d page(s) failed to decode and were skipped (named above)", failed, len(pages))
        try:
            partial.rename(directory)
        except OSError:  # another process finished the same cache first
            shutil.rmtree(partial, ignore_errors=True)


def _write(results, pages, out, image_ids, page_index, codes, boxes, kinds) -> int:
    failed = 0
    for page, result in zip(pages, results):
        if isinstance(result, str):
            log.error("skipped page %s: %s", page.image_id, result)
            failed += 1
            continue
        crops, page_codes, page_boxes, page_kinds = result
        out.write(np.ascontiguousarray(crops).tobytes())
        page_index.append(np.full(len(page_codes), len(image_ids), np.int64))
        image_ids.append(page.image_id)
        codes.extend(page_codes)
        boxes.append(page_boxes)
        kinds.append(page_kinds)
    return failed
