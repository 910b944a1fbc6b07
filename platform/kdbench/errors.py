"""Failures the engine reports as a job's result rather than retrying."""


class JobFailed(RuntimeError):
    """A deterministic failure: running the job again would fail the same way."""


class NonFiniteLoss(JobFailed):
    pass


class MissingUpstream(JobFailed):
    pass


class CorruptArtifact(JobFailed):
    """A checkpoint that fails its hash check: never loaded; the job that wrote it must run again."""
