"""Study browser: patients > studies > series with their detected role (changeable), and the
problems panel listing files that could not be used and why.

It shows the index document (``index_to_json``'s ``qperf-viewer/index/1`` schema) it is given
and emits the user's choices; folder opening itself (drop, File > Open, recent folders) goes
through the main window and the session.
"""

from __future__ import annotations

from collections import defaultdict

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

ROLES = ["stress", "rest", "aif", "derived", "localizer", "other"]  # as qperf_viewer.dicom.ROLES
ROLE_LABELS = {
    "stress": "Stress",
    "rest": "Rest",
    "aif": "AIF",
    "derived": "Derived",
    "localizer": "Localizer",
    "other": "Other",
}


class StudyBrowser(QWidget):
    open_requested = Signal()
    role_changed = Signal(str, str)  # series uid, role
    study_selected = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(False)  # the main window takes drops everywhere
        self.folder_label = QLabel("Drop an exam folder on the window, or use File > Open.")
        self.folder_label.setWordWrap(True)
        # a long path (no spaces to wrap at) must not widen the dock and re-layout the window
        self.folder_label.setMinimumWidth(self.folder_label.minimumSizeHint().width())
        open_btn = QPushButton("Open folder…")
        open_btn.clicked.connect(self.open_requested)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Patient / study / series", "Role"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        self.tree.header().setStretchLastSection(False)
        self.tree.setColumnWidth(1, 105)
        self.tree.setIndentation(12)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        self.tree.currentItemChanged.connect(self._show_details)
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems = QTreeWidget()
        self.problems.setHeaderLabels(["File", "Problem", "What to do"])
        self.problems.setRootIsDecorated(False)
        self.problems_label = QLabel("Problems")
        top = QHBoxLayout()
        top.addWidget(self.folder_label, 1)
        top.addWidget(open_btn)
        prob = QWidget()
        pl = QVBoxLayout(prob)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.problems_label)
        pl.addWidget(self.problems)
        tree_box = QWidget()
        tl = QVBoxLayout(tree_box)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.tree, 1)
        tl.addWidget(self.details)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(tree_box)
        split.addWidget(prob)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        self.combos: dict[str, QComboBox] = {}
        self.doc: dict | None = None

    def set_folder(self, path: str) -> None:
        self.folder_label.setText(f"<b>Folder</b> {path}")
        self.folder_label.setToolTip(path)

    def set_busy(self, text: str) -> None:
        self.folder_label.setText(text)

    def set_index(self, doc: dict | None) -> None:
        """Fill the tree from an index document (None clears)."""
        self.doc = doc
        self.tree.clear()
        self.problems.clear()
        self.combos = {}
        if not doc:
            self.problems_label.setText("Problems")
            return
        by_patient: dict[tuple, list[dict]] = defaultdict(list)
        for st in doc.get("studies", []):
            key = (st.get("patient_name") or "", st.get("patient_id") or "")
            by_patient[key].append(st)
        for (name, pid), studies in by_patient.items():
            p_item = QTreeWidgetItem([f"{name or 'Anonymous'} ({pid or 'no ID'})", ""])
            self.tree.addTopLevelItem(p_item)
            for st in studies:
                desc = st.get("study_description") or "study"
                s_item = QTreeWidgetItem([f"{st.get('study_date') or ''} {desc}".strip(), ""])
                s_item.setData(0, Qt.ItemDataRole.UserRole, ("study", st["study_instance_uid"]))
                s_item.setToolTip(
                    0,
                    f"StudyInstanceUID {st['study_instance_uid']}\nDouble-click to show this study",
                )
                p_item.addChild(s_item)
                for se in st.get("series", []):
                    n = se.get("n_instances") or se.get("n_files") or ""
                    label = se.get("series_description") or se["series_instance_uid"]
                    if se.get("series_number") is not None:
                        label = f"{se['series_number']}: {label}"
                    item = QTreeWidgetItem([f"{label} [{n}]" if n else label, ""])
                    uid = se["series_instance_uid"]
                    why = se.get("role_reason", "")
                    item.setData(0, Qt.ItemDataRole.UserRole, ("series", uid))
                    item.setData(1, Qt.ItemDataRole.UserRole, why)
                    item.setToolTip(0, f"{label}\nSeriesInstanceUID {uid}\nRole: {why}")
                    s_item.addChild(item)
                    self.tree.setItemWidget(item, 1, self._role_combo(uid, se.get("role", "other")))
                s_item.setExpanded(True)
            p_item.setExpanded(True)
        probs = doc.get("problems", [])
        for pr in probs:
            texts = [str(pr.get(k) or "") for k in ("path", "reason", "hint")]
            it = QTreeWidgetItem(texts)
            for i, t in enumerate(texts):
                it.setToolTip(i, t)
            if pr.get("severity") == "info":
                it.setForeground(1, QBrush(QColor(110, 110, 110)))
            self.problems.addTopLevelItem(it)
        self.problems_label.setText(
            f"Problems: {len(probs)} file(s) not used" if probs else "No problems"
        )
        self.problems.resizeColumnToContents(0)

    def _role_combo(self, uid: str, role: str) -> QComboBox:
        cb = QComboBox()
        roles = ROLES + ([role] if role not in ROLES else [])
        for r in roles:
            cb.addItem(ROLE_LABELS.get(r, r), r)
        cb.setCurrentIndex(roles.index(role))
        cb.setToolTip("Detected role; change it if the detection is wrong")
        cb.setMinimumContentsLength(7)
        cb.activated.connect(lambda i, u=uid, c=cb: self._role_picked(u, c.itemData(i)))
        self.combos[uid] = cb
        return cb

    def _role_picked(self, uid: str, role: str) -> None:
        self.role_changed.emit(uid, role)

    def roles(self) -> dict[str, str]:
        """Series UID -> role currently shown."""
        return {uid: cb.currentData() for uid, cb in self.combos.items()}

    def set_role(self, uid: str, role: str) -> None:
        """Programmatic role change (as if picked by the user)."""
        cb = self.combos[uid]
        cb.setCurrentIndex(cb.findData(role))
        self._role_picked(uid, role)

    def _show_details(self, item: QTreeWidgetItem | None, _prev=None) -> None:
        data = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        if data and data[0] == "series":
            self.details.setText(f"<b>Why this role:</b> {item.data(1, Qt.ItemDataRole.UserRole)}")
        else:
            self.details.setText("")

    def _double_clicked(self, item: QTreeWidgetItem, _col: int) -> None:
        data = item.data(0, Qt.ItemDataRole.UserRole)
        if data and data[0] == "study":
            self.study_selected.emit(data[1])
