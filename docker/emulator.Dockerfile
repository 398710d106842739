# The BigQuery emulator seeded with sample token rows, for offline use (compose profile
# "offline", the chart's emulator.enabled). Same launcher and seeder as the demo and tests.
#   docker build -f docker/emulator.Dockerfile -t token-sync-emulator:0.5.0 .
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/emulator-requirements.txt /opt/token_sync/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /opt/token_sync/emulator-requirements.txt
COPY scripts/bq_emulator.py /opt/token_sync/
EXPOSE 9050
CMD ["/opt/venv/bin/python", "/opt/token_sync/bq_emulator.py", "serve", "--port", "9050", "--seed-days", "8"]
