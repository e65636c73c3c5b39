"""The Celery side of cutout: `celery -A worker.app worker` finds the app in `app.py`."""
