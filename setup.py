"""Packages are found, not listed: every package under runtime/, train/ and export/ ships as mbmrl.<path>.

(pyproject's `packages.find` cannot prefix the import path, so this is the one thing done here.)
"""

from setuptools import find_packages, setup

TOP = ("runtime", "train", "export")
packages = find_packages(include=[f"{t}*" for t in TOP])
setup(packages=[f"mbmrl.{p}" for p in packages], package_dir={f"mbmrl.{t}": t for t in TOP})
