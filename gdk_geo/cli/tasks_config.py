"""The `geo.config.*` tasks: read and change one setting, list them all, and regenerate
`gdk.example.yml` and the README's generated tables."""

from __future__ import annotations

from invoke import Collection, task

from gdk_geo.cli.console import out, user_errors
from gdk_geo.cli.tasks_support import project_of
from gdk_geo.errors import ConfigError
from gdk_geo.fsutil import atomic_write
from gdk_geo.project import EXAMPLE, REPO_ROOT


@task(name="get")
@user_errors
def config_get(c, key):
    """Print the effective value of a setting (defaults and derived values included)."""
    from gdk_geo.settings import config_edit

    project = project_of(c)
    print(config_edit.shown(key, config_edit.get(project.gdk_yml, key, project.with_roles)))


@task(name="set")
@user_errors
def config_set(c, key, value):
    """Set a setting in gdk.yml, keeping your comments and key order."""
    from gdk_geo.ops import lifecycle
    from gdk_geo.settings import config_edit

    project = project_of(c)
    created = lifecycle.ensure_gdk_yml(project)
    try:
        config_edit.set_value(project.gdk_yml, key, value, project.with_roles)
    except ConfigError:
        if created:  # the refusal says gdk.yml was left as it was: here, not there
            project.gdk_yml.unlink()
        raise
    value = config_edit.shown(key, config_edit.get(project.gdk_yml, key, project.with_roles))
    out.print(f"{key} = {value}  (run `invoke geo.restart`)", markup=False)


@task(name="list")
def config_list(c):
    """Every setting with its default and what it does."""
    from gdk_geo.settings import settings_docs

    print(settings_docs.settings_table())


@task(name="example")
@user_errors
def config_example(c):
    """Regenerate gdk.example.yml and the README's settings and troubleshooting tables."""
    from gdk_geo.doctor import checks_docs
    from gdk_geo.settings import settings_docs

    atomic_write(EXAMPLE, settings_docs.example_yaml())
    readme = REPO_ROOT / "README.md"
    text = settings_docs.readme_with_table(readme.read_text())
    atomic_write(readme, checks_docs.readme_with_troubleshooting(text))
    out.print(f"wrote {EXAMPLE.name}, and the settings and troubleshooting tables in README.md")


ns = Collection("config", config_get, config_set, config_list, config_example)
