"""Batched inference over feature rows: one encoder pass per batch serves both heads; windows
are merged back into one prediction per record. Pure torch, no file I/O."""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from pipeline.core.align import IGNORE, Tokens, decode, labelled_positions, merge_windows
from pipeline.core.decoding import decode_tag_ids
from pipeline.core.device import autocast
from pipeline.core.features import Featurizer
from pipeline.core.model import ModelMeta, MultiTaskModel, pool


def collate(rows: list[dict], pad_id: int, with_labels: bool = True) -> dict:
    """Right-pad one batch to its longest row (dynamic padding); labels pad with -100."""
    width = max(1, max(len(r["input_ids"]) for r in rows))  # 1: an empty row still gets a (masked) slot
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.as_tensor(r["input_ids"])
        mask[i, :n] = 1
        if with_labels:
            labels[i, :n] = torch.as_tensor(r["labels"])
    batch = {"input_ids": ids, "attention_mask": mask}
    if with_labels:
        batch["ner_labels"] = labels
        batch["topic_labels"] = torch.as_tensor([r["topic"] for r in rows], dtype=torch.long)
    return batch


@torch.inference_mode()
def run_model(model, rows: list[dict], batch_size: int, pad_id: int, device: torch.device,
              progress=None) -> list[dict]:
    """Per row: topic probabilities and, per token, the argmax tag id, its probability and every
    tag's log-probability (an array, tokens x tags; for `decoding`). Rows are batched by length to
    cut padding, results come back in the input order."""
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    out: list[dict | None] = [None] * len(rows)
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        batch = collate([rows[i] for i in idx], pad_id, with_labels=False)
        with autocast(device):
            res = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        topic = torch.softmax(res["topic_logits"].float(), -1).cpu()
        tag_prob, tag_id = torch.softmax(res["ner_logits"].float(), -1).max(-1)
        tag_prob, tag_id = tag_prob.cpu(), tag_id.cpu()
        tag_logp = torch.log_softmax(res["ner_logits"].float(), -1).cpu().numpy()
        for j, i in enumerate(idx):
            n = len(rows[i]["input_ids"])
            out[i] = {"topic": topic[j].tolist(), "tag_ids": tag_id[j, :n].tolist(), "tag_probs": tag_prob[j, :n].tolist(),
                      "tag_logp": tag_logp[j, :n]}
        if progress is not None:
            progress.update(len(idx))
    return out


@torch.no_grad()
def pooled_embeddings(model: MultiTaskModel, rows: list[dict], batch_size: int, pad_id: int,
                      device: torch.device) -> torch.Tensor:
    """The topic head's input for every row (the encoder in eval mode: no dropout), in row order."""
    model.eval()
    out = []
    for b in range(0, len(rows), batch_size):
        batch = collate(rows[b:b + batch_size], pad_id, with_labels=False)
        mask = batch["attention_mask"].to(device)
        with autocast(device):
            states = model.encoder(input_ids=batch["input_ids"].to(device), attention_mask=mask).last_hidden_state
        out.append(pool(states, mask, model.pooling).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.encoder.config.hidden_size)


def group_windows(rows: list[dict]) -> list[list[int]]:
    """Row indices per record, in record order (rows of one record are contiguous)."""
    groups: list[list[int]] = []
    last = None
    for i, r in enumerate(rows):
        if r["record"] != last:
            groups.append([])
            last = r["record"]
        groups[-1].append(i)
    return groups


def record_chunks(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    """Rows in chunks of whole records (a record's windows are contiguous), each of at least `size`
    rows but the last: a split of any length scored a chunk at a time."""
    chunk: list[dict] = []
    for row in rows:
        if len(chunk) >= size and row["record"] != chunk[-1]["record"]:
            yield chunk
            chunk = []
        chunk.append(row)
    if chunk:
        yield chunk


def merge_record(rows: list[dict], outputs: list[dict], n_prefix: int) -> dict:
    """One record from its windows: topic probs averaged; each token's prediction taken from the
    window where it sits most centrally (most context on both sides)."""
    n_tokens = rows[-1]["token_start"] + len(rows[-1]["starts"])
    ranges = [(r["token_start"], r["token_start"] + len(r["starts"])) for r in rows]
    starts, ends, word_ids = [0] * n_tokens, [0] * n_tokens, [0] * n_tokens
    tag_ids, tag_probs, gold = [0] * n_tokens, [0.0] * n_tokens, [IGNORE] * n_tokens
    picks = merge_windows(n_tokens, ranges)
    for t, (w, pos) in enumerate(picks):
        r, o = rows[w], outputs[w]
        starts[t], ends[t], word_ids[t] = r["starts"][pos], r["ends"][pos], r["word_ids"][pos]
        tag_ids[t], tag_probs[t] = o["tag_ids"][n_prefix + pos], o["tag_probs"][n_prefix + pos]
        if "labels" in r:
            gold[t] = r["labels"][n_prefix + pos]
    if len(rows) == 1:  # most records: one window, its tokens in order
        tag_logp = outputs[0]["tag_logp"][n_prefix:n_prefix + n_tokens]
    else:
        tag_logp = np.stack([outputs[w]["tag_logp"][n_prefix + pos] for w, pos in picks])
    n_topics = len(outputs[0]["topic"])
    topic = [sum(o["topic"][k] for o in outputs) / len(outputs) for k in range(n_topics)]
    return {"tokens": Tokens(starts, ends, word_ids), "tag_ids": tag_ids, "tag_probs": tag_probs,
            "tag_logp": tag_logp, "gold_labels": gold, "topic_probs": topic}


def decoded_tags(m: dict, meta: ModelMeta) -> tuple[list[str | None], list[float]]:
    """A merged record's tag per token (None where unlabelled) under the model's NER decoding, and
    each token's probability of its tag (for span scores)."""
    use = labelled_positions(m["tokens"].word_ids, meta.label_subwords)
    at = [i for i, u in enumerate(use) if u]
    ids = decode_tag_ids([m["tag_ids"][i] for i in at], m["tag_logp"][at], meta.tags, meta.ner_decode)
    tags: list[str | None] = [None] * len(use)
    probs = list(m["tag_probs"])
    for i, t in zip(at, ids):
        tags[i] = meta.tags[t]
        if t != m["tag_ids"][i]:  # viterbi moved it off the argmax: score the tag it chose
            probs[i] = math.exp(float(m["tag_logp"][i, t]))
    return tags, probs


def predict_rows(model, rows: list[dict], sentences: list[str], meta: ModelMeta, batch_size: int,
                 pad_id: int, device: torch.device, progress=None) -> list[dict]:
    """Predictions per record: topic, topic_scores, entity spans (with scores), predicted and
    gold token tags (for seqeval). `sentences[k]` is the text of the k-th record in `rows`."""
    outputs = run_model(model, rows, batch_size, pad_id, device, progress)
    tags, topics, strategy = meta.tags, meta.topics, meta.label_subwords
    results = []
    for k, group in enumerate(group_windows(rows)):
        m = merge_record([rows[i] for i in group], [outputs[i] for i in group], meta.n_prefix)
        tokens = m["tokens"]
        pred_tags, tag_probs = decoded_tags(m, meta)
        spans = decode(sentences[k], tokens, pred_tags, strategy, scores=tag_probs)
        best = max(range(len(topics)), key=lambda i: m["topic_probs"][i])
        results.append({
            "topic": topics[best],
            "topic_scores": {t: round(p, 4) for t, p in zip(topics, m["topic_probs"])},
            "spans": spans, "tokens": tokens, "pred_tags": pred_tags,
            "gold_tags": [tags[g] if g != IGNORE else None for g in m["gold_labels"]],
        })
    return results


def record_from_prediction(inp: dict, pred: dict) -> dict:
    """A prediction in the training-data schema (it passes validate as is): id, sentence, task_A,
    task_B spans with scores, topic_scores."""
    out = {"id": inp["id"]} if "id" in inp else {}
    return {**out, "sentence": inp["sentence"], "task_A": pred["topic"], "task_B": pred["spans"],
            "topic_scores": pred["topic_scores"]}


class Predictor:
    """A loaded model ready for sentences: featurize (with windows), run both heads, decode spans."""

    def __init__(self, model, tokenizer, meta: ModelMeta, batch_size: int = 32, device=None):
        self.model, self.tokenizer, self.meta = model, tokenizer, meta
        self.device = device if device is not None else torch.device("cpu")
        self.featurizer = Featurizer(tokenizer, meta)  # the model's own featurization settings
        self.batch_size = batch_size

    def predict(self, inputs: list[dict], progress=None) -> list[dict]:
        """Records in the training-data schema for inputs ({"sentence", optional "id"})."""
        rows = self.featurizer.encode([{"sentence": r["sentence"]} for r in inputs]).rows
        preds = predict_rows(self.model, rows, [r["sentence"] for r in inputs], self.meta, self.batch_size,
                             self.tokenizer.pad_token_id, self.device, progress)
        return [record_from_prediction(i, p) for i, p in zip(inputs, preds)]
