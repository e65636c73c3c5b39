"""The Celery side of cutout: `celery -A worker worker` finds the app here."""
