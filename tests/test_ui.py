"""The MLflow UI in a real browser: headless Chromium at 1600 x 1000 (Debian's chromium and
chromium-driver, driven by Selenium) on `mlflow ui` started from a plain shell with the command a
finished sweep printed, at the URL it printed.

What a person should see there without a click: the trials as rows of their own, with the
columns outcome, a, b, p, threshold epoch, unseen-class accuracy, leakage and memorization epoch
first; the grok table's first rows in the line of the experiment's description that MLflow shows
before it is expanded. One click (the chart view): every trial's test accuracy, unseen-class
accuracy and training loss, one colour each, then the sweep's comparison figure.
Screenshots go to docs/ (the README shows them), or to $GROK_UI_SCREENSHOTS when set.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from services import browser, checkout_env, mlflow_process, require_chromium

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "sweeps" / "expmod_grid.py"
# Three trials at p = 31 that end, within 200 epochs, in three outcomes: (1,1) does not reach the
# threshold, (3,3) reaches it with memorization, (5,5) has no unseen test pair (lookup).
QUICK = ["--primes", "31", "--frac", "0.5", "--lr", "3e-3", "--weight-decay", "3", "--epochs",
         "200", "--eval-every", "20", "--max-concurrent", "2", "--progress-every", "5",
         "--pairs", "5,5", "3,3", "1,1"]
COLUMNS = ["tags.`outcome`", "params.`a`", "params.`b`", "params.`p`",
           "metrics.`threshold_epoch`", "metrics.`test_acc_unseen`", "metrics.`leakage`",
           "metrics.`memorization_epoch`"]
WIDTH, HEIGHT = 1600, 1000


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    """A three-trial sweep on a local Ray into ./mlflow.db of its own folder, as the README's
    demo does (relative tracking URI)."""
    require_chromium()  # before spending a minute on the sweep
    folder = tmp_path_factory.mktemp("ui")
    done = subprocess.run([sys.executable, str(SCRIPT), *QUICK, "--experiment", "ui_demo",
                           "--name", "ui-sweep"],
                          cwd=folder, env=checkout_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder, done.stdout


def wait_for(driver, xpath: str, timeout: float = 120):
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.visibility_of_element_located(("xpath", xpath)))


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def visible_in_window(driver, element) -> bool:
    """The element's box lies inside the window, and the element on top at its centre is it or
    inside it (not hidden under something, not clipped away by a collapsed box)."""
    return driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "if (r.width < 1 || r.height < 1 || r.top < 0 || r.left < 0 ||"
        "    r.bottom > window.innerHeight || r.right > window.innerWidth) return false;"
        "const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);"
        "return top !== null && (top === arguments[0] || arguments[0].contains(top));", element)


def clipped(driver, element) -> bool:
    """Some of the element's text is cut off: an element that holds text of its own is wider
    than the box it is shown in (an ellipsis, or hidden overflow)."""
    return driver.execute_script(
        "return [arguments[0], ...arguments[0].querySelectorAll('*')].some(e =>"
        "  [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) &&"
        "  e.scrollWidth > e.clientWidth + 1);", element)


def close_assistant(driver) -> None:
    """MLflow 3.17 may open its assistant panel beside the page; close it as a person would."""
    for button in driver.find_elements(
            "css selector", "button[data-component-id='mlflow.assistant.chat_panel.close']"):
        if button.is_displayed():
            button.click()


def look(driver, runs_url: str, children: dict[str, str], out: Path) -> dict:
    """Open the printed URL, read what is on screen without a click, then click once into the
    chart view; save runs.png, charts.png and the expanded experiment.png in ``out``."""
    base = runs_url.split("/#/")[0]
    driver.get(base + "/")
    driver.execute_script("localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
                          "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1',"
                          " 'true');")
    driver.get(runs_url)
    first = sorted(children.values())[0]
    wait_for(driver, f"//a[normalize-space(.)='{first}']")
    close_assistant(driver)
    seen = {"child_rows": {}, "columns": [], "clipped": []}
    for run_id, name in children.items():
        link = driver.find_element("xpath", f"//div[@row-id='{run_id}']//a[normalize-space(.)="
                                            f"'{name}']")
        seen["child_rows"][run_id] = visible_in_window(driver, link)
        seen["clipped"] += [name] if clipped(driver, link) else []
    # the columns as they stand from left to right, and whether each header is on screen
    headers = driver.find_elements("css selector", ".ag-header-row-column .ag-header-cell[col-id]")
    for cell in sorted(headers, key=lambda c: c.rect["x"]):
        if cell.get_attribute("col-id") in COLUMNS:
            seen["columns"].append((cell.get_attribute("col-id"), visible_in_window(driver, cell)))
            seen["clipped"] += [cell.text] if clipped(driver, cell) else []
    seen["cells"] = {}
    for run_id in children:
        cells = {col: driver.find_element("xpath", f"//div[@row-id='{run_id}']//div[@col-id="
                                                   f"'{col}']") for col in COLUMNS}
        seen["cells"][run_id] = {col: cell.text for col, cell in cells.items()}
        seen["clipped"] += [cell.text for cell in cells.values() if clipped(driver, cell)]
    # The description, not expanded: its first paragraph is the grok table in one line.
    headline = driver.find_element("xpath", "//p[starts-with(normalize-space(.), 'Grok table')]")
    seen["headline"] = (headline.text, visible_in_window(driver, headline))
    driver.save_screenshot(str(out / "ui_runs.png"))

    # One click: the chart view; its cards' titles in the order they stand.
    driver.find_element("xpath", "//input[@value='CHART']/ancestor::label[1]").click()
    figure = wait_for(driver, "//img[contains(@src, 'trials_compared')]")
    close_assistant(driver)
    seen["chart_titles"] = [h.get_attribute("title") for h in driver.find_elements(
        "xpath", "//*[normalize-space(.)='Every trial against epoch']/following::h4[@title]")]
    driver.save_screenshot(str(out / "ui_charts.png"))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", figure)
    seen["figure_loaded"] = driver.execute_script(  # MLflow shows a 256-pixel thumbnail
        "return arguments[0].complete && arguments[0].naturalWidth >= 200;", figure)

    # Back to the table, the description expanded: the whole grok table.
    driver.find_element("xpath", "//input[@value='TABLE']/ancestor::label[1]").click()
    driver.find_element(
        "css selector",
        "button[data-component-id='mlflow.experiment.metadata_editor.expand_button']").click()
    table = wait_for(driver, "//table[.//th[normalize-space(.)='KM median [95% CI]']]")
    head = [th.text for th in table.find_elements("xpath", ".//thead//th")]
    seen["description_rows"] = [
        dict(zip(head, (td.text for td in tr.find_elements("tag name", "td"))))
        for tr in table.find_elements("xpath", ".//tbody/tr")]
    driver.save_screenshot(str(out / "ui_experiment.png"))
    return seen


def test_the_ui_lands_on_the_trials_the_grok_table_and_one_click_from_the_comparison(
        finished_sweep):
    from mlflow.tracking import MlflowClient

    folder, stdout = finished_sweep
    url = re.search(r"^  the MLflow UI, then open (\S+)$", stdout, re.M).group(1)
    command = re.search(r"^  the MLflow UI, then open \S+\n    (.+)$", stdout, re.M).group(1)
    assert url.startswith("http://127.0.0.1:5000/#/experiments/") and "/runs?" in url
    assert re.match(r"^\S*mlflow ui --backend-store-uri sqlite:///mlflow.db$", command), command
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ui_demo")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    children = {r.info.run_id: r.info.run_name for r in trials}
    assert sorted(children.values()) == ["a1b1 p31 frac0.5 fp32 s999",
                                         "a3b3 p31 frac0.5 fp32 s999",
                                         "a5b5 p31 frac0.5 fp32 s999"]
    # one colour per trial
    assert len({r.data.tags["mlflow.runColor"] for r in trials}) == 3

    out = Path(os.environ.get("GROK_UI_SCREENSHOTS") or ROOT / "docs")
    out.mkdir(parents=True, exist_ok=True)
    # The printed command, as printed, from a plain shell (no virtual environment on PATH) in
    # the sweep's folder; the port is the test's own.
    plain = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    with mlflow_process([command], cwd=folder, env=plain, shell=True) as base, \
            browser(WIDTH, HEIGHT) as driver:
        seen = look(driver, url.replace("http://127.0.0.1:5000", base), children, out)

    # Without a click: every trial is a row on screen, the columns in this order, on screen.
    assert seen["child_rows"] == {run_id: True for run_id in children}
    assert [col for col, _ in seen["columns"]] == COLUMNS
    assert all(on_screen for _, on_screen in seen["columns"]), seen["columns"]
    assert seen["clipped"] == []  # names, headers and values whole at 1600 pixels
    for run in trials:
        cells, tags, params = seen["cells"][run.info.run_id], run.data.tags, run.data.params
        assert cells["tags.`outcome`"] == tags["outcome"]
        assert (cells["params.`a`"], cells["params.`b`"], cells["params.`p`"]) == (
            params["a"], params["b"], "31")
        held = tags["threshold_epoch"]
        assert cells["metrics.`threshold_epoch`"] == ("-" if held == "none" else held)
    # The grok table's first rows, readable in the description's visible line.
    text, on_screen = seen["headline"]
    assert on_screen and text.startswith("Grok table: expmod (a, b; p 31"), text
    outcomes = {(r.data.params["a"], r.data.params["b"]): r.data.tags["outcome"] for r in trials}
    words = {"grokked": "grokking", "no_delay": "no delay", "lookup": "lookup",
             "not_generalized": "none"}
    for (a, b), outcome in sorted(outcomes.items())[:2]:
        assert f"({a},{b}) {words[outcome]}" in text, text
    # One click: the three charts of every trial first, then the sweep's comparison figure.
    assert seen["chart_titles"][:4] == ["test_acc", "test_acc_unseen", "train_loss",
                                        "trials_compared"], seen["chart_titles"]
    assert seen["figure_loaded"]
    # The whole table, expanded: a row per (a, b), what it shows and how many reached.
    rows = {(r["a"], r["b"], r["shows"], r["reached"]) for r in seen["description_rows"]}
    assert rows == {(a, b, words[o], "1/1" if o != "not_generalized" else "0/1")
                    for (a, b), o in outcomes.items()}
    assert {r["KM median [95% CI]"].endswith("(1 run)") for r in seen["description_rows"]} \
        == {True}
    for name in ("ui_runs.png", "ui_charts.png", "ui_experiment.png"):
        assert png_size(out / name) == (WIDTH, HEIGHT)
