"""The ``phewas`` executable (and ``python -m phewas``). Nothing is imported here before Ctrl-C is
caught, so an interrupt at any moment, the imports of the command's modules included, ends with
"interrupted" and exit status 130, never a traceback."""

import sys


def main() -> int:
    try:
        from phewas.cli import main as run

        return run()
    except KeyboardInterrupt:
        print("phewas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
