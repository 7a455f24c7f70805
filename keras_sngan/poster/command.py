"""The ``keras-sngan`` console script.

With ``KERAS_SNGAN_WARM_START=1`` the command runs in a process forked from a
warm server that has imported the backend once
(:mod:`keras_sngan.poster.warm_start`); otherwise, or while no server is
ready, here (:func:`keras_sngan.poster.cli.main`). The console script sits
above both, so neither imports the other's caller.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    """Entry point of ``keras-sngan``: the warm server's exit status, else the command's run here."""
    argv = sys.argv[1:]
    backend = _leading_backend(argv)
    if backend is not None:  # before the warm-start decision, which depends on the backend
        os.environ["KERAS_BACKEND"] = backend
    from keras_sngan.poster import warm_start

    try:
        status = warm_start.run(argv)
    except ValueError as error:
        print(f"keras-sngan: error: {error}", file=sys.stderr)
        return 2
    if status is not None:
        return status
    from keras_sngan.poster import cli

    return cli.main(argv)


def _leading_backend(argv) -> str | None:
    """The value of a ``--backend X`` / ``--backend=X`` given before the command (checked later by the parser)."""
    for i, item in enumerate(argv):
        if item.startswith("--backend="):
            return item.split("=", 1)[1]
        if item == "--backend":
            return argv[i + 1] if i + 1 < len(argv) else None
        if not item.startswith("-"):  # the command: options after it are the command's
            return None
    return None


if __name__ == "__main__":
    sys.exit(main())
