"""Running a generator on images: tiles in bounded memory, the Python API (``Upscaler``), the command line's batch
job, and the realism dial (network interpolation)."""
