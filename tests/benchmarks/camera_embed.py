"""Benchmark: captions written inside real camera JPEGs, PhotoScribe against exiftool; writes JSON.

python -m tests.benchmarks.camera_embed [--set camera|all] [--out runs/bench_camera_embed.json]

The photos are the public test images of exiftool (t/images) and Exiv2 (test/data), read
straight from their git repositories (brought here with the ``fetch`` tool, or any clone:
--exiftool-repo, --exiv2-repo); nothing is committed. ``--set camera`` is the 60 camera JPEGs
named below (the comparison set of issue 27); ``--set all`` every JPEG of both folders, Exiv2's
deliberately broken ones included.

Each photo is copied twice. PhotoScribe writes the caption with ``--write embed --overwrite``
(EmbeddedStore, overwrite=True): inside, in an XMP sidecar, or refused. exiftool writes
XMP-dc:Description with its default safety checks. Both count only when exiftool reads the
caption back; for PhotoScribe the compressed image data must also be byte for byte the same.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from core.errors import StorageError
from core.storage import EmbeddedStore
from core.storage.pixels import image_data_digest
from tests.benchmarks.report import machine, write_report

CAPTION = "A test caption, 猫"
EXIFTOOL_IMAGES = [
    "Apple", "Canon", "Canon1DmkIII", "Casio", "Casio2", "FujiFilm", "GE", "GoPro", "JVC",
    "Kodak", "Minolta", "Motorola", "Nikon", "NikonD2Hs", "NikonD70", "Olympus", "Olympus2",
    "OlympusE1", "Panasonic", "Pentax", "Ricoh", "Ricoh2", "Sanyo", "Sigma", "Sony",
]  # fmt: skip
EXIV2_IMAGES = [
    "exiv2-bug1026", "exiv2-bug1040", "exiv2-bug1062", "exiv2-bug1114", "exiv2-bug1137",
    "exiv2-bug1202", "exiv2-bug1229", "exiv2-bug1231a", "exiv2-bug1231b", "exiv2-bug443",
    "exiv2-bug444", "exiv2-bug447", "exiv2-bug495", "exiv2-bug501", "exiv2-bug528",
    "exiv2-bug540", "exiv2-bug784", "exiv2-bug855", "exiv2-bug884a", "exiv2-bug884b",
    "exiv2-canon-eos-20d", "exiv2-canon-eos-300d", "exiv2-canon-eos-d30",
    "exiv2-canon-powershot-a520", "exiv2-canon-powershot-s40", "exiv2-fujifilm-finepix-s2pro",
    "exiv2-gc", "exiv2-kodak-dc210", "exiv2-nikon-d70", "exiv2-nikon-e950", "exiv2-nikon-e990",
    "exiv2-olympus-c8080wz", "exiv2-panasonic-dmc-fz5", "exiv2-sigma-d10", "exiv2-sony-dsc-w7",
]  # fmt: skip
MIRRORS = Path("/work/.mirror")


def git(repo: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], capture_output=True, check=True
    ).stdout


def gather(
    repo: Path, folder: str, names: list[str] | None, into: Path, label: str
) -> tuple[str, list[Path]]:
    """The repository's commit and the JPEGs of ``folder`` (those in ``names``) copied out
    into ``into/label``."""
    commit = git(repo, "rev-parse", "HEAD").decode().strip()
    listed = git(repo, "ls-tree", "--name-only", "HEAD", f"{folder}/").decode().split()
    wanted = [p for p in listed if p.lower().endswith(".jpg")]
    if names is not None:
        wanted = [p for p in wanted if Path(p).stem in names]
    photos = []
    (into / label).mkdir()
    for path in wanted:
        target = into / label / Path(path).name
        try:
            target.write_bytes(git(repo, "show", f"HEAD:{path}"))
        except subprocess.CalledProcessError:  # listed, but not in this copy (a large file)
            print(f"{path}: not in {repo}, left out", file=sys.stderr)
            continue
        photos.append(target)
    return commit, photos


def exiftool_reads(exiftool: str, photo: Path) -> str:
    return subprocess.run(
        [exiftool, "-s3", "-XMP-dc:Description", str(photo)], capture_output=True, text=True
    ).stdout.strip()


def photoscribe(photo: Path, work: Path, exiftool: str, name: str) -> dict:
    copy = work / "photoscribe" / name
    shutil.copyfile(photo, copy)
    try:
        result = EmbeddedStore().write(copy, CAPTION, overwrite=True)
    except StorageError as error:
        return {"where": "refused", "why": error.problem}
    if result.store != "embed":
        return {"where": "sidecar", "why": result.message}
    same = image_data_digest(copy.read_bytes(), "jpeg") == image_data_digest(
        photo.read_bytes(), "jpeg"
    )
    read_back = exiftool_reads(exiftool, copy) == CAPTION
    return {
        "where": "inside" if same and read_back else "broken",
        "image_data_unchanged": same,
        "exiftool_reads_it": read_back,
        "note": result.message,
    }


def exiftool_writes(photo: Path, work: Path, exiftool: str, name: str) -> dict:
    copy = work / "exiftool" / name
    shutil.copyfile(photo, copy)
    run = subprocess.run(
        [exiftool, "-q", "-overwrite_original", f"-XMP-dc:Description={CAPTION}", str(copy)],
        capture_output=True,
        text=True,
    )
    written = exiftool_reads(exiftool, copy) == CAPTION
    return {"wrote": written, "says": (run.stderr or run.stdout).strip()[:200]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--set", choices=["camera", "all"], default="camera")
    ap.add_argument("--exiftool-repo", type=Path, default=MIRRORS / "exiftool+exiftool/repo")
    ap.add_argument("--exiv2-repo", type=Path, default=MIRRORS / "Exiv2+exiv2/repo")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_camera_embed.json"))
    args = ap.parse_args(argv)
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        print("exiftool is needed (apt-get install libimage-exiftool-perl)", file=sys.stderr)
        return 2
    version = subprocess.run([exiftool, "-ver"], capture_output=True, text=True).stdout.strip()
    camera = args.set == "camera"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for sub in ("originals", "photoscribe", "exiftool"):
            (work / sub).mkdir()
            if sub != "originals":
                (work / sub / "exiftool").mkdir()
                (work / sub / "exiv2").mkdir()
        exiftool_commit, first = gather(
            args.exiftool_repo,
            "t/images",
            EXIFTOOL_IMAGES if camera else None,
            work / "originals",
            "exiftool",
        )
        exiv2_commit, second = gather(
            args.exiv2_repo,
            "test/data",
            EXIV2_IMAGES if camera else None,
            work / "originals",
            "exiv2",
        )
        photos = {}
        for photo in first + second:
            name = f"{photo.parent.name}/{photo.name}"
            photos[name] = {
                "photoscribe": photoscribe(photo, work, exiftool, name),
                "exiftool": exiftool_writes(photo, work, exiftool, name),
            }
            print(name, photos[name]["photoscribe"]["where"], flush=True)
    where = [p["photoscribe"]["where"] for p in photos.values()]
    summary = {
        "photos": len(photos),
        "photoscribe_inside": where.count("inside"),
        "photoscribe_sidecar": where.count("sidecar"),
        "photoscribe_refused": where.count("refused"),
        "photoscribe_broken": where.count("broken"),
        "exiftool_wrote": sum(p["exiftool"]["wrote"] for p in photos.values()),
        "inside_where_exiftool_did_not": sorted(
            n for n, p in photos.items() if p["photoscribe"]["where"] == "inside"
            and not p["exiftool"]["wrote"]
        ),
        "exiftool_where_photoscribe_did_not": sorted(
            n for n, p in photos.items() if p["photoscribe"]["where"] != "inside"
            and p["exiftool"]["wrote"]
        ),
    }  # fmt: skip
    report = {
        "benchmark": "camera_embed",
        "machine": machine(exiftool=version),
        "set": args.set,
        "sources": {
            "exiftool/exiftool t/images": exiftool_commit,
            "Exiv2/exiv2 test/data": exiv2_commit,
        },
        "summary": summary,
        "photos": photos,
    }
    write_report(args.out, report)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
