"""A chain of folders nested deeper than Python's recursion limit, for tests of walks that
must not recurse; removed bottom up, since shutil.rmtree recurses a frame per level (on
Python 3.11 a RecursionError at these depths)."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def folder_chain(top: Path, depth: int) -> Iterator[list[Path]]:
    """The folders `top`, `top/d`, ... `depth` levels below it, made now, top first; on
    leaving, each is emptied (files, and folders beside the chain) and removed, bottom up."""
    folders = [top]
    for _ in range(depth):
        folders.append(folders[-1] / "d")
    for folder in folders:
        folder.mkdir()
    try:
        yield folders
    finally:
        for below, folder in zip([None, *reversed(folders)], reversed(folders)):
            for entry in os.scandir(folder):
                if not entry.is_dir(follow_symlinks=False):
                    os.unlink(entry.path)
                elif entry.path != str(below):  # a folder of the test's, beside the chain
                    shutil.rmtree(entry.path)
            folder.rmdir()
