# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Transfer-manager (TM) runtime for OpenNebula drivers written in Python.

This package is standard library only and runs on Python >= 3.6. It is used in
two places: the unit tests import it from the collection, and the
``nebula.storage.tm_driver`` module installs the very same files as a plain
Python package next to the driver's action executables.

Inside the package, modules import each other with relative imports only, so
that the package works under any name.
"""
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type
