"""Stand-in for the pip bootstrap script that ansible-test downloads.

ansible-test fetches ``get-pip-<version>.py`` from a CI host this project's
machines cannot reach. It runs the cached script with pip-style arguments
(``pip==X.Y`` plus ``--no-setuptools``/``--no-wheel``). This stand-in does the
same job with what every CPython has: ``ensurepip``, then ``pip install`` of
the requested packages from the configured package index.
"""
import subprocess
import sys


def main():
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade"] + args)


if __name__ == "__main__":
    main()
