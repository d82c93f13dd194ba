"""The local runtime's errors: an app it cannot run, and an expression it cannot evaluate locally."""

from __future__ import annotations

__all__ = ["AssemblyError", "UnresolvableError"]


class AssemblyError(RuntimeError):
    """The app could not be synthesized, or its assembly holds something the local runtime cannot run.

    Example
    -------
    >>> raise AssemblyError("the app in cdk.out has no AsyncJobApi")
    Traceback (most recent call last):
    ...
    async_job_local.errors.AssemblyError: the app in cdk.out has no AsyncJobApi
    """


class UnresolvableError(ValueError):
    """A CloudFormation expression refers to something that does not exist locally.

    Example
    -------
    >>> raise UnresolvableError("Bucket (AWS::S3::Bucket) does not exist locally")
    Traceback (most recent call last):
    ...
    async_job_local.errors.UnresolvableError: Bucket (AWS::S3::Bucket) does not exist locally
    """
