"""The fitting-room page in a real browser (Debian's chromium, headless, driven by Selenium through
the system chromedriver: nothing is downloaded). The page must show what the cpu backend computes."""

from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fpga_gan.serve import ServeConfig, create_app

from fpga_gan.serve import running_server

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# `make test` installs both (tools/ensure_browser.sh); without them this test fails, it does not skip.
SCREENSHOT = os.environ.get("FPGA_GAN_PAGE_SCREENSHOT")     # where to keep a screenshot (the README's)


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("the browser test needs chromium and chromedriver: run tools/ensure_browser.sh "
                    "(apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _image_of(element) -> np.ndarray:
    src = element.get_attribute("src")
    assert src.startswith("data:image/png;base64,"), src[:60]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))


def test_the_page_dresses_a_person_like_the_cpu_backend_and_shows_a_bad_uploads_error(
        browser, zoo_artifacts, small_dataset, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from fpga_gan.app import run_tryon
    from fpga_gan.runtime import Accelerator

    config = ServeConfig(backend="cpu", artifacts=zoo_artifacts["tryon"].parent, data=small_dataset)
    with running_server(create_app(config)) as url:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".garment-choice")) > 1)
        assert "tryon on cpu" in browser.find_element(By.ID, "status").text

        person = browser.find_elements(By.CSS_SELECTOR, ".person-choice")[0]
        garment = browser.find_elements(By.CSS_SELECTOR, ".garment-choice")[1]
        chosen = person.get_attribute("data-id"), garment.get_attribute("data-id")
        person.click()
        garment.click()
        browser.find_element(By.ID, "tryon-button").click()
        result = browser.find_element(By.ID, "tryon-result")
        wait.until(lambda d: (result.get_attribute("src") or "").startswith("data:"))
        shown = _image_of(result)
        with Accelerator.open(zoo_artifacts["tryon"], backend="cpu") as acc:
            expected = run_tryon(acc, small_dataset, [chosen])[0].result
        assert np.array_equal(shown, expected)
        assert "cpu backend" in browser.find_element(By.ID, "tryon-timings").text

        edit = browser.find_element(By.ID, "edit-form")
        edit.find_element(By.NAME, "use-colour").click()
        edit.find_element(By.ID, "edit-button").click()
        wait.until(lambda d: (d.find_element(By.ID, "edit-result").get_attribute("src") or "").startswith("data:"))
        browser.find_element(By.ID, "sample-button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#samples img")) == 8)
        if SCREENSHOT:
            browser.save_screenshot(SCREENSHOT)

        bad = tmp_path / "not-a-garment.png"
        bad.write_text("this is not an image")
        browser.find_element(By.ID, "upload").send_keys(str(bad))
        wait.until(ec.element_to_be_clickable((By.ID, "tryon-button"))).click()
        error = browser.find_element(By.ID, "error")
        wait.until(lambda d: error.is_displayed())
        assert "garment_upload: not an image file" in error.text
        assert shown.shape == _image_of(result).shape         # the last good result stays
