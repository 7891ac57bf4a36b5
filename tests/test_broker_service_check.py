"""``runtime.broker.ServiceCheck`` is the type of ``Broker.check_service``: it said the
check returns nothing, where it returns the wrapper of a service checked command by
command (or None)."""

from __future__ import annotations

import inspect
import typing

from plugbay.runtime.broker import Broker, ServiceCheck


def test_service_check_is_the_type_of_check_service() -> None:
    hints = typing.get_type_hints(Broker.check_service)
    params, returns = typing.get_args(ServiceCheck)
    named = list(inspect.signature(Broker.check_service).parameters)[1:]
    assert params == [hints[name] for name in named]
    assert returns == hints["return"]
