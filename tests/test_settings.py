from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.settings import Settings


def test_secrets_are_masked_in_repr_and_str() -> None:
    settings = Settings(
        gitlab_url="https://gitlab.example.com",
        gitlab_token="glpat-secret-value",
        webhook_secret="hook-secret-value",
    )
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert "glpat-secret-value" not in text
        assert "hook-secret-value" not in text
    assert settings.api_url == "https://gitlab.example.com/api/v4"
    assert settings.compliance_status_name == "compliance"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITLAB_URL", "https://git.internal/")
    monkeypatch.setenv("GITLAB_TOKEN", "t")
    monkeypatch.setenv("WEBHOOK_SECRET", "s")
    monkeypatch.setenv("COMPLIANCE_STATUS_NAME", "policy")
    monkeypatch.setenv("HTTP_POOL_SIZE", "4")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.api_url == "https://git.internal/api/v4"
    assert settings.compliance_status_name == "policy"
    assert settings.http_pool_size == 4


def test_api_suffix_in_the_url_is_refused() -> None:
    with pytest.raises(ValidationError, match="without /api/v4"):
        Settings(
            gitlab_url="https://gitlab.example.com/api/v4", gitlab_token="t", webhook_secret="s"
        )
