"""The ``surf`` console script: one module per subcommand, each a thin wrapper over library code."""

__all__ = ["main"]


def main(argv=None):  # re-exported lazily so ``import surf_video.cli`` stays cheap
    from .main import main as _main

    return _main(argv)
