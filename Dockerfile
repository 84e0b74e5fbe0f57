# backend-to-api: OpenAI-compatible API over the ChatGPT backend-api.
# Lint: hadolint Dockerfile
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The service runs as this unprivileged user; only images/, files/ and log/ are writable by it.
ARG APP_UID=10001
ARG APP_GID=10001
RUN groupadd --system --gid "${APP_GID}" app \
    && useradd --system --uid "${APP_UID}" --gid app --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app

WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY backend_to_api ./backend_to_api
COPY main.py gunicorn.conf.py config.json gpts.json ./
RUN mkdir -p images files log \
    && chown app:app images files log

EXPOSE 33333

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request; port = os.environ.get('PORT', '33333'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]

# images/, files/ and log/ are usually bind mounts (docker-compose.yml) whose host directories
# may belong to root: when started as root, hand what is not yet the app user's to it, then drop
# to that user (setpriv is util-linux, always in Debian) so the app never runs as root. Started
# with --user/user: already, the command runs as given.
ENTRYPOINT ["/bin/sh", "-c", "if [ \"$(id -u)\" = 0 ]; then find /app/images /app/files /app/log \\! -user app -exec chown app:app {} + ; exec setpriv --reuid=app --regid=app --init-groups -- \"$@\"; fi; exec \"$@\"", "docker-entrypoint"]

CMD ["python", "main.py"]
