"""The five workflow pages. Each module defines one QWidget subclass taking an AppContext.

PAGES lists (key, title, module, class); the main window creates a page the first time it is shown.
"""

PAGES: list[tuple[str, str, str, str]] = [
    ("data", "Data", "desktop.pages.data", "DataPage"),
    ("dedup", "Duplicates", "desktop.pages.dedup", "DedupPage"),
    ("train", "Train", "desktop.pages.train", "TrainPage"),
    ("evaluate", "Evaluate", "desktop.pages.evaluate", "EvaluatePage"),
    ("export", "Export", "desktop.pages.export", "ExportPage"),
]
