"""From the NER head's per-token tag distributions to one tag per labelled token.

greedy: each token's likeliest tag. Sequences that are not valid BIO (an I-X after O, or after a
tag of another type) are left to `align.tags_to_spans`'s repair, which opens or splits entities.
viterbi: the likeliest tag sequence that is valid BIO (the sum of per-token log-probabilities,
maximised with an I-X allowed only first after B-X or I-X). The constraint is fixed, not learned:
no CRF, no new weights, so a model trained one way decodes either way. When the greedy sequence
is already valid it is also the constrained optimum, so only invalid sequences are re-decoded.

Sequences are over the labelled tokens only (the others copy their word's tag afterwards), in order.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NER_DECODES = ("greedy", "viterbi")


def follows(prev: str | None, tag: str) -> bool:
    """Whether `tag` may come right after `prev` (None: at the start) in valid BIO."""
    if not tag.startswith("I-"):
        return True
    return prev is not None and prev[:2] in ("B-", "I-") and prev[2:] == tag[2:]


def is_valid_bio(tags: Sequence[str]) -> bool:
    return all(follows(prev, tag) for prev, tag in zip([None, *tags[:-1]], tags))


def best_valid_path(logp: np.ndarray, tags: Sequence[str]) -> list[int]:
    """Tag ids of the valid BIO sequence with the highest total log-probability (Viterbi).
    logp: (tokens, tags). Ties go to the lower tag id, as argmax does."""
    n, k = logp.shape
    if n == 0:
        return []
    start = np.array([0.0 if follows(None, t) else -np.inf for t in tags])
    step = np.array([[0.0 if follows(p, t) else -np.inf for t in tags] for p in tags])  # [prev, cur]
    score = start + logp[0]
    back = np.empty((n - 1, k), dtype=np.int64)
    for i in range(1, n):
        cand = score[:, None] + step
        back[i - 1] = cand.argmax(0)
        score = cand.max(0) + logp[i]
    path = [int(score.argmax())]
    for row in back[::-1]:
        path.append(int(row[path[-1]]))
    return path[::-1]


def decode_tag_ids(tag_ids: list[int], logp: np.ndarray, tags: Sequence[str], how: str) -> list[int]:
    """The labelled tokens' tag ids under `how` (one of NER_DECODES). tag_ids: their argmax ids;
    logp: their log-probabilities, (tokens, tags)."""
    if how not in NER_DECODES:
        raise ValueError(f"unknown NER decoding {how!r} (one of {', '.join(NER_DECODES)})")
    if how == "greedy" or is_valid_bio([tags[t] for t in tag_ids]):
        return tag_ids
    return best_valid_path(logp, tags)
