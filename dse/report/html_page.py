"""The offline HTML shell shared by every page dse writes (dashboard, `dse compare --html`, `dse roofline
--html`): Vega, Vega-Lite and vega-embed inlined (vl-convert's bundle, so the page needs no network),
the chart's spec embedded safely in a script element, the rendered view exposed as `window.dseView` and
`document.body.dataset.rendered` set to "ok" or "error" (the browser tests wait on it)."""

from __future__ import annotations

import html
import json
import warnings

import altair as alt

BASE_STYLE = """
 body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 18px 40px; color: #222; }
 .notes { font-size: 12px; color: #8a4b00; }
 #dse-error { color: #b00020; font-weight: bold; }
"""

_SHELL = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
<script type="text/javascript">
// vega-embed bundle (Vega, Vega-Lite {vl_version}, vega-embed) inlined: the page needs no network
{bundle}
</script>
</head>
<body>
{body}
<script type="text/javascript">
  const spec = {spec};
  vegaEmbed("#vis", spec, {{renderer: "canvas", actions: {{export: true, source: false, compiled: false, editor: false}}}})
    .then(function (result) {{
      const view = result.view;
      window.dseView = view;
{on_ready}
      document.body.dataset.rendered = "ok"; }})
    .catch(function (err) {{ console.error(err); document.body.dataset.rendered = "error";
      document.getElementById("dse-error").textContent = {failure} + err; }});
</script>
</body>
</html>
"""

# Characters that may not appear raw in JSON placed inside an inline <script>: `<` (`</script>` ends the
# element, `<!--` + `<script` switches the HTML tokenizer into the double-escaped state so the real
# `</script>` no longer closes it), `>` and `&` (for good measure), U+2028/2029 (line terminators in
# pre-ES2019 JavaScript). Source: WHATWG HTML §4.12.1.3 "Restrictions for contents of script elements".
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_UNSAFE = str.maketrans(_SCRIPT_ESCAPES)


def script_json(obj) -> str:
    """`obj` as JSON text that is safe to place inside an inline `<script>` element and still parses to
    the same value (the escapes are JSON string escapes; `<`, `>`, `&` occur only inside strings)."""
    return json.dumps(obj, separators=(",", ":"), default=str).translate(_SCRIPT_UNSAFE)


def chart_spec(chart: alt.TopLevelMixin) -> dict:
    """The chart's Vega-Lite spec with every row inlined (no row limit, no warnings)."""
    with warnings.catch_warnings(), alt.data_transformers.disable_max_rows():
        warnings.simplefilter("ignore", UserWarning)
        return chart.to_dict()


def embed_page(title: str, chart: alt.TopLevelMixin, body: str, *, style: str = "", on_ready: str = "",
               failure: str = "Could not draw the chart: ") -> str:
    """A self-contained page: `body` HTML (must hold `<div id="dse-error">` and `<div id="vis">`), the chart
    drawn into #vis, `on_ready` JavaScript run with `view` once it is drawn. `title` is escaped here."""
    import vl_convert
    from altair.utils._importers import vl_version_for_vl_convert

    vl = vl_version_for_vl_convert()
    return _SHELL.format(title=html.escape(title), style=BASE_STYLE + style, vl_version=vl,
                         bundle=vl_convert.javascript_bundle(vl_version=vl).replace("</script", "<\\/script"),
                         body=body, spec=script_json(chart_spec(chart)), on_ready=on_ready,
                         failure=script_json(failure))


__all__ = ["embed_page", "script_json", "chart_spec", "BASE_STYLE"]
