"""Raise the soft open-file limit to the hard one, as Go's runtime does for every program.

Many systems still ship a soft `RLIMIT_NOFILE` of 1,024 with a much higher hard limit: a peek
following a thousand rooms needs a socket each, and may take what the administrator allows.
"""

from __future__ import annotations


def raise_open_file_limit() -> None:
    """Best effort: where the limit cannot be read or raised, peek runs with what it has."""
    try:
        import resource
    except ImportError:  # not on this platform (Windows)
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft < hard:
            target = hard
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (ValueError, OSError):
                # macOS refuses an unlimited soft limit: its kernel's per-process cap instead.
                if hard == resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 10240), hard))
    except (ValueError, OSError):
        return
