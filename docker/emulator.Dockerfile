# The BigQuery emulator seeded with sample token rows, for offline use (compose profile
# "offline", the chart's emulator.enabled). Same launcher and seeder as the demo and tests.
#   docker build -f docker/emulator.Dockerfile -t token-sync-emulator:0.2.0 .
FROM python:3.11-slim-bookworm
COPY scripts/emulator-requirements.txt /opt/token_sync/
RUN pip install --no-cache-dir -r /opt/token_sync/emulator-requirements.txt
COPY scripts/bq_emulator.py /opt/token_sync/
EXPOSE 9050
CMD ["python", "/opt/token_sync/bq_emulator.py", "serve", "--port", "9050", "--seed-days", "8"]
