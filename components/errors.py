"""Errors that name what is wrong and how to fix it, shown without a stack trace."""


class TwinlabError(Exception):
    """Base for every error twinlab reports to a user as one clear message."""


class ConfigError(TwinlabError):
    """One or more stack config values are invalid; the message lists each key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "invalid stack config:\n" + "\n".join(f"  - {problem}" for problem in problems)
        )


class DaemonUnavailableError(TwinlabError):
    """dockerd or libvirtd does not answer."""
