"""How closely another runtime of the model (an exported ONNX graph, its int8 variant) reproduces
the PyTorch model's outputs on the same feature rows: the largest logit difference per head and
the share of decisions (topic argmax per row, NER tag argmax per real token) that agree. Pure
torch: the candidate is anything that answers `candidate(input_ids, attention_mask)` with the
model's "topic_logits" / "ner_logits", as pipeline.storage.onnx_graph.OnnxModel does."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.core.inference import collate

FP32_ATOL = 1e-3        # logits of an fp32 graph: float reassociation moves them by ~1e-6; 1e-3 is a broken export
MIN_AGREEMENT = 0.999   # share of topic and of NER decisions an fp32 graph must reproduce


@dataclass(frozen=True)
class Agreement:
    rows: int
    tokens: int
    max_abs_diff_topic: float
    max_abs_diff_ner: float
    topic_agreement: float   # rows whose topic argmax is the reference's
    token_agreement: float   # real (non-pad) tokens whose NER tag argmax is the reference's

    def problem(self, atol: float = FP32_ATOL, min_agreement: float = MIN_AGREEMENT) -> str | None:
        """Why this candidate is not a faithful copy (None: it is), worded for one error line."""
        if max(self.max_abs_diff_topic, self.max_abs_diff_ner) > atol:
            return (f"logits differ from PyTorch by up to {max(self.max_abs_diff_topic, self.max_abs_diff_ner):.2e} "
                    f"(tolerance {atol:g})")
        if min(self.topic_agreement, self.token_agreement) < min_agreement:
            return (f"decisions agree with PyTorch on {self.topic_agreement:.2%} of sentences and "
                    f"{self.token_agreement:.2%} of tokens (at least {min_agreement:.1%} needed)")
        return None

    def summary(self) -> str:
        return (f"topic {self.topic_agreement:.2%} of {self.rows} windows, NER {self.token_agreement:.2%} of "
                f"{self.tokens} tokens agree; max |logit diff| topic {self.max_abs_diff_topic:.1e}, "
                f"NER {self.max_abs_diff_ner:.1e}")


@torch.inference_mode()
def compare(reference, candidate, rows: list[dict], batch_size: int, pad_id: int) -> Agreement:
    """Run both on `rows` (feature rows, CPU) in length-sorted batches and compare their outputs."""
    reference.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    diff_topic = diff_ner = 0.0
    same_topic = same_tokens = n_tokens = 0
    for b in range(0, len(order), batch_size):
        batch = collate([rows[i] for i in order[b:b + batch_size]], pad_id, with_labels=False)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        want, got = reference(ids, mask), candidate(ids, mask)
        real = mask.bool()
        diff_topic = max(diff_topic, (want["topic_logits"].float() - got["topic_logits"].float()).abs().max().item())
        diff_ner = max(diff_ner, (want["ner_logits"].float() - got["ner_logits"].float())[real].abs().max().item())
        same_topic += int((want["topic_logits"].argmax(-1) == got["topic_logits"].argmax(-1)).sum())
        same_tokens += int((want["ner_logits"].argmax(-1) == got["ner_logits"].argmax(-1))[real].sum())
        n_tokens += int(real.sum())
    return Agreement(len(rows), n_tokens, round(diff_topic, 8), round(diff_ner, 8),
                     round(same_topic / max(len(rows), 1), 6), round(same_tokens / max(n_tokens, 1), 6))
