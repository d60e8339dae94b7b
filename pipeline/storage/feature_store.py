"""The feature store (data/features/): one Arrow IPC file of feature rows per split, unpadded (one
row per window; padding happens per batch), and meta.json saying which tokenizer, labels and
window layout made them, so later stages can refuse features that do not fit.

The rows stay on disk: FeatureRows reads the few columns the batch sampler needs in one streamed
pass and then each row as a batch asks for it, so training memory does not grow with the corpus
(benchmarks/scale.py). The file is written in record batches of ROWS_PER_BATCH rows and read with
positional reads (pread), not memory-mapped: pages of a mapped file count in the process's RSS
once touched, and an epoch touches them all (measured: 485 MiB of mapped pages after 200k random
rows of a 1M-window file), and Table.take over a mapped file of many record batches was ~60x
slower than reading the row's own record batch."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyarrow import ipc

from pipeline.core.align import IGNORE
from pipeline.core.features import FeatureConfig
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import write_json

META = "meta.json"
SCHEMA = pa.schema([
    ("record", pa.int32()), ("id", pa.string()), ("window", pa.int16()), ("token_start", pa.int32()),
    ("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int16())), ("topic", pa.int16()),
    ("starts", pa.list_(pa.int32())), ("ends", pa.list_(pa.int32())), ("word_ids", pa.list_(pa.int32())),
])


@dataclass(frozen=True)
class FeatureMeta(FeatureConfig):
    """meta.json: the FeatureConfig the features were made with, and the tokenizer that made them."""
    encoder: str
    tokenizer_class: str
    pad_token_id: int
    n_prefix: int
    n_suffix: int
    entities: list[str]


def feature_config(p) -> FeatureConfig:
    """The featurization settings of the params (tokenize section and labels)."""
    t = p.tokenize
    return FeatureConfig(t.max_length, t.stride, t.label_subwords, t.misaligned, p.labels.topics, p.tag_names)


ROWS_PER_BATCH = 64  # rows per record batch: a random row costs one read of its batch (~30 KB)


def split_path(features_dir: str | Path, split: str) -> Path:
    return Path(features_dir) / f"{split}.arrow"


class FeatureWriter:
    """Appends feature rows to a split's file, ROWS_PER_BATCH rows per record batch."""

    def __init__(self, path: Path):
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = ipc.new_file(self._sink, SCHEMA)

    def write_rows(self, rows: list[dict]) -> None:
        self._writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), max_chunksize=ROWS_PER_BATCH)

    def close(self) -> None:
        self._writer.close()
        self._sink.close()


@contextmanager
def writer(path: Path) -> Iterator[FeatureWriter]:
    out = FeatureWriter(path)
    try:
        yield out
    finally:
        out.close()


def write_meta(features_dir: Path, meta: FeatureMeta) -> None:
    write_json(Path(features_dir) / META, dataclasses.asdict(meta))


def require(*paths: Path) -> None:
    """Inputs of a later stage that an earlier one writes: a missing one says which stages to run."""
    for path in paths:
        if not Path(path).is_file():
            raise PipelineError(f"{path}: not found; run the validate and featurize stages first (`dvc repro`)")


def read_meta(features_dir: str | Path) -> FeatureMeta:
    path = Path(features_dir) / META
    require(path)
    return FeatureMeta(**json.loads(path.read_text(encoding="utf-8")))


def check_compatible(meta: FeatureMeta, features_dir, against: str, remedy: str, **expected) -> None:
    """The features must be what `against` (params.yaml, a model) expects: same labels, tokenizer, layout."""
    for key, want in expected.items():
        got = getattr(meta, key)
        if got != want:
            raise PipelineError(f"{features_dir}/{META}: {key} {got!r} differs from {against} ({want!r}); {remedy}")


def check_for_model(meta, features_dir, model_path) -> None:
    """The features must be what the model (its ModelMeta) was trained on: same labels, tokenizer, layout."""
    check_compatible(read_meta(features_dir), features_dir, f"model '{model_path}'",
                     "re-run featurize and train (`dvc repro`)", topics=meta.topics, tags=meta.tags,
                     encoder=meta.encoder_name, label_subwords=meta.label_subwords, n_prefix=meta.n_prefix)


def load_features(path: str | Path) -> list[dict]:
    """A featurized split as a list of rows (one per window), all in memory: for splits known to
    be small; training reads its rows through FeatureRows."""
    with pa.OSFile(str(path)) as source:
        return ipc.open_file(source).read_all().to_pylist()


def _has_labelled(labels: pa.ListArray) -> np.ndarray:
    """Per row of a batch: does any token carry a NER label (not IGNORE)?"""
    offsets = labels.offsets.to_numpy()
    counts = np.concatenate([[0], np.cumsum(labels.values.to_numpy() != IGNORE)])
    return counts[offsets[1:]] > counts[offsets[:-1]]


class FeatureRows:
    """A split's feature rows on disk, as a read-only sequence of row dicts (the same dicts as
    load_features gives). Opening it reads the file once, a record batch at a time, and keeps only
    what batching needs: `lengths` (tokens per row), `has_topic` and `has_ner` (the row's labelled
    tasks). A row, or a slice of rows, is read from disk when it is asked for."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._source = pa.OSFile(str(self.path))
        self._reader = ipc.open_file(self._source)
        lengths, topic, ner, sizes = [], [], [], []
        for b in range(self._reader.num_record_batches):
            batch = self._reader.get_batch(b)
            sizes.append(batch.num_rows)
            lengths.append(np.diff(batch.column("input_ids").offsets.to_numpy()))
            topic.append(batch.column("topic").to_numpy() != IGNORE)
            ner.append(_has_labelled(batch.column("labels")))
        join = lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype)
        self.lengths, self.has_topic, self.has_ner = join(lengths, np.int64), join(topic, bool), join(ner, bool)
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self._read_range(*key.indices(len(self))[:2]) if key.step in (None, 1) \
                else [self[i] for i in range(len(self))[key]]
        i = int(key) + (len(self) if key < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError(f"feature row {key} of {len(self)}")
        b = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self._to_rows(self._reader.get_batch(b).slice(i - int(self._starts[b]), 1))[0]

    def _read_range(self, start: int, stop: int) -> list[dict]:
        if start >= stop:
            return []
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        last = int(np.searchsorted(self._starts, stop - 1, side="right")) - 1
        table = pa.Table.from_batches([self._reader.get_batch(b) for b in range(first, last + 1)], schema=SCHEMA)
        return self._to_rows(table.slice(start - int(self._starts[first]), stop - start))

    def __iter__(self):
        for b in range(self._reader.num_record_batches):
            yield from self._to_rows(self._reader.get_batch(b))

    @staticmethod
    def _to_rows(part) -> list[dict]:
        """Arrow rows as Python row dicts: the one place rows are materialised (tests count them)."""
        return part.to_pylist()
