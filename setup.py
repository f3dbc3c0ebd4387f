"""Packaging that pyproject.toml cannot state: the otsensor namespace.

The three top-level folders install as ``otsensor.sensor``, ``otsensor.dissectors`` and
``otsensor.baselines`` (``otsensor`` itself is a namespace package with no code), so the
distribution never collides with another project's top-level ``sensor`` or ``baselines``.
"""
from setuptools import find_packages, setup

FOLDERS = ("sensor", "dissectors", "baselines")


def namespaced_packages() -> list[str]:
    return [f"otsensor.{name}" for folder in FOLDERS
            for name in (folder, *(f"{folder}.{sub}" for sub in find_packages(folder)))]


setup(
    packages=namespaced_packages(),
    package_dir={f"otsensor.{folder}": folder for folder in FOLDERS},
)
