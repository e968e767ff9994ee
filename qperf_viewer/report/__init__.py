"""The report: data (:mod:`.data`), thresholds, bulls-eye geometry, PDF (Qt, in ``render*`` and
``pdf*`` modules only), results.json, curves.csv and DICOM exports.

Only ``render*.py`` and ``pdf*.py`` import Qt (QtGui, no widgets); everything else here is
Qt-free and importable by the core and the CLI.
"""
