"""Money: a Decimal amount that always carries its currency."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

# Plenty for any bill; guards against "1e999999" style inputs that Decimal would happily accept.
MAX_ABS_AMOUNT = Decimal("1e15")
# What the store keeps of an amount: under 10^15 in absolute value, with at most 12 decimals.
STORED_DECIMALS = 12


def storable(amount: Decimal) -> bool:
    """True when the database can hold the amount exactly (under 10^15, at most 12 decimals)."""
    exponent = amount.as_tuple().exponent
    return (
        amount.is_finite()
        and abs(amount) < MAX_ABS_AMOUNT
        and isinstance(exponent, int)
        and exponent >= -STORED_DECIMALS
    )


# Credits that are not money, reported in a lower-case unit word where money has its upper-case ISO code:
# shown without a currency sign, compared only with the same unit, never added to money.
UNITS = frozenset({"characters", "credits", "diem", "tokens"})


def is_unit(currency: str) -> bool:
    """True for a unit word such as "characters" (credits that are not money)."""
    return currency in UNITS


class CurrencyMismatchError(ValueError):
    """Two amounts in different currencies were combined."""


class AmountError(ValueError):
    """A value could not be read as a finite decimal amount."""


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount of one currency (ISO 4217 code, upper case) or of a unit of credits (a word in `UNITS`)."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not self.amount.is_finite():
            raise AmountError(f"amount must be finite, got {self.amount}")
        if (self.currency != self.currency.upper() or not self.currency.isalpha()) and not is_unit(self.currency):
            raise ValueError(f"currency must be an upper-case code or a unit word, got {self.currency!r}")

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def times(self, factor: Decimal) -> Money:
        """This amount multiplied by a plain number."""
        return Money(self.amount * factor, self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Zero in the given currency."""
        return cls(Decimal(0), currency)

    def format(self) -> str:
        """Human text such as `$12.34`, `¥71.46`, `12.34 EUR` or `12,500 characters`."""
        symbol = CURRENCY_SYMBOLS.get(self.currency)
        if is_unit(self.currency):
            whole = self.amount == self.amount.to_integral_value()
            return f"{self.amount:,.0f} {self.currency}" if whole else f"{self.amount:,.2f} {self.currency}"
        rounded = self.amount.quantize(Decimal("0.01"))
        if symbol:
            sign = "-" if rounded < 0 else ""
            return f"{sign}{symbol}{abs(rounded):,.2f}"
        return f"{rounded:,.2f} {self.currency}"


CURRENCY_SYMBOLS = {"USD": "$", "CNY": "¥", "EUR": "€", "GBP": "£"}


_DECIMAL_TEXT = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)", re.I
)


def parse_amount(value: Any, *, what: str = "amount") -> Decimal:
    """Read a JSON number or numeric string as an exact Decimal; refuse bools, NaN, infinity and junk."""
    if isinstance(value, bool) or value is None:
        raise AmountError(f"{what} is {value!r}, not a number")
    if isinstance(value, int | float | str):
        text = str(value).strip() if not isinstance(value, float) else repr(value)
        # Decimal() also takes "1_5" and non-ASCII digits; an amount is plain ASCII decimal notation.
        if not _DECIMAL_TEXT.fullmatch(text):
            raise AmountError(f"{what} is not a number: {_preview(value)}")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise AmountError(f"{what} is not a number: {_preview(value)}") from None
        if not result.is_finite():
            raise AmountError(f"{what} is not a finite amount: {_preview(value)}")
        if abs(result) >= MAX_ABS_AMOUNT:
            raise AmountError(f"{what} is an amount out of range (10^15 or more): {_preview(value)}")
        return result
    raise AmountError(f"{what} has type {type(value).__name__}, not a number")


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def normalise_unit(code: Any, *, what: str = "currency") -> str:
    """A currency code upper-cased (`usd` -> `USD`) or a unit word lower-cased (`Characters` ->
    `characters`), refusing anything else; for configuration, where either may be meant."""
    if isinstance(code, str) and code.strip().lower() in UNITS:
        return code.strip().lower()
    try:
        return normalise_currency(code, what=what)
    except AmountError:
        words = ", ".join(sorted(UNITS))
        raise AmountError(
            f"{what} must be a three-letter currency code such as USD or CNY, or one of: {words}"
        ) from None


def normalise_currency(code: Any, *, what: str = "currency") -> str:
    """Upper-case a three-letter currency code such as `usd`, refusing anything else."""
    if not isinstance(code, str) or len(code.strip()) != 3 or not code.strip().isalpha():
        raise AmountError(f"{what} is not a currency code: {_preview(code)}")
    return code.strip().upper()
