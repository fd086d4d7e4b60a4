"""Opens a generated dashboard in headless Chromium (Chrome DevTools protocol over a stdlib websocket) and checks
that it renders offline: no console errors, no network requests, marks in every view, linked brushing.

Needs /usr/bin/chromium (CI installs Debian's `chromium` in .ci/run); skipped cleanly without it.
A screenshot is saved under test-artifacts/.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and os.path.exists(p)), None)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it via .ci/run)"),
]


# ------------------------------------------------------------------ a minimal CDP client (stdlib only)


class CDP:
    """Just enough of RFC 6455 and the DevTools protocol: send commands, collect events."""

    def __init__(self, ws_url: str, timeout: float = 60.0):
        assert ws_url.startswith("ws://")
        hostport, _, path = ws_url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake failed")
            resp += chunk
        head, _, self._buf = resp.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(head.decode(errors="replace"))
        self._id = 0
        self.events: list[dict] = []

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("websocket closed")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _send_frame(self, payload: bytes, opcode: int = 0x1) -> None:
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _recv_message(self) -> dict:
        data = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:  # ping
                self._send_frame(payload, 0xA)
                continue
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            data += payload
            if b0 & 0x80:
                return json.loads(data)

    def call(self, method: str, params: dict | None = None, timeout: float = 60.0) -> dict:
        self._id += 1
        my = self._id
        self._send_frame(json.dumps({"id": my, "method": method, "params": params or {}}).encode())
        end = time.time() + timeout
        while time.time() < end:
            msg = self._recv_message()
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(method)

    def js(self, expression: str, timeout: float = 60.0):
        res = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True},
                        timeout)
        if "exceptionDetails" in res:
            raise RuntimeError(json.dumps(res["exceptionDetails"])[:2000])
        return res["result"].get("value")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@contextlib.contextmanager
def launch_chromium(profile: Path):
    """Headless Chromium with a fresh profile in `profile`; yields a CDP connection to its blank page."""
    profile.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--window-size=1700,2400", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    cdp = None
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.time() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.time() > end or proc.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t.get("type") == "page")
        cdp = CDP(page["webSocketDebuggerUrl"])
        for domain in ("Runtime", "Log", "Network", "Page"):
            cdp.call(f"{domain}.enable")
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def browser(tmp_path):
    with launch_chromium(tmp_path / "profile") as cdp:
        yield cdp


# ------------------------------------------------------------------ page inspection helpers (run in the page)

MARK_COUNTS = """
(() => {
  const counts = {};
  const walk = (mark) => {
    if (!mark || !mark.items) return;
    if (mark.marktype && mark.marktype !== 'group' && mark.name) counts[mark.name] = (counts[mark.name] || 0) + mark.items.length;
    for (const it of mark.items) { if (it.items) for (const m of it.items) walk(m); }
  };
  walk(window.dseView.scenegraph().root);
  return counts;
})()
"""

HIGHLIGHTED = """
((name) => {
  let n = 0, total = 0;
  const walk = (mark) => {
    if (!mark || !mark.items) return;
    if (mark.name === name) for (const it of mark.items) { total++; if (it.fill && it.fill !== '#d0d0d0') n++; }
    for (const it of mark.items) { if (it.items) for (const m of it.items) walk(m); }
  };
  walk(window.dseView.scenegraph().root);
  return [n, total];
})
"""

PLOT_BOX = """
((name) => {
  let found = null;
  const walk = (mark) => {
    if (!mark || !mark.items || found) return;
    if (mark.name === name) { found = mark; return; }
    for (const it of mark.items) { if (it.items) for (const m of it.items) walk(m); }
  };
  const view = window.dseView;
  walk(view.scenegraph().root);
  if (!found) return null;
  let x = 0, y = 0, g = found.group;
  const w = g.width, h = g.height;
  while (g) { x += g.x || 0; y += g.y || 0; g = g.mark && g.mark.group; }
  const rect = view.container().querySelector('canvas').getBoundingClientRect();
  const o = view.origin();
  return {x: rect.left + o[0] + x, y: rect.top + o[1] + y, w: w, h: h};
})
"""


def _wait_rendered(cdp: CDP, timeout: float = 120.0) -> str:
    end = time.time() + timeout
    while time.time() < end:
        state = cdp.js("document.body && document.body.dataset.rendered || ''")
        if state:
            return state
        time.sleep(0.25)
    raise TimeoutError("dashboard did not render")


def _drag(cdp: CDP, x0: float, y0: float, x1: float, y1: float) -> None:
    cdp.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x0, "y": y0})
    cdp.call("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x0, "y": y0, "button": "left",
                                          "buttons": 1, "clickCount": 1})
    for k in range(1, 9):
        cdp.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x0 + (x1 - x0) * k / 8,
                                              "y": y0 + (y1 - y0) * k / 8, "button": "left", "buttons": 1})
    cdp.call("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x1, "y": y1, "button": "left",
                                          "buttons": 0, "clickCount": 1})


def _problems(events: list[dict]) -> tuple[list[str], list[str]]:
    """(console / exception errors, non-local network requests) seen so far."""
    errors, requests = [], []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            errors.append(json.dumps(p.get("exceptionDetails", {}))[:500])
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            errors.append(p["entry"].get("text", ""))
        elif m == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            if not url.startswith(("file:", "data:", "blob:", "about:")):
                requests.append(url)
    return errors, requests


# ------------------------------------------------------------------ the tests


@pytest.fixture(scope="module")
def dashboard_html(tmp_path_factory):
    """A dashboard over two synthetic runs (same columns as `dse run` writes), with every view."""
    from dse.report import demo
    from dse.report.page import build_dashboard, write_html
    from dse.report.spec import default_spec

    base = tmp_path_factory.mktemp("dash")
    r1 = demo.write_run(base / "quick", 3000, seed=0, name="quick", sampler="nsga2")
    r2 = demo.write_run(base / "quick-random", 3000, seed=1, name="quick-random", sampler="random")
    d = build_dashboard([r1, r2], default_spec())
    return write_html(d, base / "dashboard.html"), d


def test_dashboard_renders_offline_and_brush_links_views(browser, dashboard_html):
    path, dash = dashboard_html
    browser.call("Page.navigate", {"url": path.resolve().as_uri()})
    assert _wait_rendered(browser) == "ok", browser.js("document.getElementById('dse-error').textContent")
    browser.js("window.dseView.runAsync().then(() => true)")
    counts = browser.js(MARK_COUNTS)
    assert counts, "no marks in the scenegraph"

    def total(prefix: str) -> int:
        return sum(v for k, v in counts.items() if k.startswith(prefix))

    assert total("pareto_points_") > 1000, counts
    assert total("pareto_front_") > 0, counts
    assert total("pareto_refs_") > 0, counts  # catalog chips overlaid
    assert total("roofline_ops") > 0, counts
    assert total("roofline_roofs") > 0, counts
    assert total("breakdown_bars") > 0, counts
    assert total("composition_") > 0, counts
    assert total("convergence_lines") > 0, counts
    assert browser.js("document.querySelectorAll('#dse-controls select').length") >= 2  # colour + design

    before, n1 = browser.js(HIGHLIGHTED + "('pareto_points_1_marks')")
    assert before == n1 > 0  # nothing brushed: every point coloured
    box = browser.js(PLOT_BOX + "('pareto_points_0_marks')")
    assert box and box["w"] > 50 and box["h"] > 50, box
    _drag(browser, box["x"] + box["w"] * 0.05, box["y"] + box["h"] * 0.05,
          box["x"] + box["w"] * 0.55, box["y"] + box["h"] * 0.6)
    browser.js("window.dseView.runAsync().then(() => true)")
    after, n2 = browser.js(HIGHLIGHTED + "('pareto_points_1_marks')")
    assert n2 == n1
    assert 0 < after < before, (before, after)  # the brush in view 0 changed what view 1 highlights
    time.sleep(0.3)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = browser.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    (ARTIFACTS / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))

    errors, requests = _problems(browser.events)
    assert not errors, errors
    assert not requests, requests


def test_design_dropdown_changes_roofline(browser, dashboard_html):
    path, dash = dashboard_html
    browser.call("Page.navigate", {"url": path.resolve().as_uri()})
    assert _wait_rendered(browser) == "ok"
    options = browser.js("window.dseView.signal('design_pick') !== undefined && "
                         "Array.from(document.querySelectorAll('#dse-controls select')).map(s => s.options.length)")
    assert options and max(options) >= 2
    first = browser.js(MARK_COUNTS).get("roofline_ops_marks", 0)
    designs = browser.js("Array.from(document.querySelectorAll('#dse-controls select'))"
                         ".find(s => s.parentElement.textContent.includes('Design')).options.length")
    assert designs >= 2
    seen = set()
    for i in range(designs):
        browser.js("(() => { const s = Array.from(document.querySelectorAll('#dse-controls select'))"
                   ".find(s => s.parentElement.textContent.includes('Design'));"
                   f" s.selectedIndex = {i}; s.dispatchEvent(new Event('change')); return true; }})()")
        browser.js("window.dseView.runAsync().then(() => true)")
        seen.add(browser.js("window.dseView.signal('design_pick')"))
    assert len(seen) == designs and first >= 0
    errors, requests = _problems(browser.events)
    assert not errors and not requests, (errors, requests)


@pytest.mark.slow
def test_100k_trials_page_stays_small_and_renders(browser, tmp_path):
    from dse.report import demo
    from dse.report.page import build_dashboard, write_html
    from dse.report.spec import default_spec

    run = demo.write_run(tmp_path / "big", 100_000, seed=3, name="big")
    t = time.perf_counter()
    d = build_dashboard([run], default_spec())
    path = write_html(d, tmp_path / "big.html")
    build_s = time.perf_counter() - t
    size_mb = path.stat().st_size / 1e6
    assert size_mb < 15, size_mb
    assert "thinned so the page stays responsive" in path.read_text(encoding="utf-8")
    t = time.perf_counter()
    browser.call("Page.navigate", {"url": path.resolve().as_uri()})
    assert _wait_rendered(browser) == "ok"
    render_s = time.perf_counter() - t
    assert render_s < 60, render_s
    counts = browser.js(MARK_COUNTS)
    assert sum(v for k, v in counts.items() if k.startswith("pareto_points_")) > 0
    assert "uniform random sample" in browser.js("document.querySelector('header').textContent")
    print(f"100k trials: build {build_s:.1f} s, {size_mb:.1f} MB, render {render_s:.1f} s")


# ------------------------------------------------------------------ issue 14.2: a dashboard you can drive

FRONT_POINT = """
((pick) => {
  // screen position of a clickable front point whose design is drillable and not the picked one
  const view = window.dseView, drill = window.dseDrill || {};
  let found = null;
  const walk = (mark, ox, oy) => {
    if (!mark || !mark.items || found) return;
    for (const it of mark.items) {
      if (found) return;
      if (mark.name && mark.name.startsWith('pareto_click_') && it.datum && drill[it.datum.design]
          && drill[it.datum.design] !== pick) { found = {x: ox + it.x, y: oy + it.y, design: it.datum.design}; return; }
      if (it.items) for (const m of it.items) walk(m, ox + (it.x || 0), oy + (it.y || 0));
    }
  };
  walk(view.scenegraph().root, 0, 0);
  if (!found) return null;
  const rect = view.container().querySelector('canvas').getBoundingClientRect();
  const o = view.origin();
  return {x: rect.left + o[0] + found.x, y: rect.top + o[1] + found.y, design: found.design};
})
"""

ITEMS = """
((name) => {
  const out = [];
  const walk = (mark) => {
    if (!mark || !mark.items) return;
    if (mark.name && mark.name.startsWith(name)) for (const it of mark.items) out.push(it.datum || {});
    for (const it of mark.items) { if (it.items) for (const m of it.items) walk(m); }
  };
  walk(window.dseView.scenegraph().root);
  return out.map(d => ({design: d.design, text: d.step_text}));
})
"""


def _click(cdp: CDP, x: float, y: float) -> None:
    cdp.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
    for kind in ("mousePressed", "mouseReleased"):
        cdp.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                              "buttons": 1 if kind == "mousePressed" else 0, "clickCount": 1})


def _open_at_1280(cdp: CDP, path: Path) -> None:
    cdp.call("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 1600, "deviceScaleFactor": 1,
                                                     "mobile": False})
    cdp.call("Page.navigate", {"url": path.resolve().as_uri()})
    assert _wait_rendered(cdp) == "ok", cdp.js("document.getElementById('dse-error').textContent")
    cdp.js("window.dseView.runAsync().then(() => true)")


def _click_a_front_point(browser, dash) -> tuple[str, str]:
    """Click a drillable front point other than the picked design: (design_pick before, after)."""
    browser.js(f"(() => {{ window.dseDrill = {json.dumps(dash.drill)}; return true; }})()")
    before = browser.js("window.dseView.signal('design_pick')")
    target = browser.js(FRONT_POINT + f"({json.dumps(before)})")
    assert target, "no clickable front point on screen"
    after = before
    # the scenegraph position is the symbol's centre up to a few px of layout offset: try a small spiral
    for dx, dy in [(0, 0), (6, 6), (11, 11), (-6, -6), (6, -6), (-6, 6), (11, 0), (0, 11), (-11, -11)]:
        _click(browser, target["x"] + dx, target["y"] + dy)
        browser.js("window.dseView.runAsync().then(() => true)")
        after = browser.js("window.dseView.signal('design_pick')")
        if after != before:
            break
    assert after != before and after in dash.drill.values(), (before, after, target)
    return before, after


def test_clicking_a_front_point_selects_its_design_and_changes_the_roofline(browser, dashboard_html):
    path, dash = dashboard_html
    assert dash.drill, "no drillable designs"
    _open_at_1280(browser, path)
    ops_before = browser.js(ITEMS + "('roofline_ops_')")
    util_before = browser.js(ITEMS + "('roofline_util_ops')")
    before, after = _click_a_front_point(browser, dash)
    ops_after = browser.js(ITEMS + "('roofline_ops_')")
    assert {o["design"] for o in ops_after} == {after} and ops_after != ops_before  # the roofline follows
    util_after = browser.js(ITEMS + "('roofline_util_ops')")  # and its array-utilisation ceilings
    assert util_after and {o["design"] for o in util_after} == {after} and util_after != util_before
    select = browser.js("Array.from(document.querySelectorAll('#dse-controls select'))"
                        ".find(s => s.parentElement.textContent.includes('Design')).value")
    assert select == after  # and so does the dropdown
    errors, requests = _problems(browser.events)
    assert not errors and not requests, (errors, requests)


def test_breakdown_shows_absolute_ms_and_the_reference_is_named_and_overlaid(browser, dashboard_html):
    path, dash = dashboard_html
    _open_at_1280(browser, path)
    labels = browser.js(ITEMS + "('breakdown_ms')")
    assert labels and all(re.fullmatch(r"[\d,.]+(e[-+]\d+)? ms", lab["text"]) for lab in labels), labels[:5]
    ref = [lab for lab in labels if lab["design"] == "H100-SXM (reference)"]
    assert ref, "the reference chip has no breakdown bar"
    counts = browser.js(MARK_COUNTS)
    assert sum(v for k, v in counts.items() if k.startswith("roofline_ref_roofs")) > 0, counts
    assert sum(v for k, v in counts.items() if k.startswith("roofline_ref_ops")) > 0, counts
    header = browser.js("document.querySelector('header').textContent")
    assert "H100-SXM" in header
    spec = path.read_text(encoding="utf-8").replace("\\u00d7", "×")  # the inline JSON escapes non-ASCII
    assert "× reference" not in spec and "× H100-SXM" in spec  # axis titles name the reference


def test_layout_fits_1280_px(browser, dashboard_html):
    path, dash = dashboard_html
    _open_at_1280(browser, path)
    time.sleep(0.3)
    width = browser.js("document.documentElement.scrollWidth")
    assert width <= 1280, width
    ARTIFACTS.mkdir(exist_ok=True)
    shot = browser.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    (ARTIFACTS / "dashboard-1280.png").write_bytes(base64.b64decode(shot["data"]))


def test_front_shows_error_bars_and_p_front_and_the_tornado_follows_the_click(browser, dashboard_html):
    """Issue 16.6: p10-p90 whiskers on front points, P(on the front) in the data, the selected design's
    tornado (and the array-utilisation roof of the selected scenario, issue 14.2)."""
    path, dash = dashboard_html
    assert dash.uncertainty
    _open_at_1280(browser, path)
    counts = browser.js(MARK_COUNTS)
    for prefix in ("pareto_errors_", "tornado_bars_", "roofline_util"):
        assert sum(v for k, v in counts.items() if k.startswith(prefix)) > 0, (prefix, counts)
    header = browser.js("document.querySelector('header').textContent")
    assert "probability of staying on the front" in header
    def bars() -> set:  # designs of the drawn tornado bars (group marks of the view carry no design)
        items = [b for b in browser.js(ITEMS + "('tornado_bars_')") if b.get("design")]
        assert items, "no tornado bars drawn"
        return {b["design"] for b in items}

    bars_before = bars()
    before, after = _click_a_front_point(browser, dash)
    assert bars_before == {before}
    assert bars() == {after}  # the tornado follows the click
    errors, requests = _problems(browser.events)
    assert not errors and not requests, (errors, requests)
