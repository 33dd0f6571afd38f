"""PhotoScribe core: model, images, inference, caption storage and export (no GUI)."""

__version__ = "0.1.0"
