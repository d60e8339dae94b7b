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
from functools import cached_property
from operator import itemgetter, le

IGNORE = -100
_START_END = itemgetter("start", "end")   # spans in order of start, then end
_EDGE = object()                          # before the first / after the last token: unlike any word id


@dataclass
class Tokens:
    """A sentence's content tokens (no special tokens): effective char offsets and word ids."""
    starts: list[int]
    ends: list[int]
    word_ids: list[int]

    @cached_property
    def ordered(self) -> bool:
        """Starts and ends both never decrease and no token ends before it starts (byte-level pieces
        of one character can overlap, so not always): then a span's tokens are a contiguous range
        that bisection finds. Computed once: the lists are not changed after construction."""
        starts, ends = self.starts, self.ends
        return starts == sorted(starts) and ends == sorted(ends) and all(map(le, starts, ends))


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
    if lo < hi and starts[lo] < ends[lo] and starts[hi - 1] < ends[hi - 1]:
        return starts[lo], ends[hi - 1]   # the usual case: no empty (whitespace) token at either edge
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


def _check_policy(policy: str) -> None:
    if policy not in ("expand", "contract", "drop"):
        raise ValueError(f"unknown misalignment policy {policy!r} (expand | contract | drop)")


def resolve_spans(tokens: Tokens, spans: list[dict], policy: str) -> AlignResult:
    """Map each gold span onto token boundaries following `policy` (expand | contract | drop).

    Spans are processed in order of start; the kept spans are sorted and never overlap (a span that
    overlaps an earlier kept one, before or after alignment, is dropped with an event), so that
    `token_tags` -> `decode` gives them back exactly."""
    _check_policy(policy)
    kept, events = [], []
    hull_of = _hull_sorted if tokens.ordered else _hull
    for span in sorted(spans, key=_START_END):
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
    spans = sorted(spans, key=_START_END)
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


def _span_ranges(tokens: Tokens, spans: list[dict], range_of) -> list[tuple[int, int]] | None:
    """Each span's token range [lo, hi) by `range_of(starts, ends, start, end)`, for ordered tokens
    and sorted spans that do not overlap. None when the tokens are not ordered, two spans overlap,
    or `range_of` gives None for a span: then the caller takes the general path."""
    if not tokens.ordered:
        return None
    ranges, prev_end = [], None
    for sp in spans:
        start, end = sp["start"], sp["end"]
        found = None if prev_end is not None and start < prev_end else range_of(tokens.starts, tokens.ends, start, end)
        if found is None:
            return None
        ranges.append(found)
        prev_end = end
    return ranges


def _member_range(starts: list[int], ends: list[int], start: int, end: int) -> tuple[int, int] | None:
    """The tokens `_membership` gives a non-empty span (None for an empty one)."""
    if start >= end:
        return None
    lo, hi = bisect_left(starts, start), bisect_right(ends, end)   # s >= start  and  e <= end
    # all of them are members but an empty (whitespace) token on an edge of the span; with
    # ordered tokens such tokens can only come first (at start) or last (at end)
    while lo < hi and starts[lo] == ends[lo] == start:
        lo += 1
    while lo < hi and starts[hi - 1] == ends[hi - 1] == end:
        hi -= 1
    return lo, max(lo, hi)


def _aligned_range(starts: list[int], ends: list[int], start: int, end: int) -> tuple[int, int] | None:
    """The tokens of a span that starts and ends on token edges (None when it does not): then
    `resolve_spans` keeps it as it is, without an event, and these are exactly its members."""
    lo, hi = bisect_right(ends, start), bisect_left(starts, end)   # the tokens overlapping the span
    # the first starts and the last ends with the span, so neither is an empty token
    return (lo, hi) if lo < hi and starts[lo] == start and ends[hi - 1] == end else None


def outside_labels(word_ids: list[int], strategy: str, o_id: int | None) -> list[int | None]:
    """Label ids of a sentence without entities: `o_id` where the strategy labels a token, else IGNORE."""
    if strategy == "all":
        return [o_id] * len(word_ids)
    if strategy == "first":   # the sentence's edges count as a word change
        return [o_id if w != prev else IGNORE for prev, w in zip([_EDGE, *word_ids], word_ids)]
    return [o_id if w != nxt else IGNORE for w, nxt in zip(word_ids, [*word_ids[1:], _EDGE])]


def _range_labels(tokens: Tokens, spans: list[dict], ranges: list[tuple[int, int]], strategy: str,
                  label_id: dict[str, int]) -> list[int]:
    """`token_tags` as label ids, given each span's member range: tokens outside every span get what
    `outside_labels` gives them; then only the spans' tokens and the token next to each span (a unit
    ends or starts there) are visited."""
    word_ids, starts = tokens.word_ids, tokens.starts
    o_id = label_id["O"]
    labels = outside_labels(word_ids, strategy, o_id)
    prev_hi = None
    for (lo, hi), sp in zip(ranges, spans):
        if lo == hi:
            continue
        start, b_tag, i_tag = sp["start"], f"B-{sp['type']}", f"I-{sp['type']}"
        if strategy not in ("first", "all") and lo > 0 and lo != prev_hi:   # last (as in token_tags)
            labels[lo - 1] = o_id   # the token before the span ends a unit
        head = lo                   # first token of the current unit (a run of one word in the span)
        for i in range(lo, hi):
            if word_ids[i] != word_ids[head]:
                head = i
            if strategy == "all":
                labels[i] = label_id[b_tag if i == head and starts[i] == start else i_tag]
            elif (i == head) if strategy == "first" else (i + 1 == hi or word_ids[i + 1] != word_ids[head]):
                labels[i] = label_id[b_tag if starts[head] == start else i_tag]   # first: the unit's first token; last: its last
        if strategy == "first" and hi < len(labels):
            labels[hi] = o_id       # the token after the span starts a unit (the next span may take it)
        prev_hi = hi
    return labels


def token_labels(tokens: Tokens, spans: list[dict], strategy: str, label_id: dict[str, int]) -> list[int]:
    """`token_tags` mapped through `label_id` (None -> IGNORE), visiting only the spans' tokens where
    `_span_ranges` applies (ordered tokens, sorted disjoint spans), else through `token_tags`."""
    spans = sorted(spans, key=_START_END)
    ranges = _span_ranges(tokens, spans, _member_range)
    if ranges is None:
        label_of = {None: IGNORE, **label_id}
        return [label_of[t] for t in token_tags(tokens, spans, strategy)]
    return _range_labels(tokens, spans, ranges, strategy, label_id)


def gold_labels(tokens: Tokens, spans: list[dict], policy: str, strategy: str,
                label_id: dict[str, int]) -> tuple[list[int], list[dict]]:
    """Label ids and misalignment events for a sentence's gold spans: `resolve_spans` then
    `token_labels`. When every span is already token-aligned (the usual case) the policy has nothing
    to do, and the labels come straight from the spans' token ranges."""
    _check_policy(policy)
    by_start = sorted(spans, key=_START_END)
    ranges = _span_ranges(tokens, by_start, _aligned_range)
    if ranges is not None:
        return _range_labels(tokens, by_start, ranges, strategy, label_id), []
    res = resolve_spans(tokens, spans, policy)
    return token_labels(tokens, res.spans, strategy, label_id), res.events


def labelled_positions(word_ids: list[int], strategy: str) -> list[bool]:
    """Which tokens carry a prediction under the labelling strategy (per word, at inference)."""
    if strategy == "all":
        return [True] * len(word_ids)
    if strategy == "first":   # the sentence's edges count as a word change
        return [w != prev for prev, w in zip([_EDGE, *word_ids], word_ids)]
    return [w != nxt for w, nxt in zip(word_ids, [*word_ids[1:], _EDGE])]


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
