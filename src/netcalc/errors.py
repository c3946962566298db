"""Every error netcalc answers with, as one hierarchy.

Each error carries the contract's machine code (`status`), the HTTP status it
is answered with, and a short human message. The RFC 6749 §5.2 code used by
the standard OAuth endpoints is carried too where it differs.

    NetcalcError
    ├── RequestError            the request itself is unusable
    │   ├── RequestTooLarge         413 REQUEST_TOO_LARGE
    │   ├── HeadersTooLarge         431 REQUEST_TOO_LARGE
    │   │   └── UriTooLong              414 REQUEST_TOO_LARGE
    │   ├── RequestTimeout          408 REQUEST_TIMEOUT
    │   ├── MissingHeader           400 MISSING_HEADER
    │   ├── InvalidRequest          400 INVALID_REQUEST
    │   ├── UnreadableBody          400 INVALID_REQUEST (body has no known end)
    │   │   └── UnknownTransferCoding   501 NOT_IMPLEMENTED
    │   ├── ClientGone              400 CLIENT_DISCONNECTED (logged, never seen)
    │   ├── MethodNotAllowed        405 METHOD_NOT_ALLOWED
    │   └── MissingValues           400 MISSING_VALUES
    ├── GrantError              the token endpoint refuses a grant
    │   ├── MissingCredentials      401 MISSING_CREDENTIALS
    │   ├── InvalidGrantType        401 INVALID_GRANT_TYPE
    │   │   └── MissingGrantType        401 INVALID_GRANT_TYPE (invalid_request)
    │   ├── TooManyRequests         429 TOO_MANY_REQUESTS
    │   ├── CredentialsNotFound     401 CREDENTIALS_NOT_FOUND
    │   ├── InvalidCredentials      401 INVALID_CREDENTIALS
    │   ├── RevokedCredentials      401 REVOKED_CREDENTIALS
    │   └── InvalidGrant            401 INVALID_GRANT
    │       └── InvalidScope            401 INVALID_GRANT (invalid_scope)
    ├── BearerError             the bearer guard refuses an account API call
    │   ├── BearerMissing           401 INVALID_REQUEST
    │   ├── InvalidToken            401 INVALID_GRANT
    │   └── InsufficientScope       403 INSUFFICIENT_SCOPE
    ├── NotFound                400 NOT_FOUND
    │   └── NoSuchEndpoint          404 NOT_FOUND
    ├── CsrfRejected            403 CSRF_REJECTED
    ├── SignUpClosed            403 SIGN_UP_CLOSED
    ├── FormAlreadySent         409 FORM_ALREADY_SENT
    ├── NetworkAddressInvalid   400 NETWORK_ADDRESS_INVALID
    ├── NoAddressSpecified      400 NO_ADDRESS_SPECIFIED
    ├── InvalidAddress          400 INVALID_ADDRESS
    ├── ServerBusy              503 SERVICE_UNAVAILABLE
    ├── UnexpectedError         500 SYSTEM_ERROR
    └── UsageError              a CLI or management call that cannot be done
"""

from __future__ import annotations

from typing import ClassVar

from netcalc.auth.client_secrets import SECRET_PREFIX


class NetcalcError(Exception):
    """Base of every error netcalc reports to a caller."""

    status: ClassVar[str] = "SYSTEM_ERROR"
    http_status: ClassVar[int] = 500
    oauth_error: ClassVar[str] = "server_error"
    default_message: ClassVar[str] = "An unexpected error occurred."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """Extra response headers this error is answered with."""
        return {}


class RequestError(NetcalcError):
    """The request cannot be read as the endpoint expects."""

    http_status = 400
    oauth_error = "invalid_request"


class RequestTooLarge(RequestError):
    """The body is larger than the configured limit."""

    status = "REQUEST_TOO_LARGE"
    http_status = 413
    default_message = "The request body is larger than the server accepts."


class HeadersTooLarge(RequestError):
    """The request line and header fields are larger than the configured limit."""

    status = "REQUEST_TOO_LARGE"
    http_status = 431
    default_message = "The request headers are larger than the server accepts."


class UriTooLong(HeadersTooLarge):
    """The request target alone is larger than the header limit."""

    http_status = 414
    default_message = "The URL is longer than the server accepts."


class RequestTimeout(RequestError):
    """The client did not send its whole request within the request timeout."""

    status = "REQUEST_TIMEOUT"
    http_status = 408
    default_message = "The request did not arrive in time; send it again, whole."


class MissingHeader(RequestError):
    """Content-Type is absent or names a media type the endpoint cannot read."""

    status = "MISSING_HEADER"
    default_message = (
        "Send the body as application/json (or application/x-www-form-urlencoded)."
    )


class InvalidRequest(RequestError):
    """The body does not parse, or its fields have the wrong shape."""

    status = "INVALID_REQUEST"
    default_message = "The request is malformed."


class UnreadableBody(RequestError):
    """The request's body cannot be read, so nothing sent after its head is:
    where it ends is unknown (RFC 9112 §6.3)."""

    status = "INVALID_REQUEST"
    default_message = "Where the request's body ends is unknown; send Content-Length."


class UnknownTransferCoding(UnreadableBody):
    """The body is chunked over another transfer coding, which is not
    implemented (RFC 9112 §6.1)."""

    status = "NOT_IMPLEMENTED"
    http_status = 501
    default_message = (
        "The request's Transfer-Encoding is not one this server implements; "
        "send the body with Content-Length, or with 'Transfer-Encoding: chunked'."
    )


class ClientGone(RequestError):
    """The client closed the connection before its body arrived."""

    status = "CLIENT_DISCONNECTED"
    default_message = "The client disconnected before sending the whole body."


class MethodNotAllowed(RequestError):
    """The endpoint does not answer this HTTP method."""

    status = "METHOD_NOT_ALLOWED"
    http_status = 405

    def __init__(self, allow: str, message: str | None = None) -> None:
        self.allow = allow
        super().__init__(message or f"This endpoint only accepts {allow}.")

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allow}


class MissingValues(RequestError):
    """A required field of the body is absent or empty."""

    status = "MISSING_VALUES"
    default_message = "A required value is missing."


class GrantError(NetcalcError):
    """The token endpoint refuses to grant a token (RFC 6749 §5.2)."""

    http_status = 401
    oauth_error = "invalid_client"


class MissingCredentials(GrantError):
    """client_id or client_secret is absent, null or empty."""

    status = "MISSING_CREDENTIALS"
    default_message = "The request is missing client_id, client_secret, or both."


class InvalidGrantType(GrantError):
    """grant_type is absent or not client_credentials."""

    status = "INVALID_GRANT_TYPE"
    oauth_error = "unsupported_grant_type"
    default_message = "The grant_type must be 'client_credentials'."


class MissingGrantType(InvalidGrantType):
    """grant_type is absent: a missing parameter to RFC 6749 §5.2."""

    oauth_error = "invalid_request"
    default_message = "The grant_type parameter is missing."


class TooManyRequests(GrantError):
    """Too many failed attempts for this client id or from this address."""

    status = "TOO_MANY_REQUESTS"
    http_status = 429
    # RFC 6749 has no code for throttling; this one says "retry later".
    oauth_error = "temporarily_unavailable"
    default_message = "Too many failed attempts; retry later."
    counted = "failed attempts"
    """What there were too many of, as the message says it."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(
            f"Too many {self.counted}; retry in {self.retry_after} seconds."
        )

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManySignUps(TooManyRequests):
    """Too many console sign-ups from this address, successful or not."""

    default_message = "Too many sign-ups from this address; retry later."
    counted = "sign-ups from this address"


class CredentialsNotFound(GrantError):
    """No credentials have that client_id."""

    status = "CREDENTIALS_NOT_FOUND"
    default_message = "The credentials supplied are not valid."


class InvalidCredentials(GrantError):
    """The client_id exists but the secret does not match it."""

    status = "INVALID_CREDENTIALS"
    default_message = "The credentials supplied are not valid."


class RevokedCredentials(GrantError):
    """The id and secret match, but the credentials were revoked."""

    status = "REVOKED_CREDENTIALS"
    default_message = "The credentials supplied have been revoked."


class InvalidGrant(GrantError):
    """Valid credentials that may not be granted a token."""

    status = "INVALID_GRANT"
    oauth_error = "unauthorized_client"
    default_message = "No token can be granted to these credentials."


class InvalidScope(InvalidGrant):
    """A requested scope is unknown or not allowed to these credentials."""

    oauth_error = "invalid_scope"
    default_message = "The requested scope is not allowed for these credentials."


class BearerError(NetcalcError):
    """The bearer guard refuses the call (RFC 6750 §3)."""

    http_status = 401
    challenge: ClassVar[str] = 'Bearer realm="netcalc"'

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.challenge}


class BearerMissing(BearerError):
    """No Authorization header, or a scheme other than Bearer."""

    status = "INVALID_REQUEST"
    default_message = "Send an access token as 'Authorization: Bearer <token>'."


class InvalidToken(BearerError):
    """The token is malformed, forged, expired or revoked."""

    status = "INVALID_GRANT"
    challenge = 'Bearer realm="netcalc", error="invalid_token"'
    default_message = "The access token supplied is invalid."


class InsufficientScope(BearerError):
    """The token is valid but lacks the scope the endpoint requires."""

    status = "INSUFFICIENT_SCOPE"
    http_status = 403

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__(f"This call requires the '{scope}' scope.")

    def headers(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": (
                f'Bearer realm="netcalc", error="insufficient_scope", '
                f'scope="{self.scope}"'
            )
        }


class NotFound(NetcalcError):
    """The resource does not exist for this account."""

    status = "NOT_FOUND"
    http_status = 400
    default_message = "Nothing was found with that id."


class CsrfRejected(NetcalcError):
    """A console form came without the CSRF token of the caller's session."""

    status = "CSRF_REJECTED"
    http_status = 403
    default_message = (
        "This form has expired or was not sent from this site. "
        "Reload the page and try again."
    )


class SignUpClosed(NetcalcError):
    """Console sign-up is turned off (NETCALC_SIGNUP=closed)."""

    status = "SIGN_UP_CLOSED"
    http_status = 403
    default_message = (
        "Sign-up is closed on this server. An operator creates accounts with "
        "'netcalc accounts create EMAIL'."
    )


class FormAlreadySent(NetcalcError):
    """A console form that was sent before, as by a reload or a double click."""

    status = "FORM_ALREADY_SENT"
    http_status = 409
    default_message = (
        "This form was already sent, and its secret was shown once on the page "
        "that answered it. If you did not copy it, rotate the credentials to get "
        "a new secret."
    )


class NoSuchEndpoint(NotFound):
    """No route answers this path."""

    http_status = 404
    default_message = "No such endpoint."


class SubnetLimitReached(NetcalcError):
    """The account already holds as many saved subnets as it may."""

    status = "SUBNET_LIMIT_REACHED"
    http_status = 400
    default_message = "This account has saved as many subnets as it may."


class NetworkAddressInvalid(NetcalcError):
    """A saved subnet's address or prefix length is not a valid IPv4 network."""

    status = "NETWORK_ADDRESS_INVALID"
    http_status = 400
    default_message = (
        "network_address must be an IPv4 address in dotted form, such as 192.168.1.0."
    )


class NoAddressSpecified(NetcalcError):
    """The calculator was called without an address."""

    status = "NO_ADDRESS_SPECIFIED"
    http_status = 400
    default_message = "Give an address, such as /api/ip/192.168.1.0/24."


class InvalidAddress(NetcalcError):
    """The calculator cannot read the address it was given."""

    status = "INVALID_ADDRESS"
    http_status = 400
    default_message = "The address is not a valid IPv4 address or subnet."


class ServerBusy(NetcalcError):
    """This process holds as many connections as it is configured to."""

    status = "SERVICE_UNAVAILABLE"
    http_status = 503
    oauth_error = "temporarily_unavailable"
    default_message = "The server is busy; retry in a moment."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class UnexpectedError(NetcalcError):
    """An unexpected failure; nothing internal is shown."""


class UsageError(NetcalcError):
    """A management call (CLI or console) that cannot be carried out."""

    status = "USAGE_ERROR"
    http_status = 400


def quoted(value: object, limit: int = 64) -> str:
    """A caller's value quoted for a message, cut short so nothing floods it.

    A value holding a client secret, pasted into the wrong field, is not
    repeated back: no response carries a secret.
    """
    text = str(value)
    if SECRET_PREFIX in text:
        return "(a value holding a client secret)"
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text)
