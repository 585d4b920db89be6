"""Invoke entry point: `invoke geo.setup`, `invoke geo.restart`, … (`invoke --list`)."""

from pathlib import Path

from invoke import Collection

from gdk_geo.cli import tasks as geo

ns = Collection()
ns.add_collection(geo.ns, name="geo")
ns.configure({"gdk_geo": {"root": str(Path(__file__).resolve().parent)}})
