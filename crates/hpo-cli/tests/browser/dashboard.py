"""Drives `hpo dashboard` in headless Chromium through WebDriver (selenium), as a person
would use it: the list, a running experiment's page (its trial count must rise), the
importance view, a trial's page reached by a click. Writes a screenshot per view into OUT
and fails on any console error.

    python3 dashboard.py URL RUNNING FINISHED BIG REPORT OUT

BIG is an experiment of many trials: the time until its page shows the best value and the
trials table is printed (`big_best_shown_s`, `big_table_s`). REPORT is an HTML file by `hpo
report` of FINISHED: it must show the same, from the file alone.
"""

import json
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

url, running, finished, big, report, out = sys.argv[1:7]

options = webdriver.ChromeOptions()
for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1600"]:
    options.add_argument(flag)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
# A live page redraws itself when its experiment changes: an element may go stale.
wait = WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,))
measured = {}


def open_view(hash_route, heading):
    """Goes to a view and waits until it is drawn: a new route keeps the page, and the old
    view stays until the new one's data arrive."""
    driver.get(f"{url}{hash_route}")
    wait.until(ready.text_to_be_present_in_element((By.TAG_NAME, "h1"), heading))


def console_errors():
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


try:
    # The list of experiments.
    started = time.monotonic()
    open_view("#/", "Experiments")
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "tbody tr")))
    measured["list_s"] = round(time.monotonic() - started, 3)
    driver.save_screenshot(f"{out}/list.png")

    # A running experiment: its page opens with the best value shown, and the trial count
    # rises as the run goes on (pushed by the server, no reload).
    started = time.monotonic()
    open_view(f"#/e/{running}", running)
    count = wait.until(ready.presence_of_element_located((By.ID, "trial-count")))
    measured["experiment_s"] = round(time.monotonic() - started, 3)
    first = int(count.text)
    rising = WebDriverWait(driver, 60, ignored_exceptions=(StaleElementReferenceException,))
    rising.until(lambda d: int(d.find_element(By.ID, "trial-count").text) > first)
    measured["trials_seen"] = [first, int(driver.find_element(By.ID, "trial-count").text)]
    driver.save_screenshot(f"{out}/running.png")

    # A finished experiment of f(x, y, z) = 10x + y: x leads the importance view.
    started = time.monotonic()
    open_view(f"#/e/{finished}", finished)
    wait.until(ready.presence_of_element_located((By.ID, "best-value")))
    measured["best_shown_s"] = round(time.monotonic() - started, 3)
    first_param = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#importance tr td")))
    assert first_param.text == "x", f"importance lists {first_param.text} first"
    driver.save_screenshot(f"{out}/experiment.png")
    driver.find_element(By.ID, "importance").screenshot(f"{out}/importance.png")

    # A click on a trial opens its page.
    row = wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, ".scroll tbody tr.link")))
    trial = row.find_element(By.TAG_NAME, "td").text
    row.click()
    wait.until(ready.text_to_be_present_in_element((By.TAG_NAME, "h1"), f"Trial {trial}"))
    assert f"/t/{trial}" in driver.current_url, driver.current_url
    wait.until(ready.presence_of_element_located((By.TAG_NAME, "table")))
    driver.save_screenshot(f"{out}/trial.png")

    # Many trials: the best value and the table's first page, timed from the navigation.
    started = time.monotonic()
    open_view(f"#/e/{big}", big)
    wait.until(ready.presence_of_element_located((By.ID, "best-value")))
    measured["big_best_shown_s"] = round(time.monotonic() - started, 3)
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".scroll tbody tr")))
    measured["big_table_s"] = round(time.monotonic() - started, 3)
    measured["big_trials"] = int(driver.find_element(By.ID, "trial-count").text)
    driver.save_screenshot(f"{out}/many-trials.png")

    # The report of the finished experiment, opened as a file: the same page, no server.
    driver.get(f"file://{report}#/e/{finished}")
    wait.until(ready.text_to_be_present_in_element((By.TAG_NAME, "h1"), finished))
    wait.until(ready.presence_of_element_located((By.ID, "best-value")))
    first_param = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#importance tr td")))
    assert first_param.text == "x", f"the report's importance lists {first_param.text} first"
    row = wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, ".scroll tbody tr.link")))
    trial = row.find_element(By.TAG_NAME, "td").text
    row.click()
    wait.until(ready.text_to_be_present_in_element((By.TAG_NAME, "h1"), f"Trial {trial}"))
    driver.save_screenshot(f"{out}/report.png")

    errors = console_errors()
    assert not errors, f"console errors: {errors}"
    print(json.dumps({"browser": "chromium", **measured}))
finally:
    driver.quit()
