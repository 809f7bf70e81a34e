"""The root of dedupd's exception tree.

It lives in the bottom layer (kernels) because imports point downward only:
index and daemon errors both subclass it, and kernels may import nothing of ours.
Each class's docstring is the message a user sees when no more specific text is given.
"""


class DedupdError(Exception):
    """dedupd failed."""

    def __init__(self, message: str | None = None):
        super().__init__(message or (self.__doc__ or "").strip())


class KernelError(DedupdError):
    """A fingerprint kernel was called with something it cannot hash."""


class BadImage(KernelError, ValueError):
    """The image is not a non-empty 2-D uint8 array."""


class UnknownAlgorithm(KernelError, KeyError):
    """Unknown fingerprint algorithm."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else (self.__doc__ or "").strip()
