"""The core's commands (`mmtrack-serve run | serve | stop | parity | stream`)."""
from pathlib import Path

from ..errors import InputError


def make_output_folders(*paths):
    """Creates the folder of each output file given, as MMTracking's demos do.

    Done before any slow work, so a path that cannot be written fails at once.
    """
    for path in paths:
        if not path:
            continue
        folder = Path(path).resolve().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f'cannot create output folder {Path(path).parent}: {e.strerror}') from None
