#!/usr/bin/env python3
"""End-to-end test of the dashboard in headless Chromium (Debian's chromium and chromium-driver).

Starts a real herald node and real receivers on 127.0.0.1, seeds deliveries through the API, then drives
the dashboard as an operator would: signs in, reads an endpoint's delivery log (status codes and response
times), cancels a retrying delivery and retries a failed one (both checked through the API), sees a chart
drawn, and signs out. It fails on any browser console error and on any request to another host.

Usage: dashboard_e2e.py HERALD_BINARY [SCREENSHOT_PATH]
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

TOKEN = "dashboard-e2e-admin-token"


class Receiver(BaseHTTPRequestHandler):
    """/ok answers 204, /fail 500 with a body, /unavailable 503."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path.startswith("/ok"):
            time.sleep(0.003)
            self.send_response(204)
            self.end_headers()
            return
        status, body = (500, b'{"oops": "receiver exploded"}') if self.path.startswith("/fail") else (503, b"busy")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("authorization", f"Bearer {TOKEN}")
    if data is not None:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as res:
        text = res.read()
        return json.loads(text) if text else None


def wait_for(what, check, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def delivery_status(base, delivery_id):
    return call(base, "GET", f"/v1/deliveries/{delivery_id}")


def seed(base, receiver):
    ok = call(base, "POST", "/v1/endpoints", {
        "url": f"{receiver}/ok", "event_types": ["order.*"], "description": "Orders service"})
    failing = call(base, "POST", "/v1/endpoints", {
        "url": f"{receiver}/fail", "event_types": ["invoice.*"],
        "retry_policy": {"kind": "schedule", "delays_ms": [10]}})
    busy = call(base, "POST", "/v1/endpoints", {
        "url": f"{receiver}/unavailable", "event_types": ["report.*"],
        "retry_policy": {"kind": "schedule", "delays_ms": [3_600_000]}})
    for n in range(12):
        call(base, "POST", "/v1/events", {"event_type": "order.created", "payload": {"n": n}})
    dead = call(base, "POST", "/v1/events", {"event_type": "invoice.paid", "payload": {"id": 1}})
    waiting = call(base, "POST", "/v1/events", {"event_type": "report.ready", "payload": {"id": 2}})
    dead_id = dead["deliveries"][0]["id"]
    waiting_id = waiting["deliveries"][0]["id"]
    wait_for("the failing delivery to fail", lambda: delivery_status(base, dead_id)["status"] == "failed")
    wait_for("the busy delivery to be retrying", lambda: delivery_status(base, waiting_id)["status"] == "retrying")
    wait_for("the orders to be delivered", lambda: all(
        d["status"] == "delivered"
        for d in call(base, "GET", f"/v1/deliveries?endpoint_id={ok['id']}&limit=50")["data"]))
    return ok, failing, busy, dead_id, waiting_id


def browser(port):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800",
                "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--metrics-recording-only", "--no-default-browser-check",
                # Any other host fails to resolve, so a stray request would show up as an error too.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def check_logs(driver, origin, seen):
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"console errors: {errors}"
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] != "Network.requestWillBeSent":
            continue
        url = message["params"]["request"]["url"]
        seen.add(url)
        assert url.startswith(origin + "/") or url.startswith("data:"), f"a request to another host: {url}"


def main():
    herald, screenshot = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    receiver_url = f"http://127.0.0.1:{receiver.server_address[1]}"
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    data = tempfile.mkdtemp()
    env = dict(os.environ, HERALD_ADMIN_TOKEN=TOKEN, HERALD_ALLOW_PRIVATE_TARGETS="true", RUST_LOG="warn")
    node = subprocess.Popen([herald, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data], env=env,
                            stdout=open(os.path.join(data, "herald.log"), "w"), stderr=subprocess.STDOUT)
    driver = None
    try:
        def up():
            if node.poll() is not None:
                sys.exit(f"herald exited; its log is in {data}")
            try:
                return urllib.request.urlopen(origin + "/healthz", timeout=2).status == 200
            except OSError:
                return False

        wait_for("herald to start", up)
        ok, failing, busy, dead_id, waiting_id = seed(origin, receiver_url)
        driver = browser(port)
        wait = WebDriverWait(driver, 20)
        seen = set()

        # Sign in.
        driver.get(origin + "/")
        token = wait.until(ec.presence_of_element_located((By.XPATH, "//label[text()='API token']")))
        driver.find_element(By.ID, token.get_attribute("for")).send_keys(TOKEN)
        driver.find_element(By.XPATH, "//button[text()='Sign in']").click()

        # The overview draws its chart from /v1/stats.
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#overview-chart canvas")))
        drawn = wait.until(lambda d: d.execute_script(
            "const c = document.querySelector('#overview-chart canvas');"
            "const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) n++; return n > 200 ? n : 0;"))
        assert drawn, "the chart has no pixels"
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "main"), "Oldest outstanding delivery"))
        assert TOKEN not in driver.current_url
        if screenshot:
            time.sleep(0.3)
            driver.save_screenshot(screenshot)

        # The endpoint and its delivery log, with status codes and response times.
        driver.find_element(By.LINK_TEXT, "Endpoints").click()
        wait.until(ec.element_to_be_clickable((By.LINK_TEXT, ok["url"]))).click()
        wait.until(ec.element_to_be_clickable((By.LINK_TEXT, "Delivery Log"))).click()
        log = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "section[aria-label='Delivery log'] table")))
        wait.until(lambda d: "204" in log.text)
        assert " ms" in log.text, log.text
        rows = log.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) == 12, f"{len(rows)} rows in the delivery log"

        # Cancel the retrying delivery from the outstanding list.
        driver.find_element(By.LINK_TEXT, "Outstanding").click()
        cancel = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"button[aria-label='Cancel {waiting_id}']")))
        cancel.click()
        wait_for("the cancel to land", lambda: delivery_status(origin, waiting_id)["status"] == "cancelled")

        # Retry the failed one: it is attempted again.
        Select(wait.until(ec.presence_of_element_located((By.ID, "outstanding-status")))).select_by_value("failed")
        retry = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"button[aria-label='Retry {dead_id}']")))
        retry.click()
        wait_for("the retried delivery's second attempt",
                 lambda: len(delivery_status(origin, dead_id)["attempts"]) >= 2)

        # Bulk retry of the endpoint's failed deliveries since an hour ago, once the retried one failed again.
        wait_for("the retried delivery to fail again", lambda: delivery_status(origin, dead_id)["status"] == "failed")
        attempts_before = len(delivery_status(origin, dead_id)["attempts"])
        driver.refresh()
        form = wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, "form[aria-label='Retry failed deliveries since a time']")))
        Select(form.find_element(By.TAG_NAME, "select")).select_by_value(failing["id"])
        since = time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() - 3600))
        driver.execute_script("arguments[0].value = arguments[1]", form.find_element(By.TAG_NAME, "input"), since)
        form.find_element(By.TAG_NAME, "button").click()
        try:
            wait.until(ec.text_to_be_present_in_element((By.ID, "notices"), "1 failed deliveries queued again"))
        except TimeoutException:
            notices = driver.find_element(By.ID, "notices").text
            status = delivery_status(origin, dead_id)["status"]
            raise AssertionError(f"no bulk-retry notice: notices {notices!r}, the delivery {status}, since {since}")
        wait_for("the bulk-retried delivery's next attempt",
                 lambda: len(delivery_status(origin, dead_id)["attempts"]) > attempts_before)

        # One delivery's page: attempts, headers sent, payload.
        driver.get(f"{origin}/#/deliveries/{dead_id}")
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "main"), "receiver exploded"))
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "main"), "webhook-signature"))

        # Search by id finds the event.
        event_id = delivery_status(origin, dead_id)["event_id"]
        driver.find_element(By.LINK_TEXT, "Search").click()
        box = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=search]")))
        box.send_keys(event_id)
        driver.find_element(By.XPATH, "//button[text()='Search']").click()
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "main"), "invoice.paid"))

        # Readable on a phone: nothing wider than the screen but the tables, which scroll in their own box.
        driver.set_window_size(390, 844)
        driver.get(origin + "/#/outstanding")
        wait.until(ec.presence_of_element_located((By.ID, "outstanding-status")))
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page is {overflow} px wider than a phone's screen"
        driver.set_window_size(1280, 800)

        # Sign out forgets the token.
        driver.find_element(By.XPATH, "//button[text()='Sign out']").click()
        wait.until(ec.presence_of_element_located((By.XPATH, "//label[text()='API token']")))
        assert driver.execute_script("return sessionStorage.length") == 0

        check_logs(driver, origin, seen)
        assert any(u.startswith(origin + "/v1/stats") for u in seen), "the chart did not come from /v1/stats"
        print(f"dashboard e2e: ok ({len(seen)} requests, all to {origin})")
    finally:
        if driver is not None:
            driver.quit()
        node.terminate()
        node.wait(timeout=10)
        receiver.shutdown()


if __name__ == "__main__":
    main()
