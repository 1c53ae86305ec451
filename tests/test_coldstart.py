"""Cold start: a fresh process that serves web requests loads no pandas, pyarrow or plotly until a request needs them.

On Lambda every new container imports the WSGI app before its first answer; pandas + pyarrow + plotly
cost about a second there. The check runs in a fresh interpreter (this one has loaded everything), and
walks every URL pattern and the whole OpenAPI schema, so a view or API module added later that imports
them at the top fails here instead of slowing every cold start silently.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "pyarrow", "plotly", "exchange_calendars")

PROBE = r"""
import json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "parakeet.settings.base"
from parakeet.wsgi import application
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

def walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from walk(p.url_patterns, prefix + str(p.pattern))  # imports the included module
        else:
            yield prefix + str(p.pattern), p.callback

patterns = list(walk(get_resolver().url_patterns))
from parakeet.api import api
schema = api.get_openapi_schema()
# A whole request through the middleware and the API's auth (anonymous: answered without the database).
status = Client().get("/api/v1/data/prices/AAPL").status_code
print(json.dumps({"patterns": len(patterns), "operations": sum(len(v) for v in schema["paths"].values()),
                  "status": status, "loaded": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def test_the_wsgi_app_urls_and_api_schema_load_no_dataframe_or_chart_library():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DATABASE_URL="sqlite:///:memory:", ALLOWED_HOSTS="testserver")
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["patterns"] > 20 and result["operations"] >= 7  # the walk saw the site and the API
    assert result["status"] == 401
    assert result["loaded"] == [], f"imported while loading the web app: {result['loaded']}"
