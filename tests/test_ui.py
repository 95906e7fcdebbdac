"""The MLflow UI in a real browser: headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium) on `mlflow ui` started from a plain shell with the command a finished sweep
printed, at the URL it printed.

What a person should see: the sweep as a parent run with its trials under it, the trials' main
columns, the grok table in the experiment's description, and a compare view of the trials.
Screenshots go to $GROK_UI_SCREENSHOTS when set (docs/ holds one set), else to the test's folder.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from services import browser, mlflow_process, require_chromium

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "sweeps" / "expmod_grid.py"
QUICK = ["--primes", "31", "--frac", "0.5", "--lr", "3e-3", "--weight-decay", "3", "--epochs",
         "200", "--eval-every", "20", "--max-concurrent", "2", "--progress-every", "5"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    """A two-trial sweep on a local Ray into ./mlflow.db of its own folder, as the README's demo
    does (relative tracking URI)."""
    require_chromium()  # before spending a minute on the sweep
    folder = tmp_path_factory.mktemp("ui")
    done = subprocess.run([sys.executable, str(SCRIPT), *QUICK, "--pairs", "3,3", "1,1",
                           "--experiment", "ui_demo", "--name", "ui-sweep"],
                          cwd=folder, env=_env(), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder, done.stdout


def wait_for(driver, xpath: str, timeout: float = 90):
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.visibility_of_element_located(("xpath", xpath)))


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def look(driver, runs_url: str, sweep: str, children: dict[str, str], out: Path) -> dict:
    """Open the runs view at ``runs_url``; find the sweep's run, its child trials (run id ->
    name) and the grok table in the experiment's description; save experiment.png, runs.png
    and compare.png in ``out``. Returns what it read from the page."""
    base = runs_url.split("/#/")[0]
    driver.get(base + "/")
    # MLflow 3.17 opens its assistant panel on the first visit; closed, as after one click.
    driver.execute_script("localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
                          "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1',"
                          " 'true');")
    driver.get(runs_url)
    parent_link = wait_for(driver, f"//a[normalize-space(.)='{sweep}']")
    seen = {"parent_row": parent_link.find_element(
        "xpath", "./ancestor::div[@row-id][1]").get_attribute("row-id")}
    header = driver.find_element("xpath", "//div[contains(@class,'ag-header')]").text
    seen["columns"] = header

    # The description: expanded, it is the grok table as an HTML table.
    driver.find_element(
        "css selector",
        "button[data-component-id='mlflow.experiment.metadata_editor.expand_button']").click()
    table = wait_for(driver, "//table[.//th[normalize-space(.)='KM median [95% CI]']]")
    head = [th.text for th in table.find_elements("xpath", ".//thead//th")]
    seen["description_rows"] = [
        dict(zip(head, (td.text for td in tr.find_elements("tag name", "td"))))
        for tr in table.find_elements("xpath", ".//tbody/tr")]
    driver.save_screenshot(str(out / "experiment.png"))
    driver.find_elements(  # fold it again: the expand button, now the collapse button
        "css selector", "button[data-component-id^='mlflow.experiment.metadata_editor']")[-1].click()

    # The sweep's row expands to its trials.
    driver.find_element("css selector", f"div[row-id='{seen['parent_row']}'] button").click()
    for run_id, name in children.items():
        wait_for(driver, f"//div[@row-id='{run_id}']//a[normalize-space(.)='{name}']")
    seen["child_rows"] = sorted(e.get_attribute("row-id") for e in driver.find_elements(
        "xpath", "//div[contains(@class,'ag-center-cols')]//div[@row-id]")
        if e.get_attribute("row-id") != seen["parent_row"])
    seen["status_cells"] = sorted(
        driver.find_element("xpath", f"//div[@row-id='{run_id}']//div[@col-id='tags.`status`']")
        .text for run_id in children)
    driver.save_screenshot(str(out / "runs.png"))

    # The compare view of the trials.
    ids = urllib.parse.quote(json.dumps(sorted(children)))
    experiment = re.search(r"/experiments/(\d+)/", runs_url).group(1)
    driver.get(f"{base}/#/compare-runs?runs={ids}&experiments="
               f"{urllib.parse.quote(json.dumps([experiment]))}&workflowType=machine_learning")
    wait_for(driver, f"//*[contains(normalize-space(.), 'Comparing {len(children)} Runs')]")
    for name in children.values():
        wait_for(driver, f"//*[normalize-space(text())='{name}']")
    driver.save_screenshot(str(out / "compare.png"))
    return seen


def test_the_ui_shows_the_sweep_its_trials_and_the_grok_table(finished_sweep, tmp_path):
    from mlflow.tracking import MlflowClient

    folder, stdout = finished_sweep
    command = re.search(r"^look at them:\s+(.+)$", stdout, re.M).group(1)
    url = re.search(r"^\s+then open\s+(\S+)$", stdout, re.M).group(1)
    assert url.startswith("http://127.0.0.1:5000/#/experiments/") and "/runs?" in url
    assert re.match(r"^\S*mlflow ui --backend-store-uri sqlite:///mlflow.db$", command), command
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ui_demo")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    children = {r.info.run_id: r.info.run_name for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(children.values()) == ["a1b1 p31 f0.5 f32 s999", "a3b3 p31 f0.5 f32 s999"]

    out = Path(os.environ.get("GROK_UI_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    # The printed command, as printed, from a plain shell (no virtual environment on PATH) in
    # the sweep's folder; the port is the test's own.
    plain = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    with mlflow_process([command], cwd=folder, env=plain, shell=True) as base, browser() as driver:
        seen = look(driver, url.replace("http://127.0.0.1:5000", base), "ui-sweep", children,
                    out)

    assert seen["parent_row"] == parent.info.run_id
    assert seen["child_rows"] == sorted(children)
    # the saved view puts the trials' status, a, b and grok epoch on screen
    for column in ("status", "a", "b", "grok_epoch"):
        assert column in seen["columns"].split("\n"), seen["columns"]
    statuses = [r.data.tags["status"] for r in runs if r.info.run_id in children]
    assert seen["status_cells"] == sorted(statuses)
    # the description's table has a row per (a, b, p) of the sweep
    rows = {(row["a"], row["b"], row["grokked"]) for row in seen["description_rows"]}
    grokked = {(r.data.params["a"], r.data.params["b"], f"{int(r.data.tags['grokked'] == 'true')}/1")
               for r in runs if r.info.run_id in children}
    assert rows == grokked
    for name in ("experiment.png", "runs.png", "compare.png"):
        assert png_size(out / name) == (1280, 800)
