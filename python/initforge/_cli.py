"""The ``onnx-reinit`` console command installed by the wheel: the Rust CLI, in process."""

import sys

from . import _native


def main() -> None:
    """Run ``onnx-reinit`` with this process's arguments and exit with its code."""
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(_native.cli_main(["onnx-reinit", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
