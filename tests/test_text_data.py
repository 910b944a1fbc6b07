"""Text data: the file formats, the masking rule (a pure function of seed, epoch and sample index), and the
tokenised corpus built once and shared through its cache."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from kdbench.zoo.datasets import DATASETS, load_dataset
from kdbench.zoo.datasets import tokenize as tokenize_module
from kdbench.zoo.datasets.base import augment_batch
from kdbench.zoo.datasets.masking import IGNORE, MaskingRule
from kdbench.zoo.datasets.text_files import read_records, resolve

DOCS = [f"the cat number {i} sat on the mat while dog {i % 7} ran to the park and back again" for i in range(40)]


@pytest.fixture(autouse=True)
def text_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KDBENCH_TEXT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_every_format_reads_its_records(tmp_path):
    (tmp_path / "a.txt").write_text("first doc\n\nsecond doc\n")
    assert read_records(tmp_path / "a.txt", "text") == [{"text": "first doc"}, {"text": "second doc"}]
    (tmp_path / "p.cor").write_bytes("__label__pos caf\xe9 good\n__label__neg bad\n".encode("latin-1"))
    assert read_records(tmp_path / "p.cor", "fasttext", "latin-1") == [{"label": "pos", "text": "café good"},
                                                                       {"label": "neg", "text": "bad"}]
    (tmp_path / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta b\tc d\tentailment\n")
    assert read_records(tmp_path / "train.tsv", "tsv") == [
        {"index": "0", "sentence1": "a b", "sentence2": "c d", "label": "entailment"}]
    (tmp_path / "bad.tsv").write_text("a\tb\n1\n")
    with pytest.raises(ValueError, match="bad.tsv:2"):
        read_records(tmp_path / "bad.tsv", "tsv")
    (tmp_path / "r.jsonl").write_text(json.dumps({"text": "x", "label": 1}) + "\n")
    assert read_records(tmp_path / "r.jsonl", "jsonl") == [{"text": "x", "label": "1"}]
    table = pa.table({"text": ["u", "v"], "label": [0, 1]})
    pq.write_table(table, tmp_path / "r.parquet")
    assert read_records(tmp_path / "r.parquet", "parquet")[1] == {"text": "v", "label": "1"}
    folder = tmp_path / "saved"  # datasets' save_to_disk layout: Arrow IPC stream shards
    folder.mkdir()
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    (folder / "state.json").write_text("{}")
    assert [r["text"] for r in read_records(folder, "hf_disk")] == ["u", "v"]
    with pytest.raises(ValueError, match="holds the splits saved"):
        read_records(tmp_path, "hf_disk")


def test_a_package_root_reads_the_corpus_inside_gensims_wheel():
    lee = read_records(resolve("package:gensim/test/test_data", "lee_background.cor"), "text")
    polarity = read_records(resolve("package:gensim/test/test_data", "pang_lee_polarity.cor"), "fasttext", "latin-1")
    assert len(lee) == 300 and lee[0]["text"].startswith("Hundreds of people")
    assert len(polarity) == 200 and {r["label"] for r in polarity} == {"pos", "neg"}
    with pytest.raises(FileNotFoundError, match="not installed"):
        resolve("package:no_such_package_xyz", "f")


def _rule(**kw) -> MaskingRule:
    train = torch.randint(5, 1000, (400, 64))
    return MaskingRule.build(train, 1000, 4, [0, 1, 2, 3, 4], **kw)


def test_masking_is_a_pure_function_of_key_and_sample_index_with_berts_proportions():
    rule = _rule()
    ids = torch.randint(5, 1000, (2000, 64))
    ids[:, 0], ids[:, -8:] = 2, 0  # [CLS] first, padding last: never selected
    x, y = rule.apply(ids, torch.arange(2000), key=7)
    selected = y != IGNORE
    assert torch.equal(y[selected], ids[selected]) and not selected[:, 0].any() and not selected[:, -8:].any()
    frac = selected.sum() / (2000 * 55)
    assert 0.14 < frac < 0.16
    masked = (x == 4) & selected
    kept = (x == ids) & selected
    assert 0.78 < masked.sum() / selected.sum() < 0.82 and 0.08 < kept.sum() / selected.sum() < 0.12
    assert torch.equal(x[~selected], ids[~selected])
    # sample 1500's view is the same alone, in another batch, and differs under another key
    x1, y1 = rule.apply(ids[[1500, 3]], torch.tensor([1500, 3]), key=7)
    assert torch.equal(x1[0], x[1500]) and torch.equal(y1[0], y[1500])
    assert not torch.equal(rule.apply(ids, torch.arange(2000), key=8)[1], y)


def test_frequency_smoothing_masks_rare_tokens_more_often():
    train = torch.cat([torch.full((100, 50), 5), torch.full((2, 50), 6)])  # token 5 is 50× as frequent as 6
    rule = MaskingRule.build(train, 10, 4, [0, 1, 2, 3, 4], smoothing=0.7)
    assert rule.weights[6] / rule.weights[5] == pytest.approx(50**0.7, rel=1e-4)
    counts = torch.bincount(train.flatten(), minlength=10).float()
    assert (rule.weights * counts).sum() / counts.sum() == pytest.approx(1.0, rel=1e-5)  # expected fraction: p


def _mlm(root, **kw):
    (root / "corpus.txt").write_text("\n".join(DOCS) + "\n")
    params = {"root": str(root), "file": "corpus.txt", "max_length": 16, "tokenizer": {"vocab_size": 60},
              "val_fraction": 0.2, "test_fraction": 0.2} | kw
    return load_dataset("text_mlm", params)


def test_text_mlm_tokenises_once_and_masks_each_epoch_anew(tmp_path, text_cache, monkeypatch):
    data = _mlm(tmp_path)
    assert len(list(text_cache.glob("*.pt"))) == 1
    assert data.input_shape == (16,) and data.num_classes <= 60 and data.train.x.dtype == torch.int64
    monkeypatch.setattr(tokenize_module, "build_tokenizer", lambda *a: pytest.fail("tokenised twice"))
    again = _mlm(tmp_path)  # from the shared artefact
    assert torch.equal(again.train.x, data.train.x) and torch.equal(again.test.y, data.test.y)
    assert ((data.val.y != IGNORE) & (data.val.x == 0)).sum() == 0  # padding is never a target
    idx = torch.arange(8)
    x, y = augment_batch(data.augment, data.train.x[:8], data.train.y[:8], idx, 0, 3)
    original = torch.where(data.train.y[:8] >= 0, data.train.y[:8], data.train.x[:8])
    assert torch.equal(y[y >= 0], original[y >= 0])  # targets: the original ids
    assert torch.equal(x[y < 0], original[y < 0])  # the rest of the text as it was
    assert _mlm(tmp_path, augment=False).augment is None  # static masking
    x2, y2 = augment_batch(data.augment, data.train.x[:8], data.train.y[:8], idx, 0, 4)
    assert not torch.equal(y, y2)  # another epoch, another mask
    assert torch.equal(augment_batch(data.augment, data.train.x[:8], data.train.y[:8], idx, 0, 3)[1], y)
    plain, same_y = augment_batch(lambda x, i, s, e: x + 1, data.train.x[:2], data.train.y[:2], idx[:2], 0, 0)
    assert torch.equal(plain, data.train.x[:2] + 1) and same_y is not None and torch.equal(same_y, data.train.y[:2])


def test_text_mlm_describes_itself_once_tokenised(tmp_path):
    (tmp_path / "corpus.txt").write_text("\n".join(DOCS) + "\n")
    params = DATASETS.get("text_mlm").params(root=str(tmp_path), file="corpus.txt", max_length=16,
                                             tokenizer={"vocab_size": 60})
    assert params.describe() is None  # describing never tokenises
    data = load_dataset("text_mlm", params.model_dump())
    assert params.describe() == ((16,), data.num_classes, len(data.train))


def test_glue_tsv_layout_makes_labelled_pair_splits(tmp_path):
    header = "index\tsentence1\tsentence2\tlabel\n"
    rows = [f"{i}\tthe cat {i} sat\ta dog {i} ran\t{'entailment' if i % 2 else 'not_entailment'}\n"
            for i in range(30)]
    (tmp_path / "train.tsv").write_text(header + "".join(rows[:24]))
    (tmp_path / "dev.tsv").write_text(header + "".join(rows[24:]))
    data = load_dataset("text_classification", {
        "root": str(tmp_path), "file": "train.tsv", "test_file": "dev.tsv", "text_field": "sentence1",
        "text_pair_field": "sentence2", "max_length": 12, "tokenizer": {"vocab_size": 50},
        "labels": ["not_entailment", "entailment"], "val_fraction": 0.25})
    assert (len(data.train), len(data.val), len(data.test)) == (18, 6, 6) and data.num_classes == 2
    params = DATASETS.get("text_classification").params(
        root=str(tmp_path), file="train.tsv", test_file="dev.tsv", text_field="sentence1",
        text_pair_field="sentence2", max_length=12, tokenizer={"vocab_size": 50},
        labels=["not_entailment", "entailment"], val_fraction=0.25)
    assert params.describe() == ((12,), 2, 18)  # the efficiency view's input shape, classes, training size
    assert data.test.y.tolist() == [0, 1, 0, 1, 0, 1]  # dev.tsv rows 24..29 in order
    seps = (data.train.x == 3).sum(1)  # [SEP] after each sentence of the pair
    assert (seps == 2).all() and (data.train.x[:, 0] == 2).all()
    with pytest.raises(ValueError, match="not in `labels`"):
        load_dataset("text_classification", {"root": str(tmp_path), "file": "train.tsv", "text_field": "sentence1",
                                              "labels": ["entailment"], "tokenizer": {"vocab_size": 50}})


def _load_in_process(root: str, cache: str, out: str) -> None:
    import os

    os.environ["KDBENCH_TEXT_CACHE"] = cache
    data = load_dataset("text_mlm", {"root": root, "file": "corpus.txt", "max_length": 16,
                                     "tokenizer": {"vocab_size": 60}})
    torch.save({"x": data.train.x, "y": data.train.y}, out)


def test_concurrent_jobs_share_one_tokenisation(tmp_path, text_cache):
    """Jobs starting together on one machine (a teacher and a baseline) must not each train a vocabulary: the
    trainer is not reproducible across processes, so the first builds under a lock and the others load."""
    import multiprocessing as mp

    (tmp_path / "corpus.txt").write_text("\n".join(DOCS) + "\n")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_load_in_process, args=(str(tmp_path), str(text_cache), str(tmp_path / f"{i}.pt")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    a, b = (torch.load(tmp_path / f"{i}.pt") for i in range(2))
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    assert len(list(text_cache.glob("*.pt"))) == 1


def test_a_missing_corpus_is_named_when_the_suite_loads(tmp_path):
    from typer.testing import CliRunner

    from kdbench.cli import app

    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""name: t
dataset: {{name: text_mlm, root: {tmp_path}, file: nowhere.txt}}
recipe: {{epochs: 1}}
students: [{{name: s, arch: hf/masked_lm, num_layers: 1, hidden_size: 8, heads: 2, intermediate_size: 8}}]
methods: [none]
seeds: [0]
""")
    result = CliRunner().invoke(app, ["validate", str(suite)])  # validation without the data: a note
    assert "not on this machine" in result.output and "nowhere.txt not found" in result.output, result.output
    with pytest.raises(ValueError, match="nowhere.txt not found"):  # where the jobs run: an error before any job
        DATASETS.get("text_mlm").params(root=str(tmp_path), file="nowhere.txt")

