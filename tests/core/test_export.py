"""Exporting stored captions as CSV, JSON, JSON Lines and Hugging Face ImageFolder metadata."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest

from core.errors import FileMissingError
from core.export import export_captions
from core.index import IndexEntry, LibraryIndex
from core.library import IMAGE_EXTENSIONS, find_photos
from core.storage import EmbeddedStore, TextSidecarStore, XmpSidecarStore
from tests.core.test_storage_support import sample, temp_files

COMMA_QUOTE_NEWLINE = 'a cat, a "dog"\nand a bird'


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A folder: captions in three stores, one photo without, a subfolder, and noise."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    EmbeddedStore().write(sample(root, "plain.jpg", "b_cat.jpg"), COMMA_QUOTE_NEWLINE)
    TextSidecarStore().write(sample(root, "astronaut.png", "a_astronaut.png"), "an astronaut 👩‍🚀")
    XmpSidecarStore().write(sample(root, "rocket.webp", "c_rocket.webp"), "火箭 launch")
    sample(root, "chelsea.tif", "d_uncaptioned.tif")
    TextSidecarStore().write(sample(root / "sub", "plain.jpg", "e_deep.jpg"), "in a subfolder")
    TextSidecarStore().write(sample(root / ".hidden", "plain.jpg", "f.jpg"), "hidden")
    (root / "notes.txt").write_text("not a photo", encoding="utf-8")
    return root


EXPECTED = [
    ("a_astronaut.png", "an astronaut 👩‍🚀", "txt"),
    ("b_cat.jpg", COMMA_QUOTE_NEWLINE, "embed"),
    ("c_rocket.webp", "火箭 launch", "xmp"),
]
EXPECTED_RECURSIVE = EXPECTED + [("sub/e_deep.jpg", "in a subfolder", "txt")]


def row(file_name: str, caption: str, store: str, confidence=None, reviewed=False) -> dict:
    """A JSON record; without a library index the confidence is unknown and nothing reviewed."""
    return {
        "file_name": file_name,
        "caption": caption,
        "store": store,
        "confidence": confidence,
        "reviewed": reviewed,
    }


def test_csv_is_rfc4180_with_quoting_and_crlf(library: Path, tmp_path: Path) -> None:
    out = tmp_path / "captions.csv"
    assert export_captions(library, recursive=False, fmt="csv", out=out) == 3
    raw = out.read_bytes()
    assert raw.startswith(b"file_name,caption,store,confidence,reviewed\r\n")
    assert b'"a cat, a ""dog""\nand a bird"' in raw  # quoted, quotes doubled, newline kept
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == 4
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert rows == [["file_name", "caption", "store", "confidence", "reviewed"]] + [
        [*r, "", "false"] for r in EXPECTED
    ]


def test_csv_with_bom_for_excel(library: Path, tmp_path: Path) -> None:
    out = tmp_path / "captions.csv"
    export_captions(library, recursive=False, fmt="csv", out=out, bom=True)
    assert out.read_bytes().startswith(b"\xef\xbb\xbffile_name,")


def test_json(library: Path, tmp_path: Path) -> None:
    out = tmp_path / "captions.json"
    assert export_captions(library, recursive=True, fmt="json", out=out) == 4
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data == [row(f, c, s) for f, c, s in EXPECTED_RECURSIVE]
    assert "火箭" in out.read_text(encoding="utf-8")  # real UTF-8, not \\u escapes


def test_jsonl(library: Path, tmp_path: Path) -> None:
    out = tmp_path / "captions.jsonl"
    export_captions(library, recursive=True, fmt="jsonl", out=out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [row(f, c, s) for f, c, s in EXPECTED_RECURSIVE]


def test_hf_imagefolder_metadata(library: Path) -> None:
    out = library / "metadata.jsonl"
    export_captions(library, recursive=True, fmt="hf", out=out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"file_name": f, "text": c, "store": s, "confidence": None}
        for f, c, s in EXPECTED_RECURSIVE
    ]
    for row in rows:  # every file_name resolves from the folder holding metadata.jsonl
        assert (library / row["file_name"]).is_file()


@pytest.mark.parametrize("where", ["folder itself", "parent"])
def test_a_relative_folder_exports_as_an_absolute_one(
    library: Path, tmp_path: Path, monkeypatch, where: str
) -> None:
    """A regression guard: `cd Pictures && photoscribe export . --format csv` crashed in
    relative_to (ValueError) and wrote nothing."""
    want = io.StringIO(newline="")
    export_captions(library, recursive=True, fmt="csv", out=want)
    if where == "parent":
        monkeypatch.chdir(library.parent)
        folder = Path(library.name)
    else:
        monkeypatch.chdir(library)
        folder = Path(".")
    got = io.StringIO(newline="")
    assert export_captions(folder, recursive=True, fmt="csv", out=got) == 4
    assert got.getvalue() == want.getvalue()


def test_exports_carry_the_confidence_and_whether_a_person_reviewed_it(
    library: Path, tmp_path: Path
) -> None:
    """Issue 21: a confidence column and a reviewed column, from the library index."""
    index_path = tmp_path / "library.sqlite3"

    def entry(name: str, caption: str, model: str | None, confidence: float | None):
        photo = library / name
        stat = photo.stat()
        return IndexEntry(
            path=photo.resolve(), size=stat.st_size, mtime_ns=stat.st_mtime_ns, status="done", caption=caption, store=None, store_path=None,
            model=model, error=None, updated=0.0, confidence=confidence,
        )  # fmt: skip

    with LibraryIndex.open(index_path) as index:
        index.put(entry("a_astronaut.png", "an astronaut 👩‍🚀", "photoscribe-b0 v3", 0.7123))
        index.put(entry("b_cat.jpg", COMMA_QUOTE_NEWLINE, None, None))  # typed by a person
        index.put(entry("c_rocket.webp", "another caption since", "photoscribe-b0 v3", 0.9))
        index.commit()
    stream = io.StringIO(newline="")
    export_captions(library, recursive=False, fmt="jsonl", out=stream, index_path=index_path)
    got = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert got == [
        row("a_astronaut.png", "an astronaut 👩‍🚀", "txt", confidence=0.712),
        row("b_cat.jpg", COMMA_QUOTE_NEWLINE, "embed", reviewed=True),
        row("c_rocket.webp", "火箭 launch", "xmp"),  # not the caption the index recorded
    ]
    stream = io.StringIO(newline="")
    export_captions(library, recursive=False, fmt="csv", out=stream, index_path=index_path)
    rows = list(csv.reader(io.StringIO(stream.getvalue(), newline="")))
    assert [r[3:] for r in rows] == [
        ["confidence", "reviewed"], ["0.712", "false"], ["", "true"], ["", "false"]
    ]  # fmt: skip
    stream = io.StringIO(newline="")
    export_captions(library, recursive=False, fmt="hf", out=stream, index_path=index_path)
    assert json.loads(stream.getvalue().splitlines()[0])["confidence"] == 0.712


def test_stream_output_and_store_choice(library: Path) -> None:
    stream = io.StringIO(newline="")
    count = export_captions(
        library, recursive=False, fmt="jsonl", out=stream, stores=[TextSidecarStore()]
    )
    assert count == 1
    assert json.loads(stream.getvalue()) == row("a_astronaut.png", "an astronaut 👩‍🚀", "txt")


def test_empty_folder_gives_a_header_only_csv(tmp_path: Path) -> None:
    stream = io.StringIO(newline="")
    assert export_captions(tmp_path, recursive=True, fmt="csv", out=stream) == 0
    assert stream.getvalue() == "file_name,caption,store,confidence,reviewed\r\n"


def test_bad_photos_are_skipped_not_fatal(library: Path, tmp_path: Path) -> None:
    (library / "z_broken.jpg").write_bytes(b"not a jpeg")
    (library / "zz.jpg.xmp").write_bytes(b"\x00garbage")
    sample(library, "plain.jpg", "zz.jpg")
    stream = io.StringIO(newline="")
    assert export_captions(library, recursive=False, fmt="jsonl", out=stream) == 3
    names = [json.loads(line)["file_name"] for line in stream.getvalue().splitlines()]
    assert names == [f for f, _, _ in EXPECTED]


def test_output_is_written_atomically(library: Path, tmp_path: Path, monkeypatch) -> None:
    import core.storage.files as files

    out = tmp_path / "captions.csv"
    out.write_text("previous export", encoding="utf-8")

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(Exception, match="disk is full"):
        export_captions(library, recursive=False, fmt="csv", out=out)
    assert out.read_text(encoding="utf-8") == "previous export"
    assert temp_files(tmp_path) == []


def test_bad_arguments(library: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        export_captions(library, recursive=False, fmt="xml", out=io.StringIO())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only for CSV"):
        export_captions(library, recursive=False, fmt="json", out=io.StringIO(), bom=True)
    with pytest.raises(FileMissingError):
        export_captions(library / "nope", recursive=False, fmt="csv", out=io.StringIO())


def test_find_photos_is_sorted_skips_hidden_and_recurses_on_request(tmp_path: Path) -> None:
    for rel in ["b.JPG", "a.png", "c.cr2", "._a.jpg", "x.txt", "s/z.heic", "s/t/y.tif", ".h/k.jpg"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    flat = [p.relative_to(tmp_path).as_posix() for p in find_photos(tmp_path)]
    assert flat == ["a.png", "b.JPG", "c.cr2"]
    deep = [p.relative_to(tmp_path).as_posix() for p in find_photos(tmp_path, recursive=True)]
    assert deep == ["a.png", "b.JPG", "c.cr2", "s/z.heic", "s/t/y.tif"]
    assert {".jpg", ".heic", ".nef", ".dng", ".cr3", ".arw"} <= IMAGE_EXTENSIONS


@pytest.fixture
def latin1_named(tmp_path: Path) -> Path:
    """A folder with a photo whose name is Latin-1, not UTF-8 (b"caf\\xe9 \\xff.jpg")."""
    folder = tmp_path / "old"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9 \xff.jpg")
    try:
        photo = sample(folder, "plain.jpg", name)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes UTF-8 names only")
    TextSidecarStore().write(photo, "a name from an old camera")
    TextSidecarStore().write(sample(folder, "plain.jpg", "plain.jpg"), "a plain name")
    return folder


@pytest.mark.parametrize("fmt", ["json", "jsonl", "hf"])
def test_a_name_that_is_not_utf8_is_exported_escaped_in_json(
    latin1_named: Path, tmp_path: Path, fmt: str
) -> None:
    """Valid UTF-8 JSON whose \\udcXX escapes give back the name's bytes (issue 22.13)."""
    out = tmp_path / f"captions.{fmt}"
    assert export_captions(latin1_named, recursive=False, fmt=fmt, out=out) == 2
    raw = out.read_bytes()
    text = raw.decode("utf-8")  # strict: the file is UTF-8 throughout
    assert "caf\\udce9 \\udcff.jpg" in text
    records = json.loads(text) if fmt == "json" else [json.loads(x) for x in text.splitlines()]
    names = {r["file_name"] for r in records}
    assert os.fsdecode(b"caf\xe9 \xff.jpg") in names
    for name in names:  # each names a file that opens as it is
        assert (latin1_named / name).is_file()
        assert os.fsencode(name) in (b"caf\xe9 \xff.jpg", b"plain.jpg")


def test_a_name_that_is_not_utf8_is_exported_as_its_bytes_in_csv(
    latin1_named: Path, tmp_path: Path
) -> None:
    out = tmp_path / "captions.csv"
    assert export_captions(latin1_named, recursive=False, fmt="csv", out=out) == 2
    raw = out.read_bytes()
    assert b"\r\ncaf\xe9 \xff.jpg,a name from an old camera,txt,,false\r\n" in raw
    text = raw.decode("utf-8", "surrogateescape")
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert all((latin1_named / r[0]).is_file() for r in rows)


def test_a_csv_to_stdout_names_the_file_with_its_bytes(latin1_named: Path) -> None:
    """Written through a text stream with a byte buffer beneath (the command's stdout)."""
    buffer = io.BytesIO()
    stream = io.TextIOWrapper(buffer, encoding="utf-8", newline="")
    assert export_captions(latin1_named, recursive=False, fmt="csv", out=stream) == 2
    assert b"\r\ncaf\xe9 \xff.jpg,a name from an old camera," in buffer.getvalue()
