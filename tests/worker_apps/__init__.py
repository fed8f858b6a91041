"""Small applications that worker-model tests (`tests/test_worker_models.py`) run under real servers and pools."""
