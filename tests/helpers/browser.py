"""Debian's Chromium, headless, for the console's browser tests, and a console login through it."""

from __future__ import annotations

from collections.abc import Iterator

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium at 1280 pixels wide, quit when the generator is closed."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1400"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=DriverService("/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def log_in(browser: webdriver.Chrome, url: str, path: str, name: str, password: str) -> None:
    """Opens ``path`` with no session, logs in on the page it is sent to, and asserts the
    browser came back to ``path``: the click returns before the browser follows the redirect,
    so that is waited for (30 s), and the page's text is shown if it never comes."""
    browser.delete_all_cookies()
    browser.get(url + path)
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "login").click()
    try:
        WebDriverWait(browser, 30).until(lambda driver: driver.current_url.endswith(path))
    except TimeoutException:
        raise AssertionError(f"not back at {path} after logging in: {browser.current_url}\n"
                             f"{browser.find_element(By.TAG_NAME, 'body').text}") from None
