# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Driver registry and the entry point the installed action executables call.

A driver is a module in ``drivers/`` exposing ``ACTIONS`` (OpenNebula 7.x
protocol: action name -> ``function(ctx, args)``), ``LEGACY_ACTIONS`` (3.x
``tm_<action>.sh`` protocol, same shape) and ``DEFAULT_RC`` (list of
``(KEY, value)`` pairs written to the driver's rc file).
"""
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import importlib
import os
import sys

from .common import Context, error_message, is_yes, run_action
from .rc import RcError, read_rc

DRIVERS = ("nfs_shared", "gfs2clvm", "onestor")

PROTOCOLS = ("7", "3")


def load_driver(name):
    if name not in DRIVERS:
        raise KeyError("unknown TM driver %r (known: %s)" % (name, ", ".join(DRIVERS)))
    return importlib.import_module("%s.drivers.%s" % (__package__, name))


def actions_of(driver, protocol="7"):
    return driver.LEGACY_ACTIONS if protocol == "3" else driver.ACTIONS


def main(driver_name, action, argv=None, protocol="7", rc_path=None, stderr=None):
    """Run one action; returns the exit code. ``rc_path``: the driver's rc file."""
    argv = sys.argv[1:] if argv is None else argv
    settings = {}
    rc_error = None
    if rc_path:
        try:
            settings = read_rc(rc_path)
        except RcError as exc:
            rc_error = str(exc)
    legacy = protocol == "3" or is_yes(settings.get("LEGACY_ERRORS", "no"))
    ctx = Context(action, settings, legacy=legacy, stderr=stderr,
                  driver_dir=os.path.dirname(rc_path) if rc_path else None)
    if rc_error:
        error_message(ctx, "%s: %s" % (action, rc_error))
        return 1
    try:
        table = actions_of(load_driver(driver_name), protocol)
    except KeyError as exc:
        error_message(ctx, str(exc.args[0]))
        return 1
    func = table.get(action)
    if func is None:
        error_message(ctx, "%s: Operation not supported by the %s driver" % (action, driver_name))
        return 1
    return run_action(ctx, func, argv)
