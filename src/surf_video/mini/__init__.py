"""mini."""

__all__: list[str] = []
