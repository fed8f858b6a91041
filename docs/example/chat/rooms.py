"""One group per room: every process (ASGI server, WSGI workers, Celery workers) names it the same way."""


def group_of(room: str) -> str:
    return f"room-{room}"
