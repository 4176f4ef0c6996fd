"""compliance-bot: check GitLab pushes and merge requests against a team's rules."""

__version__ = "0.1.0"
