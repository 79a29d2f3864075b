"""CRE Integration: Arkea BAF vacations into the MMG dataplatform, on Apache Beam."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="cre-integration",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.11",
    packages=find_packages(include=["pipelines", "pipelines.*", "transforms", "io_connectors",
                                    "schemas", "service", "service.*", "sender"]),
    package_data={"schemas": ["*.avsc"],
                  "service.console": ["templates/*.html", "static/*.css"]},
    install_requires=[
        line.strip()
        for line in Path(__file__).with_name("requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    ],
    entry_points={"console_scripts": ["cre=pipelines.commands:main",
                                    "cre-worker=pipelines.sdk_worker:main"]},
)
