"""Package list for setuptools: `drivers/` is installed as `netdiag.drivers`.

pyproject.toml cannot rename the packages that `packages.find` discovers, so the drivers'
sub-packages are listed here under their installed names (package-dir maps the folder).
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["netdiag*"]) + ["netdiag.drivers"]
      + [f"netdiag.drivers.{name}" for name in find_packages("drivers")])
