# The image compose.yaml runs as migrate, web, worker and beat.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext \
    && rm -rf /var/lib/apt/lists/*
# The dependencies first (the project installs no package of its own: it runs from /app).
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir .
COPY . .
# The staff pages' Korean catalogue (the .mo is not committed); no Django settings needed.
RUN msgfmt --check -o config/locale/ko/LC_MESSAGES/django.mo config/locale/ko/LC_MESSAGES/django.po \
    && useradd --system --home-dir /app baeum \
    && mkdir -p /srv/baeum \
    && chown baeum /srv/baeum
USER baeum
EXPOSE 8000
