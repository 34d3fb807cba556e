# Alertmanager from Debian's package (prometheus-alertmanager), on the Debian base image
# deploy/stack-test.sh makes with debootstrap: the stand-in for prom/alertmanager in
# deploy/compose.test.yml. Same entrypoint and flags as the official image.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-alertmanager \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /alertmanager && chown prometheus:prometheus /alertmanager
USER prometheus
EXPOSE 9093
ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]
