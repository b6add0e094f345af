"""Which Argo Workflows versions run gradeflow right, and what goes wrong on the others.

The client reads the Argo Server's version (GET /api/v1/version, Argo's `info` service; the
`version` field is the release tag such as "v3.7.2", or "v0.0.0+abc1234" for an untagged
build) and refuses or warns before it submits or retries. Each rule names the Argo issue and
the release that fixed it, checked against argoproj/argo-workflows' tags:

* memoize on a template that also has a retryStrategy never saves to the cache before v3.5.5
  (#10426, #12490; fixed by 8c75a72, first in v3.5.5): every run executes every submission.
* a manual retry (`gradeflow retry`, restartSuccessful=false) also resets Retry nodes that
  succeeded (#14796): `resetPath` in workflow/util/util.go has
  `case curr.n.Type == wfv1.NodeTypeRetry:` without `&& curr.n.FailedOrError()`. That code is
  in v3.6.6-v3.6.19 (backported with the retry rewrite, never fixed on release-3.6) and in
  v3.7.0-v3.7.1; fixed in v3.7.2 (0a05502) and v4.0.0. There, succeeded execute pods run again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SUPPORTED", "VersionVerdict", "parse_version", "judge_version"]

SUPPORTED = "v3.5.5-v3.6.5, v3.7.2 and later 3.7, and v4.x"
FLOOR = (3, 5, 0)  # the template's `workflows.argoproj.io/version` annotation
CACHE_FIXED = (3, 5, 5)
RETRY_BROKEN = (((3, 6, 6), (3, 6, 19)), ((3, 7, 0), (3, 7, 1)))

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """(major, minor, patch) of an Argo version string; None for a build without a release tag."""
    m = _VERSION.match((text or "").strip())
    if not m or (text or "").strip().startswith(("v0.0.0", "0.0.0")):
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


@dataclass
class VersionVerdict:
    """What to do before an action on a server of this version: refuse (with why) or warn."""

    version: str
    refuse: str | None
    warnings: list[str]


def _retry_broken(v: tuple[int, int, int]) -> bool:
    return any(lo <= v <= hi for lo, hi in RETRY_BROKEN)


def judge_version(version: str | None, action: str) -> VersionVerdict:
    """The verdict for `action` ("submit", "retry" or "resubmit") on Argo `version`."""
    v = parse_version(version)
    shown = version or "unknown"
    if v is None:
        return VersionVerdict(
            shown, None, [f"cannot tell which Argo Workflows release {shown!r} is; gradeflow supports {SUPPORTED}"]
        )
    if v < FLOOR:
        return VersionVerdict(
            shown,
            f"Argo Workflows {shown} is older than gradeflow's template supports (v3.5.0); supported: {SUPPORTED}",
            [],
        )
    warnings = []
    if v < CACHE_FIXED and action in ("submit", "resubmit"):
        warnings.append(
            f"Argo Workflows {shown} never saves execute results to the memoization cache when the template also "
            "retries (argoproj/argo-workflows#10426, #12490, fixed in v3.5.5): every run executes every submission "
            f"again; upgrade to {SUPPORTED}"
        )
    if _retry_broken(v):
        why = (
            f"Argo Workflows {shown} re-runs succeeded retried nodes on a manual retry (argoproj/argo-workflows#14796, "
            "fixed in v3.7.2 and v4.0.0; never fixed in 3.6): `gradeflow retry` would execute every submission again"
        )
        if action == "retry":
            return VersionVerdict(
                shown,
                why
                + f". Upgrade Argo to {SUPPORTED}; meanwhile `gradeflow resubmit --memoized RUN` reuses what succeeded",
                warnings,
            )
        if action == "submit":
            warnings.append(why + f"; upgrade to {SUPPORTED}")
    return VersionVerdict(shown, None, warnings)
