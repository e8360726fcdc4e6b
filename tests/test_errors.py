"""The one exception tree: every kind of the client has its class, and the errors raised
elsewhere are in the tree."""

from __future__ import annotations

import inspect
from typing import get_args

import pytest

from reflectd import errors
from reflectd.errors import (
    ErrorKind,
    InvalidJSONValue,
    InvalidMessage,
    InvalidPush,
    LimitExceeded,
    ProtocolError,
    ReflectdError,
    ValueTooLarge,
)


def _protocol_errors() -> list[type[ProtocolError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, ProtocolError) and cls is not ProtocolError
    ]


def test_every_error_kind_of_the_client_has_exactly_one_class() -> None:
    kinds = [cls.kind for cls in _protocol_errors() if cls is not LimitExceeded]
    assert sorted(kinds) == sorted(get_args(ErrorKind))


def test_every_exception_class_of_the_module_is_a_reflectd_error() -> None:
    classes = [cls for _, cls in inspect.getmembers(errors, inspect.isclass)]
    exceptions = [cls for cls in classes if issubclass(cls, BaseException)]
    assert exceptions and all(issubclass(cls, ReflectdError) for cls in exceptions)


def _drawn_in_the_tree(doc: str) -> set[str]:
    """The class names the docstring's tree draws: its root, and the first word of each branch."""
    names = {line.strip() for line in doc.splitlines() if line.strip() == "ReflectdError"}
    for line in doc.splitlines():
        _, branch, rest = line.partition("── ")
        if branch:
            names.add(rest.split()[0])
    return names


def test_every_exception_class_is_drawn_in_the_docstring() -> None:
    defined = {
        name
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    }
    assert defined == _drawn_in_the_tree(errors.__doc__ or "")


def test_a_limit_exceeded_push_is_reported_as_invalid_push_and_closes_the_socket() -> None:
    error = LimitExceeded("push has 2 mutations, more than the limit of 1")
    assert isinstance(error, InvalidPush)
    assert error.kind == "InvalidPush"
    assert error.closes_socket


def test_only_invalid_message_keeps_the_socket_open() -> None:
    assert [cls for cls in _protocol_errors() if not cls.closes_socket] == [InvalidMessage]


@pytest.mark.parametrize("cls", [InvalidJSONValue, ValueTooLarge])
def test_values_a_mutator_cannot_store_are_value_errors_as_app_code_expects(
    cls: type[Exception],
) -> None:
    assert issubclass(cls, ValueError)
    assert issubclass(cls, ReflectdError)
