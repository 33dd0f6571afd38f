"""Settings: declared once, validated, kept between runs, window state apart from choices."""

from __future__ import annotations

from dataclasses import fields

import pytest
from PySide6.QtCore import QSize

from core.datatypes import CHECK_BELOW, PRECISION_ENV
from desktop.dialogs import SettingsDialog
from desktop.settings import AppSettings, SettingsStore
from tests.desktop.conftest import open_and_wait

CHANGED = AppSettings(
    store="xmp",
    xmp_name="photo.xmp",
    overwrite=True,
    autosave=False,
    recaption=True,
    recursive=True,
    device="cpu",
    precision="bf16",
    beam_size=5,
    batch_size=4,
    n_candidates=2,
    weights="/models/mine.safetensors",
    ask_before_writing_into_photos=False,
    review_below=0.35,
)


@pytest.fixture(autouse=True)
def _default_precision(monkeypatch):
    """The defaults these tests compare with are a user's: no $PHOTOSCRIBE_PRECISION."""
    monkeypatch.delenv(PRECISION_ENV, raising=False)


def test_every_setting_differs_from_its_default_in_the_round_trip_fixture():
    defaults = AppSettings()
    for f in fields(AppSettings):
        assert getattr(CHANGED, f.name) != getattr(defaults, f.name), f.name


def test_settings_round_trip_through_the_ini_file(tmp_path):
    path = tmp_path / "s.ini"
    SettingsStore(path).save(CHANGED)
    assert SettingsStore(path).load() == CHANGED
    assert SettingsStore(tmp_path / "new.ini").load() == AppSettings()


def test_an_earlier_default_threshold_follows_todays(tmp_path):
    """Issue 21: the "Check this" default went from 50% to 65%; settings saved with the old
    default (every field is saved) take the new one, a threshold the user chose stays."""
    path = tmp_path / "s.ini"
    SettingsStore(path).save(AppSettings(review_below=0.5, beam_size=5))
    assert SettingsStore(path).load() == AppSettings(beam_size=5)
    assert SettingsStore(path).load().review_below == CHECK_BELOW
    SettingsStore(path).save(AppSettings(review_below=0.4))
    assert SettingsStore(path).load().review_below == 0.4


def test_unreadable_values_fall_back_to_their_defaults_and_keep_the_rest(tmp_path):
    path = tmp_path / "s.ini"
    path.write_text(
        "[settings]\nbeam_size=banana\nstore=floppy\nbatch_size=0\noverwrite=maybe\n"
        "device=cuda\nn_candidates=2\n"
    )
    loaded = SettingsStore(path).load()
    assert loaded == AppSettings(device="cuda", n_candidates=2)
    assert "banana" in path.read_text(), "nothing is wiped"


@pytest.mark.parametrize(
    "bad", [dict(store="floppy"), dict(beam_size=0), dict(batch_size=999), dict(device="tpu")]
)
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValueError):
        AppSettings(**bad)


def test_settings_and_window_survive_a_restart(qtbot, make_window, photo_dir, prompts):
    first = make_window()
    prompts.settings = CHANGED.with_changes(recursive=False)
    first.edit_settings()
    assert first.settings.current == prompts.settings
    open_and_wait(qtbot, first, photo_dir)
    first.resize(QSize(760, 540))  # inside the offscreen platform's 800x800 screen
    first.splitter.setSizes([150, 500, 350])
    sizes = first.splitter.sizes()
    first.close()

    second = make_window()
    assert second.settings.current == prompts.settings
    assert second.settings_store.last_folder == photo_dir
    assert second.size() == QSize(760, 540)
    assert second.splitter.sizes() == sizes
    assert second.commands.recaption.isChecked()
    # Window state lives apart from the user's choices.
    text = second.env.settings_path.read_text()
    assert "[settings]" in text and "[window]" in text


def test_the_app_marks_by_the_threshold_the_command_line_prints_check_by():
    assert AppSettings().review_below == CHECK_BELOW


def test_precision_defaults_to_fp32_or_the_environment(monkeypatch, tmp_path):
    assert AppSettings().precision == "fp32"
    monkeypatch.setenv(PRECISION_ENV, "auto")
    assert AppSettings().precision == "auto"
    assert SettingsStore(tmp_path / "new.ini").load().precision == "auto"
    monkeypatch.setenv(PRECISION_ENV, "fp8")  # a mistyped value never stops the app
    assert AppSettings().precision == "fp32"
    path = tmp_path / "chosen.ini"
    SettingsStore(path).save(AppSettings(precision="bf16"))
    assert SettingsStore(path).load().precision == "bf16", "a choice made wins"


def test_settings_dialog_edits_the_precision(qtbot):
    dialog = SettingsDialog(AppSettings(), ("cpu",), None)
    qtbot.addWidget(dialog)
    assert dialog.precision.currentData() == "fp32"
    dialog.precision.setCurrentIndex(dialog.precision.findData("auto"))
    assert dialog.result_settings() == AppSettings(precision="auto")
    assert "every computer" in dialog.precision.itemText(dialog.precision.findData("fp32"))


def test_settings_dialog_edits_a_copy(qtbot):
    dialog = SettingsDialog(AppSettings(), ("cpu",), None)
    qtbot.addWidget(dialog)
    dialog.store.setCurrentIndex(dialog.store.findData("embed"))
    dialog.beam.setValue(1)
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    assert dialog.result_settings() == AppSettings(store="embed", beam_size=1, device="cpu")
    labels = [dialog.device.itemText(i) for i in range(dialog.device.count())]
    assert any("CUDA" in label and "not available" in label for label in labels)


def test_the_store_choices_are_the_store_table(qtbot):
    from core.storage import STORES

    dialog = SettingsDialog(AppSettings(), ("cpu",), None)
    qtbot.addWidget(dialog)
    offered = {
        dialog.store.itemData(i): dialog.store.itemText(i) for i in range(dialog.store.count())
    }
    assert offered == {info.kind: info.label for info in STORES}


def test_the_first_window_fits_a_small_screen():
    """A regression guard (issue 22): on a 1280x800 screen the window opened at 1280x800 plus
    its frame, so the status bar with the progress and Cancel was below the screen's edge."""
    from desktop.main_window import DEFAULT_SIZE, fit_to_screen

    assert fit_to_screen(DEFAULT_SIZE, QSize(1920, 1080)) == DEFAULT_SIZE
    small = fit_to_screen(DEFAULT_SIZE, QSize(1280, 800 - 32))  # a panel at the top
    assert small.width() <= 1280 - 16 and small.height() <= 800 - 32 - 48


def test_the_first_window_is_inside_the_screens_free_area(qtbot, make_window):
    window = make_window()
    free = window.screen().availableGeometry()
    assert free.contains(window.geometry()), (free, window.geometry())


def test_one_settings_object_tells_every_holder_of_a_setting(qtbot, tmp_path):
    """Issue 23: the "check this" threshold lived in four places and was copied by hand; now
    the photo list and the caption panel follow the one Settings object, which saves."""
    from desktop.panel import CaptionPanel
    from desktop.photos import Photo, PhotoListModel
    from desktop.settings import Settings

    settings = Settings(SettingsStore(tmp_path / "s.ini"))
    assert settings.current == AppSettings() and settings.current.review_below == CHECK_BELOW
    model = PhotoListModel(settings)
    panel = CaptionPanel(settings)
    qtbot.addWidget(panel)
    photo = Photo(
        path=tmp_path / "a.jpg", caption="a dog", store="txt", loaded=True, confidence=0.4
    )
    model.set_photos([photo.path])
    model.put(photo)
    panel.show_photo(photo)
    assert model.check_note(photo) is not None and "Check this" in panel.status.text()

    heard = []
    settings.changed.connect(heard.append)
    settings.change(review_below=0.3)
    assert heard == [settings.current] and settings.current.review_below == 0.3
    assert model.review_below == 0.3 and panel.review_below == 0.3
    assert model.check_note(photo) is None and "Check this" not in panel.status.text()
    assert SettingsStore(tmp_path / "s.ini").load().review_below == 0.3, "saved"
    settings.change(review_below=0.3)
    assert len(heard) == 1, "no news, no signal"


def test_the_originals_guard_is_built_with_its_question(qtbot, tmp_path):
    """Issue 23: the question is given when the guard is built, not patched in afterwards;
    "always" turns it off in the one Settings object."""
    from desktop.saving import OriginalsGuard
    from desktop.settings import Settings

    settings = Settings(SettingsStore(tmp_path / "s.ini"))
    answers = ["no", "always"]
    guard = OriginalsGuard(settings, lambda: answers.pop(0))
    photo = [tmp_path / "a.jpg"]
    assert guard.allows("txt", photo) and guard.allows("embed", [tmp_path / "a.heic"])
    assert answers == ["no", "always"], "nothing to ask: the photos stay untouched"
    assert not guard.allows("embed", photo)
    assert guard.allows("embed", photo) and not answers
    assert not settings.current.ask_before_writing_into_photos
    assert guard.allows("embed", photo), "asked once"


def test_the_problems_panel_fits_a_window_on_an_800x600_screen(qtbot, window, tmp_path) -> None:
    """Seen under Xvfb with a window manager at 800x600: when the first problem opened the
    Problems panel, the window grew past the screen's bottom edge and took the status bar (the
    progress, Cancel, the count to review) with it. The minimum heights of the hidden welcome page
    and of the caption panel's preview added up with the panel's to more than the screen."""
    free_height = 600 - 24 - 24  # an 800x600 screen less a title bar and a panel
    window.resize(790, free_height)
    qtbot.waitUntil(lambda: window.height() == free_height)
    window.open_folder(tmp_path)  # the grid page, as when photos are being captioned
    window.errors_dock.add(tmp_path / "broken.jpg", "not an image (looks like text)")
    qtbot.waitUntil(window.errors_dock.isVisible)
    assert window.minimumSizeHint().height() <= free_height
    qtbot.waitUntil(lambda: window.statusBar().geometry().bottom() < free_height)
    assert window.height() == free_height
