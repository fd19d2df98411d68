"""Mailman's posting pipeline with the one-query recipients handler in place of its own."""

from mailman.pipelines.base import BasePipeline
from mailman.pipelines.builtin import PostingPipeline

__all__ = ["MailstackPostingPipeline"]


class MailstackPostingPipeline(BasePipeline):
    """``default-posting-pipeline``, handler for handler, but ``mailstack-member-recipients``."""

    name = "mailstack-posting-pipeline"
    description = "The built-in posting pipeline, with the recipients computed in one query."

    _default_handlers = tuple(
        "mailstack-member-recipients" if handler == "member-recipients" else handler
        for handler in PostingPipeline._default_handlers
    )
