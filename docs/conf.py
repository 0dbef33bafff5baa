# Copyright (c) Ansible Project
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Created with antsibull-docs 2.28.0

# This file only contains a selection of the most common options. For a full list see the
# documentation:
# http://www.sphinx-doc.org/en/master/config

project = 'nebula.storage'
copyright = 'nebula.storage contributors'

title = 'nebula.storage'
html_short_title = 'nebula.storage'

extensions = ['sphinx.ext.autodoc', 'sphinx.ext.intersphinx', 'sphinx_antsibull_ext', 'myst_parser']

# The guide pages (rst/guide/*.md) include the README's sections and the roles' READMEs with MyST,
# so that the site and the repository say the same thing. Their headings start at H2 and their
# relative links point into the repository, which the site does not hold.
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
myst_heading_anchors = 3
suppress_warnings = ['myst.header', 'myst.xref_missing']

pygments_style = 'ansible'

highlight_language = 'YAML+Jinja'

html_theme = 'sphinx_ansible_theme'
html_show_sphinx = False

display_version = False

html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False

# No intersphinx inventories: the build never reaches the network (CI machines reach only package
# registries); references to other collections' docs stay plain text.
intersphinx_mapping = {}
intersphinx_disabled_reftypes = ['*']

default_role = 'any'

nitpicky = True
