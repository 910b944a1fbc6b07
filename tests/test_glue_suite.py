"""DistilBERT's GLUE suite (benchmarks/suites/distilbert_glue.yaml) validates against a folder of files in GLUE's
real formats, and without them (notes); fine-tune jobs hang off the jobs whose weights they start from."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.suite import SpecError, expand, load_suite
from kdbench.zoo.datasets.base import load_dataset

from .conftest import write_suite

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "suites" / "distilbert_glue.yaml"
TASKS = ["CoLA", "SST-2", "MRPC", "QQP", "MNLI", "QNLI", "RTE", "WNLI"]

# Each task's header (None: CoLA's files have none) and a row maker (i: the row's number), as GLUE's files are.
_GLUE = {
    "CoLA": (None, lambda i: ["gj04", str(i % 2), "" if i % 2 else "*", f"the cat sat on mat number {i} ."]),
    "SST-2": (["sentence", "label"], lambda i: [f"a good film {i} ", str(i % 2)]),
    "MRPC": (["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
             lambda i: [str(i % 2), str(100 + i), str(200 + i), f"he said {i} things .", f"she said {i} things ."]),
    "QQP": (["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
            lambda i: [str(i), str(2 * i), str(2 * i + 1), f"what is {i} ?", f"what is {i + 1} ?", str(i % 2)]),
    "MNLI": (["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"],
             lambda i: [str(i), str(i), f"{i}e", "fiction", "( a )", "( b )", "(ROOT a)", "(ROOT b)", f"a man {i}",
                        "a person", *[["entailment", "neutral", "contradiction"][i % 3]] * 2]),
    "QNLI": (["index", "question", "sentence", "label"],
             lambda i: [str(i), f"who is {i} ?", f"{i} is a man .", ["entailment", "not_entailment"][i % 2]]),
    "RTE": (["index", "sentence1", "sentence2", "label"],
            lambda i: [str(i), f"the sun is {i} .", "the sun .", ["entailment", "not_entailment"][i % 2]]),
    "WNLI": (["index", "sentence1", "sentence2", "label"], lambda i: [str(i), f"i saw {i} .", "i saw .", str(i % 2)]),
}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "is", "cat", "man", "said", "what", "."]


def glue_folder(root: Path, rows: int = 12) -> Path:
    """$KDBENCH_DATA_ROOT as the suite wants it: BERT's folder, the corpus, and GLUE's TSV files per task."""
    bert = root / "bert-base-uncased"
    bert.mkdir(parents=True)
    (bert / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (bert / "config.json").write_text('{"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12, '
                                      '"num_attention_heads": 12, "vocab_size": 30522}')
    (root / "corpus").mkdir()
    (root / "corpus" / "train.txt").write_text("".join(f"the cat {i} is a man .\n" for i in range(20)))
    for task, (header, row) in _GLUE.items():
        folder = root / "glue" / task
        folder.mkdir(parents=True)
        for name in ("train.tsv", "dev_matched.tsv" if task == "MNLI" else "dev.tsv"):
            lines = ([header] if header else []) + [row(i) for i in range(rows)]
            (folder / name).write_text("".join("\t".join(line) + "\n" for line in lines))
    return root


def test_the_glue_suite_prints_its_plan_from_local_files(tmp_path, monkeypatch):
    monkeypatch.setenv("KDBENCH_DATA_ROOT", str(glue_folder(tmp_path / "data")))
    monkeypatch.setenv("KDBENCH_TEXT_CACHE", str(tmp_path / "cache"))
    out = CliRunner().invoke(app, ["validate", str(SUITE)])
    assert out.exit_code == 0, out.output
    assert "164 jobs (1 baseline, 160 finetune, 2 student, 1 teacher)" in out.output
    assert "not on this machine" not in out.output
    suite = load_suite(str(SUITE))
    assert [t.name for t in suite.finetune.tasks] == TASKS and suite.finetune.seeds == (0, 1, 2, 3, 4)
    metrics = {t.name: t.metric for t in suite.finetune.tasks}
    assert metrics["CoLA"] == ("mcc",) and metrics["MRPC"] == metrics["QQP"] == ("f1", "acc")
    assert {metrics[t] for t in TASKS if t not in ("CoLA", "MRPC", "QQP")} == {("acc",)}
    for task in suite.finetune.tasks:  # every task's files read as the suite says: fields, labels, BERT's vocab
        data = load_dataset(task.dataset.name, task.dataset.params)
        assert len(data.test) == 12 and data.num_classes == (3 if task.name == "MNLI" else 2)
        assert int(data.train.x[0, 0]) == VOCAB.index("[CLS]") and data.input_shape == (128,)
    student = next(s for s in suite.students if s.name == "distilbert-6").model.params
    assert (student["num_layers"], student["hidden_size"], student["heads"]) == (6, 768, 12)
    layers = [m.params["layers"] for m in suite.methods if m.name == "distilbert"]
    assert [0, 2, 4, 7, 9, 11] in layers and "none" in layers
    kd = next(m.params for m in suite.methods if m.name == "distilbert")  # the paper's triple loss
    assert (kd["alpha_kd"], kd["alpha_mlm"], kd["alpha_cos"], kd["temperature"]) == (5.0, 2.0, 1.0, 2.0)


def test_the_glue_suite_validates_without_its_data(monkeypatch):
    monkeypatch.delenv("KDBENCH_DATA_ROOT", raising=False)
    out = CliRunner().invoke(app, ["validate", str(SUITE)])
    assert out.exit_code == 0, out.output
    assert "164 jobs" in out.output and "glue/CoLA/train.tsv not found" in out.output


FT_SUITE = """\
name: ft
dataset: {name: text_mlm, root: package:gensim/test/test_data, file: lee_background.cor, max_documents: 30,
          max_length: 16, tokenizer: {vocab_size: 100}}
recipe: {epochs: 1, batch_size: 16}
teachers:
  - {name: t, arch: hf/masked_lm, hidden_size: 16, num_layers: 2, heads: 2, intermediate_size: 32}
students:
  - {name: s, arch: hf/masked_lm, hidden_size: 16, num_layers: 1, heads: 2, intermediate_size: 32}
methods: [none, distilbert]
seeds: [0, 1]
finetune:
  recipe: {epochs: 2}
  seeds: [3]
  tasks:
    - {name: a, dataset: {name: text_classification, root: package:gensim/test/test_data,
       file: pang_lee_polarity.cor, format: fasttext, encoding: latin-1}}
    - {name: b, metric: [f1, acc], dataset: {name: text_classification, root: package:gensim/test/test_data,
       file: pang_lee_polarity.cor, format: fasttext, encoding: latin-1, max_length: 16}}
"""


def test_a_finetune_job_depends_on_the_job_it_starts_from(tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, FT_SUITE))))
    jobs = plan.jobs
    trained = [e for e in plan.entries if e.job.kind in ("teacher", "baseline", "student")]
    tuned = [e for e in plan.entries if e.job.kind == "finetune"]
    assert len(trained) == 5 and len(tuned) == 5 * 2  # every trained job × 2 tasks × 1 seed
    order = [e.job_id for e in plan.entries]
    for e in tuned:
        up = e.job.start.job_id
        assert e.job.depends_on == (up,) and order.index(up) < order.index(e.job_id)  # the DAG runs it after
        assert e.job.identity()["start"] == up and e.job.seed == 3 and e.job.model == jobs[up].model
        assert (e.teacher, e.student, e.chain) == next((u.teacher, u.student, u.chain) for u in trained
                                                       if u.job_id == up)
    assert {(e.task, e.metric) for e in tuned} == {("a", ("acc",)), ("b", ("f1", "acc"))}
    assert len({e.job_id for e in tuned}) == 10  # the id covers the upstream and the task's dataset
    assert all("start" not in e.job.identity() for e in trained)  # other kinds' ids are as they were


@pytest.mark.parametrize(("change", "message"), [
    ("metric: [f1, acc]", "metric: [f1, auc]"),
    ("- {name: b,", "- {name: a,"),
    ("seeds: [3]", "models: [nobody]"),
])
def test_bad_finetune_blocks_name_their_line(tmp_path, change, message):
    bad = FT_SUITE.replace(change, message)
    with pytest.raises(SpecError) as e:
        load_suite(str(write_suite(tmp_path, bad)))
    assert e.value.line > 0 and "finetune" in str(e.value)
