"""Training: loss goes down, resume is exact, DDP equals one process, export loads in the app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from core.checkpoint import load_checkpoint
from core.confidence import FEATURES
from core.datatypes import CaptionSettings
from core.inference import Captioner
from core.model import ModelConfig
from core.vocab import Vocab
from training.data import Example, Flickr8k
from training.fit import CaptionData, TrainConfig, TrainResult, TrainRun, config_with_vocab, train

REPO = Path(__file__).resolve().parents[2]


def synthetic(n_photos: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    words = "a dog cat man runs sits on the beach grass red ball".split()
    examples = []
    for i in range(n_photos):
        caps = tuple(" ".join(rng.choice(words, size=rng.integers(3, 8))) for _ in range(5))
        examples.append(Example(f"p{i}.jpg", Path(f"p{i}.jpg"), caps))
    vocab = Vocab.build((c for e in examples for c in e.captions), min_count=1)
    feats = torch.from_numpy(rng.standard_normal((n_photos, 2, 49, 1280)).astype(np.float16))
    data = CaptionData.build(examples, vocab, {e.name: i for i, e in enumerate(examples)})
    cfg = config_with_vocab(
        ModelConfig(d_model=32, n_heads=2, d_ff=64, n_decoder_layers=2, dropout=0.1), vocab
    )
    return examples, vocab, feats, data, cfg


def fit(cfg, tc, vocab, feats, data, dev, out: Path, **kw) -> TrainResult:
    """train() on the synthetic set."""
    run = TrainRun(
        model_cfg=cfg,
        cfg=tc,
        vocab=vocab,
        features=feats,
        train_data=data,
        dev=dev,
        out_dir=out,
        **kw,
    )
    return train(run)


def test_training_steps_lower_the_loss(tmp_path: Path) -> None:
    _, vocab, feats, data, cfg = synthetic()
    tc = TrainConfig(epochs=6, batch_size=20, warmup_steps=2, lr=3e-3, eval_from=99)
    result = fit(cfg, tc, vocab, feats, data, None, tmp_path)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] - 0.1
    assert (tmp_path / "last.safetensors").exists() and (
        tmp_path / "last_state.safetensors"
    ).exists()


def test_one_step_lowers_the_loss_on_a_tiny_batch() -> None:
    _, vocab, feats, data, cfg = synthetic()
    from core.model import CaptionModel

    torch.manual_seed(0)
    model = CaptionModel(cfg.__class__(**{**cfg.to_dict(), "dropout": 0.0}), with_backbone=False)
    f = feats[:4, 0].float()
    seq = data.tokens[:20, 0]  # (20, T): the 5 captions of each of 4 photos
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    _, before = model(f, seq[:, :-1], seq[:, 1:])
    before.backward()
    opt.step()
    with torch.no_grad():
        _, after = model(f, seq[:, :-1], seq[:, 1:])
    assert after < before


def test_resume_continues_exactly(tmp_path: Path) -> None:
    _, vocab, feats, data, cfg = synthetic()
    tc = TrainConfig(epochs=3, batch_size=20, warmup_steps=2, lr=1e-3, eval_from=99)
    straight = fit(cfg, tc, vocab, feats, data, None, tmp_path / "a").model
    steps_per_epoch = 12 // 4
    fit(cfg, tc, vocab, feats, data, None, tmp_path / "b", max_steps=steps_per_epoch)
    resumed = fit(cfg, tc, vocab, feats, data, None, tmp_path / "b", resume=True)
    assert resumed.history[-1]["epoch"] == 3 and len(resumed.history) == 3
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)


def test_resume_continues_exactly_with_a_tuned_encoder_head(tmp_path: Path) -> None:
    """training.tune's arms: the head's weights and moments resume with the model's."""
    _, vocab, feats, data, cfg = synthetic()
    stage = feats[..., :16].clone()  # an earlier stage's output, 16 channels

    def head() -> torch.nn.Module:
        torch.manual_seed(1)
        return torch.nn.Linear(16, 1280)

    tc = TrainConfig(epochs=3, batch_size=20, warmup_steps=2, lr=1e-3, eval_from=99)
    tuned = dict(head_lr=5e-4)
    straight_head = head()
    straight = fit(cfg, tc, vocab, stage, data, None, tmp_path / "a", head=straight_head, **tuned)
    fit(cfg, tc, vocab, stage, data, None, tmp_path / "b", max_steps=3, head=head(), **tuned)
    resumed_head = head()  # as a new process builds it: the initial weights
    resumed = fit(
        cfg, tc, vocab, stage, data, None, tmp_path / "b", resume=True, head=resumed_head, **tuned
    )
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert not torch.equal(resumed_head.weight, head().weight), "the head was trained"
    for name, a in straight_head.state_dict().items():
        torch.testing.assert_close(a, resumed_head.state_dict()[name], atol=0, rtol=0, msg=name)
    for (name, a), b in zip(
        straight.model.state_dict().items(),
        resumed.model.state_dict().values(),
        strict=True,
    ):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)


def test_best_checkpoint_selected_by_dev_cider(tmp_path: Path) -> None:
    examples, vocab, feats, data, cfg = synthetic()
    tc = TrainConfig(epochs=2, batch_size=20, warmup_steps=2, lr=3e-3, eval_from=1)
    result = fit(cfg, tc, vocab, feats, data, {"dev": (examples[:4], feats[:4, 0])}, tmp_path)
    assert all("dev_CIDEr" in h for h in result.history)
    best = load_checkpoint(tmp_path / "best.safetensors")
    assert best.provenance["dev"]["mean"]["CIDEr"] == pytest.approx(result.best_cider)


DDP_SCRIPT = """
import sys, torch
from pathlib import Path
from safetensors.torch import save_file
sys.path.insert(0, {repo!r})
from tests.training.test_fit import fit, synthetic
from training.fit import TrainConfig
import torch.distributed as dist
_, vocab, feats, data, cfg = synthetic()
cfg = cfg.__class__(**{{**cfg.to_dict(), "dropout": 0.0}})
tc = TrainConfig(epochs=2, batch_size=20, warmup_steps=2, lr=1e-3, eval_from=99, amp=False, device="cpu")
out = Path(sys.argv[1])
model = fit(cfg, tc, vocab, feats, data, None, out).model
rank = dist.get_rank() if dist.is_initialized() else 0
if rank == 0:
    save_file({{k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}}, str(out / "final.safetensors"))
if dist.is_initialized():
    dist.destroy_process_group()
"""


def test_ddp_two_processes_equal_one(tmp_path: Path) -> None:
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT.format(repo=str(REPO)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            str(script),
            str(tmp_path / "two"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "final.safetensors"))
    b = load_file(str(tmp_path / "two" / "final.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=1e-4, msg=k)


def test_export_loads_in_the_app_and_captions(tmp_path: Path, photo_dir: Path) -> None:
    from core.model import build_efficientnet_b0
    from training.export import export_weights

    _, vocab, feats, data, cfg = synthetic()
    tc = TrainConfig(epochs=1, batch_size=20, warmup_steps=2, eval_from=99)
    fit(cfg, tc, vocab, feats, data, None, tmp_path / "run")
    backbone = tmp_path / "b0.safetensors"
    save_file(
        {k: v.contiguous() for k, v in build_efficientnet_b0().state_dict().items()}, str(backbone)
    )
    history = tmp_path / "run" / "history.json"
    out = export_weights(
        tmp_path / "run" / "last.safetensors", backbone, tmp_path / "ship.safetensors", [history]
    )
    ckpt = load_checkpoint(out)
    assert all(t.dtype == torch.float16 for t in ckpt.state_dict.values() if t.is_floating_point())
    assert any(k.startswith("backbone.") for k in ckpt.state_dict)
    assert "history" in ckpt.provenance
    result = Captioner(out, device="cpu").caption_file(
        photo_dir / "photo0.jpg", CaptionSettings(beam_size=2)
    )
    assert result.ok and set(result.caption.split()) <= set(vocab.itos)


def test_evaluate_writes_scores_json(
    tmp_path: Path, tiny_flickr: Path, tiny_checkpoint: Path, photo_dir: Path
) -> None:
    """Both dev splits' scores, per-photo examples, and captions of a folder with no references."""
    out, examples = tmp_path / "scores.json", tmp_path / "examples.json"
    (photo_dir / "notes.txt").write_text("not a photo")
    (photo_dir / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "evaluate",
            "--data",
            str(tiny_flickr),
            "--weights",
            str(tiny_checkpoint),
            "--beam",
            "2",
            "--out",
            str(out),
            "--examples",
            str(examples),
            "--photos",
            str(photo_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = json.loads(out.read_text())
    assert scores["settings"]["beam"] == 2
    flickr = scores["flickr8k"]
    for key in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"):
        assert 0.0 <= flickr[key] <= 10.0, key
    assert flickr["images"] == 2
    made = json.loads(examples.read_text())["flickr8k"]
    assert set(made) == {"1005_abc.jpg", "1006_abc.jpg"}
    for m in made.values():
        assert (
            0.0 <= m["confidence"] <= 1.0
            and m["cider"] >= 0.0
            and len(m["features"]) == len(FEATURES)
        )
    photos = scores["photos"]
    assert "notes.txt" not in photos and "broken.jpg" in photos
    assert "broken.jpg" in photos["broken.jpg"]["error"]
    good = {n: p for n, p in photos.items() if n != "broken.jpg"}
    assert len(good) == 3 and all(p["caption"] and 0 <= p["confidence"] <= 1 for p in good.values())


def test_report_png_and_json(tmp_path: Path) -> None:
    from training.report import write_report

    examples, vocab, feats, data, cfg = synthetic()
    tc = TrainConfig(epochs=2, batch_size=20, warmup_steps=2, eval_from=1)
    fit(cfg, tc, vocab, feats, data, {"dev": (examples[:3], feats[:3, 0])}, tmp_path)
    png = write_report(tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(png.with_suffix(".json").read_text())
    assert summary["epochs"] == 2 and summary["best_cross_entropy_epoch"]["epoch"] in (1, 2)


@pytest.mark.parametrize("tags", [0, 3])
def test_flickr_fixture_runs_through_the_cli_fit(
    tmp_path: Path, tiny_flickr: Path, tags: int
) -> None:
    """features + fit end to end on the tiny dataset, with a random converted-B0 file; with
    --tags the model also reads the words of the encoder's top ImageNet classes."""
    from core.model import build_efficientnet_b0

    backbone = tmp_path / "b0.safetensors"
    b0 = {k: v.contiguous() for k, v in build_efficientnet_b0().state_dict().items()}
    save_file(b0, str(backbone))
    from training.__main__ import main

    code = main(
        [
            "fit",
            "--data",
            str(tiny_flickr),
            "--backbone",
            str(backbone),
            "--cache",
            str(tmp_path / "cache"),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--batch-size",
            "10",
            "--d-model",
            "32",
            "--heads",
            "2",
            "--decoder-layers",
            "1",
            "--eval-from",
            "1",
            "--min-count",
            "1",
            "--tags",
            str(tags),
        ]
    )
    assert code == 0
    best = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert best.config.d_model == 32 and best.config.n_tags == tags
    if tags:  # the ImageNet head is the encoder's, frozen; the words are the vocabulary's
        torch.testing.assert_close(best.state_dict["tag_head.weight"], b0["classifier.1.weight"])
        words = best.state_dict["tag_words"]
        assert ((words >= -1) & (words < len(best.vocab))).all() and (words >= 0).any()
    assert len(Flickr8k.load(tiny_flickr).train) == 6


def test_imagenet_word_map_names_plain_words_for_common_classes() -> None:
    """The committed class -> word map: 1,000 classes, and the anchors issue 20 asks for."""
    from training.tags import WORD_MAP, class_words

    classes = json.loads(WORD_MAP.read_text())["classes"]
    assert len(classes) == 1000
    word = dict((name, w) for name, w in classes)
    assert word["tabby"] == "cat" and word["Granny Smith"] == "apple"
    assert word["golden retriever"] == "dog" and word["missile"] == "rocket"
    vocab = Vocab(("<pad>", "<start>", "<end>", "<unk>", "cat", "dog"))
    ids = class_words(vocab)
    assert ids[[n for n, _ in classes].index("tabby")] == vocab.stoi["cat"]
    assert ids[[n for n, _ in classes].index("Granny Smith")] == -1  # not in this vocabulary
