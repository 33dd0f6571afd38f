"""Text and XMP sidecars: naming, updating in place, overwrite policy, identity and bad input."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.errors import (
    CaptionExistsError,
    CorruptMetadataError,
    DiskFullError,
    FileChangedError,
    FileMissingError,
    InvalidCaptionError,
    ReadOnlyError,
)
from core.storage import (
    CaptionStore,
    EmbeddedStore,
    FileIdentity,
    StoredCaption,
    TextSidecarStore,
    XmpSidecarStore,
    all_stores,
    make_store,
    read_caption_any,
)
from tests.core.test_storage_support import (
    TRICKY,
    exiftool_all,
    exiftool_captions,
    needs_exiftool,
    sample,
    temp_files,
)

LIGHTROOM_SIDECAR = """<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
   xmp:Rating="3"
   crs:Exposure2012="+0.50"
   darktable:history_end="2">
   <dc:subject><rdf:Bag><rdf:li>cat</rdf:li><rdf:li>mat</rdf:li></rdf:Bag></dc:subject>
   <dc:description>
    <rdf:Alt>
     <rdf:li xml:lang="x-default">old caption</rdf:li>
     <rdf:li xml:lang="de-DE">alte Beschriftung</rdf:li>
    </rdf:Alt>
   </dc:description>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:operation="exposure" darktable:enabled="1" darktable:params="0000"/>
     <rdf:li darktable:operation="colorin" darktable:enabled="1" darktable:params="gz12eJ"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


@pytest.fixture(autouse=True)
def no_temp_files_left(tmp_path: Path):
    yield
    assert temp_files(tmp_path) == []


STORES = [TextSidecarStore(), XmpSidecarStore("photo.jpg.xmp"), XmpSidecarStore("photo.xmp")]
STORE_IDS = ["txt", "xmp-long", "xmp-short"]


# --- round trips and naming ------------------------------------------------------------------


@pytest.mark.parametrize("store", STORES, ids=STORE_IDS)
def test_round_trip_leaves_the_photo_alone(tmp_path: Path, store: CaptionStore) -> None:
    photo = sample(tmp_path, "exif_iptc.jpg")
    before = photo.read_bytes()
    result = store.write(photo, TRICKY, expected=FileIdentity.of(photo))
    assert result.store == store.name and result.written and result.message == ""
    assert result.path.parent == tmp_path and result.path.is_file()
    assert store.read(photo) == TRICKY
    assert photo.read_bytes() == before


def test_txt_sidecar_is_plain_utf8_named_after_the_stem(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    result = TextSidecarStore().write(photo, "一只猫 🐱")
    assert result.path == tmp_path / "plain.txt"
    assert result.path.read_bytes() == "一只猫 🐱\n".encode()


def test_txt_sidecar_ends_with_a_newline_that_reading_strips(tmp_path: Path) -> None:
    """A text file ends its last line (issue 22.13); the newline is no part of the caption:
    it reads back as written, and saving the same caption again leaves the file alone."""
    photo = sample(tmp_path, "plain.jpg")
    store = TextSidecarStore()
    first = store.write(photo, "a cat on a mat")
    assert first.path.read_bytes() == b"a cat on a mat\n"
    assert store.read(photo) == "a cat on a mat"
    again = store.write(photo, "a cat on a mat", overwrite=True)
    assert not again.written and first.path.read_bytes() == b"a cat on a mat\n"


@needs_exiftool
@pytest.mark.parametrize(
    ("xmp_name", "sidecar"), [("photo.jpg.xmp", "plain.jpg.xmp"), ("photo.xmp", "plain.xmp")]
)
def test_xmp_sidecar_names_and_exiftool_reads_it(tmp_path: Path, xmp_name, sidecar: str) -> None:
    photo = sample(tmp_path, "plain.jpg")
    result = make_store("xmp", xmp_name).write(photo, TRICKY)
    assert result.path == tmp_path / sidecar
    assert exiftool_captions(result.path) == {"Description": TRICKY}


@pytest.mark.parametrize(
    ("store", "sidecar"),
    [(TextSidecarStore(), "a.jpg.txt"), (XmpSidecarStore("photo.xmp"), "a.jpg.xmp")],
)
def test_photos_sharing_a_stem_get_full_names(tmp_path: Path, store, sidecar: str) -> None:
    photo = sample(tmp_path, "plain.jpg", "a.jpg")
    other = sample(tmp_path, "astronaut.png", "a.png")
    result = store.write(photo, "a cat")
    assert result.path == tmp_path / sidecar
    assert "'a'" in result.message and sidecar in result.message
    store.write(other, "an astronaut")
    assert store.read(photo) == "a cat"
    assert store.read(other) == "an astronaut"


def test_txt_reads_both_names_the_full_one_first(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg", "a.jpg")
    store = TextSidecarStore()
    (tmp_path / "a.txt").write_text("short name", encoding="utf-8")
    assert store.read(photo) == "short name"
    (tmp_path / "a.jpg.txt").write_text("full name", encoding="utf-8")
    assert store.read(photo) == "full name"


def test_txt_read_strips_bom_and_surrounding_whitespace(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    (tmp_path / "plain.txt").write_bytes("\ufeff  a cat on a mat \r\n".encode())
    assert TextSidecarStore().read(photo) == "a cat on a mat"


def test_xmp_reads_the_other_name_when_the_chosen_one_is_missing(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    XmpSidecarStore("photo.xmp").write(photo, "written Lightroom-style")
    assert XmpSidecarStore("photo.jpg.xmp").read(photo) == "written Lightroom-style"


# --- updating an existing XMP sidecar ------------------------------------------------------


@needs_exiftool
def test_existing_xmp_sidecar_is_updated_not_replaced(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    sidecar = tmp_path / "plain.xmp"
    sidecar.write_text(LIGHTROOM_SIDECAR, encoding="utf-8")
    before = exiftool_all(sidecar)
    store = XmpSidecarStore("photo.xmp")
    assert store.read(photo) == "old caption"

    store.write(photo, "a <new> caption & more", overwrite=True)

    after = exiftool_all(sidecar)
    assert after.pop("XMP-dc:Description") == "a <new> caption & more"
    assert before.pop("XMP-dc:Description") == "old caption"
    after.pop("XMP-x:XMPToolkit")
    before.pop("XMP-x:XMPToolkit")
    assert after == before
    assert after["XMP-xmp:Rating"] == 3
    assert after["XMP-dc:Subject"] == ["cat", "mat"]
    assert after["XMP-dc:Description-de-DE"] == "alte Beschriftung"
    assert len(after["XMP-darktable:History"]) == 2


def test_existing_xmp_sidecar_keeps_fields_without_exiftool(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    sidecar = tmp_path / "plain.xmp"
    sidecar.write_text(LIGHTROOM_SIDECAR, encoding="utf-8")
    XmpSidecarStore("photo.xmp").write(photo, "new", overwrite=True)
    text = sidecar.read_text(encoding="utf-8")
    for kept in ('xmp:Rating="3"', "crs:Exposure2012", "<rdf:li>mat</rdf:li>", "gz12eJ"):
        assert kept in text
    assert "alte Beschriftung" in text and "old caption" not in text


def test_xmp_keeps_existing_caption_unless_overwrite(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    sidecar = tmp_path / "plain.xmp"
    sidecar.write_text(LIGHTROOM_SIDECAR, encoding="utf-8")
    with pytest.raises(CaptionExistsError):
        XmpSidecarStore("photo.xmp").write(photo, "new")
    assert sidecar.read_text(encoding="utf-8") == LIGHTROOM_SIDECAR


@pytest.mark.parametrize(
    "content",
    [
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF <<<< broken",
        b"\x00\x01\x02 not xml at all",
        b"<?xml version='1.0'?><x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF></x:xmpmeta>",
    ],
)
def test_damaged_xmp_sidecar_is_reported_and_left_alone(tmp_path: Path, content: bytes) -> None:
    photo = sample(tmp_path, "plain.jpg")
    sidecar = tmp_path / "plain.jpg.xmp"
    sidecar.write_bytes(content)
    store = XmpSidecarStore()
    with pytest.raises(CorruptMetadataError) as caught:
        store.write(photo, "a cat", overwrite=True)
    assert caught.value.path == sidecar
    assert sidecar.read_bytes() == content
    with pytest.raises(CorruptMetadataError):
        store.read(photo)


def test_empty_xmp_sidecar_is_filled_in(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    (tmp_path / "plain.jpg.xmp").write_bytes(b"")
    XmpSidecarStore().write(photo, "a cat")
    assert XmpSidecarStore().read(photo) == "a cat"


def test_txt_that_is_not_utf8_is_reported_and_left_alone(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    sidecar = tmp_path / "plain.txt"
    sidecar.write_bytes("Café".encode("cp1252"))
    with pytest.raises(CorruptMetadataError) as caught:
        TextSidecarStore().write(photo, "a cat", overwrite=True)
    assert caught.value.path == sidecar and "UTF-8" in caught.value.problem
    assert sidecar.read_bytes() == "Café".encode("cp1252")


# --- overwrite policy, identity, atomicity ------------------------------------------------------


@pytest.mark.parametrize("store", STORES, ids=STORE_IDS)
def test_overwrite_policy(tmp_path: Path, store: CaptionStore) -> None:
    photo = sample(tmp_path, "plain.jpg")
    first = store.write(photo, "first")
    with pytest.raises(CaptionExistsError):
        store.write(photo, "second")
    assert store.read(photo) == "first"
    same = store.write(photo, "first")
    assert same.written is False and same.path == first.path
    store.write(photo, "second", overwrite=True)
    assert store.read(photo) == "second"


@pytest.mark.parametrize("store", STORES, ids=STORE_IDS)
def test_changed_or_vanished_photo_gets_no_sidecar(tmp_path: Path, store: CaptionStore) -> None:
    photo = sample(tmp_path, "plain.jpg")
    identity = FileIdentity.of(photo)
    photo.write_bytes(photo.read_bytes() + b"edited")
    with pytest.raises(FileChangedError):
        store.write(photo, "a cat", expected=identity)
    photo.unlink()
    with pytest.raises(FileMissingError):
        store.write(photo, "a cat")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("store", STORES, ids=STORE_IDS)
def test_sidecar_created_by_someone_else_meanwhile_is_not_clobbered(
    tmp_path: Path, store: CaptionStore, monkeypatch
) -> None:
    import core.storage.files as files

    photo = sample(tmp_path, "plain.jpg")
    real_mkstemp = files.tempfile.mkstemp
    intruder: list[Path] = []

    def mkstemp_then_another_program_writes(*args, **kwargs):
        made = real_mkstemp(*args, **kwargs)
        for name in ("plain.txt", "plain.jpg.xmp", "plain.xmp"):
            (tmp_path / name).write_text("someone else's", encoding="utf-8")
            intruder.append(tmp_path / name)
        return made

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp_then_another_program_writes)
    with pytest.raises(FileChangedError):
        store.write(photo, "a cat")
    assert all(p.read_text(encoding="utf-8") == "someone else's" for p in intruder)


@pytest.mark.parametrize("store", STORES, ids=STORE_IDS)
def test_full_disk_keeps_the_old_sidecar(tmp_path: Path, store: CaptionStore, monkeypatch) -> None:
    import core.storage.files as files

    photo = sample(tmp_path, "plain.jpg")
    first = store.write(photo, "first")
    before = first.path.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(DiskFullError):
        store.write(photo, "second", overwrite=True)
    assert first.path.read_bytes() == before


@pytest.mark.parametrize("store", STORES, ids=STORE_IDS)
def test_sidecar_permissions(tmp_path: Path, store: CaptionStore) -> None:
    photo = sample(tmp_path, "plain.jpg")
    photo.chmod(0o640)
    result = store.write(photo, "first")
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o640  # a new sidecar follows its photo
    result.path.chmod(0o600)
    store.write(photo, "second", overwrite=True)
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600  # an existing one keeps its own


@pytest.mark.parametrize("store", STORES, ids=STORE_IDS)
def test_read_only_photo_still_gets_a_writable_sidecar(tmp_path: Path, store) -> None:
    photo = sample(tmp_path, "plain.jpg")
    photo.chmod(0o444)
    result = store.write(photo, "a cat")
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o644


@pytest.mark.parametrize("store", STORES, ids=STORE_IDS)
def test_read_only_sidecar_is_left_alone(tmp_path: Path, store: CaptionStore) -> None:
    photo = sample(tmp_path, "plain.jpg")
    result = store.write(photo, "first")
    result.path.chmod(0o444)
    before = result.path.read_bytes()
    with pytest.raises(ReadOnlyError) as caught:
        store.write(photo, "second", overwrite=True)
    assert caught.value.path == result.path
    assert result.path.read_bytes() == before


@pytest.mark.parametrize("store", STORES, ids=STORE_IDS)
def test_read_only_folder(tmp_path: Path, store: CaptionStore, monkeypatch) -> None:
    import core.storage.files as files

    photo = sample(tmp_path, "plain.jpg")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.tempfile, "mkstemp", denied)
    with pytest.raises(ReadOnlyError) as caught:
        store.write(photo, "a cat")
    assert caught.value.path == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.jpg"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_really_read_only_folder(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(ReadOnlyError):
            TextSidecarStore().write(photo, "a cat")
    finally:
        tmp_path.chmod(0o755)


@pytest.mark.parametrize("store", STORES, ids=STORE_IDS)
def test_non_utf8_file_name(tmp_path: Path, store: CaptionStore) -> None:
    name = os.fsdecode(b"caf\xe9.jpg")
    try:
        photo = sample(tmp_path, "plain.jpg", name)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system only allows UTF-8 names")
    result = store.write(photo, TRICKY)
    assert os.fsencode(result.path.name).startswith(b"caf\xe9")
    assert store.read(photo) == TRICKY


@pytest.mark.parametrize("store", STORES, ids=STORE_IDS)
def test_invalid_captions_write_nothing(tmp_path: Path, store: CaptionStore) -> None:
    photo = sample(tmp_path, "plain.jpg")
    for caption in ("", "tab\tis fine but escape \x1b is not", "y" * 5001):
        with pytest.raises(InvalidCaptionError):
            store.write(photo, caption)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.jpg"]


# --- finding captions in any store, and the factory -------------------------------------------


def test_read_caption_any_reports_the_store(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    stores = all_stores()
    assert read_caption_any(photo, stores) is None
    TextSidecarStore().write(photo, "from txt")
    assert read_caption_any(photo, stores) == StoredCaption("from txt", "txt")
    XmpSidecarStore().write(photo, "from xmp")
    assert read_caption_any(photo, stores) == StoredCaption("from xmp", "xmp")
    EmbeddedStore().write(photo, "embedded")
    assert read_caption_any(photo, stores) == StoredCaption("embedded", "embed")


def test_read_caption_any_skips_a_damaged_store_but_raises_when_nothing_else(
    tmp_path: Path,
) -> None:
    photo = sample(tmp_path, "plain.jpg")
    (tmp_path / "plain.jpg.xmp").write_bytes(b"\x00 garbage")
    with pytest.raises(CorruptMetadataError):
        read_caption_any(photo, all_stores())
    TextSidecarStore().write(photo, "from txt")
    assert read_caption_any(photo, all_stores()) == StoredCaption("from txt", "txt")


def test_read_caption_any_missing_photo(tmp_path: Path) -> None:
    with pytest.raises(FileMissingError):
        read_caption_any(tmp_path / "gone.jpg", all_stores())


def test_factory() -> None:
    assert isinstance(make_store("txt"), TextSidecarStore)
    assert make_store("xmp", "photo.xmp").xmp_name == "photo.xmp"
    assert make_store("embed", "photo.xmp").sidecar.xmp_name == "photo.xmp"
    assert [s.name for s in all_stores()] == ["embed", "xmp", "txt"]
    assert all(isinstance(s, CaptionStore) for s in all_stores())
    with pytest.raises(ValueError):
        make_store("csv")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        make_store("xmp", "photo.XMP")  # type: ignore[arg-type]


def test_file_identity(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    identity = FileIdentity.of(photo)
    info = photo.stat()
    assert (identity.size, identity.mtime_ns, identity.inode) == (
        info.st_size,
        info.st_mtime_ns,
        info.st_ino,
    )
    assert identity.matches(FileIdentity(info.st_size, info.st_mtime_ns)), "unknown parts"
    with pytest.raises(AttributeError):
        identity.size = 1  # type: ignore[misc]
    photo.unlink()
    with pytest.raises(FileMissingError):
        FileIdentity.of(photo)


def test_error_messages_name_the_file_and_what_to_do(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    photo.chmod(0o444)
    with pytest.raises(ReadOnlyError) as caught:
        make_store("embed").write(photo, "a cat")
    assert str(photo) in str(caught.value)
    assert "make it writable" in str(caught.value)


def test_a_change_that_keeps_size_and_time_is_still_noticed(tmp_path: Path) -> None:
    """exiftool -P rewrites metadata but keeps the size and modification time."""
    photo = sample(tmp_path, "plain.jpg")
    before = FileIdentity.of(photo)
    info = photo.stat()
    data = bytearray(photo.read_bytes())
    data[40] ^= 0xFF  # inside the first 8 KiB: the metadata another program rewrote
    photo.write_bytes(bytes(data))
    os.utime(photo, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert photo.stat().st_size == info.st_size and photo.stat().st_mtime_ns == info.st_mtime_ns
    with pytest.raises(FileChangedError):
        make_store("txt").write(photo, "a cat", expected=before)
    assert not photo.with_suffix(".txt").exists(), "nothing written over a changed photo"

    replaced = tmp_path / "new.jpg"  # another file moved into its place: a new inode
    replaced.write_bytes(photo.read_bytes())
    os.utime(replaced, ns=(info.st_atime_ns, info.st_mtime_ns))
    now = FileIdentity.of(photo)
    os.replace(replaced, photo)
    with pytest.raises(FileChangedError):
        make_store("txt").write(photo, "a cat", expected=now)
