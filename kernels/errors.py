"""The root of dedupd's exception tree.

It lives in the bottom layer (kernels) because imports point downward only:
index and daemon errors both subclass it, and kernels may import nothing of ours.
Each class's docstring is the message a user sees when no more specific text is given.
"""


class DedupdError(Exception):
    """dedupd failed."""

    def __init__(self, message: str | None = None):
        super().__init__(message or (self.__doc__ or "").strip())
