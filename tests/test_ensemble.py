"""Ensembles and test-time augmentation: the merging rules on hand-made boxes, and the Recognizer with several
checkpoints, page scales and crop views, against the same readings made one at a time."""

import math

import pytest
import torch

from kuzu_lightning import Recognizer
from kuzu_lightning.data.images import decode_page
from kuzu_lightning.data.pages import collate_whole_pages, page_item
from kuzu_lightning.ensemble import fuse_detections, view_boxes
from kuzu_lightning.tools.options import crop_views


def source(*detections) -> dict[str, torch.Tensor]:
    """A detector's output from ``(x1, y1, x2, y2, score)`` tuples."""
    rows = torch.tensor(detections, dtype=torch.float32).reshape(-1, 5)
    return {"boxes": rows[:, :4], "scores": rows[:, 4]}


def test_boxes_of_two_sources_that_overlap_become_their_score_weighted_mean():
    fused = fuse_detections([source((0, 0, 10, 10, 0.9)), source((2, 0, 12, 10, 0.3))], iou_threshold=0.5)
    assert torch.allclose(fused["boxes"], torch.tensor([[0.5, 0, 10.5, 10]]))  # (0.9 * 0 + 0.3 * 2) / 1.2
    assert torch.allclose(fused["scores"], torch.tensor([0.6]))  # the mean over the two sources


def test_a_character_one_source_missed_keeps_its_share_of_the_score():
    fused = fuse_detections([source((0, 0, 10, 10, 0.9), (50, 0, 60, 10, 0.8)), source((0, 0, 10, 10, 0.7)),
                             source((1, 0, 11, 10, 0.5))])
    assert torch.allclose(fused["scores"], torch.tensor([0.7, 0.8 / 3]))  # best first
    assert torch.allclose(fused["boxes"][1], torch.tensor([50.0, 0, 60, 10]))


def test_boxes_that_overlap_too_little_or_come_from_one_source_stay_apart():
    apart = fuse_detections([source((0, 0, 10, 10, 0.9)), source((6, 0, 16, 10, 0.8))], iou_threshold=0.55)
    assert len(apart["boxes"]) == 2  # IoU 4/16
    one_source = fuse_detections([source((0, 0, 10, 10, 0.9), (1, 0, 11, 10, 0.8)), source()])
    assert len(one_source["boxes"]) == 2 and torch.allclose(one_source["scores"], torch.tensor([0.45, 0.4]))


def test_one_source_is_returned_as_it_is_and_none_gives_none():
    alone = source((3, 4, 5, 6, 0.2), (0, 0, 1, 1, 0.9))
    assert fuse_detections([alone])["boxes"] is alone["boxes"]
    empty = fuse_detections([source(), source()])
    assert empty["boxes"].shape == (0, 4) and empty["scores"].shape == (0,)


def test_a_crop_view_shifts_and_scales_the_box_about_its_centre():
    boxes = torch.tensor([[10.0, 20, 30, 60]])  # 20 wide, 40 high, centre (20, 40)
    assert torch.equal(view_boxes(boxes, (0, 0, 1)), boxes)
    assert torch.allclose(view_boxes(boxes, (0.1, -0.05, 1)), torch.tensor([[12.0, 18, 32, 58]]))
    assert torch.allclose(view_boxes(boxes, (0, 0, 1.5)), torch.tensor([[5.0, 10, 35, 70]]))
    assert crop_views([0.05], [1.2]) == ((0, 0, 1), (0.05, 0, 1), (-0.05, 0, 1), (0, 0.05, 1), (0, -0.05, 1),
                                         (0, 0, 1.2))  # the command line's --crop_shifts 0.05 --crop_scales 1.2
    assert crop_views(None, None) is None
    with pytest.raises(ValueError, match="--crop_scales must be above 0"):
        crop_views(None, [0.0])


@pytest.fixture(scope="module")
def page_batch(synthetic_dir):
    path = sorted((synthetic_dir / "test_images").glob("*.jpg"))[0]
    image = decode_page(path)
    return path, collate_whole_pages([page_item(path.stem, image, (image.shape[1], image.shape[0]), 512, image)])


@pytest.fixture(scope="module")
def other_classifier(checkpoints, module_dir):
    """A second classifier checkpoint: the fixture's with its weights perturbed (another model, one class table)."""
    checkpoint = torch.load(checkpoints[1], weights_only=True)
    generator = torch.Generator().manual_seed(0)
    checkpoint["state_dict"] = {key: value + 0.05 * torch.randn(value.shape, generator=generator)
                                if value.is_floating_point() else value for key, value in checkpoint["state_dict"].items()}
    path = module_dir("other") / "classifier.ckpt"
    torch.save(checkpoint, path)
    return path


def test_an_ensemble_of_identical_models_reads_as_the_single_model(checkpoints, page_batch):
    path = page_batch[0]
    single = Recognizer.from_checkpoints(*checkpoints).recognize(path)
    twice = Recognizer.from_checkpoints([checkpoints[0]] * 2, [checkpoints[1]] * 3, crop_views=((0, 0, 1),) * 2,
                                        page_scales=(1.0, 1.0)).recognize(path)
    assert single.characters and len(twice.characters) == len(single.characters)
    for one, other in zip(single.characters, twice.characters):
        assert one.code == other.code and one.line == other.line and one.position == other.position
        assert math.isclose(one.score, other.score, rel_tol=1e-5)
        assert math.isclose(one.probability, other.probability, rel_tol=1e-5)
        theirs = {r.code: r.probability for r in other.alternatives}
        for reading in one.alternatives:  # the same readings, but for a near-tie at the cut
            assert math.isclose(reading.probability, theirs.get(reading.code, other.alternatives[-1].probability),
                                rel_tol=1e-5)
        assert all(math.isclose(a, b, abs_tol=1e-3) for a, b in zip(one.box, other.box))
    assert twice.text == single.text


@torch.inference_mode()
def test_classifiers_and_crop_views_are_averaged(checkpoints, other_classifier, page_batch):
    batch = page_batch[1]
    boxes = Recognizer.from_checkpoints(*checkpoints).detect(batch, 0.0)[0]["boxes"][:20]
    assert len(boxes) == 20

    def probabilities(classifiers, views):
        return Recognizer.from_checkpoints(checkpoints[0], classifiers, crop_views=views).classify_boxes(batch, 0, boxes)

    shifted = (0.1, 0.0, 1.2)
    first, second = probabilities(checkpoints[1], ((0, 0, 1),)), probabilities(other_classifier, ((0, 0, 1),))
    assert not torch.allclose(first, second, rtol=1e-3, atol=0)  # (the tiny models are near uniform: compare tightly)
    assert torch.allclose(probabilities([checkpoints[1], other_classifier], ((0, 0, 1),)), (first + second) / 2,
                          rtol=1e-5, atol=0)
    second_shifted = probabilities(other_classifier, (shifted,))  # (the perturbed model is the less uniform)
    assert not torch.allclose(second, second_shifted, rtol=1e-3, atol=0)
    assert torch.allclose(probabilities(other_classifier, ((0, 0, 1), shifted)), (second + second_shifted) / 2,
                          rtol=1e-5, atol=0)

@torch.inference_mode()
def test_each_character_keeps_the_top_k_code_points_of_the_averaged_probabilities(checkpoints, other_classifier,
                                                                                  page_batch):
    batch = page_batch[1]
    recognizer = Recognizer.from_checkpoints(checkpoints[0], [checkpoints[1], other_classifier], top_k=4,
                                             detection_threshold=0.0)
    page = recognizer.recognize_batch(batch)[0]
    probabilities = recognizer.classify_boxes(batch, 0, page["boxes"])  # the ensemble's mean
    assert len(page["codes"]) > 10 and page["alternative_probabilities"].shape == (len(page["codes"]), 4)
    for codes, alternative, row, code in zip(page["alternatives"], page["alternative_probabilities"], probabilities,
                                             page["codes"]):
        order = [j for j in row.argsort(descending=True).tolist() if j != recognizer.unk_index][:4]
        assert codes == [recognizer.codes[j] for j in order] and codes[0] == code
        torch.testing.assert_close(alternative, row[order])
    with pytest.raises(ValueError, match="top_k"):
        Recognizer.from_checkpoints(*checkpoints, top_k=0)


@torch.inference_mode()
def test_detectors_and_page_scales_are_fused(checkpoints, page_batch):
    batch = page_batch[1]
    at = {scale: Recognizer.from_checkpoints(*checkpoints, page_scales=(scale,)).detect(batch, 0.0)[0]
          for scale in (1.0, 0.75)}
    assert at[0.75]["boxes"].shape != at[1.0]["boxes"].shape or not torch.equal(at[0.75]["boxes"], at[1.0]["boxes"])
    both = Recognizer.from_checkpoints(*checkpoints, page_scales=(1.0, 0.75)).detect(batch, 0.0)[0]
    expected = fuse_detections([at[1.0], at[0.75]])
    assert torch.allclose(both["boxes"], expected["boxes"]) and torch.allclose(both["scores"], expected["scores"])
    width, height = batch["sizes"][0].tolist()  # every box in original-scan pixels, on the page
    assert at[0.75]["boxes"][:, [0, 2]].max() <= width + 1 and at[0.75]["boxes"][:, [1, 3]].max() <= height + 1


def test_a_page_at_another_scale_keeps_its_mapping_to_the_scan(page_batch):
    batch = page_batch[1]
    half = Recognizer.page_at_scale(batch, 0, 0.5)
    image, scaled = batch["images"][0], half["images"][0]
    assert scaled.dtype == torch.uint8 and scaled.shape[1:] == tuple(round(side / 2) for side in image.shape[1:])
    expected = batch["scales"][0] * torch.tensor([scaled.shape[2] / image.shape[2], scaled.shape[1] / image.shape[1]])
    assert torch.allclose(half["scales"][0], expected)
    assert Recognizer.page_at_scale(batch, 0, 1.0)["images"][0] is image


def test_classifiers_with_different_class_tables_are_refused_naming_the_file(checkpoints, tmp_path):
    checkpoint = torch.load(checkpoints[1], weights_only=True)
    codes = checkpoint["hyper_parameters"]["codes"]
    checkpoint["hyper_parameters"]["codes"] = [codes[1], codes[0], *codes[2:]]  # the same classes in another order
    other = tmp_path / "other-table.ckpt"
    torch.save(checkpoint, other)
    with pytest.raises(ValueError, match="other-table.ckpt: its class table differs"):
        Recognizer.from_checkpoints(checkpoints[0], [checkpoints[1], other])
    with pytest.raises(ValueError, match="page_scales"):
        Recognizer.from_checkpoints(*checkpoints, page_scales=(1.0, 0.0))


@pytest.mark.gpu
def test_an_ensemble_at_two_page_scales_reads_a_page_on_a_gpu(checkpoints, page_batch):
    path, batch = page_batch
    recognizer = Recognizer.from_checkpoints([checkpoints[0]] * 2, [checkpoints[1]] * 2, page_scales=(1.0, 0.75),
                                             crop_views=((0, 0, 1), (0.1, 0, 1)), detection_threshold=0.0).to("cuda")
    page = recognizer.recognize(path)
    width, height = batch["sizes"][0].tolist()
    assert page.characters and all(0 <= c.x <= width and 0 <= c.y <= height for c in page.characters)
