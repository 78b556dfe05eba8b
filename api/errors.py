"""Errors of the use cases: what a user did wrong or may not do. The HTTP layer maps them to 4xx
problem+json responses and the CLI to one line and a non-zero exit."""

from __future__ import annotations


class CrmError(Exception):
    """Root of the use-case errors."""


class UnknownPartner(CrmError):
    pass


class NotAConsortiumPartner(CrmError):
    """The partner's signing address is not a partner of the Consortium contract."""


class NotFound(CrmError):
    """Unknown member or interaction, or one the caller may not see: the two are deliberately the same
    answer, so a partner cannot probe for another partner's customers."""


class CustomerIsErased(CrmError):
    pass


class ConsentRequired(CrmError):
    """The member has no valid consent to this controller for this purpose (answered by the chain)."""


class InvalidInput(CrmError):
    pass


class MalformedInput(InvalidInput):
    """A value that does not parse: not an address, an unknown purpose, a duration, a file that cannot
    be read or is not what it should be. Said before any rule is looked at; the CLI exits 2 for it, as
    for any malformed option (HTTP: 422, as for any invalid input)."""


class NotAllowed(CrmError):
    """The principal may not do this (an auditor recording interactions, a partner acting as another)."""


class Busy(CrmError):
    """Another process is doing the same thing right now (an import into the same partner)."""


class SourceStopped(CrmError):
    """The process reading an import's source ended before the source did (killed, out of memory, or
    its output broken); what the import wrote before that is kept, and running it again adds the rest."""


class CheckStopped(CrmError):
    """A process checking part of a run (a verification's second process) stopped before it answered:
    the run is incomplete and reports nothing; running it again checks everything."""


class Conflict(CrmError):
    """The request contradicts what is already recorded (the same key with other data)."""


class LogOutOfStep(CrmError):
    """The partner's log on chain is not where the store's next batch starts: the store is older than
    the chain (restored from a backup, or replaced), or an earlier batch has not been sent."""


class Unauthenticated(CrmError):
    """No credential, or one that is not (or no longer) valid: the HTTP API answers 401."""


class Gone(CrmError):
    """A one-time credential that was good once and is no longer: used, or expired (HTTP 410)."""
