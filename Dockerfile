# The Lambda function as a container image (docs/deploy.md says why: numpy 2.4 and pyarrow 26 need
# glibc 2.27/2.28, the python3.11 Lambda runtime has Amazon Linux 2's 2.26, and the package is 560 MB).
# Debian bookworm's Python 3.11 + AWS's runtime interface client; Zappa's handler serves both the WSGI
# app (API Gateway) and the scheduled events, from the settings `zappa save-python-settings-file` wrote.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /var/task

# Dependencies first (a layer that changes only with pyproject.toml), pinned as CI tested them.
COPY pyproject.toml ./
RUN python - <<'PY' > /tmp/requirements.txt
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("\n".join(d for d in deps if not d.startswith("bokeh_sampledata")))
PY
RUN pip install -r /tmp/requirements.txt awslambdaric==4.2.2 zappa==0.63.0

COPY manage.py zappa_settings.py ./
COPY parakeet ./parakeet
COPY marketdata ./marketdata
COPY trades ./trades
COPY strategies ./strategies
COPY scanner ./scanner
COPY quant ./quant
COPY templates ./templates
COPY static ./static
# Hashed static files for WhiteNoise (and a CDN in front); the settings need a key only to load.
RUN DJANGO_SETTINGS_MODULE=parakeet.settings.base SECRET_KEY=collectstatic-only \
    python manage.py collectstatic --noinput -v 0 && python -m compileall -q parakeet marketdata quant

ENTRYPOINT ["python", "-m", "awslambdaric"]
CMD ["zappa.handler.lambda_handler"]
