"""Static files as production serves them: hashed names, far-future cache headers, compressed variants.

Run in a fresh process with the production storage (the suite's settings use plain names): collectstatic
into a temporary folder, then WhiteNoise answers through the whole middleware stack. A CDN in front can
cache the hashed files for ever; a new deploy changes their names.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, os, re
import django
django.setup()
from django.core.management import call_command
call_command("collectstatic", "--noinput", verbosity=0)
from django.test import Client
client = Client()
page = client.get("/accounts/login/").content.decode()
css = re.search(r'href="(/static/css/app\.[0-9a-f]{12}\.css)"', page).group(1)
hashed = client.get(css)
gz = client.get(css, HTTP_ACCEPT_ENCODING="gzip")
plain = client.get("/static/css/app.css")
print(json.dumps({"css": css, "status": hashed.status_code, "cache": hashed["Cache-Control"],
                  "gz": gz.get("Content-Encoding"), "vary": gz.get("Vary"),
                  "plain_cache": plain["Cache-Control"]}))
"""


def test_hashed_static_files_are_cached_for_ever_and_served_compressed(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "parakeet.settings.base", "PARAKEET_STATIC_ROOT": str(tmp_path),
           "ALLOWED_HOSTS": "testserver", "DATABASE_URL": "sqlite:///:memory:", "LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    assert result["cache"] == "max-age=315360000, public, immutable"  # ten years: the name changes with the content
    assert result["gz"] == "gzip" and result["vary"] == "Accept-Encoding"
    assert result["plain_cache"] == "max-age=60, public"  # an unhashed name may change under the same URL
