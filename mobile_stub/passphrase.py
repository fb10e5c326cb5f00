"""How strong a device store's passphrase must be.

The passphrase is all that protects a stolen tablet's clinical records: whoever holds the file
can guess offline, as fast as Argon2id lets them (64 MiB, 3 passes: about 0.2 s per guess per
core, so millions of guesses a day on a rack of machines). The rule, after NIST SP 800-63B
(section 5.1.1.2: length and a check against what attackers try first, no composition rules):

- at least 12 characters (three random words, or a sentence, are easy to type and remember);
- at least 5 different characters, and not a run or a sequence ("aaaa…", "1234…", "abcd…");
- not one of the passwords and phrases attackers try first (a short list, matched ignoring
  case, spaces and trailing digits).
"""

from __future__ import annotations

import re

from .errors import DeviceError

MIN_LENGTH = 12
MIN_DISTINCT = 5
COMMON = frozenset({
    "password", "passphrase", "passw0rd", "qwerty", "qwertyuiop", "letmein", "iloveyou",
    "welcome", "admin", "administrator", "changeme", "carecouch", "nhsnurse", "nurse",
    "monkey", "dragon", "football", "sunshine", "princess", "trustno1", "abc123",
    "correcthorsebatterystaple", "thequickbrownfox", "opensesame", "secret",
})


class WeakPassphrase(DeviceError, ValueError):
    """The passphrase would not protect an encrypted clinical store."""


def check(passphrase: str) -> None:
    """Raise :class:`WeakPassphrase` saying what is wrong, or return."""
    if len(passphrase) < MIN_LENGTH:
        raise WeakPassphrase(f"the store passphrase must be at least {MIN_LENGTH} characters "
                             f"(three random words are easy to remember); this one has "
                             f"{len(passphrase)}")
    if len(set(passphrase)) < MIN_DISTINCT or _sequence(passphrase):
        raise WeakPassphrase("the store passphrase repeats one pattern (like 'aaaa' or "
                             "'1234'); use words or a sentence")
    core = re.sub(r"[\s\W_]+", "", passphrase.lower()).rstrip("0123456789")
    if core in COMMON:
        raise WeakPassphrase("the store passphrase is one attackers try first; choose "
                             "words of your own")


_RUNS = ("0123456789" * 4, "9876543210" * 4, "abcdefghijklmnopqrstuvwxyz" * 2,
         "zyxwvutsrqponmlkjihgfedcba" * 2, "qwertyuiopasdfghjklzxcvbnm" * 2)


def _sequence(text: str) -> bool:
    lowered = text.lower()
    steps = {ord(b) - ord(a) for a, b in zip(lowered, lowered[1:], strict=False)}
    return (len(steps) == 1 and steps <= {-1, 0, 1}) or any(lowered in run for run in _RUNS)
