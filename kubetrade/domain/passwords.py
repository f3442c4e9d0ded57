"""What makes a dashboard password easy to guess: one list and one rule for the
pre-flight's "Password Changed" check and the start-up warning of ``kubetrade local``
and ``kubetrade api`` on a network address. Pure; never returns the password."""

from __future__ import annotations

MIN_PASSWORD_LENGTH = 12
"""Characters under which a password on the network is called weak (NIST SP 800-63B
asks for at least 8 chosen by a person; 12 leaves a margin for an API with no second
factor)."""

DEFAULT_PASSWORDS: frozenset[str] = frozenset({
    "", "admin", "administrator", "password", "passw0rd", "changeme", "change-me",
    "change_me", "kubetrade", "your-secure-password", "secret", "letmein", "qwerty",
    "123456", "12345678", "123456789", "1234567890", "trading",
})
"""Values left in place from examples, and the most guessed ones (compared in lower
case, surrounding spaces ignored)."""


def is_default_password(password: str) -> bool:
    """Whether ``password`` is an example/default value (:data:`DEFAULT_PASSWORDS`)."""
    return password.strip().lower() in DEFAULT_PASSWORDS


def weak_password_reason(password: str) -> str | None:
    """Why ``password`` is easy to guess (a default value, or shorter than
    :data:`MIN_PASSWORD_LENGTH`), or None. The reason never contains the password."""
    if is_default_password(password):
        return "it is a well-known password"
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"it is shorter than {MIN_PASSWORD_LENGTH} characters"
    return None
