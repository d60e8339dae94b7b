"""CoNLL / IOB column files: one token per line, the tag in the LAST column (so CoNLL-2003
`word POS chunk TAG` works as is), a blank line between sentences, `-DOCSTART-` lines skipped.
IOB2, IOB1 and BIOES (also BILOU) tags are all read by one decoder; the sentence text is rebuilt
from the tokens and offsets are computed from it."""
from __future__ import annotations

import re

from pipeline.core.align import Tokens, tags_to_spans
from pipeline.formats.common import Batch, Item
from pipeline.storage.errors import PipelineError

_TAG = re.compile(r"^([BIESLU])[-_](.+)$", re.IGNORECASE)
_CLOSING = re.compile(r"^[.,;:!?)\]}%]+$")
_CONTRACTIONS = {"'s", "n't", "'re", "'ve", "'ll", "'d", "'m", "’s", "n’t"}
_OPENING = {"(", "[", "{"}


def join_tokens(tokens: list[str], join: str = "smart") -> tuple[str, list[tuple[int, int]]]:
    """Rebuild a sentence from tokens; returns (text, [(start, end)] per token).

    join="spaces": single spaces. join="smart": no space before closing punctuation
    (. , ; : ! ? ) ] } %) or a clitic ('s n't 're 've 'll 'd 'm), none after ( [ {."""
    parts, offsets, pos = [], [], 0
    for i, tok in enumerate(tokens):
        if i:
            glue = join == "smart" and (_CLOSING.match(tok) or tok.lower() in _CONTRACTIONS
                                        or tokens[i - 1] in _OPENING)
            if not glue:
                parts.append(" ")
                pos += 1
        offsets.append((pos, pos + len(tok)))
        parts.append(tok)
        pos += len(tok)
    return "".join(parts), offsets


def to_iob2_decodable(tags: list[str]) -> list[str]:
    """Token tags (IOB2, IOB1, BIOES/BILOU, already checked) as B-/I- tags for align.tags_to_spans,
    whose repair rule (an I- after O or another type opens an entity) covers IOB1."""
    return [tag if tag == "O" else ("B-" if tag[0].upper() in "BSU" else "I-") + tag[2:] for tag in tags]


def parse_conll(text: str, source: str = "<conll>", join: str = "smart") -> Batch:
    """CoNLL column text -> records (task_A null, task_B from the tags in the last column)."""
    batch = Batch()
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0

    def flush():
        if not tokens:
            return
        sentence, offsets = join_tokens(tokens, join)
        words = Tokens([s for s, _ in offsets], [e for _, e in offsets], list(range(len(offsets))))
        spans = tags_to_spans(sentence, words, to_iob2_decodable(tags))
        batch.items.append(Item(f"{source}:{first_line}", {"sentence": sentence, "task_A": None, "task_B": spans}))
        tokens.clear()
        tags.clear()

    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.rstrip()
        if not line:
            flush()
            continue
        cols = [c.strip() for c in line.split("\t")] if "\t" in line else line.split()
        if cols[0] == "-DOCSTART-":
            flush()
            batch.notes["-DOCSTART- lines skipped"] += 1
            continue
        tag = cols[-1]
        if len(cols) < 2 or not cols[0]:
            if line.lstrip().startswith("#"):
                batch.notes["comment lines skipped"] += 1
                continue
            raise PipelineError(f"{source}:{lineno}: expected TOKEN ... TAG columns, got {line.strip()!r}")
        if tag != "O" and not _TAG.match(tag):
            if cols[0].startswith("#") and not tokens:   # "# sent_id = 3" and similar comments
                batch.notes["comment lines skipped"] += 1
                continue
            raise PipelineError(f"{source}:{lineno}: tag {tag!r} in the last column is not O or "
                                f"B-/I-/E-/S-/L-/U-TYPE (IOB2, IOB1, BIOES)")
        if not tokens:
            first_line = lineno
        tokens.append(cols[0])
        tags.append(tag)
    flush()
    return batch
