"""Typed errors of the daemon layer; each docstring is the default message.

Per-file problems (`FileProblem` subclasses) are counted by `kind` and never stop
a scan; configuration and index problems stop the command with a clear message.
"""

from __future__ import annotations

from dedupd.kernels.errors import DedupdError


class ConfigError(DedupdError):
    """The configuration is invalid."""

    def __init__(self, problems: list[str], source: str = ""):
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{head}invalid configuration ({len(self.problems)} problem(s)):\n{lines}")


class UsageError(DedupdError):
    """The command line is invalid."""


class FileProblem(DedupdError):
    """A file could not be processed."""

    kind = "error"

    def __init__(self, path: str, detail: str = ""):
        self.path = path
        self.detail = detail
        text = (self.__doc__ or "").strip()
        super().__init__(f"{path}: {text}" + (f" ({detail})" if detail else ""))


class UnsupportedFormat(FileProblem):
    """not an image format dedupd can read"""

    kind = "unsupported_format"


class CorruptImage(FileProblem):
    """the image data is corrupt and does not decode"""

    kind = "corrupt"


class TruncatedImage(FileProblem):
    """the image file is truncated (incomplete download or copy?)"""

    kind = "truncated"


class ImageTooLarge(FileProblem):
    """the image header claims more pixels than pixel_limit allows; raise the limit in the config to index it"""

    kind = "too_large"


class EmptyFile(FileProblem):
    """the file is empty"""

    kind = "empty"


class Unreadable(FileProblem):
    """the file cannot be read (permissions?)"""

    kind = "unreadable"


class Vanished(FileProblem):
    """the file disappeared while it was being read"""

    kind = "vanished"


class ChangedWhileReading(FileProblem):
    """the file changed while it was being read; it will be retried on the next scan"""

    kind = "changed"
