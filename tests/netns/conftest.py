import pytest
from tests.netns.harness import unavailable_reason

_REASON = unavailable_reason()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/netns" in str(item.fspath):
            item.add_marker(pytest.mark.netns)
            item.add_marker(pytest.mark.slow)
            if _REASON:
                item.add_marker(pytest.mark.skip(reason=_REASON))
