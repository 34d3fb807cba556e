# Prometheus from Debian's package, on the Debian base image deploy/stack-test.sh makes with
# debootstrap: the stand-in for prom/prometheus in deploy/compose.test.yml, for machines that
# reach Debian's packages but no image registry. Same entrypoint and flags as the official
# image; wget for the healthcheck docker-compose.yml gives the service.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus wget \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
USER prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
