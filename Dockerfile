# krwatch on a slim Python base, run as an unprivileged user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

WORKDIR /opt/krwatch
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY rules ./rules
COPY detectors ./detectors
COPY exporters ./exporters
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /var/lib/krwatch --create-home krwatch \
    && mkdir -p /etc/krwatch \
    && chown krwatch /var/lib/krwatch

COPY config.example.yaml /etc/krwatch/config.yaml
COPY examples /etc/krwatch/examples

USER krwatch
WORKDIR /var/lib/krwatch
EXPOSE 9464

# The example config listens on 127.0.0.1; a container config should set
# server.listen to 0.0.0.0:9464 so the port is reachable from outside.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/-/healthy', timeout=4).status == 200 else 1)"

CMD ["krwatch", "run", "-c", "/etc/krwatch/config.yaml"]
