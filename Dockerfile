# One image for every role of the lab; docker-compose.yml picks the role with `command`:
#
#   target        python lab.py serve --bind-all --port 5000 --metrics-port 9100 --admin-allow-remote
#   locust        python -m locust -f loadtests/locustfile.py --master | --worker --master-host HOST
#   runner        python lab.py run-scenario NAME --host http://target:5000 --allow-remote --out /data/runs
#   monitor       python lab.py monitor --target http://target:5000 --model /data/models/NAME --bind-all ...
#                 (the monitor needs a trained model in the mounted volume; see README)
#
# Build: docker build -t stability-lab .
FROM python:3.11-slim

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
 && pip install . \
 && pip uninstall -y stability-lab \
 && rm -rf README.md lab.py build ./*.egg-info

# The lab itself (.dockerignore keeps runs, datasets, models and the venv out). The code
# stays owned by root: the lab user can run it, not change it.
COPY . .
RUN pip install --no-deps . && rm -rf build ./*.egg-info

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
