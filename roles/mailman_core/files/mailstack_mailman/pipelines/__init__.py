"""Pipelines that Mailman's plugin loader finds (each module's ``__all__``)."""
