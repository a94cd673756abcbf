"""The web page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium)."""

import shutil
from pathlib import Path

import pytest

from orchestrator.http import ServeConfig, create_app

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(not CHROMEDRIVER.exists() or CHROMIUM is None,
                                reason="Chromium is not installed (Debian: apt-get install chromium chromium-driver; "
                                       ".ci/run does this)")


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    # an explicit driver path: Selenium Manager never runs, nothing is downloaded
    driver = webdriver.Chrome(service=DriverService(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _solve(browser, base, puzzle_text, token=None):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(base + "/")
    box = browser.find_element(By.ID, "puzzle")
    box.clear()
    box.send_keys(puzzle_text)
    if token:
        browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "solve").click()
    board = browser.find_element(By.ID, "board")
    WebDriverWait(browser, 60).until(lambda _: board.get_attribute("data-state") in ("solved", "error"))
    return board


def test_page_solves_a_sudoku_and_plots_the_energy(browser, store_dir, live_server):
    from selenium.webdriver.common.by import By

    base, _ = live_server(create_app(ServeConfig(store=str(store_dir), token="")))
    board = _solve(browser, base, "4 3 . .\n. . . .\n. . 2 1\n2 . 3 .")
    assert board.get_attribute("data-state") == "solved", browser.find_element(By.ID, "status").text
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] for tr in board.find_elements(By.TAG_NAME, "tr")]
    grid = [[int(v) for v in row] for row in cells]
    assert all(sorted(row) == [1, 2, 3, 4] for row in grid)
    assert all(sorted(col) == [1, 2, 3, 4] for col in zip(*grid))
    assert grid[0][:2] == [4, 3] and grid[2][2:] == [2, 1] and grid[3][0] == 2 and grid[3][2] == 3
    # the plot drew one point per step event received over SSE
    assert int(browser.find_element(By.ID, "plot").get_attribute("data-points")) >= 1
    assert browser.find_element(By.ID, "verdict").text.startswith("verified")
    # the page uses no resource from outside the server (no CDN)
    urls = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(base) for u in urls)


def test_page_shows_the_server_error_and_sends_the_token(browser, store_dir, live_server):
    from selenium.webdriver.common.by import By

    base, _ = live_server(create_app(ServeConfig(store=str(store_dir), token="pagetok")))
    board = _solve(browser, base, "1 1 0 0\n0 0 0 0\n0 0 0 0\n0 0 0 0")
    assert board.get_attribute("data-state") == "error"
    assert "401" in browser.find_element(By.ID, "status").text
    board = _solve(browser, base, "1 1 0 0\n0 0 0 0\n0 0 0 0\n0 0 0 0", token="pagetok")
    assert board.get_attribute("data-state") == "error"
    assert "no solution" in browser.find_element(By.ID, "status").text


def test_page_reads_an_uploaded_picture_then_solves_it(browser, store_dir, live_server, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from plugins.vision.examples import example_image

    picture = tmp_path / "sudoku.png"
    Image.fromarray(example_image()).save(picture)
    base, _ = live_server(create_app(ServeConfig(store=str(store_dir), token="")))
    browser.get(base + "/")
    browser.find_element(By.ID, "image").send_keys(str(picture))
    browser.find_element(By.ID, "solve").click()
    board = browser.find_element(By.ID, "board")
    WebDriverWait(browser, 120).until(lambda _: board.get_attribute("data-state") in ("solved", "error"))
    assert board.get_attribute("data-state") == "solved", browser.find_element(By.ID, "status").text
    rows = board.find_elements(By.TAG_NAME, "tr")
    grid = [[int(td.text) for td in tr.find_elements(By.TAG_NAME, "td")] for tr in rows]
    givens = [[int(td.text) if "given" in td.get_attribute("class") else 0 for td in tr.find_elements(By.TAG_NAME, "td")]
              for tr in rows]
    assert givens == [[4, 3, 0, 0], [0, 0, 0, 0], [0, 0, 2, 1], [2, 0, 3, 0]]  # what the picture shows
    assert all(sorted(row) == [1, 2, 3, 4] for row in grid) and all(sorted(c) == [1, 2, 3, 4] for c in zip(*grid))
    assert "sudoku.png" in browser.find_element(By.ID, "status").text
