"""The competition F1: hand-worked cases, the CLI, the torchmetrics Metric, and a cross-check
against a plain loop written the way the competition describes the rule."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from kuzu_lightning.data.formats import DataFormatError
from kuzu_lightning.kuzushiji_f1 import KuzushijiF1
from kuzu_lightning.metrics import f1_summary, score_csv, score_frames
from kuzu_lightning.tools.kuzu import run

A, B = "U+3042", "U+3044"


def score(submission: dict[str, str], solution: dict[str, str]) -> dict:
    return score_frames(
        pd.DataFrame({"image_id": list(submission), "labels": list(submission.values())}),
        pd.DataFrame({"image_id": list(solution), "labels": list(solution.values())}),
    )


def counts(result: dict) -> tuple[int, int, int]:
    return result["tp"], result["fp"], result["fn"]


def test_point_strictly_inside_matches():
    assert counts(score({"p": f"{A} 15 25"}, {"p": f"{A} 10 20 10 10"})) == (1, 0, 0)


@pytest.mark.parametrize("point", ["10 25", "20 25", "15 20", "15 30", "10 20", "20 30"])
def test_point_on_an_edge_or_corner_does_not_match(point):
    assert counts(score({"p": f"{A} {point}"}, {"p": f"{A} 10 20 10 10"})) == (0, 1, 1)


def test_fractional_coordinates_compare_exactly():
    solution = {"p": f"{A} 10.5 20.25 0.5 0.5"}  # x in (10.5, 11.0), y in (20.25, 20.75)
    assert counts(score({"p": f"{A} 10.75 20.5"}, solution)) == (1, 0, 0)
    assert counts(score({"p": f"{A} 11.0 20.5"}, solution)) == (0, 1, 1)
    assert counts(score({"p": f"{A} 10.999 20.749"}, solution)) == (1, 0, 0)


def test_wrong_label_is_one_false_positive_and_one_false_negative():
    assert counts(score({"p": f"{B} 15 25"}, {"p": f"{A} 10 20 10 10"})) == (0, 1, 1)


def test_duplicate_predictions_match_once():
    assert counts(score({"p": f"{A} 15 25 {A} 16 26 {A} 14 24"}, {"p": f"{A} 10 20 10 10"})) == (1, 2, 0)


def test_overlapping_boxes_of_one_label_follow_listed_order():
    # Box 1 spans x 0..20, box 2 spans x 10..30; prediction P1 at x=15 lies in both, P2 at x=5 only in box 1.
    # Box 1 comes first and takes the first unused match in submission order: P1. Box 2 then finds nothing.
    solution = {"p": f"{A} 0 0 20 10 {A} 10 0 20 10"}
    assert counts(score({"p": f"{A} 15 5 {A} 5 5"}, solution)) == (1, 1, 1)
    # Submitted the other way round, box 1 takes P2 (x=5) and box 2 gets P1: both match.
    assert counts(score({"p": f"{A} 5 5 {A} 15 5"}, solution)) == (2, 0, 0)
    # Listed the other way round, box 2 (x 10..30) takes P1 first and box 1 then takes P2.
    swapped = {"p": f"{A} 10 0 20 10 {A} 0 0 20 10"}
    assert counts(score({"p": f"{A} 15 5 {A} 5 5"}, swapped)) == (2, 0, 0)


def test_one_prediction_inside_two_boxes_counts_once():
    assert counts(score({"p": f"{A} 15 5"}, {"p": f"{A} 0 0 20 10 {A} 10 0 20 10"})) == (1, 0, 1)


def test_empty_pages_on_either_side():
    solution = {"a": f"{A} 0 0 10 10 {B} 20 0 10 10", "b": "", "c": ""}
    submission = {"a": "", "b": f"{A} 5 5", "c": ""}
    assert counts(score(submission, solution)) == (0, 1, 2)


def test_pages_missing_from_the_submission_count_as_empty():
    solution = {"a": f"{A} 0 0 10 10", "b": f"{B} 0 0 10 10"}
    assert counts(score({"a": f"{A} 5 5"}, solution)) == (1, 0, 1)


def test_matching_never_crosses_pages():
    solution = {"a": f"{A} 0 0 10 10", "b": ""}
    assert counts(score({"a": "", "b": f"{A} 5 5"}, solution)) == (0, 1, 1)


def test_f1_is_micro_averaged_over_pages():
    solution = {"a": f"{A} 0 0 10 10 {A} 20 0 10 10 {A} 40 0 10 10", "b": f"{B} 0 0 10 10"}
    submission = {"a": f"{A} 5 5 {A} 25 5 {A} 45 5", "b": f"{A} 5 5"}
    result = score(submission, solution)
    assert counts(result) == (3, 1, 1)
    assert result["precision"] == pytest.approx(0.75)
    assert result["recall"] == pytest.approx(0.75)
    assert result["f1"] == pytest.approx(0.75)  # the mean of per-page F1s would be (1 + 0) / 2


def test_no_predictions_at_all_scores_zero():
    assert f1_summary(0, 0, 5)["f1"] == 0.0
    assert f1_summary(0, 0, 0)["f1"] == 0.0


def test_more_than_1200_predictions_on_a_page_is_refused():
    submission = {"p": " ".join(f"{A} {i} 1" for i in range(1201))}
    with pytest.raises(ValueError, match="page p has 1201 predictions"):
        score(submission, {"p": f"{A} 0 0 10 10"})
    assert score({"p": " ".join(f"{A} {i} 1" for i in range(1200))}, {"p": ""})["fp"] == 1200


def test_malformed_strings_name_the_file_and_row():
    with pytest.raises(DataFormatError, match=r"submission, row 3: prediction has 4 tokens"):
        score({"a": "", "b": f"{A} 5 5 6"}, {"a": "", "b": ""})
    with pytest.raises(DataFormatError, match=r"solution, row 2: .*non-numeric coordinate 'x'"):
        score({"a": ""}, {"a": f"{A} x 0 10 10"})


def kaggle_loop(submission: dict[str, str], solution: dict[str, str]) -> tuple[int, int, int]:
    """Oracle: the competition's rule written as the plain per-box loop it describes."""
    tp = fp = fn = 0
    for image_id, truth in solution.items():
        t = truth.split()
        p = submission.get(image_id, "").split()
        labels, xs, ys = p[0::3], [float(v) for v in p[1::3]], [float(v) for v in p[2::3]]
        unused = [True] * len(labels)
        for i in range(0, len(t), 5):
            label, x, y, w, h = t[i], *map(float, t[i + 1:i + 5])
            for j in range(len(labels)):
                if unused[j] and labels[j] == label and x < xs[j] < x + w and y < ys[j] < y + h:
                    unused[j] = False
                    tp += 1
                    break
            else:
                fn += 1
        fp += sum(unused)
    return tp, fp, fn


def random_case(rng: np.random.Generator, n_pages: int) -> tuple[dict, dict]:
    """Crowded pages of few labels: many overlaps, duplicates, wrong labels and boundary points."""
    solution, submission = {}, {}
    for page in range(n_pages):
        n = int(rng.integers(0, 40))
        boxes = rng.integers(0, 60, size=(n, 2)), rng.integers(1, 25, size=(n, 2))
        labels = rng.choice([A, B, "U+304B"], size=n)
        solution[f"p{page}"] = " ".join(
            f"{c} {x} {y} {w} {h}" for c, (x, y), (w, h) in zip(labels, *boxes)
        )
        m = int(rng.integers(0, 50))
        points = rng.integers(0, 90, size=(m, 2)) + rng.choice([0, 0.5], size=(m, 2))
        plabels = rng.choice([A, B, "U+304B"], size=m)
        submission[f"p{page}"] = " ".join(f"{c} {x:g} {y:g}" for c, (x, y) in zip(plabels, points))
    return submission, solution


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_matching_equals_the_plain_loop(seed):
    submission, solution = random_case(np.random.default_rng(seed), n_pages=30)
    result = score(submission, solution)
    assert counts(result) == kaggle_loop(submission, solution)
    assert result["tp"] > 0 and result["fp"] > 0 and result["fn"] > 0


def write_csv(path, rows: dict[str, str]):
    pd.DataFrame({"image_id": list(rows), "labels": list(rows.values())}).to_csv(path, index=False)
    return path


def test_cli_prints_one_json_object_last(tmp_path):
    submission, solution = random_case(np.random.default_rng(7), n_pages=10)
    del submission["p3"]  # a page missing from the submission
    sub = write_csv(tmp_path / "submission.csv", submission)
    sol = write_csv(tmp_path / "solution.csv", solution)
    run = subprocess.run([sys.executable, "-m", "kuzu_lightning", "score", str(sub), str(sol)],
                         capture_output=True, text=True, check=True)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(result) >= {"f1", "precision", "recall", "tp", "fp", "fn"}
    assert (result["tp"], result["fp"], result["fn"]) == kaggle_loop(submission, solution)
    assert result == score_csv(sub, sol)


def test_cli_reports_bad_input_with_the_file_and_row(tmp_path, capsys):
    sub = write_csv(tmp_path / "submission.csv", {"a": f"{A} 1"})
    sol = write_csv(tmp_path / "solution.csv", {"a": ""})
    with pytest.raises(SystemExit) as exit_:
        run(["score", str(sub), str(sol)])
    assert str(exit_.value.code).startswith(f"error: {sub}, row 2: prediction has 2 tokens")


def test_cli_class_agnostic_ignores_code_points(tmp_path):
    sub = write_csv(tmp_path / "submission.csv", {"a": f"{B} 5 5"})
    sol = write_csv(tmp_path / "solution.csv", {"a": f"{A} 0 0 10 10"})
    assert run(["score", str(sub), str(sol)])["f1"] == 0.0
    assert run(["score", str(sub), str(sol), "--class_agnostic"])["f1"] == 1.0


def to_tensors(rows: dict[str, str], classes: dict[str, int], fields: int) -> list[dict]:
    pages = []
    for labels in rows.values():
        t = labels.split()
        values = torch.tensor([float(v) for i, v in enumerate(t) if i % fields], dtype=torch.float64)
        labels = torch.tensor([classes[c] for c in t[0::fields]], dtype=torch.long)
        if fields == 5:
            xywh = values.reshape(-1, 4)
            pages.append({"boxes": torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1), "labels": labels})
        else:
            pages.append({"points": values.reshape(-1, 2), "labels": labels})
    return pages


def test_torchmetric_accumulates_batches_like_the_csv_score():
    submission, solution = random_case(np.random.default_rng(11), n_pages=20)
    classes = {A: 0, B: 1, "U+304B": 2}
    preds, target = to_tensors(submission, classes, 3), to_tensors(solution, classes, 5)
    metric = KuzushijiF1()
    for start in range(0, 20, 6):
        metric.update(preds[start:start + 6], target[start:start + 6])
    expected = score(submission, solution)
    assert (int(metric.tp), int(metric.fp), int(metric.fn)) == counts(expected)
    assert metric.compute()["f1"].item() == pytest.approx(expected["f1"])


def test_torchmetric_uses_box_centres_and_class_agnostic_mode_ignores_labels():
    target = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10]]), "labels": torch.tensor([0, 1])}]
    preds = [{"boxes": torch.tensor([[2.0, 2, 8, 8], [21, 1, 29, 9]]), "labels": torch.tensor([1, 1])}]
    with_classes = KuzushijiF1()
    with_classes.update(preds, target)
    assert (int(with_classes.tp), int(with_classes.fp), int(with_classes.fn)) == (1, 1, 1)
    agnostic = KuzushijiF1(class_agnostic=True)
    agnostic.update([{"boxes": preds[0]["boxes"]}], target)
    assert agnostic.compute()["f1"].item() == 1.0


def test_the_memory_a_submission_is_scored_in_does_not_grow_with_its_pages(tmp_path):
    """Scoring streams a chunk of pages at a time (parsed at once, a 184 MB submission took 10.8 GB): twice the pages,
    about the same peak."""
    import tracemalloc

    def peak_for(pages: int) -> int:
        rng = np.random.default_rng(pages)
        centres = rng.uniform(10, 2000, (pages, 200, 2)).round()
        codes = [f"U+{0x3042 + i:04X}" for i in rng.integers(0, 50, 200)]
        sub = write_csv(tmp_path / f"submission{pages}.csv", {
            f"p{i}": " ".join(f"{c} {x:g} {y:g}" for c, (x, y) in zip(codes, centres[i])) for i in range(pages)})
        sol = write_csv(tmp_path / f"solution{pages}.csv", {
            f"p{i}": " ".join(f"{c} {x - 5:g} {y - 5:g} 10 10" for c, (x, y) in zip(codes, centres[i][:100]))
            for i in range(pages)})
        tracemalloc.start()
        try:
            result = score_csv(sub, sol)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert (result["tp"], result["fp"], result["fn"]) == (pages * 100, pages * 100, 0)

    assert peak_for(1200) < 1.25 * peak_for(600)
