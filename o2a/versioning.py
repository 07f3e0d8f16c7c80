"""Worker Versioning: a worker given a build ID runs as that version of a Worker Deployment,
so changed workflow code never meets the history of an order started on older code.

Order workflows (COM and their SOM children, the bench's bare and plain shapes) take the
worker's default behavior, PINNED: each stays on the version it started on until it ends,
and an upgrade is a new version beside the old one (the runbook in the README), not a
replacement of it. The long-lived hub and listener workflows are registered AUTO_UPGRADE
(workflows/auto_upgrade.py): they never end, so a pin would keep every old version alive
for ever; they move to the current version at their next workflow task and rely on
``workflow.patched`` (and the replay tests) for compatibility instead.

Without a build ID the worker is unversioned, as before: the server hands it the work of
every deployment-less task queue (``make run``, the tests). A versioned worker gets new
workflows only once an operator makes its version current (or ramping): ``temporal worker
deployment set-current-version``.
"""

from __future__ import annotations

from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import WorkerDeploymentConfig

from o2a.errors import InputError

DEFAULT_DEPLOYMENT_NAME = "o2a"
MAX_NAME_LENGTH = 255
"""The server's default limit on IDs (``limit.maxIDLength``)."""


def checked_part(what: str, value: str) -> str:
    """A deployment name or build ID the server will take, or one clear line why not. A
    version's canonical name is ``deployment.build``, so the deployment name has no dot."""
    if not value or len(value) > MAX_NAME_LENGTH or value != value.strip():
        raise InputError(
            f"{what} must be 1 to {MAX_NAME_LENGTH} characters without surrounding "
            f"spaces, got {value!r}"
        )
    if what == "deployment name" and "." in value:
        raise InputError(f"deployment name must not contain '.', got {value!r}")
    return value


def worker_version(deployment_name: str, build_id: str) -> WorkerDeploymentVersion:
    """The version, once the server would take both its parts."""
    return WorkerDeploymentVersion(
        deployment_name=checked_part("deployment name", deployment_name),
        build_id=checked_part("build ID", build_id),
    )


def deployment_config(deployment_name: str, build_id: str | None) -> WorkerDeploymentConfig | None:
    """The worker's versioning options: none (unversioned) without a build ID."""
    if build_id is None:
        return None
    return WorkerDeploymentConfig(
        version=worker_version(deployment_name, build_id),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )


def version_text(deployment_name: str, build_id: str | None) -> str:
    """For the worker's banner."""
    if build_id is None:
        return "unversioned"
    return f"version {build_id} of deployment {deployment_name!r} (orders pinned)"
