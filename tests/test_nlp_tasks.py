"""The text tasks score what their docs say, and the Hugging Face archs honour the model contract (taps, local
folders, no download)."""

from __future__ import annotations

import math

import pytest
import torch

from kdbench.outputs import TeacherOutput
from kdbench.tasks import TASKS
from kdbench.zoo.models import create_model
from kdbench.zoo.models.features import feature_shapes

SIZE = {"hidden_size": 16, "num_layers": 2, "heads": 2, "intermediate_size": 32, "max_positions": 8}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_masked_lm_scores_only_the_masked_positions():
    task = TASKS.get("masked_lm")()
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 3.0, 0.0]]])  # (1, 3 positions, 3 tokens)
    y = torch.tensor([[0, -100, 2]])  # position 0 right (argmax 0), position 2 wrong (argmax 1, target 2)
    nll0 = -math.log(math.exp(2) / (math.exp(2) + 2))
    nll2 = -math.log(1 / (math.exp(3) + 2))
    scores = task.score(logits, y)
    assert scores["mlm_acc"] == 0.5
    assert scores["ppl"] == pytest.approx(math.exp((nll0 + nll2) / 2), rel=1e-5)
    assert task.loss(logits, y).item() == pytest.approx((nll0 + nll2) / 2, rel=1e-5)
    train = task.train_metrics(task.batch_sums(logits, y), 1)
    assert train["train_mlm_acc"].item() == 0.5 and train["train_ppl"].item() == pytest.approx(scores["ppl"])
    assert task.metric().name == "mlm_acc" and not task.metric("ppl").higher_is_better
    assert torch.allclose(task.prediction(TeacherOutput(logits[None])), torch.log_softmax(logits, -1))
    fused = torch.vmap(task.batch_sums)(logits[None].expand(2, -1, -1, -1), y[None].expand(2, -1, -1))
    assert fused["correct"].tolist() == [1, 1]


def test_sequence_classification_records_glues_f1_and_matthews_correlation():
    task = TASKS.get("sequence_classification")()
    y = torch.tensor([1, 1, 0, 0, 1])
    pred = torch.tensor([1, 0, 0, 1, 1])  # TP 2, FN 1, TN 1, FP 1
    scores = task.score(torch.nn.functional.one_hot(pred, 2).float(), y)
    tp, fn, tn, fp = 2, 1, 1, 1
    f1 = 2 * tp / (2 * tp + fp + fn)
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert scores == pytest.approx({"acc": 3 / 5, "f1": f1, "mcc": mcc})
    assert task.metric().name == "acc" and task.loss_term == "ce"


def test_hf_masked_lm_returns_logits_over_the_vocabulary_and_hidden_taps():
    torch.manual_seed(0)
    model = create_model("hf/masked_lm", SIZE, (8,), 40)
    x = torch.tensor([[2, 7, 9, 3, 0, 0, 0, 0]])
    out = model(x)
    assert out.logits.shape == (1, 8, 40)
    assert list(out.features) == ["hidden0", "hidden1", "hidden2", "embedding"]
    assert torch.equal(out.features["embedding"], out.features["hidden2"])
    model.eval()
    with torch.no_grad():  # padding (id 0) is masked out of attention: the real tokens' outputs ignore it
        assert torch.allclose(model(x).logits[:, :4], model(x[:, :4]).logits, atol=1e-5)
    assert feature_shapes(model, (8,))["hidden1"] == (8, 16)  # the engine's probe feeds float zeros


def test_a_local_folder_loads_without_download_and_computes_the_same(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    built = create_model("hf/masked_lm", SIZE, (8,), 40).eval()
    built.hf.save_pretrained(tmp_path / "bert")  # config.json + model.safetensors
    assert (tmp_path / "bert" / "model.safetensors").exists()
    loaded = create_model("hf/masked_lm", {"path": str(tmp_path / "bert")}, (8,), 40).eval()
    x = torch.tensor([[2, 5, 6, 3, 0, 0, 0, 0]])
    with torch.no_grad():
        assert torch.allclose(built(x).logits, loaded(x).logits, atol=1e-6)
    with pytest.raises(ValueError, match="vocabulary"):
        create_model("hf/masked_lm", {"path": str(tmp_path / "bert")}, (8,), 41)
    clf = create_model("hf/sequence_classification", {"path": str(tmp_path / "bert")}, (8,), 3)
    out = clf(x)
    assert out.logits.shape == (1, 3) and out.features["embedding"].shape == (1, 16)
    with torch.no_grad():  # the encoder is the saved one
        assert torch.allclose(clf.eval()(x).features["hidden2"], built(x).features["hidden2"], atol=1e-6)
    with pytest.raises(ValueError, match="config.json"):
        create_model("hf/masked_lm", {"path": str(tmp_path)}, (8,), 40)


def test_masked_lm_evaluation_streams_the_split_in_small_batches_and_scores_as_the_whole_split():
    """At BERT scale a split's (N, L, V) predictions do not fit in memory: evaluation sums batch statistics over
    `eval_batch` sequences at a time, keeps no predictions, and gives the metrics of the whole split."""
    from kdbench.engine.loop import evaluate
    from kdbench.zoo.datasets.base import Split

    torch.manual_seed(0)
    task = TASKS.get("masked_lm")()
    vocab, n, length = 40, 37, 6
    table = torch.randn(vocab, vocab)
    seen: list[int] = []

    class Lookup(torch.nn.Module):  # a token-wise model: logits = a fixed table row per input token
        def forward(self, x):
            seen.append(x.shape[0])
            return type("Out", (), {"logits": table[x]})()

    x = torch.randint(0, vocab, (n, length))
    y = torch.where(torch.rand(n, length) < 0.3, torch.randint(0, vocab, (n, length)), torch.tensor(-100))
    preds, metrics = evaluate(task, Lookup(), Split(x, y))
    assert preds is None and max(seen) == task.eval_batch < n
    assert sum(seen) == n
    # the expected values, computed independently over the whole split at once
    logits = table[x]
    target = y != -100
    acc = (logits.argmax(-1) == y)[target].float().mean()
    nll = -torch.log_softmax(logits, -1).gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)[target].mean()
    assert metrics["mlm_acc"] == pytest.approx(float(acc), abs=1e-7)
    assert metrics["ppl"] == pytest.approx(math.exp(float(nll)), rel=1e-5)
