"""The feature store (data/features/): one Parquet file of feature rows per split, unpadded (one
row per window; padding happens per batch), and meta.json saying which tokenizer, labels and
window layout made them, so later stages can refuse features that do not fit."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

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


def split_path(features_dir: str | Path, split: str) -> Path:
    return Path(features_dir) / f"{split}.parquet"


def writer(path: Path) -> pq.ParquetWriter:
    return pq.ParquetWriter(path, SCHEMA)


def write_rows(writer: pq.ParquetWriter, rows: list[dict]) -> None:
    writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))


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
    """A featurized split as a list of rows (one per window)."""
    return pq.read_table(path).to_pylist()
