"""`--batch` and `--seq` as min:opt:max: the shapes a TensorRT engine is built for."""

from dataclasses import dataclass

from export.errors import ExportInputError


@dataclass(frozen=True)
class ShapeProfile:
    min: int
    opt: int
    max: int

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


def parse_profile(text: str, flag: str) -> ShapeProfile:
    parts = text.split(":")
    if len(parts) != 3:
        raise ExportInputError(f"{flag} {text!r} must be min:opt:max, e.g. 1:32:64")
    try:
        low, opt, high = (int(part) for part in parts)
    except ValueError:
        raise ExportInputError(f"{flag} {text!r}: min, opt and max must be integers") from None
    if not 1 <= low <= opt <= high:
        raise ExportInputError(f"{flag} {text!r} must satisfy 1 <= min <= opt <= max")
    return ShapeProfile(low, opt, high)
