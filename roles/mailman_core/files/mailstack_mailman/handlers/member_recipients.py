"""The regular recipients of a post, in one query instead of two or three per member."""

from mailman.config import config
from mailman.core.constants import system_preferences
from mailman.interfaces.handler import IHandler
from mailman.interfaces.member import DeliveryMode, DeliveryStatus, MemberRole
from mailman.model.address import Address
from mailman.model.member import Member
from mailman.model.preferences import Preferences
from mailman.model.user import User
from sqlalchemy import func
from sqlalchemy.orm import aliased
from zope.interface import implementer

from mailstack_mailman.recipients import regular_recipients

__all__ = ["MemberRecipients"]


def member_rows(list_id):
    """One row per member (role ``member``) of the list: its address, and the delivery mode and status
    set on the member, on the address and on the address's user (``None`` where unset).

    The address is the one Mailman's ``Member.address`` gives: the subscribed address, or for a member
    subscribed as a user, that user's preferred address (a user without one has no address and gets
    nothing, where Mailman's own handler would fail on it).
    """
    store = config.db.store
    subscribed_user = aliased(User)
    address = aliased(Address)
    address_user = aliased(User)
    member_prefs, address_prefs, user_prefs = aliased(Preferences), aliased(Preferences), aliased(Preferences)
    query = (
        store.query(
            address.email,
            member_prefs.delivery_mode,
            address_prefs.delivery_mode,
            user_prefs.delivery_mode,
            member_prefs.delivery_status,
            address_prefs.delivery_status,
            user_prefs.delivery_status,
        )
        .select_from(Member)
        .outerjoin(subscribed_user, Member.user_id == subscribed_user.id)
        .join(address, address.id == func.coalesce(Member.address_id, subscribed_user._preferred_address_id))
        .outerjoin(member_prefs, Member.preferences_id == member_prefs.id)
        .outerjoin(address_prefs, address.preferences_id == address_prefs.id)
        .outerjoin(address_user, address.user_id == address_user.id)
        .outerjoin(user_prefs, address_user.preferences_id == user_prefs.id)
        .filter(Member.list_id == list_id, Member.role == MemberRole.member)
    )
    for email, mode_m, mode_a, mode_u, status_m, status_a, status_u in query:
        yield email, (mode_m, mode_a, mode_u), (status_m, status_a, status_u)


@implementer(IHandler)
class MemberRecipients:
    """Mailman's ``member-recipients``, with the members' preferences read in one query."""

    name = "mailstack-member-recipients"
    description = "Calculate the regular recipients of the message (one query for all members)."

    def process(self, mlist, msg, msgdata):
        """See `IHandler`: sets ``msgdata['recipients']`` as Mailman's own handler does."""
        if "recipients" in msgdata:
            return
        if "urgent" in msg:
            # Mailman's "Urgent:" path (its own handler authenticates and may reject): left to it.
            config.handlers["member-recipients"].process(mlist, msg, msgdata)
            return
        sender = mlist.members.get_member(msg.sender)
        recipients = regular_recipients(
            member_rows(mlist.list_id),
            regular=DeliveryMode.regular,
            enabled=DeliveryStatus.enabled,
            default_mode=system_preferences.delivery_mode,
            default_status=system_preferences.delivery_status,
        )
        if sender is not None and not sender.receive_own_postings:
            recipients.discard(sender.address.email)
        msgdata["recipients"] = recipients
