"""Who gets a post's regular (non-digest) copy: Mailman's rules, applied to rows of one query.

Mailman's ``member-recipients`` handler asks each member of a list, one at a time, for its delivery
mode and delivery status; each answer is a walk along the member's preferences, then its address's,
then its user's, then the site's defaults (``Member._lookup``), two or three queries per member. The
plugin's handler fetches the same three preference records of every member in one query and applies
the same walk here.
"""

__all__ = ["effective", "regular_recipients"]


def effective(chain, default):
    """The first value of ``chain`` (member's, address's, user's preference) that is set, else ``default``.

    ``None`` means "not set at this level", as in Mailman's ``Member._lookup``; ``False`` is a value.
    """
    for value in chain:
        if value is not None:
            return value
    return default


def regular_recipients(rows, *, regular, enabled, default_mode, default_status):
    """The set of addresses that get the regular copy.

    ``rows``: one ``(email, modes, statuses)`` per member of the list with the role ``member``, where
    ``modes`` and ``statuses`` are the member's, the address's and the user's delivery mode and delivery
    status (``None`` where unset). A member gets the copy when its effective mode is ``regular`` and its
    effective status is ``enabled``; an address subscribed twice is one recipient.
    """
    return {
        email
        for email, modes, statuses in rows
        if effective(modes, default_mode) == regular and effective(statuses, default_status) == enabled
    }
