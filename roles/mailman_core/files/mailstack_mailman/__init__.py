"""mailstack's Mailman 3 plugin: a posting pipeline whose recipients come from one query.

Mailman loads it through its own extension point (``[plugin.mailstack]`` in mailman.cfg, written by
the mailman_core role): the ``handlers`` and ``pipelines`` subpackages are searched for components.
It adds the handler ``mailstack-member-recipients`` and the pipeline ``mailstack-posting-pipeline``,
Mailman's ``default-posting-pipeline`` with that handler in place of ``member-recipients``. A list
uses it when its ``posting_pipeline`` says so; the stock pipeline stays available to every list.

This module imports nothing from Mailman, so that the pure rules (``recipients``) can be tested
without it.
"""
