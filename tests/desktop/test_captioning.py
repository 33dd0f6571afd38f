"""Captioning in the background: selections, folders, skipping, errors, cancel, quitting."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelection, QItemSelectionModel

import core.datatypes
from core.engine import LibraryJob, PhotoCaptioned, PhotoSkipped, RunProgress, rebuild_index
from core.index import LibraryIndex, default_index_path
from core.storage import FileIdentity, SaveRequest
from desktop.captioning import (
    SEND_AT_MOST,
    SEND_EVERY_S,
    CaptionJob,
    InferenceWorker,
    ModelChoice,
)
from desktop.photos import Status
from desktop.settings import AppSettings
from desktop.writer import CaptionWriter
from tests.desktop.conftest import copy_photos, fast_captioner, open_and_wait, wait_idle
from tests.desktop.test_browse import record_decoding_threads
from tests.imagegen import textured_image


def select(window, paths: list[Path]) -> None:
    selection = QItemSelection()
    for path in paths:
        index = window.filter.mapFromSource(window.photos.index_of(path))
        selection.select(index, index)
    window.grid.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
    window.grid.selectionModel().setCurrentIndex(
        window.filter.mapFromSource(window.photos.index_of(paths[0])),
        QItemSelectionModel.SelectionFlag.NoUpdate,
    )


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(".photoscribe-")]


def test_caption_the_selected_photos(qtbot, window, photo_dir):
    open_and_wait(qtbot, window, photo_dir)
    photo0, photo1, photo2 = (photo_dir / f"photo{i}.jpg" for i in range(3))
    select(window, [photo0, photo2])
    assert window.editor.selected_paths() == [photo0, photo2]
    window.commands.caption_selected.trigger()
    assert window.session.batches.running and window.progress.isVisible()
    wait_idle(qtbot, window)

    assert not window.progress.isVisible()
    assert not (photo_dir / "photo1.txt").exists(), "only the selection is captioned"
    for path in (photo0, photo2):
        stored = path.with_suffix(".txt").read_text(encoding="utf-8").strip()
        photo = window.photos.photo(path)
        assert stored and photo.caption == stored and photo.store == "txt"
        assert photo.status is Status.SAVED and not photo.unsaved
        assert window.photos.data(window.photos.index_of(path)) == stored, "shown in the grid"
        assert 1 <= len(photo.candidates) <= 3
    # The editor shows the caption of the current photo, and the best candidates to pick from.
    assert window.panel.path == photo0
    assert window.panel.text() == window.photos.photo(photo0).caption
    assert window.panel.candidates.count() == len(window.photos.photo(photo0).candidates)
    assert window.panel.location.text() == "Caption stored in the text sidecar."
    assert "Captioned 2 photos" in window.statusBar().currentMessage()
    assert (
        window.status_line.model_info is not None
        and "CPU" in window.status_line.model_info.device_name
    )
    assert no_temp_files(photo_dir)


def test_caption_folder_skips_photos_that_already_have_a_caption(qtbot, window, photo_dir):
    (photo_dir / "photo1.txt").write_text("my own caption", encoding="utf-8")
    open_and_wait(qtbot, window, photo_dir)
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    assert (photo_dir / "photo1.txt").read_text(encoding="utf-8") == "my own caption"
    assert (photo_dir / "photo0.txt").is_file() and (photo_dir / "photo2.txt").is_file()

    # Asked to re-caption, with overwriting off: the new caption waits, unsaved, for review.
    window.commands.recaption.trigger()
    assert window.settings.current.recaption
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    assert (photo_dir / "photo1.txt").read_text(encoding="utf-8") == "my own caption"
    photo1 = window.photos.photo(photo_dir / "photo1.jpg")
    assert photo1.unsaved and photo1.caption == "my own caption"

    # With overwriting allowed the new caption replaces it.
    window.apply_settings(window.settings.current.with_changes(overwrite=True))
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    assert (photo_dir / "photo1.txt").read_text(encoding="utf-8") != "my own caption"


def test_the_worker_skips_captioned_photos_it_is_given(qtbot, photo_dir, tiny_checkpoint):
    """The inference thread checks again just before captioning (the GUI may not know yet)."""
    (photo_dir / "photo0.txt").write_text("already here", encoding="utf-8")
    worker = InferenceWorker(lambda choice: fast_captioner(choice))
    summaries = []
    chunks = []
    worker.job_finished.connect(summaries.append)
    worker.events_ready.connect(chunks.append)
    paths = tuple(sorted(photo_dir.glob("*.jpg")))
    job = LibraryJob(roots=paths, recursive=False, store="txt", skip_captioned=True)
    worker.run_job(CaptionJob(7, job, ModelChoice(tiny_checkpoint)), threading.Event())

    def reported() -> list:
        return [e for chunk in chunks for e in chunk.events if not isinstance(e, RunProgress)]

    # Saved photos are reported from the writer thread as soon as they are saved: queued.
    qtbot.waitUntil(lambda: len(reported()) == len(paths))
    assert {chunk.job_id for chunk in chunks} == {7}
    events = reported()
    by_path = {e.path: e for e in events}
    assert set(by_path) == set(paths)
    skipped = by_path[paths[0]]
    assert isinstance(skipped, PhotoSkipped) and skipped.caption == "already here"
    for path in paths[1:]:
        done = by_path[path]
        assert isinstance(done, PhotoCaptioned) and done.store == "txt"
        assert path.with_suffix(".txt").read_text(encoding="utf-8") == done.caption + "\n"
        assert done.identity == FileIdentity.of(path), "the photo as it is after the save"
    assert summaries[0].captioned == 2 and summaries[0].skipped == 1 and summaries[0].job_id == 7


def test_a_corrupt_photo_is_listed_in_the_problems_panel(qtbot, window, photo_dir):
    (photo_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    open_and_wait(qtbot, window, photo_dir)
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    rows = window.errors.rows()
    assert len(rows) == 1
    name, reason = rows[0]
    assert name == "broken.jpg"
    assert reason and str(photo_dir) not in reason and "Traceback" not in reason
    assert window.errors_dock.isVisible()
    assert window.photos.photo(photo_dir / "broken.jpg").status is Status.ERROR
    # The batch went on: the good photos were captioned.
    assert all((photo_dir / f"photo{i}.txt").is_file() for i in range(3))
    assert "1 failed" in window.statusBar().currentMessage()


@pytest.fixture
def many_photos(tmp_path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for i in range(4):
        textured_image(128, 96, seed=i).save(source / f"s{i}.jpg", quality=80)
    folder = tmp_path / "many"
    copy_photos(source, folder, 1000)
    return folder


def gated_captioner(gate_after: int, reached: threading.Event, release: threading.Event):
    """fast_captioner whose batches wait at ``release`` once ``gate_after`` photos are done, so
    a test can cancel at a known point however fast or slow the machine is. The returned list
    collects the size of every batch started after the cancel was set."""
    late: list[int] = []

    def factory(choice: ModelChoice):
        captioner = fast_captioner(choice)
        real = captioner.caption_tensors
        done = 0

        def caption_tensors(images, settings, cancel=None):
            nonlocal done
            if cancel is not None and cancel.is_set():
                late.append(len(images))
            if done >= gate_after:
                reached.set()
                assert release.wait(60), "the test never let the batch go on"
            done += len(images)
            return real(images, settings, cancel)

        captioner.caption_tensors = caption_tensors
        return captioner

    return factory, late


def test_cancel_stops_a_batch_part_way_and_nothing_more_arrives(qtbot, make_window, many_photos):
    """How long cancelling takes is measured by ``python -m tests.benchmarks.gui``."""
    reached, release = threading.Event(), threading.Event()
    factory, late = gated_captioner(8, reached, release)
    window = make_window(captioner_factory=factory)
    window.apply_settings(AppSettings(batch_size=4))
    open_and_wait(qtbot, window, many_photos, timeout=30_000)
    window.commands.caption_folder.trigger()
    qtbot.waitUntil(reached.is_set, timeout=60_000)  # two batches done, the third in flight
    window.commands.cancel.trigger()
    release.set()
    assert window.progress.cancel_button.text() == "Cancelling…"
    qtbot.waitUntil(lambda: not window.session.batches.running, timeout=30_000)
    wait_idle(qtbot, window)  # the inference thread has stopped and the writer is idle
    assert late == [], "a batch was started after the cancel"
    saved = {p.with_suffix(".jpg") for p in many_photos.glob("*.txt")}
    assert 8 <= len(saved) <= 12, "the two batches done, and at most the one in flight"
    shown = {p.path for p in window.photos.photos() if p.status is Status.SAVED}
    assert shown == saved, "every caption saved is shown, and nothing else"
    assert not window.progress.isVisible()
    assert not any(p.working or p.saving for p in window.photos.photos())
    assert "Cancelled" in window.statusBar().currentMessage()
    assert no_temp_files(many_photos)


def test_a_1000_photo_batch_does_no_heavy_work_on_the_gui_thread(
    qtbot, make_window, many_photos, monkeypatch
):
    """Loading the model, decoding, captioning and saving all run off the GUI thread, so its
    event loop stays free; how long its longest stall is, is measured by
    ``python -m tests.benchmarks.gui``."""
    import core.engine.writer as writer_module

    threads: dict[str, list[threading.Thread]] = {"load": [], "caption": [], "save": []}

    def noted_captioner(choice: ModelChoice):
        threads["load"].append(threading.current_thread())
        captioner = fast_captioner(choice)
        real = captioner.caption_tensors

        def caption_tensors(*args, **kwargs):
            threads["caption"].append(threading.current_thread())
            return real(*args, **kwargs)

        captioner.caption_tensors = caption_tensors
        return captioner

    real_save = writer_module.save_caption

    def noted_save(request):
        threads["save"].append(threading.current_thread())
        return real_save(request)

    monkeypatch.setattr(writer_module, "save_caption", noted_save)
    threads["decode"] = record_decoding_threads(monkeypatch)
    window = make_window(captioner_factory=noted_captioner)
    open_and_wait(qtbot, window, many_photos, timeout=30_000)
    window.commands.caption_folder.trigger()
    assert window.session.batches.running, (
        "the batch runs in the background: trigger() has returned"
    )
    wait_idle(qtbot, window, timeout=300_000)

    assert len(list(many_photos.glob("*.txt"))) == 1000
    assert all(p.status is Status.SAVED for p in window.photos.photos())
    assert "Captioned 1000 photos" in window.statusBar().currentMessage()
    assert len(threads["load"]) == 1
    assert len(threads["caption"]) >= 1000 // AppSettings().batch_size
    assert len(threads["decode"]) >= 1000
    assert len(threads["save"]) == 1000
    main = threading.main_thread()
    for work, ran_on in threads.items():
        assert main not in ran_on, f"the GUI thread did some of the work: {work}"


def test_quitting_during_a_batch_leaves_no_half_written_file(qtbot, make_window, many_photos):
    window = make_window(captioner_factory=fast_captioner)
    open_and_wait(qtbot, window, many_photos, timeout=30_000)
    window.commands.caption_folder.trigger()
    qtbot.waitUntil(lambda: len(list(many_photos.glob("*.txt"))) >= 5, timeout=60_000)
    window.close()
    assert window.session.captioning._thread.isFinished(), "the inference thread stopped"
    assert window.session.writer.pending == 0, "the writer finished its queue"
    assert no_temp_files(many_photos)
    sidecars = list(many_photos.glob("*.txt"))
    assert 0 < len(sidecars) < 1000
    for sidecar in sidecars:  # each one complete: atomic writes, the queue was finished
        assert sidecar.read_text(encoding="utf-8").strip()


def test_no_model_installed_gives_a_clear_message(
    qtbot, make_window, photo_dir, prompts, monkeypatch, tmp_path
):
    missing = tmp_path / "nowhere" / "photoscribe-b0.safetensors"
    monkeypatch.setattr(core.datatypes, "DEFAULT_WEIGHTS", missing)
    window = make_window(weights=None)
    qtbot.waitUntil(lambda: window.status_line.shipped_model is False, timeout=20_000)
    assert "No caption model installed" in window.device_label.text()
    open_and_wait(qtbot, window, photo_dir)
    window.commands.caption_folder.trigger()
    qtbot.waitUntil(lambda: not window.session.batches.running, timeout=20_000)
    assert prompts.errors, "the user is told"
    title, text = prompts.errors[-1]
    assert title == "No caption model installed"
    assert "no trained caption model is installed" in text
    assert not any(p.working for p in window.photos.photos())
    assert not list(photo_dir.glob("*.txt"))


def count_captioned(monkeypatch, calls: list[Path]) -> None:
    """Note in ``calls`` every photo the model captions (each batch the engine takes)."""
    import core.batches as batches

    take = batches.Batches.take

    def counted(self):
        done = take(self)
        if done is not None:
            calls.extend(result.path for _, result in done)
        return done

    monkeypatch.setattr(batches.Batches, "take", counted)


@pytest.mark.parametrize("recaption", [False, True], ids=["new-photos", "recaption-overwrite"])
def test_an_interrupted_folder_batch_resumes_where_it_stopped(
    qtbot, make_window, tmp_path, recaption, monkeypatch
):
    """With re-captioning on, only the engine's index knows which photos the batch finished."""
    source = tmp_path / "source"
    source.mkdir()
    for i in range(4):
        textured_image(128, 96, seed=i).save(source / f"s{i}.jpg", quality=80)
    folder = tmp_path / "folder"
    photos = copy_photos(source, folder, 120)
    old = "an old caption from another program"
    if recaption:
        for path in photos:
            path.with_suffix(".txt").write_text(old, encoding="utf-8")

    def captioned() -> set[Path]:
        return {
            path
            for path in photos
            if path.with_suffix(".txt").is_file()
            and path.with_suffix(".txt").read_text(encoding="utf-8") != old
        }

    calls: list[Path] = []
    count_captioned(monkeypatch, calls)
    window = make_window(captioner_factory=fast_captioner)
    window.apply_settings(AppSettings(batch_size=4, recaption=recaption, overwrite=recaption))
    open_and_wait(qtbot, window, folder, timeout=30_000)

    window.commands.caption_folder.trigger()
    qtbot.waitUntil(lambda: len(captioned()) >= 8, timeout=60_000)
    window.commands.cancel.trigger()
    wait_idle(qtbot, window)
    first = list(calls)
    assert 8 <= len(first) < len(photos), "the batch was really interrupted"
    assert set(first) == captioned(), "every photo captioned before the cancel was saved"

    calls.clear()
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    assert not set(calls) & set(first), "photos finished in the first run are not captioned again"
    assert sorted(calls) == sorted(set(photos) - set(first)), "the rest, each once"
    assert captioned() == set(photos)
    for path in photos:
        photo = window.photos.photo(path)
        stored = path.with_suffix(".txt").read_text(encoding="utf-8")
        assert photo.status is Status.SAVED and photo.caption + "\n" == stored
    message = window.statusBar().currentMessage()
    assert f"Captioned {len(photos) - len(first)} photos" in message
    assert f"{len(first)} skipped" in message


def test_review_before_saving_keeps_captions_as_suggestions(qtbot, window, photo_dir):
    window.apply_settings(window.settings.current.with_changes(autosave=False))
    open_and_wait(qtbot, window, photo_dir)
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    assert not list(photo_dir.glob("*.txt")), "nothing is saved before the user reviews it"
    photos = list(window.photos.photos())
    assert all(p.unsaved and p.draft and p.candidates and not p.typed for p in photos)
    assert window.session.saver.save_all() == 3
    wait_idle(qtbot, window)
    for photo in window.photos.photos():
        assert photo.path.with_suffix(".txt").read_text(encoding="utf-8") == photo.caption + "\n"
        assert photo.status is Status.SAVED


def test_the_engine_saves_through_the_writer_thread(qtbot, window, photo_dir, monkeypatch):
    import core.engine.writer as writer_module

    threads: list[str] = []
    real_save = writer_module.save_caption

    def noted(request):
        threads.append(threading.current_thread().name)
        return real_save(request)

    monkeypatch.setattr(writer_module, "save_caption", noted)
    open_and_wait(qtbot, window, photo_dir)
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    assert threads == ["writer"] * 3
    assert window.session.captioning._worker._writer is window.session.writer.core, "one writer"
    with LibraryIndex.open(default_index_path(), readonly=True) as index:
        rows = [index.lookup(photo_dir / f"photo{i}.jpg") for i in range(3)]
    assert all(row is not None and row.status == "done" and row.model for row in rows), (
        "the engine recorded each caption, with the model that wrote it"
    )


def test_the_writer_reports_each_save_and_refuses_after_closing(qtbot, photo_dir, tmp_path):
    writer = CaptionWriter(index_path=tmp_path / "index.sqlite3")
    photo = photo_dir / "photo0.jpg"
    (photo_dir / "photo0.txt").write_text("theirs", encoding="utf-8")
    with qtbot.waitSignal(writer.written) as refused:
        writer.save(SaveRequest(photo=photo, caption="ours", store="txt"))
    assert refused.args[0].exists and not refused.args[0].ok
    with qtbot.waitSignal(writer.written) as saved:
        writer.save(SaveRequest(photo=photo, caption="ours", store="txt", overwrite=True))
    assert saved.args[0].ok and (photo_dir / "photo0.txt").read_text() == "ours\n"
    assert saved.args[0].identity == FileIdentity.of(photo)
    writer.shutdown()
    with LibraryIndex.open(tmp_path / "index.sqlite3", readonly=True) as index:
        row = index.lookup(photo)
    assert row is not None and row.caption == "ours", "user saves are recorded by the writer"
    later = writer.core.save(SaveRequest(photo=photo, caption="later", store="txt", overwrite=True))
    with pytest.raises(Exception, match="closing"):
        later.result()
    assert (photo_dir / "photo0.txt").read_text() == "ours\n"


def test_a_second_run_over_a_big_folder_sends_its_skips_in_bunches(qtbot, make_window, tmp_path):
    """Thousands of photos done before are skipped; the GUI gets a few signals, not thousands.

    The longest event-loop stall during such a run is measured by ``python -m tests.benchmarks.gui``.
    """
    source = tmp_path / "source"
    source.mkdir()
    textured_image(96, 72, seed=1).save(source / "a.jpg", quality=70)
    folder = tmp_path / "big"
    done = copy_photos(source, folder, 5000)
    for path in done:
        path.with_suffix(".txt").write_text("a photo captioned before", encoding="utf-8")
    rebuild_index((folder,), recursive=False)  # as a first run would have left it
    new = [folder / f"new{i}.jpg" for i in range(3)]
    for i, path in enumerate(new):
        textured_image(96, 72, seed=10 + i).save(path, quality=70)
    window = make_window(captioner_factory=fast_captioner)
    open_and_wait(qtbot, window, folder, timeout=60_000)
    bunches: list[int] = []
    window.session.captioning.events_arrived.connect(
        lambda events: bunches.append(len(events.events))
    )
    started = time.monotonic()
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window, timeout=120_000)
    elapsed = time.monotonic() - started
    # Each signal carries many events: the event loop is never flooded with one per photo.
    # Skips go at most every SEND_EVERY_S (or SEND_AT_MOST at a time), so how many signals
    # a run sends grows with its length: bounded by it, not by a count that a slow machine
    # (about 1.5 s here, 20 s would have made it 200) could pass. The captions and the
    # in-flight counts go at once: a few more.
    assert sum(bunches) >= 5003
    assert len(bunches) <= sum(bunches) / SEND_AT_MOST + elapsed / SEND_EVERY_S + 20, (
        len(bunches),
        elapsed,
    )
    assert "Captioned 3 photos, 5000 skipped" in window.statusBar().currentMessage()
    assert all(window.photos.photo(p).status is Status.SAVED for p in new)


def test_the_app_saves_the_captions_the_command_line_prints(
    qtbot, window, tmp_path, tiny_checkpoint, capsys
):
    """The same photos and settings give the same captions and confidences in the app and on
    the command line, whatever batches the photos met (issue: batch-dependent numerics)."""
    import json

    from core.cli import main as cli_main

    folder = tmp_path / "ten"
    folder.mkdir()
    for i in range(10):
        textured_image(160, 120, seed=40 + i).save(folder / f"p{i}.jpg", quality=85)
    window.apply_settings(AppSettings(batch_size=4))
    open_and_wait(qtbot, window, folder)
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    app = {p.path: (p.caption, p.confidence) for p in window.photos.photos()}
    for batch in ("4", "32", "3"):
        code = cli_main(
            ["caption", str(folder), "--weights", str(tiny_checkpoint), "--format", "jsonl"]
            + ["--batch-size", batch]
        )
        out = capsys.readouterr().out
        assert code == 0
        rows = [json.loads(line) for line in out.splitlines()]
        cli = {Path(r["path"]): (r["caption"], r["confidence"]) for r in rows}
        assert cli.keys() == app.keys()
        for path, (caption, confidence) in cli.items():
            assert caption == app[path][0], (batch, path)
            assert abs(confidence - app[path][1]) < 1e-3, (batch, path)


def test_the_precision_setting_reaches_the_model(qtbot, make_window, photo_dir):
    chosen: list[ModelChoice] = []

    def factory(choice: ModelChoice):
        chosen.append(choice)
        return fast_captioner(choice)

    window = make_window(captioner_factory=factory)
    window.apply_settings(AppSettings(precision="bf16"))
    open_and_wait(qtbot, window, photo_dir)
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    assert [c.precision for c in chosen] == ["bf16"]


def test_the_progress_keeps_up_with_what_is_saved(qtbot, make_window, tmp_path):
    """Issue 22 item 3: the bar ran a batch behind (0/100 with 32 captions on disk) and a
    batch at the model showed nothing. Now, while the model works on the second batch, the
    bar counts the first one, saved, and the label names the photos being captioned."""
    folder = tmp_path / "six"
    folder.mkdir()
    for i in range(6):
        textured_image(96, 72, seed=60 + i).save(folder / f"p{i}.jpg", quality=85)
    gate = threading.Event()

    def held_second_batch(choice):
        captioner = fast_captioner(choice)
        caption_batch = captioner.caption_batch
        calls = []

        def held(images, settings, cancel=None):
            calls.append(1)
            if len(calls) == 2:
                gate.wait(120)  # the test looks at the window meanwhile (the gate opens then)
            return caption_batch(images, settings, cancel)

        captioner.caption_batch = held
        return captioner

    window = make_window(captioner_factory=held_second_batch)
    window.apply_settings(AppSettings(batch_size=2))
    open_and_wait(qtbot, window, folder)
    window.commands.caption_folder.trigger()
    try:
        qtbot.waitUntil(lambda: window.progress.bar.value() == 2, timeout=20_000)
        assert len(list(folder.glob("*.txt"))) == 2
        # The saved photos and the count in flight reach the window in separate deliveries
        # (the writer's thread reports the photos, then the counts): wait for the second one.
        # The model is held on the second batch, so the label cannot move past it.
        qtbot.waitUntil(
            lambda: window.progress.label.text().startswith("Captioning 3–4 of 6"),
            timeout=20_000,
        )
        assert window.progress.bar.value() == 2
    finally:
        gate.set()
    wait_idle(qtbot, window)
    message = window.statusBar().currentMessage()
    assert message.startswith("Captioned 6 photos in ") and "images/s" in message
