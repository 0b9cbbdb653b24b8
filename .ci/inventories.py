"""
Make the intersphinx inventories the API reference links to, offline: for
each installed package named on the command line, pydoctor's
--make-intersphinx over its installed sources, into DIR/NAME-VERSION.inv
(kept between runs: remade only when the installed version changes).

    $ python .ci/inventories.py DIR twisted klein

tox -e docs runs it, then pydoctor with --intersphinx-file for each.
"""

import importlib
import importlib.metadata
import os
import subprocess
import sys
import tempfile


def inventory(directory: str, name: str) -> str:
    """
    @return: the path of C{name}'s inventory, made if need be.
    """
    version = importlib.metadata.version(name)
    path = os.path.join(directory, f"{name}-{version}.inv")
    if os.path.exists(path):
        return path
    source = os.path.dirname(importlib.import_module(name).__file__ or "")
    with tempfile.TemporaryDirectory(dir=directory) as output:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pydoctor",
                "--make-intersphinx",
                "--quiet",
                f"--project-name={name}",
                f"--project-version={version}",
                f"--html-output={output}",
                source,
            ],
            check=True,
            # Away from the checkout, whose pyproject.toml configures pydoctor
            # for txsessions.
            cwd=output,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.replace(os.path.join(output, "objects.inv"), path)
    return path


def main(directory: str, *names: str) -> None:
    """
    Make each package's inventory, and link it as DIR/NAME.inv.
    """
    os.makedirs(directory, exist_ok=True)
    for name in names:
        # The fixed name tox.ini passes to pydoctor.
        link = os.path.join(directory, f"{name}.inv")
        made = inventory(directory, name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.basename(made), link)


if __name__ == "__main__":
    main(*sys.argv[1:])
