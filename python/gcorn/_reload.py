"""reload: the worker lists the files it imported for the master to watch (master/reloader.cpp).

The list goes into a memfd the master created and every worker inherits; workers of one generation write the
same list, so each replaces it under a lock.
"""
import fcntl
import os
import sys


def module_files():
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        if path.endswith((".pyc", ".pyo")):
            path = path[:-1]
        files.add(os.path.abspath(path))
    return sorted(files)


def write_manifest(fd):
    data = "\n".join(module_files()).encode("utf-8", "surrogateescape")
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
