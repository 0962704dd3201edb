"""Keeping a dataset's reads inside its root folder: the one confinement rule every file reader uses.

A dataset is untrusted input. Two kinds of path can lead a reader outside it:

- a path a label file *names* (COCO `file_name`, ...): it must be relative (or absolute but
  inside the root) and must not climb out with `..`. Refused always; no option lifts this.
- a file found by listing the dataset's folders (images, masks, label files, split folders)
  that is, or sits below, a symlink leading outside the root. Refused unless the user opts
  in with `follow_symlinks=True` (`zoo ... --follow-symlinks`).

Refusals name the file that named the path (or the path itself) and where it leads; the
target is never opened, so its contents never reach an error message.
"""

from __future__ import annotations

import os

FOLLOW_HINT = "pass follow_symlinks=True (zoo: --follow-symlinks) to read it anyway"


class OneLineError(ValueError):
    """A ValueError whose message stays on one line: control characters from file names are escaped."""

    def __init__(self, message, *args):
        if isinstance(message, str):
            message = one_line(message)
        super().__init__(message, *args)


def one_line(text: str) -> str:
    """`text` with newlines and other control characters escaped (as `repr` would)."""
    return "".join(c if c == " " or c.isprintable() else repr(c)[1:-1] for c in text)


class OutsideRootError(OneLineError):
    """A path that leads outside the dataset root."""


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class Confine:
    """The confinement rule for one dataset root.

    Args:
        root: The dataset's root folder (itself may be a symlink; its real path is the bound).
        follow_symlinks: Read files behind symlinks that leave the root.
    """

    def __init__(self, root, follow_symlinks: bool = False):
        self.root = os.fspath(root)
        self.abs = os.path.abspath(self.root)
        self.real = os.path.realpath(self.root)
        self.follow_symlinks = bool(follow_symlinks)

    def named(self, path, *, by: str, base=None) -> str:
        """A path named inside a label file, joined to `base` (default: the root) and confined.

        Args:
            path: The path as the label file gives it.
            by: Where it was named, e.g. `"annotations/instances_train.json: image id 3"`.
            base: Folder a relative `path` is relative to.

        Returns:
            The joined, normalised path.

        Raises:
            OutsideRootError: `path` is not a usable relative path, climbs out of the root, or
                leads out through a symlink (unless `follow_symlinks`).
        """
        if not isinstance(path, str) or not path or "\x00" in path:
            raise OutsideRootError(f"{by}: file name {path!r} is not a path; expected a file path relative to the "
                                   f"dataset root {self.root!r}.")
        joined = os.path.normpath(os.path.join(os.path.abspath(base or self.root), path))
        if not _within(joined, self.abs):
            kind = "an absolute path outside" if os.path.isabs(path) else "a path that climbs out of"
            raise OutsideRootError(f"{by}: file name {path!r} is {kind} the dataset root {self.root!r}; "
                                   "label files may only name files inside the dataset.")
        return self.listed(joined, by=by)

    def listed(self, path, *, by: str | None = None) -> str:
        """A file or folder found in the dataset; refused if a symlink takes it outside the root.

        Returns:
            `path` unchanged.

        Raises:
            OutsideRootError: naming `path`, the symlink and where it leads (unless `follow_symlinks`).
        """
        path = os.fspath(path)
        if self.follow_symlinks:
            return path
        real = os.path.realpath(path)
        if _within(real, self.real):
            return path
        link = self._first_link(path)
        where = f"{by}: " if by else ""
        via = f" through the symlink {link!r}" if link and link != path else ""
        raise OutsideRootError(f"{where}{path!r} leads outside the dataset root {self.root!r}{via} "
                               f"(to {real!r}); {FOLLOW_HINT}.")

    def _first_link(self, path):
        """The outermost component of `path` below the root that is a symlink leaving the root."""
        rel = os.path.relpath(os.path.abspath(path), self.abs)
        if rel.startswith(os.pardir):
            return None
        cur = self.abs
        for part in rel.split(os.sep):
            cur = os.path.join(cur, part)
            if os.path.islink(cur) and not _within(os.path.realpath(cur), self.real):
                return os.path.join(self.root, os.path.relpath(cur, self.abs))
        return None


def check_name(name, *, where: str, what: str = "class name") -> str:
    """Refuses names with control characters (a newline would shift labels.txt)."""
    if not isinstance(name, str):
        raise ValueError(f"{where}: {what} {name!r} is not a string.")
    bad = [c for c in name if ord(c) < 32 or ord(c) == 127 or c in "\u2028\u2029\x85"]
    if bad:
        raise ValueError(f"{where}: {what} {name!r} contains control character(s) {''.join(sorted(set(bad)))!r}; "
                         "names may not hold newlines, tabs or other control characters (rename it).")
    if not name.strip():
        raise ValueError(f"{where}: {what} {name!r} is empty or blank; every class needs a visible name.")
    return name
