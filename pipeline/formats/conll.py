"""CoNLL / IOB column files: one token per line, the tag in the LAST column (so CoNLL-2003
`word POS chunk TAG` works as is), a blank line between sentences, `-DOCSTART-` lines skipped.
IOB2, IOB1 and BIOES (also BILOU) tags are all read by one decoder; the sentence text is rebuilt
from the tokens and offsets are computed from it. Every token line of a file has as many columns as
its first one; in a tab-separated file only tabs separate columns (a token may contain a space)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.core.align import Tokens, tags_to_spans
from pipeline.core.records import shorten
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


@dataclass
class _Layout:
    """A file's columns, fixed by its first token line: every token line must have as many (a line
    `New York B-LOC` in a two-column file would otherwise lose `York` without a word)."""
    tabs: bool      # tab-separated: only tabs split columns, so a token may contain a space
    width: int
    where: str      # "file:line" of the first token line


def _columns(line: str, tabs: bool) -> list[str]:
    return [c.strip() for c in line.split("\t")] if tabs else line.split()


def _is_tag(tag: str) -> bool:
    return tag == "O" or bool(_TAG.match(tag))


def _is_comment(line: str, cols: list[str], in_sentence: bool, layout: _Layout | None) -> bool:
    """`# sent_id = 3` and similar: a line starting with # that cannot be a token line."""
    if not line.lstrip().startswith("#"):
        return False
    if len(cols) < 2 or not cols[0]:
        return True
    return not in_sentence and (not _is_tag(cols[-1]) or layout is not None and len(cols) != layout.width)


def _column_error(where: str, line: str, n: int, layout: _Layout) -> PipelineError:
    """A token line with another number of columns than the first, and its likely cause."""
    if n > layout.width:
        cause = ("a tab inside a token, or an extra column" if layout.tabs else
                 "a token containing a space (separate the columns with tabs: then a token may contain spaces)")
    else:
        cause = ("columns separated by spaces instead of tabs" if layout.tabs and " " in line
                 else "a missing column")
    sep = "tab-separated " if layout.tabs else ""
    return PipelineError(f"{where}: columns: {n} {sep}column{'' if n == 1 else 's'}, but the file's first token line ({layout.where}) "
                         f"has {layout.width}; likely {cause}: {shorten(repr(line.strip()), 80)}")


def parse_conll(text: str, source: str = "<conll>", join: str = "smart") -> Batch:
    """CoNLL column text -> records (task_A null, task_B from the tags in the last column)."""
    batch = Batch()
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0
    layout: _Layout | None = None

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
        cols = _columns(line, layout.tabs if layout else "\t" in line)
        if line.split(None, 1)[0] == "-DOCSTART-":   # whatever separates its columns
            flush()
            batch.notes["-DOCSTART- lines skipped"] += 1
            continue
        if _is_comment(line, cols, bool(tokens), layout):
            batch.notes["comment lines skipped"] += 1
            continue
        where = f"{source}:{lineno}"
        if layout is not None and len(cols) != layout.width:
            raise _column_error(where, line, len(cols), layout)
        if len(cols) < 2 or not cols[0]:
            raise PipelineError(f"{where}: expected TOKEN ... TAG columns, got {shorten(repr(line.strip()), 80)}")
        if not _is_tag(cols[-1]):
            raise PipelineError(f"{where}: tag {shorten(repr(cols[-1]), 40)} in the last column is not O or "
                                f"B-/I-/E-/S-/L-/U-TYPE (IOB2, IOB1, BIOES)")
        layout = layout or _Layout("\t" in line, len(cols), where)
        if not tokens:
            first_line = lineno
        tokens.append(cols[0])
        tags.append(cols[-1])
    flush()
    return batch
