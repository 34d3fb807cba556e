# One image for every role of the lab; docker-compose.yml picks the role with `command`:
#
#   target        python lab.py serve --bind-all --port 5000 --metrics-port 9100 --admin-allow-remote
#   locust        python -m locust -f loadtests/locustfile.py --master | --worker --master-host HOST
#   runner        python lab.py run-scenario NAME --host http://target:5000 --allow-remote --out /data/runs
#   monitor       python lab.py monitor --target http://target:5000 --model /data/models/NAME --bind-all ...
#                 (the monitor needs a trained model in the mounted volume; see README)
#
# Build: docker build -t stability-lab .
#
# BASE_IMAGE: any image with Python 3.11+ whose `python` and `pip` are on PATH (default the
# official slim image; deploy/stack-test.sh passes a Debian image it makes with debootstrap).
# PIP_CONF, PIP_EXTRA_CA_PEM: the text of a pip.conf, and CA certificates (PEM) pip trusts on
# top of the image's own bundle, while installing the dependencies; removed after.
# deploy/stack-test.sh passes the host's index settings and the certificates of its pip
# `cert` bundle that the base image lacks (a network whose TLS goes through a proxy of its
# own). Both show in `docker history`: put no credentials in them.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG PIP_CONF=""
ARG PIP_EXTRA_CA_PEM=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so that editing the lab's code does not
# reinstall TensorFlow: build the project with empty stand-ins for its files, keep the
# dependencies, drop the stand-in.
COPY pyproject.toml ./
RUN touch README.md lab.py \
 && if [ -n "$PIP_CONF" ]; then printf '%s\n' "$PIP_CONF" > /tmp/pip.conf; export PIP_CONFIG_FILE=/tmp/pip.conf; fi \
 && if [ -n "$PIP_EXTRA_CA_PEM" ]; then \
      cat /etc/ssl/certs/ca-certificates.crt > /tmp/pip-ca.pem 2>/dev/null \
        || python -c "from pip._vendor import certifi; print(open(certifi.where()).read())" > /tmp/pip-ca.pem; \
      printf '%s\n' "$PIP_EXTRA_CA_PEM" >> /tmp/pip-ca.pem; export PIP_CERT=/tmp/pip-ca.pem; fi \
 && pip install . "setuptools>=68" wheel \
 && pip uninstall -y stability-lab \
 && rm -rf README.md lab.py build ./*.egg-info /tmp/pip.conf /tmp/pip-ca.pem

# The lab itself (.dockerignore keeps runs, datasets, models and the venv out). The code
# stays owned by root: the lab user can run it, not change it. The build tools came with the
# dependencies, so this step needs no index.
COPY . .
RUN pip install --no-deps --no-build-isolation . && rm -rf build ./*.egg-info

# Runs, datasets and models go to /data (a volume in docker-compose.yml); a fresh named
# volume takes this folder's owner, so the non-root user can write to it.
RUN useradd --create-home --uid 10001 --user-group lab \
 && mkdir -p /data && chown lab:lab /data
USER lab

# 5000 target, 9100 target metrics listener, 8089 Locust web UI, 5557 Locust master, 9105 monitor
EXPOSE 5000 9100 8089 5557 9105

# The target's /healthz by default; other roles set LAB_HEALTHCHECK_URL (or disable the check).
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request as u; sys.exit(0 if u.urlopen(os.environ.get('LAB_HEALTHCHECK_URL', 'http://127.0.0.1:5000/healthz'), timeout=3).status == 200 else 1)"]

CMD ["python", "lab.py", "serve", "--bind-all", "--port", "5000", "--metrics-port", "9100"]
