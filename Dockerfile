# The carecouch bridge, as docker-compose.yml runs it: the package with its `server` extra
# (gunicorn), as an unprivileged user. Settings and secrets come from the environment and
# mounted files at run time (docs/deployment.md); the image holds none.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/carecouch

# The record rules (couch/) travel with the code: the bridge reads the record-type registry.
COPY pyproject.toml README.md ./
COPY carecouch/ carecouch/
COPY admin_cli/ admin_cli/
COPY bridge/ bridge/
COPY mobile_stub/ mobile_stub/
COPY couch/ couch/
RUN pip install '.[server]' && useradd --system --uid 10001 carecouch

ENV CARECOUCH_COUCH_DIR=/opt/carecouch/couch
USER carecouch
EXPOSE 8765
# One line and exit 1 when a setting or secret is missing (bridge/wsgi.py).
CMD ["gunicorn", "--bind", "0.0.0.0:8765", "--workers", "2", "--threads", "8", \
     "--access-logfile", "-", "bridge.wsgi:app"]
