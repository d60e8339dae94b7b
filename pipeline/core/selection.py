"""What to annotate next (active learning): how unsure the model is of each pool sentence, per task,
and the strategies that turn those scores into `budget` picks. Pure computation (torch, numpy), no
file I/O: the select stage reads the pool and writes the picks.

Every score is higher where the model is less sure, so the sentence is worth more to an annotator;
each is in [0, 1] except NER's `errors`:

- topic: the margin, 1 - (p1 - p2), where p1 and p2 are the two highest topic probabilities (averaged
  over a long sentence's windows, as predict does). The margin is chosen over the entropy because it
  looks only at the decision the annotator will correct (the top two topics), not at how the rest of
  the probability is spread over unlikely topics, and it stays in [0, 1] for any number of topics.
- ner, one of NER_SCORES, over the sentence's labelled tokens (those predict decodes), where p is the
  probability of a token's most likely tag:
  - `mnlp`: the length-normalised least confidence of the tag sequence (MNLP, Shen et al. 2017): the
    mean of -log p, divided by log(number of tags). The NER head scores each token on its own, so
    this is the sentence's sequence log-probability per token: a long sentence is not favoured for
    having more tokens, and a confident one scores near 0. Right when annotation is paid per token.
  - `errors`: the expected number of wrong tags, the sum of 1 - p (0 up to the number of tokens, not
    in [0, 1]). Right when annotation is paid per sentence, as here (one Label Studio task per
    sentence): it ranks a sentence by how much correction the annotator will make in it, so a
    sentence with several doubtful entities beats one with a single doubtful word, while the sure
    `O` tokens add almost nothing, so length alone does not count (MNLP's mean dilutes a doubtful
    entity by them instead).
- both: the rank average. Each task's scores are turned into rank percentiles over the pool (0 for
  the surest sentence, 1 for the least sure; ties share their mean rank), and the two are averaged.
  Ranks, not raw values, because the two scales differ (a topic margin near 1 is common, an NER
  score near 1 is rare), so neither task drowns the other.

Strategies: `uncertainty` takes the `budget` highest scores (ties: pool order). `diverse` takes the
DIVERSE_FACTOR * budget highest as candidates, then greedy farthest-first on the pooled sentence
embedding (cosine distance), seeded with the most uncertain candidate, so a batch does not spend the
budget on sentences the model finds hard for the same reason. `random` is a seeded uniform draw,
the baseline. Exact duplicates (same normalised text, see records.normalise) are removed before any
strategy runs, so none is ever picked twice.
"""
from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

import numpy as np
import torch

from pipeline.core.align import labelled_positions
from pipeline.core.inference import group_windows, merge_record, pooled_embeddings, run_model
from pipeline.core.model import ModelMeta
from pipeline.core.records import normalise

STRATEGIES = ("uncertainty", "diverse", "random")
TASKS = ("both", "topic", "ner")
NER_SCORES = ("mnlp", "errors")
DIVERSE_FACTOR = 5   # diverse: farthest-first among this many times `budget` most uncertain sentences


def text_key(sentence: str) -> int:
    """A 64-bit digest of the normalised text (as validate compares sentences for duplicates): what
    is kept per pool sentence, as one uint64, to tell duplicates and already annotated sentences apart."""
    digest = hashlib.blake2b(normalise(sentence).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def first_occurrences(keys: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct key, in their original (pool) order."""
    _, first = np.unique(np.asarray(keys, dtype=np.uint64), return_index=True)
    return np.sort(first)


def topic_margin(probs: Sequence[float]) -> float:
    """1 - (p1 - p2) of a topic distribution: 0 when one topic has all the probability, 1 on a tie."""
    if len(probs) < 2:
        return 0.0
    first, second = sorted(probs, reverse=True)[:2]
    return min(1.0, max(0.0, 1.0 - (first - second)))


def ner_mnlp(tag_probs: Sequence[float], n_tags: int) -> float:
    """Mean -log p of the tokens' most likely tags, over log(n_tags): 0 when every token is certain,
    1 when every token is uniform over the tags (p = 1/n_tags, the least a most likely tag can have)."""
    if not tag_probs or n_tags < 2:
        return 0.0
    nll = -sum(math.log(max(p, 1e-12)) for p in tag_probs) / len(tag_probs)
    return min(1.0, max(0.0, nll / math.log(n_tags)))


def ner_expected_errors(tag_probs: Sequence[float]) -> float:
    """Sum of 1 - p over the tokens' most likely tags: the expected number of wrong tags, if each
    token's tag is right with the probability the model gives it (0 when every token is certain)."""
    return float(sum(1.0 - p for p in tag_probs))


def ner_uncertainty(tag_probs: Sequence[float], n_tags: int, ner_score: str) -> float:
    """A sentence's NER uncertainty by `ner_score` (one of NER_SCORES) from its tokens' top-tag p."""
    if ner_score == "mnlp":
        return ner_mnlp(tag_probs, n_tags)
    if ner_score == "errors":
        return ner_expected_errors(tag_probs)
    raise ValueError(f"unknown NER score {ner_score!r} (one of {', '.join(NER_SCORES)})")


def record_scores(rows: list[dict], outputs: list[dict], meta: ModelMeta,
                  ner_score: str) -> list[tuple[float, float]]:
    """(topic, ner) uncertainty per record, from run_model's outputs for its feature rows."""
    scores = []
    for group in group_windows(rows):
        m = merge_record([rows[i] for i in group], [outputs[i] for i in group], meta.n_prefix)
        use = labelled_positions(m["tokens"].word_ids, meta.label_subwords)
        probs = [p for p, u in zip(m["tag_probs"], use) if u]
        scores.append((topic_margin(m["topic_probs"]), ner_uncertainty(probs, len(meta.tags), ner_score)))
    return scores


def score_rows(model, rows: list[dict], meta: ModelMeta, batch_size: int, pad_id: int,
               device: torch.device, ner_score: str) -> list[tuple[float, float]]:
    """(topic, ner) uncertainty per record of `rows`: one pass of the encoder and both heads."""
    return record_scores(rows, run_model(model, rows, batch_size, pad_id, device), meta, ner_score)


def percentile_ranks(values: Sequence[float]) -> np.ndarray:
    """Rank of each value over all of them, scaled to [0, 1] (0: lowest); ties share their mean rank."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return np.ones(len(x))
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    _, group = np.unique(x, return_inverse=True)
    ranks = (np.bincount(group, ranks) / np.bincount(group))[group]
    return ranks / (len(x) - 1)


def priorities(topic: Sequence[float], ner: Sequence[float], task: str) -> np.ndarray:
    """The score a strategy ranks by: one task's uncertainty, or (both) the tasks' rank average."""
    if task == "topic":
        return np.asarray(topic, dtype=np.float64)
    if task == "ner":
        return np.asarray(ner, dtype=np.float64)
    if task == "both":
        return (percentile_ranks(topic) + percentile_ranks(ner)) / 2
    raise ValueError(f"unknown task {task!r} (one of {', '.join(TASKS)})")


def most_uncertain(priority: Sequence[float], k: int) -> list[int]:
    """Indices of the k highest priorities, highest first; ties in pool order."""
    p = np.asarray(priority, dtype=np.float64)
    return np.lexsort((np.arange(len(p)), -p))[:max(0, k)].tolist()


def random_pick(n: int, k: int, seed: int) -> list[int]:
    """k of range(n) drawn uniformly without replacement, the same for the same seed."""
    return random.Random(seed).sample(range(n), min(max(0, k), n))


def farthest_first(embeddings: np.ndarray, k: int) -> list[int]:
    """Greedy k-center on cosine distance: row 0 first (the caller orders rows most uncertain first),
    then each time the row whose nearest picked row is farthest; ties to the earlier row."""
    x = np.asarray(embeddings, dtype=np.float64)
    if len(x) == 0 or k <= 0:
        return []
    x = x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
    picked = [0]
    nearest = 1.0 - x @ x[0]
    nearest[0] = -np.inf
    while len(picked) < min(k, len(x)):
        i = int(np.argmax(nearest))
        picked.append(i)
        nearest = np.minimum(nearest, 1.0 - x @ x[i])
        nearest[picked] = -np.inf
    return picked


def candidates(strategy: str, priority: np.ndarray | None, n: int, budget: int, seed: int) -> list[int]:
    """The pool indices a strategy goes on with: the picks themselves (uncertainty, random, in pick
    order), or diverse's DIVERSE_FACTOR * budget most uncertain, for farthest_first to thin out."""
    if strategy == "random":
        return random_pick(n, budget, seed)
    if priority is None:
        raise ValueError(f"strategy {strategy!r} needs the pool's uncertainty scores")
    if strategy == "uncertainty":
        return most_uncertain(priority, budget)
    if strategy == "diverse":
        return most_uncertain(priority, DIVERSE_FACTOR * budget)
    raise ValueError(f"unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")


def sentence_embeddings(model, rows: list[dict], batch_size: int, pad_id: int, device: torch.device) -> np.ndarray:
    """Per record of `rows`: the pooled encoder state the topic head reads (the model's own pooling
    over the attention mask, inference.pooled_embeddings), averaged over the record's windows."""
    if not rows:
        return np.zeros((0, 0))
    pooled = pooled_embeddings(model, rows, batch_size, pad_id, device).numpy()
    return np.stack([pooled[group].mean(axis=0) for group in group_windows(rows)])
