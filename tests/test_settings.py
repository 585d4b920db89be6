"""The settings declaration and the documents derived from it."""

from __future__ import annotations

from gdk_geo import settings, settings_docs
from gdk_geo.project import EXAMPLE, REPO_ROOT


def test_defaults_are_the_documented_ones() -> None:
    cfg = settings.Settings()
    assert cfg.hostname == "localhost"
    assert cfg.registry.image == "registry:2"
    assert cfg.registry.notification_secret == ""
    notifications = cfg.registry.notifications
    assert (notifications.timeout, notifications.threshold, notifications.backoff) == (
        "500ms",
        5,
        "1s",
    )
    assert cfg.geo.primary.port == 3001
    assert cfg.geo.primary.registry.port == 5000
    assert cfg.geo.secondary.port == 3002
    assert cfg.geo.secondary.registry.port == 5001
    assert cfg.geo.secondary.registry_replication.enabled is True
    assert cfg.geo.secondary.registry_replication.primary_api_url == ""
    assert cfg.geo.secondary.registry_replication.backfill_interval == "60s"


def test_every_setting_has_a_one_line_doc() -> None:
    for declared in settings.declared():
        assert declared.doc and "\n" not in declared.doc, declared.key


def test_every_default_passes_its_own_check() -> None:
    for declared in settings.declared():
        if declared.check:
            assert declared.check(declared.default) is None, declared.key


def test_committed_example_is_current() -> None:
    assert EXAMPLE.read_text() == settings_docs.example_yaml(), (
        "gdk.example.yml is stale: run `invoke geo.config.example`"
    )


def test_readme_settings_table_is_current() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert settings_docs.readme_with_table(readme) == readme, (
        "README settings table is stale: run `invoke geo.config.example`"
    )


def test_example_loads_to_the_defaults(tmp_path) -> None:
    from gdk_geo import config

    path = tmp_path / "gdk.yml"
    path.write_text(settings_docs.example_yaml())
    assert config.load(path) == settings.Settings()


def test_durations() -> None:
    assert settings.duration_seconds("500ms") == 0.5
    assert settings.duration_seconds("1m30s") == 90
    assert settings.duration("0s") is not None
    assert settings.duration("fast") is not None
