"""The platform as a user runs it (`aimatrix run`, in a process of its own) and a headless Chromium
for the console's end-to-end tests. One of each for the whole session: starting them is the slow part."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver

from aimatrix.platform_process import PlatformProcess, headless_chrome, start_platform
from tests.conftest import fresh_database_url


@pytest.fixture(scope="session")
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    data_dir = tmp_path_factory.mktemp("console")
    # The suite's database kind (AIMATRIX_TEST_DATABASE): a SQLite file here, or a fresh PostgreSQL schema.
    running = start_platform(data_dir, database_url=fresh_database_url(request, data_dir))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    driver = headless_chrome(1400, 1000)
    yield driver
    driver.quit()
