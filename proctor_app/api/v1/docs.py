"""A readable page of the OpenAPI document, rendered on the server: no script, no CDN."""

import json
from html import escape

from starlette.responses import HTMLResponse

STYLE = ("body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}"
         "h2{margin-top:2em;border-bottom:1px solid #ddd}code,pre{background:#f5f5f5;padding:2px 4px}"
         "pre{padding:8px;overflow-x:auto}.op{margin:1.5em 0}.method{font-weight:bold;text-transform:uppercase}"
         "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}")


def _schema_name(schema: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_schema_name(option) for option in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items', {}))}"
    return schema.get("type", "any")


def _operation(path: str, method: str, op: dict) -> str:
    params = "".join(
        f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
        f"<td>{escape(_schema_name(p.get('schema', {})))}</td><td>{'yes' if p.get('required') else ''}</td>"
        f"<td>{escape(p.get('description', ''))}</td></tr>" for p in op.get("parameters", []))
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    responses = "".join(
        f"<li><b>{escape(code)}</b> {escape(r.get('description', ''))}: "
        f"{escape(', '.join(_schema_name(c.get('schema', {})) for c in r.get('content', {}).values()))}</li>"
        for code, r in op.get("responses", {}).items())
    scope = op.get("x-required-scope")
    return (f"<div class='op'><h3><span class='method'>{method}</span> <code>{escape(path)}</code></h3>"
            f"<p>{escape(op.get('summary', ''))}. {escape(op.get('description', ''))}</p>"
            + (f"<p>Scope: <code>{escape(scope)}</code></p>" if scope else "")
            + (f"<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th><th></th></tr>{params}</table>"
               if params else "")
            + (f"<p>Body: <code>{escape(_schema_name(body))}</code></p>" if body else "")
            + f"<ul>{responses}</ul></div>")


def docs_page(document: dict) -> HTMLResponse:
    server = (document.get("servers") or [{"url": ""}])[0]["url"]
    operations = "".join(_operation(server + path, method, op)
                         for path, item in document["paths"].items() for method, op in item.items())
    schemas = "".join(f"<h3 id='{escape(name)}'>{escape(name)}</h3><pre>{escape(json.dumps(schema, indent=2))}</pre>"
                      for name, schema in document.get("components", {}).get("schemas", {}).items())
    html = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(document['info']['title'])}"
            f"</title><style>{STYLE}</style></head><body><h1>{escape(document['info']['title'])} "
            f"{escape(document['info']['version'])}</h1><p>{escape(document['info'].get('description', ''))}</p>"
            f"<p>Machine-readable: <a href='{escape(server)}/openapi.json'>openapi.json</a> (OpenAPI "
            f"{escape(document['openapi'])}).</p><h2>Operations</h2>{operations}<h2>Schemas</h2>{schemas}"
            "</body></html>")
    return HTMLResponse(html)
