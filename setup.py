"""The one piece of the build that pyproject.toml cannot say: the repository's folders become
one import name. ``app/`` is the package ``flowlog``; ``eventstore/``, ``projections/`` and
``sql/`` are its subpackages ``flowlog.eventstore``, ``flowlog.projections`` and ``flowlog.sql``
(docs/design.md, "Folders and packages"). The subpackages are found here rather than listed, so a
new one cannot be left out of the wheel."""

from setuptools import find_packages, setup

FOLDERS = {
    "flowlog": "app",
    "flowlog.eventstore": "eventstore",
    "flowlog.projections": "projections",
    "flowlog.sql": "sql",
}


def _packages() -> list[str]:
    found: list[str] = []
    for name, folder in FOLDERS.items():
        found += [name, *(f"{name}.{sub}" for sub in find_packages(folder))]
    return found


setup(
    package_dir=FOLDERS,
    packages=_packages(),
    package_data={
        "flowlog": ["py.typed"],
        "flowlog.console": ["templates/*", "static/*"],
        "flowlog.sql": ["migrations/*.sql", "queries/*.sql"],
    },
)
