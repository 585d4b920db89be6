"""The `geo.config.*` tasks: read and change one setting, list them all, and regenerate
`gdk.example.yml` and the generated tables of `docs/settings.md` and
`docs/troubleshooting.md`."""

from __future__ import annotations

from invoke import Collection, task

from gdk_geo.cli.console import out, user_errors
from gdk_geo.cli.tasks_support import project_of
from gdk_geo.errors import ConfigError, GdkGeoError
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
    """Regenerate gdk.example.yml and the settings and troubleshooting tables in docs/."""
    from gdk_geo.doctor import checks_docs
    from gdk_geo.settings import settings_docs

    # Every page is spliced before any is written: damaged markers leave all as they were.
    pages = {}
    for docs in (settings_docs, checks_docs):
        page = REPO_ROOT / docs.PAGE
        try:
            pages[page] = docs.page_with_table(page.read_text())
        except FileNotFoundError:
            raise GdkGeoError(
                f"{docs.PAGE} does not exist",
                fix=f"restore it (`git checkout -- {docs.PAGE}`), then run "
                "`invoke geo.config.example` again",
            ) from None
    atomic_write(EXAMPLE, settings_docs.example_yaml())
    for page, text in pages.items():
        atomic_write(page, text)
    out.print(f"wrote {EXAMPLE.name}, {settings_docs.PAGE} and {checks_docs.PAGE}")


ns = Collection("config", config_get, config_set, config_list, config_example)
