"""The LeRobotDataset v3 on-disk layout: path templates, default features, arrow columns.

A v3 dataset folder holds::

    meta/info.json                                   schema, fps, counts, path templates
    meta/stats.json                                  per-feature statistics
    meta/tasks.parquet                               task strings (pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet         one row per episode (offsets, video spans)
    data/chunk-000/file-000.parquet                  one row per frame, many episodes per file
    videos/<video_key>/chunk-000/file-000.mp4        many episodes concatenated per file

This module holds what both the writer and the reader need to agree on.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
CHUNKS_SIZE = 1000
IMAGE_PREFIX = "observation.images."
#: per-camera ground-truth segmentation ``int32 [H, W]`` of generated datasets (0 background,
#: 1 gripper, >= 2 objects) and the per-frame id of the object the current goal manipulates
SEGMENTATION_PREFIX = "observation.segmentation."
TARGET_SEGMENT_KEY = "observation.segmentation.target"

# Columns every v3 frame row carries, whatever the robot.
DEFAULT_FEATURES: dict[str, dict] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

NUMERIC_DTYPES = (
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "bool",
)
VISUAL_DTYPES = ("video", "image")


def next_file(chunk_index: int, file_index: int, chunks_size: int = CHUNKS_SIZE) -> tuple[int, int]:
    """The (chunk, file) index pair after ``(chunk_index, file_index)``."""
    file_index += 1
    if file_index >= chunks_size:
        return chunk_index + 1, 0
    return chunk_index, file_index


def is_numeric(feature: dict) -> bool:
    return feature["dtype"] in NUMERIC_DTYPES


def feature_shape(feature: dict) -> tuple[int, ...]:
    return tuple(int(d) for d in feature["shape"])


def arrow_type(feature: dict) -> pa.DataType:
    """Arrow type of a numeric or image column: scalars for shape ``[1]``, nested fixed lists else."""
    if feature["dtype"] == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    typ = pa.from_numpy_dtype(np.dtype(feature["dtype"]))
    shape = feature_shape(feature)
    if shape == (1,):
        return typ
    for dim in reversed(shape):
        typ = pa.list_(typ, dim)
    return typ


def to_arrow(feature: dict, values: np.ndarray) -> pa.Array:
    """Pack ``[T, *shape]`` numeric values into an arrow column of :func:`arrow_type`."""
    shape = feature_shape(feature)
    flat = pa.array(np.ascontiguousarray(values).reshape(-1))
    if shape == (1,):
        return flat
    for dim in reversed(shape):
        flat = pa.FixedSizeListArray.from_arrays(flat, dim)
    return flat


def from_arrow(column: pa.ChunkedArray | pa.Array, shape: tuple[int, ...]) -> np.ndarray:
    """Unpack a numeric column (scalar, list, fixed list or extension-wrapped) into ``[T, *shape]``.

    Shape ``(1,)`` features come back as ``[T]``, as LeRobot returns them.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    rows = len(array)
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    while (
        pa.types.is_list(array.type)
        or pa.types.is_large_list(array.type)
        or pa.types.is_fixed_size_list(array.type)
    ):
        array = array.flatten()
    values = array.to_numpy(zero_copy_only=False)
    if shape == (1,):
        return values.reshape(rows)
    if values.size != rows * math.prod(shape):
        raise ValueError(f"column holds {values.size} values for {rows} rows of shape {list(shape)}")
    return values.reshape(rows, *shape)


def tasks_table(tasks: list[str]) -> pa.Table:
    """The ``meta/tasks.parquet`` table: ``task_index`` column, task strings as the pandas index.

    The pandas metadata makes ``pandas.read_parquet`` return the strings as the index,
    which is how LeRobot itself reads this file.
    """
    table = pa.table(
        {"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())}
    )
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": "task",
                "field_name": "task",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def tasks_from_table(table: pa.Table) -> dict[int, str]:
    """``{task_index: task}`` from a tasks table, whatever column holds the strings."""
    names = table.column_names
    if "task_index" not in names:
        raise ValueError(f"tasks table has no 'task_index' column (columns: {names})")
    text_columns = [n for n in names if n != "task_index" and _is_text(table.schema.field(n).type)]
    if "task" in names:
        text = "task"
    elif len(text_columns) == 1:
        text = text_columns[0]
    else:
        raise ValueError(f"tasks table has no single string column for the task text (columns: {names})")
    indexes = table.column("task_index").to_pylist()
    return {int(i): str(t) for i, t in zip(indexes, table.column(text).to_pylist(), strict=True)}


def _is_text(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ)
