"""The plugin object Mailman instantiates from ``[plugin.mailstack] class:``."""

from mailman.interfaces.listmanager import ListCreatedEvent
from mailman.interfaces.mailinglist import IListArchiverSet
from mailman.interfaces.plugin import IPlugin
from zope import event
from zope.interface import implementer

__all__ = ["Plugin", "make_archiver_records"]


def make_archiver_records(created):
    """A new list gets its archiver records (one per archiver of mailman.cfg) where it is created, in
    the same transaction.

    Mailman makes them only when something first asks for them, and two processes asking at once
    make two of each; from then on every post to the list is shunted ("Multiple rows were found" in
    the rfc-2369 handler). A list's first post has its pipeline runner ask and then queue the post
    for the archive runner before it commits, and the archive runner asks too.
    """
    if isinstance(created, ListCreatedEvent):
        IListArchiverSet(created.mailing_list)


@implementer(IPlugin)
class Plugin:
    """No REST resource: the plugin brings components (a handler and a pipeline) and, in every
    Mailman process (REST, runners, commands), the archiver records of each list it creates."""

    resource = None

    def pre_hook(self):
        """Nothing to do before the database is up."""

    def post_hook(self):
        """Subscribe to the creation of lists (once per process)."""
        if make_archiver_records not in event.subscribers:
            event.subscribers.append(make_archiver_records)
