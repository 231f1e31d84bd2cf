"""``kuzu baseline``: predicts every test page, survives a corrupt one, and scores."""

import json
import logging
import shutil

from kuzu_lightning.data.formats import parse_predictions
from kuzu_lightning.data.kaggle import load_test_ids
from kuzu_lightning.metrics import read_submission_csv
from kuzu_lightning.tools.kuzu import run


def test_baseline_writes_a_full_submission_and_scores_it(synthetic_dir, tmp_path, capsys, caplog):
    data = shutil.copytree(synthetic_dir, tmp_path / "data")
    test_ids = load_test_ids(data)
    (data / "test_images" / f"{test_ids[1]}.jpg").write_bytes(b"\xff\xd8\xff broken")
    with caplog.at_level(logging.ERROR):
        result = run(["baseline", "--data_dir", str(data), "--csv", str(tmp_path / "out" / "submission.csv")])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    submission = read_submission_csv(tmp_path / "out" / "submission.csv")
    assert submission["image_id"].tolist() == test_ids
    assert submission["labels"].iloc[1] == "" and f"page {test_ids[1]} left empty" in caplog.text
    codes, points = parse_predictions(submission["labels"].iloc[0])
    assert len(set(codes)) == 1 and len(points) >= 20
    # Ink blobs find a real share of the characters; one label for all cannot name many of them.
    assert 0.3 < result["detection_f1"] < 1.0 and 0 < result["f1"] < result["detection_f1"]
    assert result["pages"] == len(test_ids)

