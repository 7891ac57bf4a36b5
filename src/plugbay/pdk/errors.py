"""The PDK's errors: each says what went wrong, where, and what to do (``PlugbayError``)."""

from __future__ import annotations

from plugbay.api.errors import PlugbayError

__all__ = [
    "BuildError",
    "PdkError",
    "PluginIndexError",
    "SignatureError",
    "TemplateError",
    "WheelError",
]


class PdkError(PlugbayError):
    """Base of the Plugin Development Kit's errors."""

    code = "pdk_error"


class TemplateError(PdkError):
    """``plugbay new`` cannot create the package (unknown template, non-empty target, bad name)."""

    code = "template_error"


class BuildError(PdkError):
    """``plugbay build`` cannot produce a wheel (invalid manifest, backend failure)."""

    code = "build_error"


class WheelError(PdkError):
    """A file is not a plugin wheel, or its contents do not match its own record."""

    code = "wheel_error"


class SignatureError(PdkError):
    """A digest or signature does not match, a key is unknown, or a signature is required."""

    code = "signature_error"


class PluginIndexError(PdkError):
    """A plugin index cannot be built, read or fetched from, or it has no version that fits."""

    code = "index_error"
