"""gunicorn reads this file from the working directory by itself: every `gunicorn config.wsgi`
started from the project's root (the README, compose.yaml) gets config/gunicorn.py, and
with it the RRN-redacting filter on its access and error logs."""

from config.gunicorn import *  # noqa: F403
