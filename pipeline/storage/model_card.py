"""The model directory's README.md: a Hugging Face model card (YAML metadata with model-index dev
scores, then what the model is and how to use it), built with huggingface_hub's ModelCard and
ModelCardData. Deterministic: the same run writes the same bytes (no dates, no paths of this machine)."""
from __future__ import annotations

from pathlib import Path

from pipeline.core.model import ModelMeta
from pipeline.storage.hub import EncoderSource

TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

One shared encoder, `{{ encoder }}`, with two heads, trained together by this project's DVC
pipeline (`python -m pipeline train`):

- **Topic** (sentence classification, `Dropout(0.1) + Linear(hidden, {{ topics | length }})` on the
  {{ pooling }}-pooled token states): {{ topics | join(", ") }}.
- **NER** (BIO token tagging, `Dropout(0.1) + Linear(hidden, {{ tags | length }})`):
  {{ entities | join(", ") }} (tags {{ tags | join(", ") }}).

Encoder weights: {{ source }}.

## Tokenization

Windows of at most {{ max_length }} tokens (special tokens included) with {{ stride }} tokens of overlap,
merged back into one prediction per sentence; the `{{ label_subwords }}` sub-token of each word carries
its tag; a gold span edge inside a token was handled by `{{ misaligned }}`. Tags are decoded
`{{ ner_decode }}` ({% if ner_decode == "viterbi" %}the likeliest valid BIO sequence{% else %}each token's likeliest tag{% endif %}).

## Training data

{{ n_records }} training sentences: {{ n_topic }} annotated for topic, {{ n_ner }} for entities.

| topic | sentences |
| --- | --- |
{% for name, n in topic_counts.items() %}| {{ name }} | {{ n }} |
{% endfor %}
| entity type | mentions |
| --- | --- |
{% for name, n in entity_counts.items() %}| {{ name }} | {{ n }} |
{% endfor %}
## Dev scores

The weights are those of epoch {{ best_epoch }} of {{ epochs_run }}, {{ selection }}:
topic macro-F1 {{ dev_topic }}, NER exact-span F1 {{ dev_ner }}.
Test scores are in `metrics/eval.json` (the evaluate stage).

## Use

```bash
python -m pipeline predict --model models/multitask "Fetch Rewards is America's number one app"
python -m pipeline predict --model models/multitask --input sentences.txt --output predictions.jsonl
```

The directory is self-contained (encoder config, `multitask.json`, `model.safetensors`, tokenizer):
it needs no network. From Python: `pipeline.stages.predict.load_predictor("models/multitask")`.
"""


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def write(out_dir: Path, meta: ModelMeta, source: EncoderSource, train_stats: dict, dev: dict,
          epochs_run: int) -> None:
    """README.md in out_dir. train_stats: records.split_stats of the train split; dev: the best
    epoch's dev_topic_macro_f1 and dev_ner_f1 (None where not scored), and optionally "selection",
    how the kept weights were chosen, in words."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    dataset = {"dataset_type": "validated", "dataset_name": "project data (data/raw, dev split)", "dataset_split": "dev"}
    results = [EvalResult(task_type=task, metric_type=metric, metric_name=name, metric_value=value, **dataset)
               for task, metric, name, value in (
                   ("text-classification", "f1", "topic macro-F1", dev.get("dev_topic_macro_f1")),
                   ("token-classification", "f1", "NER exact-span F1", dev.get("dev_ner_f1")))
               if value is not None]
    name = "multitask topic + NER"
    data = ModelCardData(
        base_model=source.name if source.kind != "directory" else None, library_name="pytorch",
        pipeline_tag="token-classification", language="en", model_name=name, eval_results=results or None,
        tags=["multi-task", "named-entity-recognition", "text-classification", "dvc"])
    card = ModelCard.from_template(
        data, template_str=TEMPLATE, model_name=name, encoder=source.name, source=source.describe(),
        pooling=meta.pooling, topics=meta.topics, entities=meta.entities, tags=meta.tags,
        max_length=meta.max_length, stride=meta.stride, label_subwords=meta.label_subwords,
        misaligned=meta.misaligned, ner_decode=meta.ner_decode, n_records=train_stats["records"], n_topic=train_stats["topic_annotated"],
        n_ner=train_stats["ner_annotated"], topic_counts=train_stats["topics"], entity_counts=train_stats["entities"],
        best_epoch=meta.best_epoch, epochs_run=epochs_run, dev_topic=_fmt(dev.get("dev_topic_macro_f1")),
        dev_ner=_fmt(dev.get("dev_ner_f1")),
        selection=dev.get("selection", "the best by the dev score (`train.select_metric`)"))
    (Path(out_dir) / "README.md").write_text(str(card), encoding="utf-8")
