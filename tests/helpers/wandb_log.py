"""Read a W&B offline run's transaction log (``run-*.wandb``), to check what a run recorded.

The log is a LevelDB-style file: a 7-byte header (``:W&B``, magic, version), then 32 KiB blocks of
chunks, each ``crc32 (4) | length (2) | type (1) | data``, whose data joined make one ``Record``
protobuf (type 1 = whole, 2/3/4 = first/middle/last piece).
"""

import json
import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK, HEADER = 32768, 7


def records(path: Path):
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, pieces = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER]) if left >= HEADER else (0, 0, 0)
        if left < HEADER or (kind == 0 and length == 0):  # block padding
            pos += left
            continue
        pieces += data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            pieces = b""
            yield record


def finished_records(path: Path, timeout: float = 60.0) -> list:
    """The log's records once W&B's service has written the run's ``exit`` record.

    ``wandb.finish()`` can return while the service is still writing the offline log.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = list(records(path))
        except Exception:  # a record half written: read again
            found = []
        if any(record.WhichOneof("record_type") == "exit" for record in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def history_and_config(path: Path) -> tuple[dict[str, list], dict]:
    """Every logged history value by key (in order), and the run config, of a finished run."""
    history, config = {}, {}
    for record in finished_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            for item in record.history.item:
                history.setdefault(item.key or "/".join(item.nested_key), []).append(json.loads(item.value_json))
        elif kind == "config":
            for item in record.config.update:
                config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return history, config
