"""Reading COCO's captions.json and img2dataset's folders, the everyday dev rule, the non-photo
filter and the letterbox crop."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from training.data import (
    COCO_DEV_FILE,
    CocoCaptions,
    Corpus,
    WebCaptions,
    coco_dev_rule,
    letterbox_crop,
    not_a_photo,
    read_id_list,
)


def test_coco_reader_splits_by_the_dev_list_and_counts_what_it_skips(tiny_coco: Path) -> None:
    c = CocoCaptions.load(tiny_coco, dev_ids=[2])
    assert [e.name for e in c.dev] == ["coco/2.jpg"]
    assert [e.name for e in c.train] == ["coco/1.jpg", "coco/3.jpg"]
    assert all(e.source == "coco" for e in c.train + c.dev)
    assert len(c.train[0].captions) == 5 and len(c.train[1].captions) == 2
    assert c.skipped.counts == {"photo missing": 1, "photo empty": 1, "no caption": 1}


def test_web_reader_keeps_photos_crops_letterbox_and_counts_the_rest(tiny_web: Path) -> None:
    w = WebCaptions.load(tiny_web)
    got = {e.name: e for e in w.train}
    assert sorted(got) == ["cc3m/00000/000.jpg", "cc3m/00000/002.jpg", "cc3m/00000/004.jpg"]
    assert got["cc3m/00000/000.jpg"].crop == (0, 32, 256, 224)  # 4:3 -> bars top and bottom
    assert got["cc3m/00000/002.jpg"].crop == (64, 0, 192, 256)  # 1:2 -> bars left and right
    assert got["cc3m/00000/004.jpg"].crop is None
    assert all(e.source == "cc3m" and len(e.captions) == 1 for e in w.train)
    assert w.skipped.counts["not a photo (illustration, graphic or text)"] == 1
    assert w.skipped.counts["no caption"] == 1
    assert w.skipped.counts["photo missing"] == 1
    assert w.skipped.counts["no usable .json (letterbox not cropped)"] == 1


def test_corpus_joins_all_three_layouts(
    tiny_flickr: Path, tiny_coco: Path, tiny_web: Path, tmp_path: Path
) -> None:
    dev_file = tmp_path / "dev.txt"
    dev_file.write_text("1\n")
    corpus = Corpus.load(tiny_flickr, tiny_coco, tiny_web, dev_file)
    assert {e.source for e in corpus.train} == {"flickr8k", "coco", "cc3m"}
    assert sorted(corpus.dev) == ["coco", "flickr8k"]
    assert [e.name for e in corpus.dev["coco"]] == ["coco/1.jpg"]
    names = [e.name for e in corpus.all_examples]
    assert len(names) == len(set(names))
    assert "coco/1.jpg" not in {e.name for e in corpus.train}
    less = corpus.without({"coco/3.jpg"})
    assert "coco/3.jpg" not in {e.name for e in less.train}


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("royalty free vector illustration of a cat", True),
        ("cartoon character waving", True),
        ("the words love and peace on a wall", True),
        ("logo of the football club", True),
        ("3d rendering of a modern kitchen", True),
        ("a cat sleeping on a sofa", False),
        ("people walking down a city street at night", False),
        ("a bowl of soup with bread", False),
    ],
)
def test_not_a_photo_rule(caption: str, expected: bool) -> None:
    assert not_a_photo(caption) is expected


def test_letterbox_crop() -> None:
    assert letterbox_crop((256, 256), (600, 450)) == (0, 32, 256, 224)
    assert letterbox_crop((256, 256), (1536, 2048)) == (32, 0, 224, 256)
    assert letterbox_crop((256, 256), (550, 550)) is None
    assert letterbox_crop((256, 256), (0, 10)) is None


def test_dev_rule_is_fixed_and_the_committed_list_follows_it() -> None:
    ids = list(range(1, 3000))
    a, b = coco_dev_rule(ids), coco_dev_rule(reversed(ids))
    assert a == b and len(a) == 500 and a == sorted(a)
    by_hash = sorted(ids, key=lambda i: hashlib.sha1(f"coco:{i}".encode()).hexdigest())
    assert coco_dev_rule(ids, size=10) == sorted(by_hash[:10])
    committed = read_id_list(COCO_DEV_FILE)
    assert len(committed) == 500 and len(set(committed)) == 500
    # The committed ids are the rule's choice among themselves plus any id it ranked lower.
    assert coco_dev_rule(committed) == committed


def test_all_three_layouts_run_through_fit_and_scst(
    tmp_path: Path, tiny_flickr: Path, tiny_coco: Path, tiny_web: Path
) -> None:
    """features + fit + scst from the command line on Flickr8k, COCO and web folders at once:
    style tokens for every set, the default style chosen, damaged photos skipped and counted."""
    from safetensors.torch import save_file

    from core.checkpoint import load_checkpoint
    from core.model import build_efficientnet_b0
    from training.__main__ import main

    backbone = tmp_path / "b0.safetensors"
    save_file(
        {k: v.contiguous() for k, v in build_efficientnet_b0().state_dict().items()}, str(backbone)
    )
    (tiny_web / "00000" / "002.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # damaged
    dev_file = tmp_path / "coco_dev.txt"
    dev_file.write_text("2\n")
    data = ["--data", str(tiny_flickr), "--coco", str(tiny_coco), "--web", str(tiny_web)]
    data += ["--coco-dev", str(dev_file)]
    data += ["--backbone", str(backbone), "--cache", str(tmp_path / "cache")]
    assert (
        main(
            [
                "fit",
                *data,
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
                "--weights",
                "flickr8k=1,coco=2,cc3m=0.5",
                "--repeat-rare",
                "0.5",
                "--style",
                "coco",
            ]
        )
        == 0
    )
    best = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert best.vocab.styles == ("cc3m", "coco", "flickr8k")
    assert best.config.style == "coco"
    assert set(best.provenance["dev"]) == {"flickr8k", "coco", "mean"}
    assert best.provenance["data"]["cc3m"].endswith(": 2 photos")  # 3 read, 1 damaged
    assert best.provenance["repeat_rare_words"] == 0.5
    assert (
        main(
            [
                "scst",
                *data,
                "--init",
                str(tmp_path / "run" / "best.safetensors"),
                "--out",
                str(tmp_path / "run"),
                "--minutes",
                "0.05",
                "--eval-every",
                "1",
                "--photos-per-step",
                "2",
                "--samples",
                "2",
                "--min-refs",
                "2",
                "--style",
                "flickr8k",
            ]
        )
        == 0
    )
    history = json.loads((tmp_path / "run" / "scst_history.json").read_text())
    assert history["history"] and "mean" in history["history"][0]
    if (tmp_path / "run" / "scst_best.safetensors").exists():
        assert load_checkpoint(tmp_path / "run" / "scst_best.safetensors").config.style == (
            "flickr8k"
        )
