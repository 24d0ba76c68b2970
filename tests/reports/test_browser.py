"""The report, comparison and probe pages in a real browser (headless Chromium through Selenium and
Debian's chromedriver; ``.ci/run`` installs them): the charts render their points, the search
filters the table, a detail view opens, and the console shows no errors."""

import shutil
import time

import pytest

pytest.importorskip("selenium")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                 reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)")]

from helpers import fake_cohort, second_model  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from phewas.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1000"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def open_page(driver, path, fragment=""):
    driver.get("about:blank")  # a new load, not a jump within the page already open
    driver.get(path.resolve().as_uri() + fragment)
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-rendered"))
    return driver.find_element(By.TAG_NAME, "body")


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def visible_rows(driver):
    return [r for r in driver.find_elements(By.CSS_SELECTOR, "table.sortable tbody tr") if r.is_displayed()]


def search(driver, body, text):
    box = driver.find_element(By.ID, "search")
    box.clear()
    box.send_keys(text)
    WebDriverWait(driver, 10).until(lambda d: "search=" in d.execute_script("return location.hash"))
    time.sleep(0.3)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """A report and a comparison of the fake cohort, and a probe of a simulated dataset."""
    from cohorts.sim.probe import SimulateProbeConfig, simulate_probe_dataset
    root = tmp_path_factory.mktemp("pages")
    cohort, _ = fake_cohort(root / "c")
    other = second_model(cohort)
    common = ["--cohort", str(cohort), "--min-positives", "50", "--quiet"]
    assert main(["report", *common, "--predictions", str(cohort / "predictions.parquet"),
                 "--out", str(root / "report")]) == 0
    assert main(["report", *common, "--predictions", str(cohort / "predictions.parquet"),
                 "--out", str(root / "report-aucs-only"), "--no-association"]) == 0
    assert main(["compare", *common, "--predictions", str(cohort / "predictions.parquet"), str(other),
                 "--names", "first", "second", "--out", str(root / "compare")]) == 0
    data = root / "probe-data"
    simulate_probe_dataset(data, SimulateProbeConfig(subjects=12, records_per_subject=2, seed=2))
    assert main(["probe", "--dataset", str(data), "--encoder", "random", "features", "--out", str(root / "probe"),
                 "--quiet"]) == 0
    return root


def test_report_page_renders_filters_and_opens_a_detail(browser, pages):
    body = open_page(browser, pages / "report" / "index.html")
    assert body.get_attribute("data-rendered") == "4"  # AUC and association Manhattan, volcano, forest
    points = browser.find_elements(By.CSS_SELECTOR, "#plots .scatterlayer .point")
    assert len(points) == 4 * 3  # three phenotypes in each chart
    assert len(visible_rows(browser)) == 3
    search(browser, body, "hyperten")
    rows = visible_rows(browser)
    assert len(rows) == 1 and "401.1" in rows[0].text and body.get_attribute("data-shown") == "1"
    rows[0].click()
    WebDriverWait(browser, 20).until(lambda d: body.get_attribute("data-detail") == "401.1")
    detail = browser.find_element(By.ID, "detail")
    assert detail.is_displayed() and "Essential hypertension" in detail.text and "cases / controls" in detail.text
    assert browser.find_elements(By.CSS_SELECTOR, "#detail-roc .scatterlayer .trace")  # the ROC curve drew
    browser.find_element(By.ID, "detail-close").click()
    assert not detail.is_displayed()
    assert "search=hyperten" in browser.execute_script("return location.hash")
    assert body.get_attribute("data-errors") == "0" and not console_errors(browser)


def test_report_page_opens_at_the_state_in_its_address(browser, pages):
    body = open_page(browser, pages / "report" / "index.html", "#search=diabetes&detail=250.2")
    WebDriverWait(browser, 20).until(lambda d: body.get_attribute("data-detail") == "250.2")
    assert [r.text.split()[0] for r in visible_rows(browser)] == ["250.2"]
    assert not console_errors(browser)


def test_a_click_on_a_point_opens_its_detail(browser, pages):
    body = open_page(browser, pages / "report" / "index.html")
    # plotly's own click event, as a click on the point raises it
    browser.execute_script("""const div = document.querySelector('#plots .plot');
        div.emit('plotly_click', {points: [div.data[0]].map(t => ({customdata: t.customdata[0]}))});""")
    WebDriverWait(browser, 20).until(lambda d: body.get_attribute("data-detail"))
    assert browser.find_element(By.ID, "detail").is_displayed() and not console_errors(browser)


def test_compare_page_shows_both_models_roc_curves(browser, pages):
    body = open_page(browser, pages / "compare" / "index.html")
    assert body.get_attribute("data-rendered") == "2"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#plots .scatterlayer .point")) == 2 * 3
    search(browser, body, "atrial")
    rows = visible_rows(browser)
    assert len(rows) == 1
    rows[0].click()
    WebDriverWait(browser, 20).until(lambda d: body.get_attribute("data-detail") == "427.21")
    legend = browser.find_element(By.ID, "detail-roc").text
    assert "first" in legend and "second" in legend
    assert not console_errors(browser)


def test_probe_page_renders_and_filters_by_task(browser, pages):
    body = open_page(browser, pages / "probe" / "index.html")
    assert int(body.get_attribute("data-rendered")) >= 1
    assert browser.find_elements(By.CSS_SELECTOR, "#plots .scatterlayer .point")
    assert browser.find_elements(By.CSS_SELECTOR, "table.paper b")  # the best per task marked
    search(browser, body, "heart_rate")
    assert visible_rows(browser) and all("heart_rate" in r.text for r in visible_rows(browser))
    visible_rows(browser)[0].click()
    WebDriverWait(browser, 20).until(lambda d: body.get_attribute("data-detail") == "heart_rate")
    assert not console_errors(browser)


def test_report_without_association_tests_renders_its_one_chart(browser, pages):
    body = open_page(browser, pages / "report-aucs-only" / "index.html", "#sig=1")
    assert body.get_attribute("data-rendered") == "1" and body.get_attribute("data-shown") == "0"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#plots .scatterlayer .point")) == 3
    assert body.get_attribute("data-errors") == "0" and not console_errors(browser)
