# The webhook server. Configure it with GITLAB_URL, GITLAB_TOKEN and WEBHOOK_SECRET;
# see the README's settings table for the rest.

# Build stage: the wheel and its dependencies into a venv, with the build tools left behind.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/venv/bin/pip install --no-cache-dir .

# Run stage: the venv only, as an unprivileged user.
FROM python:3.11-slim
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    COMPLIANCE_DB=/data/compliance-bot.db
RUN useradd --system --uid 10001 --home-dir /data --create-home compliance
# The journal lives here: keep it on a volume so no accepted event is lost on a redeploy.
VOLUME ["/data"]
USER 10001
WORKDIR /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["compliance-bot", "serve", "--host", "0.0.0.0", "--port", "8080"]
