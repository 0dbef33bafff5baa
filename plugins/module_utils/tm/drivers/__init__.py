# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TM drivers built on the runtime; see ``..registry`` for the driver contract."""
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type
