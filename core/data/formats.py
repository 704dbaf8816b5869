"""Dataset file formats: detect, read into canonical Examples, write back.

The formats API in one place for the other areas, the CLI and the desktop; the work is done in three modules:
- core.data.records: record <-> Example (alpaca, sharegpt, messages, prompt-completion; detection, validation);
- core.data.readers: .jsonl/.json/.csv/.parquet files -> Examples, every bad line reported with its number;
- core.data.writers: Examples -> files, lossless where the format can express a row, atomic.
"""

from __future__ import annotations

from core.data.readers import (
    FILE_TYPES,
    LineError,
    ReadResult,
    describe_errors,
    load_examples,
    parse_fixed_line,
    read_dataset,
    read_records,
    stream_dataset,
)
from core.data.records import (
    FORMATS,
    META_KEYS,
    SHAREGPT_ROLES,
    SHAREGPT_WRITE_ROLES,
    RecordError,
    detect_record_format,
    example_to_record,
    formats_that_express,
    original_is_derivable,
    record_to_example,
    unchanged_original,
    validate_example,
)
from core.data.writers import WriteResult, convert_file, write_dataset

__all__ = [
    "FILE_TYPES",
    "FORMATS",
    "META_KEYS",
    "SHAREGPT_ROLES",
    "SHAREGPT_WRITE_ROLES",
    "LineError",
    "ReadResult",
    "RecordError",
    "WriteResult",
    "convert_file",
    "describe_errors",
    "detect_record_format",
    "example_to_record",
    "formats_that_express",
    "load_examples",
    "original_is_derivable",
    "parse_fixed_line",
    "read_dataset",
    "read_records",
    "record_to_example",
    "stream_dataset",
    "unchanged_original",
    "validate_example",
    "write_dataset",
]
