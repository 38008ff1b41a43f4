"""Numba kernels: pure functions over typed arrays, no I/O and no validation.

Every kernel that reads bytes of a blob bounds-checks each read and reports failure through
its return value; the Python callers turn status codes into exceptions.
"""
