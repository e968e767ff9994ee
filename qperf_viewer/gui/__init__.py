"""PySide6 + pyqtgraph desktop application: a thin layer of views over the Qt-free core."""
