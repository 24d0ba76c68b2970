"""Benchmark: the report and comparison pages at MC-MED scale (1,500 phecodes x 18,000 held-out
stays) in a real browser: file size, time to first render (navigation to every chart drawn), time
for a search to filter the table and the charts, time to open a phenotype's detail view, and a
screenshot (``bench/report_at_scale.png``).

Reads the pages that ``bench/bench_report.py`` and ``bench/bench_compare.py`` wrote (run them
first); needs ``chromium`` and ``chromedriver`` (Debian: ``apt-get install chromium
chromium-driver``) and ``selenium``.

    python bench/bench_page.py [--report bench/out/report_scale/report_two_covariates/index.html]
                               [--compare bench/out/compare_scale/compare/index.html]

Targets: under 15 MB and a first render within a few seconds. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def browser():
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1100"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def measure(driver, page: Path, search: str, screenshot: Path | None) -> dict:
    driver.get("about:blank")
    t = time.perf_counter()
    driver.get(page.resolve().as_uri())
    body = driver.find_element(By.TAG_NAME, "body")
    WebDriverWait(driver, 120).until(lambda d: body.get_attribute("data-rendered"))
    first_render = time.perf_counter() - t
    points = len(driver.find_elements(By.CSS_SELECTOR, "#plots .scatterlayer .point"))
    if screenshot:
        driver.save_screenshot(str(screenshot))
    before = int(body.get_attribute("data-shown"))
    t = time.perf_counter()
    box = driver.find_element(By.ID, "search")
    box.send_keys(search)
    WebDriverWait(driver, 60).until(lambda d: int(body.get_attribute("data-shown")) < before)
    searched = time.perf_counter() - t - 0.15  # less the search box's typing pause
    shown = int(body.get_attribute("data-shown"))
    row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "table.sortable tbody tr") if r.is_displayed())
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    t = time.perf_counter()
    row.click()
    WebDriverWait(driver, 60).until(lambda d: body.get_attribute("data-detail"))
    detail = time.perf_counter() - t
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return {"size_mb": round(page.stat().st_size / 2 ** 20, 1), "first_render_s": round(first_render, 2),
            "points_drawn": points, "search_s": round(searched, 2), "search": f"{search!r}: {shown} of {before}",
            "detail_s": round(detail, 2), "console_errors": len(errors)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", type=Path, default=Path("bench/out/report_scale/report_two_covariates/index.html"))
    ap.add_argument("--compare", type=Path, default=Path("bench/out/compare_scale/compare/index.html"))
    ap.add_argument("--screenshot", type=Path, default=Path("bench/report_at_scale.png"))
    a = ap.parse_args()
    if not a.report.exists():
        sys.exit(f"{a.report}: not found; run `python bench/bench_report.py` first")
    driver = browser()
    try:
        result = {"bench": "page"}
        result |= {f"report_{k}": v for k, v in measure(driver, a.report, "circulatory", a.screenshot).items()}
        if a.compare.exists():
            result |= {f"compare_{k}": v for k, v in measure(driver, a.compare, "circulatory", None).items()}
    finally:
        driver.quit()
    result |= {"browser": "headless Chromium (Debian chromium package) via Selenium", "cores": os.cpu_count(),
               "command": "python bench/bench_page.py"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
