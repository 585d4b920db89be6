"""Settings: `gdk.yml` in, typed `Settings` out, with everything derived from them.

The first stage of the way a change travels. `schema` declares every setting once (type,
default, one line of doc); `values` says what each kind of value accepts; `topology` derives
where each node is reached; `gdk_yml` reads the file as written (line numbers, both key
forms); `config` validates and loads; `config_edit` is `geo.config.get/set`;
`settings_docs` writes the example file and docs/settings.md's table from the schema;
`doc_sections` splices a generated table into its docs page.

The schema's names are re-exported here: `from gdk_geo.settings import Settings`.
"""

from gdk_geo.settings.schema import (
    NODE_NAMES,
    NODE_SPEC_KEY,
    REPLICATION_KEY,
    Docker,
    Effective,
    Geo,
    Layout,
    Member,
    NodeRegistry,
    NodeSpec,
    Notifications,
    Primary,
    Registry,
    RegistryAuth,
    RegistryReplication,
    Secondary,
    Settings,
    registry_container_name,
    section,
    setting,
)

__all__ = [
    "NODE_NAMES",
    "NODE_SPEC_KEY",
    "REPLICATION_KEY",
    "Docker",
    "Effective",
    "Geo",
    "Layout",
    "Member",
    "NodeRegistry",
    "NodeSpec",
    "Notifications",
    "Primary",
    "Registry",
    "RegistryAuth",
    "RegistryReplication",
    "Secondary",
    "Settings",
    "config",
    "config_edit",
    "doc_sections",
    "registry_container_name",
    "section",
    "setting",
    "settings_docs",
    "topology",
    "values",
]
