"""``python -m lib_humanrefine`` and the ``humanrefine`` console command (imports nothing heavy first,
so a missing dependency is one line, not a traceback)."""

import sys

EXIT_USAGE = 2


def run(prog: str) -> int:
    try:
        from .cli import main

        return main(prog=prog)
    except ImportError as exc:
        from .deps import missing_message

        message = missing_message(exc, prog)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return EXIT_USAGE


def console() -> int:
    """The ``humanrefine`` command that ``pip install`` makes."""
    return run("humanrefine")


if __name__ == "__main__":
    sys.exit(run("python -m lib_humanrefine"))
