# A module that kills its process while being imported: a worker that can never boot.
import ctypes

ctypes.string_at(0)
