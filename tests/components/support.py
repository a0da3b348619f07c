"""Helpers shared by the component tests."""

import os


def tree_bytes(directory) -> dict[str, bytes]:
    """{path relative to `directory`: bytes} of every file under it."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, directory)] = f.read()
    return files
