"""Active learning (pipeline/core/selection.py, pipeline/stages/select.py, `export labelstudio-config`):
the uncertainty scores on hand-made probabilities; then, end to end, a tiny model whose heads are set
by hand so that one sentence is certain and another is not, for both tasks: the unsure one is ranked
first, every strategy returns `budget` distinct sentences never already in the raw data, random is
reproducible per seed, the Label Studio tasks pass the label-studio-sdk's check of predictions for
the printed labeling config, and the tasks imported back pass validate."""
from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import torch
from helpers import ENTITIES, TOPICS, run_stage, toy_record, write_toy_params

from pipeline.core.features import Featurizer, special_layout
from pipeline.core.model import ModelMeta, MultiTaskModel
from pipeline.core.records import normalise
from pipeline.core.selection import (
    NER_SCORES,
    STRATEGIES,
    TASKS,
    farthest_first,
    most_uncertain,
    ner_expected_errors,
    ner_mnlp,
    ner_uncertainty,
    percentile_ranks,
    priorities,
    random_pick,
    sentence_embeddings,
    text_key,
    topic_margin,
)
from pipeline.stages import export as export_stage
from pipeline.stages import import_ as import_stage
from pipeline.stages import select_ as select_stage
from pipeline.stages import validate as validate_stage
from pipeline.storage.hub import load_encoder, load_tokenizer
from pipeline.storage.model_dir import save
from pipeline.storage.params import Params

TAGS = ["O"] + [f"{p}-{t}" for t in ENTITIES for p in ("B", "I")]
SURE = "The flight left Paris."
UNSURE = "Zoë sold soup today."
ANNOTATED = [toy_record(i)["sentence"] for i in range(3)]
FILLERS = [toy_record(100 + i)["sentence"] for i in range(12)]


# ---- the scores on hand-made probabilities --------------------------------------------------------

def test_topic_margin_ranks_a_sure_distribution_below_an_unsure_one():
    assert topic_margin([0.97, 0.01, 0.01, 0.01]) == pytest.approx(0.04)
    assert topic_margin([0.45, 0.44, 0.1, 0.01]) == pytest.approx(0.99)
    assert topic_margin([0.25] * 4) == 1.0 and topic_margin([1.0, 0.0]) == 0.0
    assert topic_margin([0.97, 0.01, 0.01, 0.01]) < topic_margin([0.6, 0.3, 0.05, 0.05])


def test_ner_score_is_length_normalised_and_bounded():
    n = len(TAGS)
    assert ner_mnlp([1.0] * 5, n) == 0.0
    assert ner_mnlp([1 / n] * 3, n) == pytest.approx(1.0)
    assert ner_mnlp([0.99, 0.99], n) < ner_mnlp([0.99, 0.5], n)
    # a long sentence of equally confident tokens scores as a short one: length alone gains nothing
    assert ner_mnlp([0.9] * 40, n) == pytest.approx(ner_mnlp([0.9] * 4, n))
    assert ner_mnlp([], n) == 0.0


def test_ner_expected_errors_counts_doubtful_tags_not_sure_ones():
    assert ner_expected_errors([1.0] * 5) == 0.0 and ner_expected_errors([]) == 0.0
    assert ner_expected_errors([0.5, 0.75]) == pytest.approx(0.75)
    # two doubtful entities outrank one, however many sure `O` tokens surround the one ...
    assert ner_expected_errors([0.999] * 40 + [0.5]) < ner_expected_errors([0.5, 0.5])
    # ... where MNLP's per-token mean ranks the short sentence with one doubtful word first
    assert ner_mnlp([0.999] * 40 + [0.5, 0.5], 9) < ner_mnlp([0.999] * 3 + [0.5], 9)
    assert ner_expected_errors([0.999] * 40 + [0.5, 0.5]) > ner_expected_errors([0.999] * 3 + [0.5])
    assert ner_uncertainty([0.5, 0.75], 9, "errors") == pytest.approx(0.75)
    assert ner_uncertainty([0.5, 0.75], 9, "mnlp") == ner_mnlp([0.5, 0.75], 9)
    with pytest.raises(ValueError, match="unknown NER score"):
        ner_uncertainty([0.5], 9, "entropy")


def test_both_tasks_combine_by_rank_average():
    assert percentile_ranks([0.1, 0.5, 0.3]).tolist() == [0.0, 1.0, 0.5]
    assert percentile_ranks([0.2, 0.2, 0.9]).tolist() == [0.25, 0.25, 1.0]   # ties share their mean rank
    topic, ner = [0.9, 0.1, 0.5, 0.2], [0.0, 0.3, 0.8, 0.1]
    assert priorities(topic, ner, "both").tolist() == pytest.approx([0.5, 1 / 3, 5 / 6, 1 / 3])
    assert priorities(topic, ner, "topic").tolist() == topic
    assert most_uncertain(priorities(topic, ner, "both"), 2) == [2, 0]
    assert most_uncertain([0.5, 0.7, 0.5], 3) == [1, 0, 2]                     # ties in pool order


def test_farthest_first_skips_redundant_candidates():
    emb = np.array([[1.0, 0.0], [0.99, 0.01], [0.0, 1.0], [1.0, 0.02], [-1.0, 0.0]])
    assert farthest_first(emb, 3) == [0, 4, 2]      # the near-copies of row 0 (1, 3) come last
    assert sorted(farthest_first(emb, 9)) == [0, 1, 2, 3, 4]


def test_scan_keeps_each_repeat_at_its_first_occurrence_with_its_scores():
    sentences = ["b", "a", "B ", "c", "a"]          # "B " is "b" once normalised
    scores = {"a": (0.1, 0.2), "b": (0.3, 0.4), "B ": (0.3, 0.4), "c": (0.5, 0.6)}
    scan = select_stage.scan_pool(iter({"sentence": s} for s in sentences), annotated={text_key("c")},
                                  score_chunk=lambda chunk: [scores[s] for s in chunk])
    assert list(scan.positions) == [0, 1] and list(scan.keys) == [text_key("b"), text_key("a")]
    assert list(scan.topic) == [0.3, 0.1] and list(scan.ner) == [0.4, 0.2]
    assert (scan.read, scan.annotated, scan.duplicates) == (5, 1, 2)


def test_random_pick_is_seeded():
    assert random_pick(100, 10, seed=3) == random_pick(100, 10, seed=3)
    assert random_pick(100, 10, seed=3) != random_pick(100, 10, seed=4)
    assert len(set(random_pick(100, 10, seed=3))) == 10 and random_pick(4, 10, seed=0) != []


# ---- end to end on a model with hand-set heads ----------------------------------------------------

def token_states(model, featurizer, sentence: str) -> torch.Tensor:
    rows = featurizer.encode([{"sentence": sentence}]).rows
    assert len(rows) == 1
    ids = torch.tensor([rows[0]["input_ids"]])
    with torch.no_grad():
        return model.encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0]


def set_heads(model, featurizer) -> None:
    """Topic: one logit of 20 on SURE's pooled embedding, all logits 0 (uniform) on UNSURE's. NER:
    an O logit of 20 on every SURE token, 0 on every UNSURE token (where B-PERSON's small bias wins,
    uncertainly, so entities are predicted)."""
    emb = sentence_embeddings(model, featurizer.encode([{"sentence": SURE}, {"sentence": UNSURE}]).rows,
                              8, featurizer.tok.pad_token_id, torch.device("cpu"))
    sure, unsure = (torch.tensor(e, dtype=torch.float32) for e in emb)
    d = sure - (sure @ unsure) / (unsure @ unsure) * unsure           # orthogonal to UNSURE's embedding
    h_sure, h_unsure = token_states(model, featurizer, SURE), token_states(model, featurizer, UNSURE)
    states = torch.cat([h_sure, h_unsure]).double()
    target = torch.cat([torch.ones(len(h_sure)), torch.zeros(len(h_unsure))]).double()
    assert len(states) <= states.shape[1], "more tokens than hidden units: the NER head cannot be solved"
    w = torch.linalg.lstsq(states, target[:, None], driver="gelsd").solution[:, 0].float()
    with torch.no_grad():
        topic, ner = model.topic_head[1], model.ner_head[1]
        topic.weight.zero_(), topic.bias.zero_(), ner.weight.zero_(), ner.bias.zero_()
        topic.weight[0] = 20 * d / (d @ d)
        ner.weight[0] = 20 * w
        ner.bias[TAGS.index("B-PERSON")] = 0.5


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_gpt_neo) -> Path:
    """A model directory with hand-set heads, raw data holding ANNOTATED, params, and a pool."""
    root = tmp_path_factory.mktemp("select")
    torch.manual_seed(0)
    tok = load_tokenizer(str(tiny_gpt_neo))
    meta = ModelMeta(encoder_name="tiny", pooling="mean", topics=TOPICS, entities=ENTITIES, tags=TAGS,
                     max_length=32, stride=4, label_subwords="first", misaligned="expand",
                     n_prefix=len(special_layout(tok)[0]), best_epoch=1)
    model = MultiTaskModel(load_encoder(str(tiny_gpt_neo)), len(TOPICS), len(TAGS), "mean").eval()
    set_heads(model, Featurizer(tok, meta))
    save(model, tok, root / "model", meta)
    (root / "raw").mkdir()
    (root / "raw" / "done.jsonl").write_text("".join(json.dumps(toy_record(i)) + "\n" for i in range(3)),
                                             encoding="utf-8")
    write_toy_params(root / "params.yaml", tiny_gpt_neo)
    pool = [SURE, UNSURE, "  zoë SOLD soup   today. ", ANNOTATED[0].upper(), *FILLERS, ANNOTATED[1], FILLERS[0]]
    (root / "pool.txt").write_text("\n".join(pool) + "\n", encoding="utf-8")
    (root / "pair.txt").write_text(f"{SURE}\n{UNSURE}\n{UNSURE.lower()}\n{ANNOTATED[2]}\n", encoding="utf-8")
    return root


def select(project: Path, *args: str) -> int:
    return run_stage(select_stage, project, "--params", "params.yaml", "--model", "model", "--raw-dir", "raw", *args)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("task", ["topic", "ner", "both"])
def test_uncertainty_ranks_the_unsure_sentence_above_the_sure_one(project, task):
    out = f"pair_{task}.jsonl"
    assert select(project, "--pool", "pair.txt", "--budget", "5", "--task", task, "--format", "jsonl",
                  "--output", out) == 0
    recs = jsonl(project / out)
    assert [r["sentence"] for r in recs] == [UNSURE, SURE]   # the repeat and the annotated one left out
    assert recs[0]["score"] > recs[1]["score"]
    if task != "both":
        assert recs[0]["score"] > 0.75 and recs[1]["score"] < 0.05   # ner: B-PERSON's bias keeps p above 1/9
    assert select(project, "--pool", "pair.txt", "--budget", "1", "--task", task, "--format", "jsonl",
                  "--output", out) == 0
    assert [r["sentence"] for r in jsonl(project / out)] == [UNSURE]


def test_ner_score_errors_ranks_the_unsure_sentence_first_and_scores_its_expected_wrong_tags(project):
    assert select(project, "--pool", "pair.txt", "--budget", "5", "--task", "ner", "--ner-score", "errors",
                  "--format", "jsonl", "--output", "pair_errors.jsonl") == 0
    recs = jsonl(project / "pair_errors.jsonl")
    assert [r["sentence"] for r in recs] == [UNSURE, SURE]
    n_words = len(UNSURE.split()) + 1   # the labelled positions: GPT-Neo's pre-tokenizer makes the "." a word
    # every UNSURE word is near-uniform over the tags: close to one expected wrong tag per word
    assert 0.75 * n_words < recs[0]["score"] < n_words and recs[1]["score"] < 0.05


@pytest.mark.parametrize("strategy", ["uncertainty", "diverse", "random"])
def test_each_strategy_picks_budget_distinct_unannotated_sentences(project, strategy, capsys):
    out = f"{strategy}.jsonl"
    assert select(project, "--pool", "pool.txt", "--budget", "6", "--strategy", strategy, "--format", "jsonl",
                  "--output", out) == 0
    recs = jsonl(project / out)
    picked = [normalise(r["sentence"]) for r in recs]
    assert len(picked) == 6 and len(set(picked)) == 6
    assert not set(picked) & {normalise(s) for s in ANNOTATED}
    assert ("score" in recs[0]) == (strategy != "random")
    assert "left out: 2 already in raw, 2 repeats" in capsys.readouterr().err


def test_random_is_reproducible_per_seed(project):
    def picks(seed: int) -> list[str]:
        assert select(project, "--pool", "pool.txt", "--budget", "5", "--strategy", "random", "--seed", str(seed),
                      "--format", "jsonl", "--output", f"random_{seed}.jsonl") == 0
        return [r["sentence"] for r in jsonl(project / f"random_{seed}.jsonl")]

    assert picks(1) == picks(1)
    assert picks(1) != picks(2)


def test_budget_larger_than_the_pool_picks_every_eligible_sentence(project, capsys):
    assert select(project, "--pool", "pool.txt", "--budget", "100", "--format", "jsonl", "--output", "all.jsonl") == 0
    assert len(jsonl(project / "all.jsonl")) == 2 + len(FILLERS)
    assert "(only 14 eligible)" in capsys.readouterr().err


def test_options_left_out_come_from_params_select(project, tmp_path):
    write_toy_params(tmp_path / "params.yaml", project / "model", **{
        "select.pool": str(project / "pair.txt"), "select.budget": 1, "select.task": "topic"})
    assert run_stage(select_stage, project, "--params", str(tmp_path / "params.yaml"), "--model", "model",
                     "--raw-dir", "raw", "--format", "jsonl", "--output", "from_params.jsonl") == 0
    assert [r["sentence"] for r in jsonl(project / "from_params.jsonl")] == [UNSURE]
    assert get_args(Params.model_fields["select"].annotation.model_fields["strategy"].annotation) == STRATEGIES
    assert get_args(Params.model_fields["select"].annotation.model_fields["task"].annotation) == TASKS
    assert get_args(Params.model_fields["select"].annotation.model_fields["ner_score"].annotation) == NER_SCORES


def labeling_config(project: Path, capsys) -> str:
    capsys.readouterr()
    assert run_stage(export_stage, project, "labelstudio-config", "--params", "params.yaml") == 0
    return capsys.readouterr().out


def test_labelstudio_config_lists_the_params_labels(project, capsys):
    xml = labeling_config(project, capsys)
    for label in ENTITIES:
        assert f'<Label value="{label}"/>' in xml
    for topic in TOPICS:
        assert f'<Choice value="{topic}"/>' in xml
    assert '<Text name="text" value="$text"/>' in xml and '<Labels name="label" toName="text">' in xml


@pytest.mark.parametrize("strategy", ["diverse", "random"])
def test_labelstudio_tasks_pass_the_sdk_check_and_import_back_valid(project, capsys, strategy):
    interface = pytest.importorskip("label_studio_sdk.label_interface", reason="label-studio-sdk is not installed")
    config = interface.LabelInterface(labeling_config(project, capsys))
    config.validate()
    out = f"tasks_{strategy}.json"
    assert select(project, "--pool", "pool.txt", "--budget", "8", "--strategy", strategy, "--output", out) == 0
    tasks = json.loads((project / out).read_text(encoding="utf-8"))
    assert len(tasks) == 8
    for k, task in enumerate(tasks):
        assert all(task["data"].get(o.value_name) for o in config.objects)
        prediction = task["predictions"][0]
        assert config.validate_prediction(prediction, return_errors=True) == []
        assert prediction["score"] == pytest.approx(k / 8) and task["data"]["selection_rank"] == k + 1
        assert prediction["model_version"].startswith("model@")
        assert {r["type"] for r in prediction["result"]} <= {"labels", "choices"}
    assert any(r["type"] == "labels" for t in tasks for r in t["predictions"][0]["result"])
    assert all(sum(r["type"] == "choices" for r in t["predictions"][0]["result"]) == 1 for t in tasks)

    (project / f"back_{strategy}").mkdir()
    assert run_stage(import_stage, project, "labelstudio", out, "--use-predictions", "--params", "params.yaml",
                     "--output", f"back_{strategy}/tasks.jsonl") == 0
    back = jsonl(project / f"back_{strategy}" / "tasks.jsonl")
    assert [r["sentence"] for r in back] == [t["data"]["text"] for t in tasks]
    assert run_stage(validate_stage, project, "--params", "params.yaml", "--raw-dir", f"back_{strategy}",
                     "--out-dir", f"val_{strategy}", "--metrics", f"m_{strategy}.json",
                     "--details", f"d_{strategy}.json") == 0
    kept = sum(len(jsonl(project / f"val_{strategy}" / f"{s}.jsonl")) for s in ("train", "dev", "test"))
    assert kept == 8


def test_jsonl_output_passes_validate(project):
    (project / "picked").mkdir()
    assert select(project, "--pool", "pool.txt", "--budget", "5", "--format", "jsonl",
                  "--output", "picked/p.jsonl") == 0
    assert run_stage(validate_stage, project, "--params", "params.yaml", "--raw-dir", "picked", "--out-dir", "val_p",
                     "--metrics", "m_p.json", "--details", "d_p.json") == 0


@pytest.mark.parametrize("args, message", [
    (["--pool", "missing.txt", "--budget", "3"], "missing.txt: input not found"),
    (["--pool", "pool.txt", "--budget", "0"], "--budget 0: must be at least 1"),
    (["--pool", "-", "--budget", "3"], "--pool -: the pool is read twice"),
    (["--pool", "pool.txt", "--budget", "3", "--output", "pool.txt"], "would replace the input pool.txt"),
    (["--pool", "pool.txt", "--budget", "3", "--output", "raw/x.json"], "would replace the input raw"),
])
def test_bad_input_is_one_line(project, capsys, args, message):
    capsys.readouterr()
    argv = args if "--output" in args else [*args, "--output", "never.json"]
    assert select(project, *argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (project / "never.json").exists()


def test_a_pool_of_only_annotated_sentences_is_one_line(project, capsys):
    (project / "done.txt").write_text("\n".join(ANNOTATED) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert select(project, "--pool", "done.txt", "--budget", "2", "--output", "none.json") == 1
    err = capsys.readouterr().err
    assert "no sentence left to pick (3 read, 3 already in raw, 0 repeats)" in err and err.count("\n") == 1


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        select_stage.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("--pool", "--budget", "uncertainty", "diverse", "random", "labelstudio-config", "MNLP", "--ner-score"):
        assert word in out
