"""The ``keras-sngan`` console script.

With ``KERAS_SNGAN_WARM_START=1`` the command runs in a process forked from a
warm server that has imported the backend once
(:mod:`keras_sngan.poster.warm_start`); otherwise, or while no server is
ready, here (:func:`keras_sngan.poster.cli.main`). The console script sits
above both, so neither imports the other's caller.
"""

from __future__ import annotations

import sys


def main() -> int:
    """Entry point of ``keras-sngan``: the warm server's exit status, else the command's run here."""
    from keras_sngan.poster import warm_start

    try:
        status = warm_start.run(sys.argv[1:])
    except ValueError as error:
        print(f"keras-sngan: error: {error}", file=sys.stderr)
        return 2
    if status is not None:
        return status
    from keras_sngan.poster import cli

    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
