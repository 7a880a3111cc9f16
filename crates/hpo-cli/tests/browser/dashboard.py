"""Drives `hpo dashboard` in headless Chromium through WebDriver (selenium), as a person
would use it: the list, a running experiment's page (its trial count must rise), the
importance view, the trials table filtered by a parameter range, a trial's page reached by a
click, learning curves, two experiments compared, a benchmark folder. Writes a screenshot per
view into OUT and fails on any console error.

    python3 dashboard.py URL RUNNING FINISHED BIG BENCH REPORT OUT

FINISHED is an experiment of f(x, y, z) = 10x + y. BIG is an experiment of many trials under
ASHA: the time until its page shows the best value and the trials table is printed
(`big_best_shown_s`, `big_table_s`). BENCH is a folder by `hpo bench run`. REPORT is an HTML
file by `hpo report` of FINISHED: it must show the same, from the file alone.
"""

import json
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

url, running, finished, big, bench, report, out = sys.argv[1:8]

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


def click(by, what):
    """Clicks an element, found again if a live redraw replaced it meanwhile."""
    for _ in range(20):
        try:
            wait.until(ready.element_to_be_clickable((by, what))).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise AssertionError(f"{what}: replaced by every redraw")


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

    # The trials table filtered by a range of x: every row shown holds it.
    note = driver.find_element(By.ID, "trials-note").text
    box = driver.find_element(By.ID, "trials-filter")
    box.send_keys("x <= 0.1" + Keys.ENTER)
    wait.until(lambda d: d.find_element(By.ID, "trials-note").text != note)
    headers = [th.text.split(" ")[0] for th in driver.find_elements(By.CSS_SELECTOR, ".scroll thead th")]
    column = headers.index("x")
    xs = [float(tr.find_elements(By.TAG_NAME, "td")[column].text) for tr in driver.find_elements(By.CSS_SELECTOR, ".scroll tbody tr")]
    assert xs and all(x <= 0.1 for x in xs), f"filtered by x <= 0.1, the table shows x = {xs}"
    measured["filtered_rows"] = len(xs)
    driver.save_screenshot(f"{out}/filtered.png")

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

    # Its learning curves, with ASHA's rungs and stops: the best 50, then the best 500.
    curves = wait.until(ready.presence_of_element_located((By.ID, "curves")))
    assert "best 50 trials" in curves.find_element(By.TAG_NAME, "h2").text
    curves.screenshot(f"{out}/curves.png")
    Select(driver.find_element(By.ID, "curves-shown")).select_by_value("500")
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#curves h2"), "best 500 trials"))

    # Two experiments ticked on the list and compared on one plot.
    open_view("#/", "Experiments")
    for name in [finished, big]:
        click(By.XPATH, f"//div[@id='compare']//label[normalize-space()='{name}']/input")
    click(By.XPATH, "//div[@id='compare']//button")
    wait.until(ready.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Comparison"))
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".card canvas")))
    groups = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#view li")]
    assert len(groups) == 2 and any(finished in g for g in groups) and any(big in g for g in groups), groups
    driver.save_screenshot(f"{out}/compare.png")

    # A benchmark folder, reached from the list.
    open_view("#/", "Experiments")
    click(By.LINK_TEXT, bench)
    wait.until(ready.text_to_be_present_in_element((By.TAG_NAME, "h1"), f"Benchmark {bench}"))
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".card canvas")))
    driver.save_screenshot(f"{out}/benchmark.png")

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
