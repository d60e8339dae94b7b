"""Character spans <-> token tags, and windows for long sentences. Pure: no file I/O.

Works on any fast tokenizer's offsets. Byte-level BPE (GPT-2/GPT-Neo) puts the leading space
inside the token (" America" covers 31..39 for an entity at 32), so every token is reduced to its
*effective* offsets with surrounding whitespace stripped. WordPiece (BERT/MiniLM) splits words
into ## pieces; `word_ids` from the tokenizer tell which pieces form one word.

Labelling (`label_subwords`): a *unit* is a run of tokens of one word inside one entity (or outside
all entities). `first`/`last`: only the unit's first/last token carries its tag, the rest get -100;
`all`: every token is tagged, continuation tokens of an entity get I-. B- goes on the entity's
first labelled token. Decoding reverses this exactly for token-aligned spans.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

IGNORE = -100


@dataclass
class Tokens:
    """A sentence's content tokens (no special tokens): effective char offsets and word ids."""
    starts: list[int]
    ends: list[int]
    word_ids: list[int]


def effective_offsets(sentence: str, offsets) -> tuple[list[int], list[int]]:
    """Strip whitespace from each token's char range; a whitespace-only token becomes empty (s == e)."""
    starts, ends = [], []
    for s, e in offsets:
        while s < e and sentence[s].isspace():
            s += 1
        while e > s and sentence[e - 1].isspace():
            e -= 1
        starts.append(s)
        ends.append(e)
    return starts, ends


@dataclass
class AlignResult:
    spans: list[dict]                 # the spans as trained on (after the misalignment policy)
    events: list[dict] = field(default_factory=list)   # one per span that was not token-aligned


def _hull(tokens: Tokens, start: int, end: int) -> tuple[int, int] | None:
    """Smallest token-aligned range covering every content token that overlaps [start, end)."""
    inside = [(s, e) for s, e in zip(tokens.starts, tokens.ends) if s < e and s < end and e > start]
    if not inside:
        return None
    return min(s for s, _ in inside), max(e for _, e in inside)


def _hull_sorted(tokens: Tokens, start: int, end: int) -> tuple[int, int] | None:
    """_hull for tokens whose starts and ends are both non-decreasing (checked by the caller):
    the overlapping tokens are a contiguous range found by bisection, not a scan of the sentence."""
    starts, ends = tokens.starts, tokens.ends
    lo, hi = bisect_right(ends, start), bisect_left(starts, end)   # e > start  and  s < end
    first = next((i for i in range(lo, hi) if starts[i] < ends[i]), None)
    if first is None:
        return None
    last = next(i for i in range(hi - 1, first - 1, -1) if starts[i] < ends[i])
    return starts[first], ends[last]


def _expand(tokens: Tokens, start: int, end: int) -> tuple[int, int] | None:
    new = _hull(tokens, start, end)
    while new is not None:  # byte-level pieces can overlap: grow until no token straddles an edge
        grown = _hull(tokens, *new)
        if grown == new:
            return new
        new = grown
    return None


def _contract(tokens: Tokens, start: int, end: int) -> tuple[int, int] | None:
    a, b = start, end
    while a < b:
        full = [(s, e) for s, e in zip(tokens.starts, tokens.ends) if s < e and s >= a and e <= b]
        if not full:
            return None
        a, b = min(s for s, _ in full), max(e for _, e in full)
        cross = [(s, e) for s, e in zip(tokens.starts, tokens.ends)
                 if s < e and s < b and e > a and not (s >= a and e <= b)]
        if not cross:
            return a, b
        # byte-level pieces can overlap: shrink past every token straddling an edge
        a = max([a] + [e for s, e in cross if s < a])
        b = min([b] + [s for s, e in cross if e > b])
    return None


def resolve_spans(tokens: Tokens, spans: list[dict], policy: str) -> AlignResult:
    """Map each gold span onto token boundaries following `policy` (expand | contract | drop).

    Spans are processed in order of start; the kept spans are sorted and never overlap (a span that
    overlaps an earlier kept one, before or after alignment, is dropped with an event), so that
    `token_tags` -> `decode` gives them back exactly."""
    if policy not in ("expand", "contract", "drop"):
        raise ValueError(f"unknown misalignment policy {policy!r} (expand | contract | drop)")
    kept, events = [], []
    ordered = tokens.starts == sorted(tokens.starts) and tokens.ends == sorted(tokens.ends)
    hull_of = _hull_sorted if ordered else _hull
    for span in sorted(spans, key=lambda sp: (sp["start"], sp["end"])):
        start, end = span["start"], span["end"]
        hull = hull_of(tokens, start, end)
        if hull is None:
            events.append({"span": span, "action": "dropped", "reason": "no token covers it"})
            continue
        if hull == (start, end):
            new, action = hull, None
        elif policy == "expand":
            new, action = _expand(tokens, start, end), "expanded"
        elif policy == "contract":
            new, action = _contract(tokens, start, end), "contracted"
        else:
            new, action = None, None
        if new is None:
            events.append({"span": span, "action": "dropped", "reason": "edge inside a token"})
            continue
        if kept and new[0] < kept[-1]["end"]:
            reason = "overlaps the previous span" + (" once aligned" if action else "")
            events.append({"span": span, "action": "dropped", "reason": reason})
            continue
        if action is None:
            kept.append(span)
            continue
        events.append({"span": span, "action": action, "new": {"start": new[0], "end": new[1]}})
        kept.append({**span, "start": new[0], "end": new[1]})
    return AlignResult(kept, events)


def _membership(tokens: Tokens, spans: list[dict]) -> list[int | None]:
    """Index of the span each token belongs to, or None. Spans must be sorted and token-aligned."""
    member: list[int | None] = [None] * len(tokens.starts)
    j = 0
    for i, (s, e) in enumerate(zip(tokens.starts, tokens.ends)):
        while j < len(spans) and spans[j]["end"] <= s:  # token offsets never decrease
            j += 1
        if j < len(spans):
            sp = spans[j]
            if (s < e and s >= sp["start"] and e <= sp["end"]) or (s == e and sp["start"] < s < sp["end"]):
                member[i] = j
    return member


def token_tags(tokens: Tokens, spans: list[dict], strategy: str) -> list[str | None]:
    """Gold BIO tag per content token (None = not labelled, becomes -100)."""
    spans = sorted(spans, key=lambda sp: (sp["start"], sp["end"]))
    member = _membership(tokens, spans)
    tags: list[str | None] = [None] * len(member)
    n, i = len(member), 0
    while i < n:
        j = i
        while j + 1 < n and tokens.word_ids[j + 1] == tokens.word_ids[i] and member[j + 1] == member[i]:
            j += 1
        m = member[i]
        if m is None:
            head, rest = "O", "O"
        else:
            kind = spans[m]["type"]
            head = f"B-{kind}" if tokens.starts[i] == spans[m]["start"] else f"I-{kind}"
            rest = f"I-{kind}"
        if strategy == "all":
            tags[i] = head
            for k in range(i + 1, j + 1):
                tags[k] = rest
        elif strategy == "first":
            tags[i] = head
        else:  # last: the unit's tag sits on its last token
            tags[j] = head
        i = j + 1
    return tags


def labelled_positions(word_ids: list[int], strategy: str) -> list[bool]:
    """Which tokens carry a prediction under the labelling strategy (per word, at inference)."""
    n = len(word_ids)
    if strategy == "all":
        return [True] * n
    if strategy == "first":
        return [i == 0 or word_ids[i] != word_ids[i - 1] for i in range(n)]
    return [i == n - 1 or word_ids[i] != word_ids[i + 1] for i in range(n)]


def fill_tags(word_ids: list[int], tags: list[str | None], strategy: str) -> list[str]:
    """Give unlabelled tokens the tag of their word's labelled token, as the strategy implies."""
    out = list(tags)
    n = len(out)
    if strategy == "last":
        i = n - 1
        while i >= 0:
            if out[i] is None:
                i -= 1
                continue
            j = i  # extend the labelled token's tag backwards over unlabelled tokens of its word
            while j - 1 >= 0 and out[j - 1] is None and word_ids[j - 1] == word_ids[i]:
                j -= 1
            if j < i and out[i] != "O":
                kind = out[i][2:]
                head = out[i]
                for k in range(j, i + 1):
                    out[k] = f"I-{kind}"
                out[j] = head
            else:
                for k in range(j, i):
                    out[k] = out[i]
            i = j - 1
    prev_word, prev_tag = None, "O"
    for i in range(n):  # first / all (and anything left): carry forward within the word
        if out[i] is None:
            out[i] = (prev_tag if prev_tag == "O" else f"I-{prev_tag[2:]}") if word_ids[i] == prev_word else "O"
        prev_word, prev_tag = word_ids[i], out[i]
    return out


def tags_to_spans(sentence: str, tokens: Tokens, tags: list[str], scores: list[float] | None = None) -> list[dict]:
    """BIO tags -> character spans, with repair: an I- without a matching open entity opens one,
    a type change closes one. Spans cover non-whitespace chars only; text == sentence[start:end]."""
    spans, cur = [], None

    def close():
        if cur and cur["start"] is not None:
            span = {"text": sentence[cur["start"]:cur["end"]], "type": cur["type"],
                    "start": cur["start"], "end": cur["end"]}
            if scores is not None:
                span["score"] = round(sum(cur["scores"]) / len(cur["scores"]), 4)
            spans.append(span)

    for i, tag in enumerate(tags):
        s, e = tokens.starts[i], tokens.ends[i]
        if tag == "O" or tag is None:
            close()
            cur = None
            continue
        prefix, kind = tag[0], tag[2:]
        if prefix == "B" or cur is None or cur["type"] != kind:
            close()
            cur = {"type": kind, "start": None, "end": None, "scores": []}
        if s < e:
            cur["start"] = s if cur["start"] is None else cur["start"]
            cur["end"] = e
            if scores is not None:
                cur["scores"].append(scores[i])
    close()
    return spans


def decode(sentence: str, tokens: Tokens, tags: list[str | None], strategy: str,
           scores: list[float] | None = None) -> list[dict]:
    """Token tags (None where unlabelled) -> character spans."""
    return tags_to_spans(sentence, tokens, fill_tags(tokens.word_ids, tags, strategy), scores)


def windows(n_tokens: int, max_content: int, stride: int) -> list[tuple[int, int]]:
    """Token ranges [a, b) of overlapping windows covering n_tokens (one window if it fits)."""
    if max_content < 1 or not 0 <= stride < max_content:
        raise ValueError(f"need 0 <= stride < max_content, got stride={stride}, max_content={max_content}")
    if n_tokens <= max_content:
        return [(0, n_tokens)]
    step = max_content - stride
    out, a = [], 0
    while True:
        b = min(a + max_content, n_tokens)
        out.append((a, b))
        if b == n_tokens:
            return out
        a += step


def merge_windows(n_tokens: int, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """For each token, (window index, position in window) of the window where it sits most centrally."""
    best = [(-1, -1, -1)] * n_tokens  # (centrality, window, position)
    for w, (a, b) in enumerate(ranges):
        for pos, t in enumerate(range(a, b)):
            centrality = min(pos, b - a - 1 - pos)
            if centrality > best[t][0]:
                best[t] = (centrality, w, pos)
    return [(w, pos) for _, w, pos in best]
