"""A token request as the realm reads it, from either form of the Docker token protocol.

`GET /jwt/auth` (the token spec) carries Basic credentials in `Authorization` and `service`,
`scope` (any number), `account`, `offline_token` and `client_id` in the query. `POST
/jwt/auth` (the OAuth2 spec, which containerd tries first and Docker uses once it holds a
refresh token) carries a form: `grant_type` (`password` with `username` and `password`, or
`refresh_token` with `refresh_token`), `service`, `client_id`, `scope` (space-separated; we
also take it repeated) and `access_type=offline`. Both become one `TokenRequest`; anything
malformed is a `Refusal`, a 4xx that names no secret.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse

from gdk_geo.registry.tokens import Access, BadScope, parse_scope

MAX_QUERY = 8192  # bytes of query string; a real client's is a few hundred
MAX_FORM = 16 * 1024  # bytes of POST body, the same order as a head (realm_http.HEAD_LIMIT)
DRAIN_FORM = 1024 * 1024  # an oversized body up to this is read to its end, unkept
MAX_FIELDS = 64
MAX_SCOPES = 32  # one pull or push asks for two or three
MAX_AUTHORIZATION = 1024
MAX_CREDENTIAL = 1024  # a username, password or refresh token, in bytes
BASIC_REALM = 'Basic realm="GitLab"'
FORM_TYPE = "application/x-www-form-urlencoded"
LOGIN_FIX = "run `invoke geo.login` to log Docker in as the project's registry user"


class Refusal(Exception):
    """A request the realm answers with a 4xx: Docker's error body, for the OAuth2 form
    RFC 6749's `error` too, and `WWW-Authenticate: Basic` on a 401."""

    def __init__(
        self, status: int, code: str, message: str, *, oauth: str = "invalid_request"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.oauth = oauth

    def response(self, *, form: bool) -> JSONResponse:
        """The reply. Docker and skopeo print `errors[0]` (containerd only the status); an
        OAuth2 client reads `error` and `error_description`, so a POST gets both."""
        body: dict[str, object] = {"errors": [{"code": self.code, "message": self.message}]}
        if form:
            body |= {"error": self.oauth, "error_description": self.message}
        response = JSONResponse(body, status_code=self.status)
        if self.status == 401:
            response.headers["WWW-Authenticate"] = BASIC_REALM
        return response


def invalid(message: str, oauth: str = "invalid_request") -> Refusal:
    return Refusal(400, "INVALID_REQUEST", message, oauth=oauth)


@dataclass(frozen=True)
class TokenRequest:
    """What was asked, whichever form asked it.

    `username`/`password` come from Basic credentials or the password grant,
    `refresh_token` from the refresh grant; none of them means anonymous.
    """

    form: bool
    service: str | None
    scopes: list[Access]
    username: bytes | None = field(default=None, repr=False)
    password: bytes | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    account: str | None = None
    offline: bool = False


def from_query(request: Request) -> TokenRequest:
    """`GET /jwt/auth`, as docker login, docker pull/push, skopeo and curl send it."""
    if len(request.url.query.encode()) > MAX_QUERY:
        raise invalid("the query string is too long")
    params = request.query_params
    username, password = basic_credentials(request.headers.get("authorization"))
    return TokenRequest(
        form=False,
        service=params.get("service"),
        scopes=requested(params.getlist("scope")),
        username=username,
        password=password,
        account=params.get("account"),
        offline=params.get("offline_token", "").lower() == "true",
    )


async def from_form(request: Request) -> TokenRequest:
    """`POST /jwt/auth`, as containerd (`FetchTokenWithOAuth`) and Docker with a refresh
    token send it."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_TYPE:
        raise invalid(f"the body must be {FORM_TYPE}")
    fields = _form_fields(await _read_form(request))
    if not fields.get("client_id"):
        raise invalid("client_id is required")
    grant = fields.get("grant_type")
    username, password, refresh_token = _grant(grant, fields)
    return TokenRequest(
        form=True,
        service=fields.get("service"),
        scopes=requested(fields.getlist("scope")),
        username=username,
        password=password,
        refresh_token=refresh_token,
        offline=fields.get("access_type") == "offline",
    )


def _grant(grant: str | None, fields: _Fields) -> tuple[bytes | None, bytes | None, str | None]:
    """(username, password, refresh token) of the form's grant; exactly one kind is set."""
    if grant == "password":
        username, password = fields.get("username"), fields.get("password")
        if username is None or password is None:
            raise invalid("the password grant needs username and password")
        return _credential(username), _credential(password), None
    if grant == "refresh_token":
        token = fields.get("refresh_token")
        if not token:
            raise invalid("the refresh_token grant needs refresh_token")
        return None, None, _credential(token).decode()
    if grant is None:
        raise invalid("grant_type is required")
    raise invalid("grant_type must be password or refresh_token", "unsupported_grant_type")


class _Fields:
    """Form fields by name; every one but `scope` at most once (RFC 6749 §3.1)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)
        repeated = sorted(n for n, v in self._values.items() if len(v) > 1 and n != "scope")
        if repeated:
            raise invalid(f"{', '.join(repeated)} given more than once")

    def get(self, name: str) -> str | None:
        return self._values.get(name, [None])[0]

    def getlist(self, name: str) -> list[str]:
        return self._values.get(name, [])


def _form_fields(body: bytes) -> _Fields:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise invalid("the form is not valid UTF-8 or has too many fields") from None
    return _Fields(pairs)


async def _read_form(request: Request) -> bytes:
    """The body, up to `MAX_FORM`; a longer one is read on to its end (up to `DRAIN_FORM`)
    and refused with 413: answering while the client still sends would reset the
    connection instead (see realm_http.py)."""
    body, read = bytearray(), 0
    async for chunk in request.stream():
        read += len(chunk)
        if read <= MAX_FORM:
            body += chunk
        elif read > DRAIN_FORM:
            break
    if read > MAX_FORM:
        raise Refusal(413, "INVALID_REQUEST", f"the form is larger than {MAX_FORM} bytes")
    return bytes(body)


def _credential(value: str) -> bytes:
    encoded = value.encode()
    if len(encoded) > MAX_CREDENTIAL:
        raise unauthorized("the credentials are too long")
    return encoded


def basic_credentials(header: str | None) -> tuple[bytes | None, bytes | None]:
    """(username, password) of a Basic `Authorization`, (None, None) without one."""
    if header is None:
        return None, None
    if len(header) > MAX_AUTHORIZATION:
        raise unauthorized("the Authorization header is too long")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise unauthorized("only Basic credentials are accepted here")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise unauthorized("malformed Basic credentials") from None
    username, colon, password = decoded.partition(b":")
    if not colon:
        raise unauthorized("malformed Basic credentials")
    return username, password


def unauthorized(problem: str) -> Refusal:
    """401 for credentials that are missing, wrong or unusable, naming the fix: Docker and
    containerd show this message, where the registry's own `denied` names none."""
    return Refusal(401, "UNAUTHORIZED", f"{problem}: {LOGIN_FIX}", oauth="invalid_grant")


def requested(values: list[str]) -> list[Access]:
    """Every scope asked for; a parameter may hold several, separated by spaces."""
    scopes = [scope for value in values for scope in value.split(" ") if scope]
    if len(scopes) > MAX_SCOPES:
        raise invalid(f"at most {MAX_SCOPES} scopes per request", "invalid_scope")
    try:
        return [parse_scope(scope) for scope in scopes]
    except BadScope as exc:
        raise invalid(str(exc), "invalid_scope") from None
