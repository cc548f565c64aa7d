"""Users, console sign-in sessions and personal access tokens.

Passwords are stored as scrypt hashes; session tokens and personal access tokens are random
256-bit values stored only as SHA-256 (they are high-entropy, so a fast hash is enough), and a
token is shown once, in the response that creates it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from p2p.manager import schemas as s
from p2p.manager.db import Database
from p2p.manager.errors import Forbidden, Invalid, Unauthorized
from p2p.manager.models import PersonalAccessToken, User, UserSession, utcnow
from p2p.manager.service import Page, get_or_404, paginate

ROOT_USER = "root"
PAT_PREFIX = "dfp_"
SESSION_PREFIX = "dfs_"
# /oapi/v1/<resource> -> the scope a token needs (Dragonfly v2.2.2+ derives it from the path).
OAPI_SCOPES = {"jobs": "job", "clusters": "cluster", "preheats": "preheat"}


@dataclass(frozen=True)
class Principal:
    user_id: int
    name: str
    role: str


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=2**14, r=8, p=1)
    return hmac.compare_digest(digest.hex(), digest_hex)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class AuthService:
    def __init__(self, db: Database, *, session_ttl_s: float) -> None:
        self.db = db
        self.session_ttl = timedelta(seconds=session_ttl_s)

    # --- users ------------------------------------------------------------------------------

    def ensure_root(self, password: str | None) -> str | None:
        """Create the root user if missing. Returns the password only when it was generated here."""
        with self.db.tx() as session:
            if session.scalar(select(User).where(User.name == ROOT_USER)) is not None:
                return None
            generated = password is None
            secret = password if password is not None else secrets.token_urlsafe(12)
            session.add(User(name=ROOT_USER, role="root", password_hash=hash_password(secret)))
        return secret if generated else None

    def sign_in(self, body: s.SignIn) -> dict[str, Any]:
        with self.db.tx() as session:
            user = session.scalar(select(User).where(User.name == body.name))
            # Hash even for an unknown name, so timing does not reveal which names exist.
            ok = check_password(body.password, user.password_hash if user else hash_password("x"))
            if user is None or not ok or user.state != "enable":
                raise Unauthorized("incorrect name or password")
            session.execute(delete(UserSession).where(UserSession.expired_at < utcnow()))
            token = SESSION_PREFIX + secrets.token_urlsafe(32)
            expires = utcnow() + self.session_ttl
            session.add(UserSession(token_hash=token_hash(token), user_id=user.id, expired_at=expires))
            return {"token": token, "expire": expires.isoformat().replace("+00:00", "Z"),
                    "user": s.render_user(user)}

    def sign_out(self, token: str) -> None:
        with self.db.tx() as session:
            session.execute(delete(UserSession).where(UserSession.token_hash == token_hash(token)))

    def authenticate_session(self, token: str) -> Principal:
        with self.db.tx() as session:
            row = session.scalar(select(UserSession).where(UserSession.token_hash == token_hash(token)))
            if row is None or _aware(row.expired_at) <= utcnow():
                raise Unauthorized("sign in required")
            user = get_or_404(session, User, row.user_id, "user")
            if user.state != "enable":
                raise Unauthorized("user is disabled")
            return Principal(user.id, user.name, user.role)

    def create_user(self, body: s.UserCreate) -> dict[str, Any]:
        with self.db.tx() as session:
            user = User(name=body.name, email=body.email, role=body.role, password_hash=hash_password(body.password))
            session.add(user)
            session.flush()
            return s.render_user(user)

    def get_user(self, ident: int) -> dict[str, Any]:
        with self.db.tx() as session:
            return s.render_user(get_or_404(session, User, ident, "user"))

    def list_users(self, page: int, per_page: int) -> Page:
        with self.db.tx() as session:
            rows, total = paginate(session, select(User).order_by(User.id), page, per_page)
            return Page([s.render_user(u) for u in rows], total)

    def reset_password(self, ident: int, body: s.ResetPassword) -> None:
        with self.db.tx() as session:
            user = get_or_404(session, User, ident, "user")
            if not check_password(body.old_password, user.password_hash):
                raise Forbidden("old password is incorrect")
            user.password_hash = hash_password(body.new_password)
            session.execute(delete(UserSession).where(UserSession.user_id == ident))

    # --- personal access tokens -----------------------------------------------------------------

    def create_token(self, body: s.TokenCreate, user: Principal) -> dict[str, Any]:
        if _aware(body.expired_at) <= utcnow():
            raise Invalid("expired_at must be in the future")
        token = PAT_PREFIX + secrets.token_urlsafe(32)
        with self.db.tx() as session:
            row = PersonalAccessToken(
                name=body.name, bio=body.bio, token_hash=token_hash(token), token_hint=token[-4:],
                scopes=sorted(set(body.scopes)), state="active", expired_at=_aware(body.expired_at),
                user_id=user.user_id,
            )
            session.add(row)
            session.flush()
            return s.render_token(row, token=token)

    def update_token(self, ident: int, body: s.TokenUpdate) -> dict[str, Any]:
        with self.db.tx() as session:
            row = get_or_404(session, PersonalAccessToken, ident, "personal access token")
            for key, value in body.model_dump(exclude_none=True).items():
                setattr(row, key, sorted(set(value)) if key == "scopes" else value)
            session.flush()
            return s.render_token(row)

    def delete_token(self, ident: int) -> None:
        with self.db.tx() as session:
            session.delete(get_or_404(session, PersonalAccessToken, ident, "personal access token"))

    def get_token(self, ident: int) -> dict[str, Any]:
        with self.db.tx() as session:
            return s.render_token(get_or_404(session, PersonalAccessToken, ident, "personal access token"))

    def list_tokens(self, page: int, per_page: int, user_id: int | None) -> Page:
        with self.db.tx() as session:
            q = select(PersonalAccessToken).order_by(PersonalAccessToken.id)
            if user_id is not None:
                q = q.where(PersonalAccessToken.user_id == user_id)
            rows, total = paginate(session, q, page, per_page)
            return Page([s.render_token(r) for r in rows], total)

    def authenticate_token(self, token: str, resource: str) -> Principal:
        """The Open API check: 401 unknown; 403 inactive, expired or out of scope."""
        with self.db.tx() as session:
            row = session.scalar(select(PersonalAccessToken).where(PersonalAccessToken.token_hash == token_hash(token)))
            if row is None:
                raise Unauthorized("unknown personal access token")
            if row.state != "active":
                raise Forbidden("token is inactive")
            if _aware(row.expired_at) <= utcnow():
                raise Forbidden("token is expired")
            needed = OAPI_SCOPES.get(resource)
            if needed is None or needed not in (row.scopes or []):
                raise Forbidden(f"token has no {needed or resource!r} scope")
            user = session.get(User, row.user_id)
            if user is None:
                raise Unauthorized("token owner no longer exists")
            return Principal(user.id, user.name, user.role)


def require_root(user: Principal) -> None:
    if user.role != "root":
        raise Forbidden("root role required")

