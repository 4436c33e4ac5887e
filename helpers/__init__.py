"""Edge Vision Workbook helpers: the reusable library behind the notebooks.

Importing ``helpers`` is cheap and needs no Jupyter; each submodule imports its own
heavy dependencies (torch, cv2, ...) so a headless board only pays for what it uses.
"""

__version__ = "0.1.0"
