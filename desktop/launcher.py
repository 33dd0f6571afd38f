"""The `photoscribe` entry point: subcommands run headless in core, no arguments open the app."""

from __future__ import annotations

import sys

from core.cli import main as cli_main


def run_gui(folder: str | None) -> int:
    # Imported here: Qt and the app are not loaded for headless subcommands.
    from desktop.app import run_app

    return run_app(folder)


def main() -> int:
    return cli_main(sys.argv[1:], gui=run_gui)


if __name__ == "__main__":
    sys.exit(main())
