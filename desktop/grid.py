"""The thumbnail grid: a list view in icon mode and the delegate that paints each photo."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPointF,
    QRect,
    QRectF,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Slot,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QPainter,
    QPaintEvent,
    QPalette,
    QPixmap,
    QTextLayout,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from core.storage.files import display_name
from desktop.photos import (
    CHECK_ROLE,
    PHOTO_ROLE,
    THUMBNAIL_BOX,
    Photo,
    PhotoFilter,
    PhotoListModel,
    Status,
)

PADDING = 8
CAPTION_LINES = 3
BADGE = 18

BADGE_COLOURS = {
    Status.SAVED: QColor("#2e9d5b"),
    Status.UNSAVED: QColor("#e08a00"),
    Status.WORKING: QColor("#2f7fd0"),
    Status.SAVING: QColor("#2f7fd0"),
    Status.ERROR: QColor("#d0342c"),
}
CHECK_COLOUR = QColor("#9a5b00")  # dark amber: white text on it stays readable
CHECK_TEXT = "? Check"  # the grid's "check this" mark: words, not only a colour

BADGE_TEXT = {
    Status.SAVED: "✓",
    Status.UNSAVED: "●",
    Status.WORKING: "…",
    Status.SAVING: "↓",
    Status.ERROR: "!",
}


def caption_font(base: QFont) -> QFont:
    font = QFont(base)
    font.setPointSizeF(max(base.pointSizeF() - 1, 7))
    return font


def cell_size(base: QFont) -> QSize:
    line = QFontMetrics(caption_font(base)).lineSpacing()
    return QSize(
        THUMBNAIL_BOX.width() + 2 * PADDING,
        THUMBNAIL_BOX.height() + 3 * PADDING + CAPTION_LINES * line,
    )


class PhotoDelegate(QStyledItemDelegate):
    """Paints a thumbnail, a badge for the caption's state and up to three lines of caption."""

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        return cell_size(option.font)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        photo: Photo | None = index.data(PHOTO_ROLE)
        if photo is None:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = option.rect.adjusted(2, 2, -2, -2)
        palette = option.palette
        state = option.state
        if state & QStyle.StateFlag.State_Selected:
            fill = QColor(palette.color(QPalette.ColorRole.Highlight))
            fill.setAlpha(70)
            painter.setPen(palette.color(QPalette.ColorRole.Highlight))
            painter.setBrush(fill)
            painter.drawRoundedRect(QRectF(rect), 6, 6)
        elif state & QStyle.StateFlag.State_MouseOver:
            fill = QColor(palette.color(QPalette.ColorRole.Highlight))
            fill.setAlpha(25)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(fill)
            painter.drawRoundedRect(QRectF(rect), 6, 6)

        box = QRect(
            option.rect.x() + (option.rect.width() - THUMBNAIL_BOX.width()) // 2,
            option.rect.y() + PADDING,
            THUMBNAIL_BOX.width(),
            THUMBNAIL_BOX.height(),
        )
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            size = pixmap.deviceIndependentSize().toSize()
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(box.center())
            painter.drawPixmap(target, pixmap)
            picture = target
        else:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.Midlight))
            painter.drawRoundedRect(QRectF(box), 4, 4)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, _placeholder(index, photo))
            picture = box

        status = photo.status
        colour = BADGE_COLOURS.get(status)
        if colour is not None:
            badge = QRectF(picture.right() - BADGE - 3, picture.top() + 4, BADGE, BADGE)
            painter.setPen(QColor(255, 255, 255, 220))
            painter.setBrush(colour)
            painter.drawEllipse(badge)
            bold = QFont(option.font)
            bold.setBold(True)
            bold.setPointSizeF(max(option.font.pointSizeF() - 2, 6))
            painter.setFont(bold)
            painter.setPen(Qt.GlobalColor.white)
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, BADGE_TEXT[status])
        if index.data(CHECK_ROLE):
            draw_check_mark(painter, picture, option.font)

        text_rect = QRect(
            option.rect.x() + PADDING,
            box.bottom() + PADDING,
            option.rect.width() - 2 * PADDING,
            option.rect.bottom() - box.bottom() - PADDING,
        )
        font = caption_font(option.font)
        if photo.text:
            text = photo.text
            painter.setPen(palette.color(QPalette.ColorRole.Text))
        else:
            text = display_name(photo.path)
            font.setItalic(True)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        painter.setFont(font)
        draw_wrapped(painter, text_rect, text, font, CAPTION_LINES)
        painter.restore()


def draw_check_mark(painter: QPainter, picture: QRect, base: QFont) -> None:
    """The "check this" mark: a labelled tag at the picture's top left corner."""
    font = QFont(base)
    font.setBold(True)
    font.setPointSizeF(max(base.pointSizeF() - 2, 6))
    metrics = QFontMetrics(font)
    tag = QRectF(
        picture.left() + 4,
        picture.top() + 4,
        metrics.horizontalAdvance(CHECK_TEXT) + 10,
        max(metrics.height() + 2, BADGE),
    )
    painter.setPen(QColor(255, 255, 255, 220))
    painter.setBrush(CHECK_COLOUR)
    painter.drawRoundedRect(tag, tag.height() / 2, tag.height() / 2)
    painter.setFont(font)
    painter.setPen(Qt.GlobalColor.white)
    painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, CHECK_TEXT)


def _placeholder(index: QModelIndex | QPersistentModelIndex, photo: Photo) -> str:
    """What stands in for a thumbnail: one on its way, or one that cannot be made."""
    model = index.model()
    while isinstance(model, QSortFilterProxyModel):
        model = model.sourceModel()
    if isinstance(model, PhotoListModel) and model.is_broken(photo.path):
        return "Cannot show\nthis photo"
    return "…"


def draw_wrapped(painter: QPainter, rect: QRect, text: str, font: QFont, max_lines: int) -> None:
    """Centred, word-wrapped text of at most ``max_lines`` lines; the last one elided."""
    metrics = QFontMetrics(font)
    layout = QTextLayout(text.replace("\n", " "), font)
    layout.beginLayout()
    lines: list[str] = []
    flat = layout.text()
    while len(lines) < max_lines:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(rect.width())
        start, length = line.textStart(), line.textLength()
        if len(lines) == max_lines - 1 and start + length < len(flat):
            lines.append(
                metrics.elidedText(flat[start:], Qt.TextElideMode.ElideRight, rect.width())
            )
            break
        lines.append(flat[start : start + length].strip())
    layout.endLayout()
    y = rect.top() + metrics.ascent()
    for line_text in lines:
        x = rect.left() + (rect.width() - metrics.horizontalAdvance(line_text)) / 2
        painter.drawText(QPointF(x, y), line_text)
        y += metrics.lineSpacing()


def empty_grid_text(
    listed: bool, total: int, uncaptioned_only: bool, search: str, recursive: bool
) -> str:
    """Why the grid shows no photo: the folder has none, or what hides them."""
    if not listed:
        return "Looking for photos…"
    if total == 0:
        if recursive:
            return "There are no photos in this folder or its subfolders."
        return (
            "There are no photos in this folder. To see those in its subfolders, turn on "
            "Caption ▸ Include Subfolders."
        )
    if search and uncaptioned_only:
        return (
            f"No photo without a caption matches “{search}”. Photos with a caption are "
            "hidden: turn off View ▸ Only Uncaptioned Photos (Ctrl+U) to search them too."
        )
    if search:
        return f"No caption in this folder matches “{search}”."
    if uncaptioned_only:
        return (
            f"All {total} photos here have a caption. Turn off View ▸ Only Uncaptioned "
            "Photos (Ctrl+U) to see them."
            if total > 1
            else "The photo here has a caption. Turn off View ▸ Only Uncaptioned Photos "
            "(Ctrl+U) to see it."
        )
    return ""


class PhotoGrid(QListView):
    """Thumbnails in a wrapping grid; uniform cells so 10,000 photos lay out instantly.

    When there is no photo to show, the grid says why (``empty_text``).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._empty_text = ""
        # List mode wrapping left to right looks like icon mode, but with uniform item sizes it
        # lays out 10,000 rows without asking each one its size (about 13 ms), in one pass: in
        # batched mode any dataChanged (a thumbnail arriving) restarts the layout from the first
        # batch and clamps the scroll bar to it, pulling a user scrolled far down back to the top.
        self.setViewMode(QListView.ViewMode.ListMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.SinglePass)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setMouseTracking(True)
        self.setItemDelegate(PhotoDelegate(self))
        self.setGridSize(cell_size(self.font()) + QSize(6, 6))
        self.setSpacing(0)
        self.verticalScrollBar().setSingleStep(24)

    @property
    def empty_text(self) -> str:
        return self._empty_text

    def set_empty_text(self, text: str) -> None:
        if text != self._empty_text:
            self._empty_text = text
            self.viewport().update()

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        model = self.model()
        if not self._empty_text or model is None or model.rowCount() > 0:
            return
        painter = QPainter(self.viewport())
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        area = self.viewport().rect().adjusted(40, 40, -40, -40)
        area.setHeight(min(area.height(), 200))
        painter.drawText(
            area,
            int(
                Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap
            ),
            self._empty_text,
        )
        painter.end()


class EmptyGridText(QObject):
    """Keeps the grid's text for when it shows no photo in step with the folder, the filter
    and the search: ``update`` is connected to whatever changes one of them."""

    def __init__(
        self,
        grid: PhotoGrid,
        photo_filter: PhotoFilter,
        listing: Callable[[], bool],
        query: Callable[[], str],
        recursive: Callable[[], bool],
    ) -> None:
        super().__init__(grid)
        self.grid = grid
        self.filter = photo_filter
        self._listing = listing
        self._query = query
        self._recursive = recursive
        for signal in (
            photo_filter.rowsInserted,
            photo_filter.rowsRemoved,
            photo_filter.modelReset,
            photo_filter.layoutChanged,
        ):
            signal.connect(self.update)

    @Slot()
    def update(self, *_args: object) -> None:
        source = self.filter.sourceModel()
        self.grid.set_empty_text(
            empty_grid_text(
                listed=not self._listing(),
                total=source.rowCount() if source is not None else 0,
                uncaptioned_only=self.filter.uncaptioned_only,
                search=self._query(),
                recursive=self._recursive(),
            )
        )
