"""The error budget on hand-built pages whose every figure is worked out by hand."""

import math

import pytest
import torch

from kuzu_lightning.error_budget import ErrorBudget, box_errors

TRUE_BOXES = torch.tensor([[0, 0, 10, 10], [0, 20, 10, 30], [0, 40, 10, 50]], dtype=torch.float)
TRUE_LABELS = torch.tensor([0, 1, 2])


def one_hot(labels: list[int], classes: int = 4) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(labels), classes).float()


def test_box_errors_are_offsets_in_true_sizes_and_log_size_ratios():
    detected = torch.tensor([[1.0, 2.0, 21.0, 12.0]])  # centre (11, 7), 20 x 10
    truth = torch.tensor([[0.0, 0.0, 10.0, 20.0]])  # centre (5, 10), 10 x 20
    torch.testing.assert_close(box_errors(detected, truth),
                               torch.tensor([[0.6, -0.15, math.log(2.0), math.log(0.5)]]))


def test_matched_and_unmatched_detections_and_the_unk_class():
    budget = ErrorBudget(unk_index=3)
    detections = torch.tensor([[0, 0, 10, 10],  # the first true box exactly, read right
                               [0, 22, 10, 32],  # the second, IoU 8/12, read as class 2: wrong
                               [50, 0, 60, 10],  # nothing there, read unk: rightly rejected
                               [50, 40, 60, 50]], dtype=torch.float)  # nothing there, read as class 0
    budget.update(detections, one_hot([0, 2, 3, 0]), TRUE_BOXES, TRUE_LABELS, one_hot([0, 1, 0]))
    result = budget.compute()
    assert result["true_box_top1"] == pytest.approx(2 / 3)
    assert (result["matched_share"], result["matched_top1"]) == (0.5, 0.5)
    assert result["matched_true_top1"] == 1.0  # both matched characters are read right from their true boxes
    assert (result["unk_precision"], result["unk_recall"]) == (1.0, 0.5)
    assert result["median_iou"] == pytest.approx(8 / 12)  # torch's median of two is the lower
    assert result["centre_dy_mean"] == pytest.approx(0.1) and result["centre_dx_mean"] == 0
    assert result["log_width"] == 0 and result["log_height"] == 0  # every matched box has its truth's size


def test_a_classifier_without_unk_a_page_without_detections_and_reset():
    budget = ErrorBudget()
    budget.update(torch.zeros(0, 4), torch.zeros(0, 4), TRUE_BOXES, torch.tensor([0, 1, -1]), one_hot([0, 1, 1]))
    result = budget.compute()
    assert result["true_box_top1"] == pytest.approx(2 / 3)  # an unknown code point is a miss
    assert all(math.isnan(result[key]) for key in ("matched_top1", "matched_true_top1", "matched_share", "hit_share",
                                                   "hit_top1", "unk_precision", "unk_recall", "median_iou",
                                                   "hit_median_iou", "centre_dx"))
    budget.reset()
    assert math.isnan(budget.compute()["true_box_top1"])


def test_hits_are_detections_whose_centre_is_inside_a_true_box_however_loose():
    budget = ErrorBudget()
    detections = torch.tensor([[0, 0, 10, 4],  # the top 40% of the first box: IoU 0.4, not matched, but a hit
                               [-10, 15, 20, 45]], dtype=torch.float)  # centre (5, 30) on the second box's edge: no hit
    budget.update(detections, one_hot([0, 1]), TRUE_BOXES, TRUE_LABELS, one_hot([0, 1, 2]))
    result = budget.compute()
    assert (result["matched_share"], result["hit_share"], result["hit_top1"]) == (0.0, 0.5, 1.0)
    assert result["hit_median_iou"] == pytest.approx(0.4)
    assert math.isnan(result["centre_dy_mean"])  # the box errors are the matched detections'

    budget.reset()
    overlapping = torch.tensor([[0, 0, 10, 10], [4, 0, 14, 10]], dtype=torch.float)
    budget.update(torch.tensor([[3.0, 0, 13, 10]]), one_hot([1]), overlapping, torch.tensor([0, 1]), one_hot([0, 1]))
    result = budget.compute()
    # its centre (8, 5) is inside both boxes; its truth is the one it overlaps most (IoU 9/11, not 7/13)
    assert result["hit_top1"] == 1.0 and result["hit_median_iou"] == pytest.approx(9 / 11)
