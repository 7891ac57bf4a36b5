"""plugbay: a plugin host for Python applications."""

from plugbay.api import *  # noqa: F403
from plugbay.api import __all__ as _api_all
from plugbay.errors import *  # noqa: F403
from plugbay.errors import __all__ as _errors_all

__version__ = "0.1.0"

__all__ = [*_api_all, *_errors_all, "__version__"]
