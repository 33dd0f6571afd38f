"""PhotoScribe's desktop app (PySide6): browse a folder, caption in the background, review, save."""
