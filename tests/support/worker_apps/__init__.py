"""Small applications that worker-model tests (`tests/e2e/test_worker_models.py`) run under real servers and pools."""
