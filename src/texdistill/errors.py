"""Every error a user can cause derives from TexdistillError; the CLI prints it as one line and exits 2."""


class TexdistillError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


class ConfigError(TexdistillError):
    """An option is out of range or options contradict each other."""


class DataError(TexdistillError):
    """A dataset is missing, empty or laid out differently than expected."""


class CheckpointError(TexdistillError):
    """A checkpoint, trajectory or run folder cannot be used."""


class NumericalError(TexdistillError):
    """Training diverged and the guards could not recover."""


class StorageError(TexdistillError):
    """A file could not be written (disk full, no permission); the previous version of it is intact."""


class RunInUseError(TexdistillError):
    """Another process is writing the same run folder."""


class BenchError(TexdistillError):
    """A benchmark worker process failed for another reason than running out of memory."""
