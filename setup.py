"""
Only what pyproject.toml cannot say: the twisted.plugins namespace holding
the twistd plugin.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["txsessions", "txsessions.*"]),
        "twisted.plugins",
    ],
    package_data={"txsessions": ["py.typed"]},
)
