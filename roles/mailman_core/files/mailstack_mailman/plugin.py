"""The plugin object Mailman instantiates from ``[plugin.mailstack] class:``."""

from mailman.interfaces.plugin import IPlugin
from zope.interface import implementer

__all__ = ["Plugin"]


@implementer(IPlugin)
class Plugin:
    """No hooks and no REST resource: the plugin only brings components (a handler and a pipeline)."""

    resource = None

    def pre_hook(self):
        """Nothing to do before the database is up."""

    def post_hook(self):
        """Nothing to do after it."""
